//! One Svodka version per cluster. Every Svodka peer of a scheduler (executors, runs)
//! names its version in the gRPC `user-agent`; the scheduler answers any other with
//! FAILED_PRECONDITION naming both versions, so an executor of another version never
//! registers and a run of another version never submits a plan (the plans, the functions
//! in them and the canonical tables may differ between versions).

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ballista_core::extension::EndpointOverrideFn;

/// This build's version, as peers compare it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The token a Svodka peer puts in its user agent: `svodka/0.1.0`.
pub fn agent() -> String {
    format!("svodka/{VERSION}")
}

/// Makes every gRPC connection a Svodka peer opens introduce itself.
pub fn introduce() -> EndpointOverrideFn {
    Arc::new(|endpoint| Ok(endpoint.user_agent(agent())?))
}

/// The version a user agent names, if it is a Svodka peer's.
pub fn version_of(user_agent: &str) -> Option<&str> {
    user_agent
        .split_whitespace()
        .find_map(|token| token.strip_prefix("svodka/"))
}

/// Why a peer with this user agent may not join, if it may not.
pub fn refusal(user_agent: Option<&str>) -> Option<String> {
    match user_agent.and_then(version_of) {
        Some(v) if v == VERSION => None,
        Some(v) => Some(format!(
            "this scheduler runs Svodka {VERSION} and the peer Svodka {v}: run one Svodka \
             version on the scheduler, every executor and every client"
        )),
        None => Some(format!(
            "this scheduler runs Svodka {VERSION} and accepts only Svodka executors and \
             runs of the same version (user agent {:?})",
            user_agent.unwrap_or("")
        )),
    }
}

/// The scheduler's gate: gRPC requests of a peer that may not join get
/// FAILED_PRECONDITION; other requests (the status page) pass.
pub async fn gate(req: Request, next: Next) -> Response {
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        let agent = req
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        if let Some(message) = refusal(agent) {
            return tonic::Status::failed_precondition(message)
                .into_http::<axum::body::Body>()
                .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_version_may_join() {
        let ours = format!("{} tonic/0.14.9", agent());
        assert_eq!(refusal(Some(&ours)), None);
        let other = refusal(Some("svodka/0.0.9 tonic/0.14.9")).unwrap();
        assert!(other.contains(&format!("Svodka {VERSION}")) && other.contains("Svodka 0.0.9"));
        let foreign = refusal(Some("tonic/0.14.9")).unwrap();
        assert!(foreign.contains("tonic/0.14.9"), "{foreign}");
        assert!(refusal(None).is_some());
    }
}
