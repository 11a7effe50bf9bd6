//! What can go wrong in a cluster, each with the place it went wrong.

/// Errors of the cluster crate.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// An address given on the command line or in a file is not `HOST:PORT`.
    #[error("{what} {given:?}: expected HOST:PORT")]
    Address { what: &'static str, given: String },
    /// An environment variable holds a value it cannot.
    #[error("{name}={given:?}: expected {expected}")]
    Environment {
        name: &'static str,
        given: String,
        expected: &'static str,
    },
    /// A port could not be bound or a folder not made.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Ballista's scheduler or executor failed to start or stopped with an error.
    #[error("{role}: {message}")]
    Ballista { role: &'static str, message: String },
    /// The scheduler did not answer a status request, or answered something else.
    #[error("the scheduler at {addr}: {message}")]
    Status { addr: String, message: String },
}
