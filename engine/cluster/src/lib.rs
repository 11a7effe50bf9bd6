//! Reports on an Apache Ballista cluster: the scheduler and executors embedded in the one
//! `svodka` binary, Svodka's functions carried in every shipped plan, a version handshake
//! that keeps one Svodka version per cluster, and the engine a run uses to plan there.
//!
//! Flow: `svodka cluster scheduler` ([`scheduler::serve`]) and `svodka cluster executor`
//! ([`executor::run`]) form the cluster; a run with `--cluster` gets a [`Cluster`] as its
//! `svodka_report::Engine`, which turns its session into one whose plans execute there.
//! Plans cross processes as DataFusion protobufs; [`codec`] adds what those cannot carry
//! (the time zone bound into `local_date` and its kin), [`handshake`] refuses any peer of
//! another Svodka version.

pub mod codec;
pub mod executor;
pub mod handshake;
pub mod logging;
pub mod scheduler;

mod error;
#[cfg(test)]
mod graph_fixture;
mod jobs;
mod remote;
mod slots;

pub use error::ClusterError;
pub use remote::{Cluster, ExecutorStatus, status};

/// The port a scheduler listens on when none is given (Ballista's own default).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// `HOST:PORT` split, the port defaulting to the scheduler's.
pub fn host_port(addr: &str, what: &'static str) -> Result<(String, u16), ClusterError> {
    let bad = || ClusterError::Address {
        what,
        given: addr.to_string(),
    };
    let (host, port) = match addr.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad())?),
        None => (addr, DEFAULT_SCHEDULER_PORT),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    if !valid || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_host_and_port() {
        assert_eq!(
            host_port("10.0.0.5:7000", "x").unwrap(),
            ("10.0.0.5".into(), 7000)
        );
        assert_eq!(
            host_port("sched.local", "x").unwrap(),
            ("sched.local".into(), DEFAULT_SCHEDULER_PORT)
        );
        assert_eq!(host_port("[::1]:9", "x").unwrap(), ("::1".into(), 9));
        for bad in [
            "",
            ":1",
            "h:0",
            "h:port",
            "h:70000",
            "a b:1",
            "h/x:1",
            "http://h:1",
        ] {
            let e = host_port(bad, "--scheduler").unwrap_err().to_string();
            assert!(
                e.contains("--scheduler") && e.contains("HOST:PORT"),
                "{bad}: {e}"
            );
        }
    }
}
