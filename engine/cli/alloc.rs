//! The process's allocator: glibc's, or mimalloc once a run has found its data small.
//!
//! Why: at 20 000 deals a run is mostly many small allocations, which mimalloc serves
//! with less CPU; at a million deals mimalloc keeps freed memory (for 10 ms by default,
//! for good as `prefer_mimalloc` sets it) and a run's peak passes 1.5 GB where glibc's
//! stays under 1.4 GB. Memory goes back to the allocator that gave it, whichever is
//! chosen then.
//!
//! mimalloc's 2.x line, not 3.x: a run's threads are many and short-lived, and 3.x
//! spread their allocations over more memory — at 20 000 deals 41–86 fresh 2 MiB pages
//! a run against 27–51 (measured while huge pages were still allowed; see
//! `prefer_mimalloc` for why they no longer are).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_int, c_ulong, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

use libmimalloc_sys as mi;

/// Allocates from mimalloc after [`prefer_mimalloc`], else from the system's allocator.
pub struct Chosen;

static MIMALLOC: AtomicBool = AtomicBool::new(false);

/// mimalloc's `purge_delay` (`mi_option_purge_delay` in the v2 `mimalloc.h`; the crate
/// names no constant for it).
const PURGE_DELAY: mi::mi_option_t = 15;

/// mimalloc's `allow_thp` (`mi_option_allow_thp`, likewise unnamed by the crate).
const ALLOW_THP: mi::mi_option_t = 37;

/// New allocations come from mimalloc from now on, which keeps the memory it frees for
/// the rest of the process instead of handing it back to the system after 10 ms: a run
/// is short, and each page handed back is zeroed by the kernel again when it is next
/// used (at 20 000 deals ~700 page faults, and up to a third of a run's system time).
pub fn prefer_mimalloc() {
    // SAFETY: sets an option; mimalloc reads it each time it would purge.
    unsafe { mi::mi_option_set(PURGE_DELAY, -1) };
    // No transparent huge pages: mimalloc asks for them on the memory it maps (where the
    // system gives them only when asked, as Debian's default does), and each is 2 MiB
    // zeroed on first touch however little of it is used. On a virtual machine whose
    // idle memory the host takes back (free page reporting), a run after a few idle
    // seconds paid for each with a fault on the host: `sales_plan` at 20 000 deals 690 ms
    // (841 ms of system time) with them, 240 ms without.
    // SAFETY: sets an option that mimalloc reads when it maps memory, before it first does.
    unsafe { mi::mi_option_set(ALLOW_THP, 0) };
    refuse_huge_pages();
    MIMALLOC.store(true, Ordering::Relaxed);
}

/// `PR_SET_THP_DISABLE` of `<linux/prctl.h>`: the process refuses transparent huge pages.
#[cfg(target_os = "linux")]
const PR_SET_THP_DISABLE: c_int = 41;
/// `PR_GET_THP_DISABLE`: whether it does.
#[cfg(all(test, target_os = "linux"))]
const PR_GET_THP_DISABLE: c_int = 42;

#[cfg(target_os = "linux")]
unsafe extern "C" {
    /// glibc's `prctl`, linked into every Rust program on Linux.
    fn prctl(option: c_int, ...) -> c_int;
}

/// Where the system backs all anonymous memory with huge pages (`enabled` = `always`,
/// as some distributions set it), mimalloc's option alone does not keep them away: it
/// only stops mimalloc asking. mimalloc would refuse them for the process itself at its
/// start if the option were off then, but it is read before a run knows its data. So the
/// process refuses them here; a small run never forks, and a big one never gets here.
/// A kernel without the flag returns an error, ignored: huge pages then stay as the
/// system gives them.
fn refuse_huge_pages() {
    #[cfg(target_os = "linux")]
    thp_prctl(PR_SET_THP_DISABLE, 1);
}

/// Whether this process refuses transparent huge pages (`PR_GET_THP_DISABLE`).
#[cfg(all(test, target_os = "linux"))]
fn refuses_huge_pages() -> bool {
    thp_prctl(PR_GET_THP_DISABLE, 0) == 1
}

/// `prctl(option, arg, 0, 0, 0)`: the calls on the process's huge-page flag take one
/// argument and zeros for the rest.
#[cfg(target_os = "linux")]
fn thp_prctl(option: c_int, arg: c_ulong) -> c_int {
    // SAFETY: sets or reads a flag of this process; every argument is passed at the
    // width the kernel reads it.
    unsafe { prctl(option, arg, 0 as c_ulong, 0 as c_ulong, 0 as c_ulong) }
}

fn from_mimalloc(ptr: *mut u8) -> bool {
    // SAFETY: a lookup in mimalloc's arenas and segment map; any address may be asked.
    unsafe { mi::mi_is_in_heap_region(ptr as *const c_void) }
}

// SAFETY: each block is freed or resized by the allocator that made it, which
// `from_mimalloc` tells; both allocators honour the layout's alignment.
unsafe impl GlobalAlloc for Chosen {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if MIMALLOC.load(Ordering::Relaxed) {
            unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8 }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if MIMALLOC.load(Ordering::Relaxed) {
            unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8 }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if from_mimalloc(ptr) {
            unsafe { mi::mi_free(ptr as *mut c_void) }
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if from_mimalloc(ptr) {
            unsafe {
                mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        } else {
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block of each allocator, resized and freed after the choice changed, goes back
    /// to the one that made it (the test binary runs on this allocator too).
    #[test]
    fn memory_goes_back_to_the_allocator_that_gave_it() {
        let layout = Layout::from_size_align(4096, 64).unwrap();
        let fill = |ptr: *mut u8, byte: u8| unsafe { ptr.write_bytes(byte, layout.size()) };
        let from_glibc = unsafe { Chosen.alloc(layout) };
        assert!(!from_glibc.is_null() && !from_mimalloc(from_glibc));
        fill(from_glibc, 1);
        // The options set are the purge delay (its default 10 ms) and THP (allowed).
        assert_eq!(unsafe { mi::mi_option_get(PURGE_DELAY) }, 10);
        assert_eq!(unsafe { mi::mi_option_get(ALLOW_THP) }, 1);
        #[cfg(target_os = "linux")]
        assert!(!refuses_huge_pages());
        prefer_mimalloc();
        assert_eq!(unsafe { mi::mi_option_get(PURGE_DELAY) }, -1);
        assert_eq!(unsafe { mi::mi_option_get(ALLOW_THP) }, 0);
        #[cfg(target_os = "linux")]
        assert!(refuses_huge_pages());
        let from_mi = unsafe { Chosen.alloc_zeroed(layout) };
        assert!(from_mimalloc(from_mi));
        assert_eq!(from_mi as usize % 64, 0);
        assert_eq!(unsafe { *from_mi.add(4095) }, 0);
        let grown = unsafe { Chosen.realloc(from_glibc, layout, 1 << 20) };
        assert!(!from_mimalloc(grown));
        assert_eq!(unsafe { *grown.add(4095) }, 1);
        let grown_mi = unsafe { Chosen.realloc(from_mi, layout, 1 << 20) };
        assert!(from_mimalloc(grown_mi));
        let big = Layout::from_size_align(1 << 20, 64).unwrap();
        unsafe {
            Chosen.dealloc(grown, big);
            Chosen.dealloc(grown_mi, big);
        }
        // Everything the process allocates from now on works as before.
        let v: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        assert_eq!(v[9999], "9999");
    }
}
