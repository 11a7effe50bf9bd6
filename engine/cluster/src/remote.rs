//! The side of a run: a [`Cluster`] is the engine that plans a report's blocks on the
//! scheduler, and [`status`] reads the scheduler's list of executors.

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use datafusion::execution::SessionState;
use serde::{Deserialize, Serialize};

use crate::{ClusterError, codec, handshake};

/// A scheduler that runs report plans.
#[derive(Debug, Clone)]
pub struct Cluster {
    host: String,
    port: u16,
}

impl Cluster {
    /// The cluster whose scheduler is at `addr` (`HOST:PORT`); `what` names the option
    /// it came from, for the error.
    pub fn at(addr: &str, what: &'static str) -> Result<Cluster, ClusterError> {
        let (host, port) = crate::host_port(addr, what)?;
        Ok(Cluster { host, port })
    }

    fn reachable(&self) -> Result<(), String> {
        use std::net::ToSocketAddrs;
        let addrs: Vec<std::net::SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve the scheduler's host: {e}"))?
            .collect();
        let mut last = None;
        for addr in addrs {
            match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => format!("cannot reach the scheduler: {e}"),
            None => "the scheduler's host has no address".into(),
        })
    }

    /// The scheduler's gRPC address as Ballista's planner takes it.
    fn scheduler_url(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }
}

impl svodka_report::RemoteEngine for Cluster {
    fn describe(&self) -> String {
        format!("the cluster at {}:{}", self.host, self.port)
    }

    fn upgrade(&self, state: SessionState) -> Result<SessionState, String> {
        // A scheduler that is not there fails the run here, named, rather than in the
        // first block with a transport error.
        self.reachable()?;
        let (logical, physical) = codec::codecs();
        let config = state
            .config()
            .clone()
            .with_ballista_logical_extension_codec(logical)
            .with_ballista_physical_extension_codec(physical)
            .with_ballista_override_create_grpc_client_endpoint(handshake::introduce());
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(state)
            .with_config(config)
            .build();
        // Ballista's upgrade replaces the session's functions with its own list: the
        // report language's (bound to the run's time zone) are put back after it.
        let ours: Vec<_> = state
            .scalar_functions()
            .values()
            .filter(|f| svodka_report::functions::definition(f).is_some())
            .cloned()
            .collect();
        let mut state = state
            .upgrade_for_ballista(self.scheduler_url())
            .map_err(|e| e.to_string())?;
        // Ballista's adaptive planner (on by default in 55) returns no rows for a
        // grouping-less aggregate over a union (a report's totals, a funnel) and stalls
        // some multi-stage joins: the static planner gives the local run's results.
        state
            .config_mut()
            .options_mut()
            .set("ballista.planner.adaptive.enabled", "false")
            .map_err(|e| e.to_string())?;
        // Job statuses pushed by the scheduler, not polled: a polled status comes from the
        // scheduler's cache of running jobs, past the check that fails a job which redid
        // finished work (`jobs`).
        state
            .config_mut()
            .options_mut()
            .set("ballista.client.pull", "false")
            .map_err(|e| e.to_string())?;
        for f in ours {
            datafusion::execution::FunctionRegistry::register_udf(&mut state, f)
                .map_err(|e| e.to_string())?;
        }
        Ok(state)
    }

    fn may_run_again(&self, message: &str) -> bool {
        message.contains(crate::jobs::REDONE)
    }
}

/// One executor as the scheduler knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorStatus {
    pub id: String,
    pub host: String,
    /// Where its results are fetched (Arrow Flight).
    pub port: u16,
    /// Where it takes tasks.
    pub grpc_port: u16,
    /// Tasks it runs at once.
    pub slots: u32,
    /// Its last heartbeat, seconds since 1970; none yet.
    pub last_heartbeat_unix: Option<u64>,
    /// The Svodka version (the scheduler's: no other may register).
    pub version: String,
}

/// The executors registered with the scheduler at `addr`.
pub fn status(addr: &str) -> Result<Vec<ExecutorStatus>, ClusterError> {
    let (host, port) = crate::host_port(addr, "--scheduler")?;
    let err = |message: String| ClusterError::Status {
        addr: format!("{host}:{port}"),
        message,
    };
    let host_in_url = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let url = format!(
        "http://{host_in_url}:{port}{}",
        crate::scheduler::STATUS_PATH
    );
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .user_agent(handshake::agent())
            .build(),
    );
    let mut response = agent.get(&url).call().map_err(|e| err(e.to_string()))?;
    response
        .body_mut()
        .read_json::<Vec<ExecutorStatus>>()
        .map_err(|e| err(format!("not a Svodka scheduler's status ({e})")))
}
