//! Links the `svodka` executable at a fixed address (not position-independent) on Linux.
//!
//! Why: a position-independent executable of this size carries ~313 000 relocations that
//! the loader applies at every start, writing ~5 MB of pointers (~1 400 page faults):
//! ~10 ms of a 20 000-deal run went to starting the process. Linked at a fixed
//! address, the same start takes ~4 ms. Libraries, stack and heap are still placed at
//! random; only the executable's own code and data are not. `SVODKA_PIE=1` at build time
//! keeps the position-independent link (see docs/security.md).

fn main() {
    println!("cargo:rerun-if-env-changed=SVODKA_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let keep_pie = std::env::var_os("SVODKA_PIE").is_some_and(|v| v != "0" && !v.is_empty());
    if linux && !keep_pie {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
