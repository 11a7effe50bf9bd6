//! `svodka cluster scheduler`: Ballista's scheduler with Svodka's codecs, behind the
//! version gate, and a status page listing the executors (`GET /svodka/executors`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
use ballista_core::utils::default_config_producer;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::cluster::memory::InMemoryJobState;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::create_scheduler;
use ballista_scheduler::scheduler_server::SchedulerServer;
use ballista_scheduler::state::session_manager::share_file_statistics_cache;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tokio::net::TcpListener;

use crate::jobs::CheckedJobState;
use crate::remote::ExecutorStatus;
use crate::slots::SlotCheckedClusterState;
use crate::{ClusterError, codec, handshake};

type Server = SchedulerServer<LogicalPlanNode, PhysicalPlanNode>;

/// The path of the status page.
pub const STATUS_PATH: &str = "/svodka/executors";

/// An executor silent this long is taken for lost and its work given to the others: four
/// of its heartbeats ([`crate::executor::HEARTBEAT_SECONDS`]) missed. Ballista's default,
/// three minutes, held a run that lost an executor mid-task for as long whenever no other
/// executor happened to ask the lost one for data.
pub const EXECUTOR_TIMEOUT_SECONDS: u64 = 20;

/// Ballista's sessions, with the object stores of stores in buckets: the scheduler lists
/// a table's files when it plans a scan.
fn sessions_reading_buckets() -> ballista_scheduler::scheduler_server::SessionBuilder {
    let buckets = Arc::new(svodka_store::bucket::Buckets::default());
    Arc::new(move |config| {
        let state = ballista_core::utils::default_session_builder(config)?;
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_object_store_registry(buckets.clone())
            .build_arc()?;
        Ok(
            datafusion::execution::SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(runtime)
                .build(),
        )
    })
}

/// Serves a scheduler on `listener` until `shutdown` completes. Executors reach it at the
/// listener's address; runs submit their plans there.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ClusterError> {
    let addr = listener.local_addr().map_err(|source| ClusterError::Io {
        what: "the scheduler's address".into(),
        source,
    })?;
    let ballista = |message: String| ClusterError::Ballista {
        role: "scheduler",
        message,
    };
    let (logical, physical) = codec::codecs();
    let config = SchedulerConfig {
        bind_host: addr.ip().to_string(),
        bind_port: addr.port(),
        external_host: addr.ip().to_string(),
        override_logical_codec: Some(logical),
        override_physical_codec: Some(physical),
        executor_timeout_seconds: EXECUTOR_TIMEOUT_SECONDS,
        expire_dead_executor_interval_seconds: 5,
        ..SchedulerConfig::default()
    };
    let config = Arc::new(config);
    // Ballista's in-memory state, as `BallistaCluster::new_from_config` builds it, with
    // the job state that fails a job which redid finished work (see `jobs`) and the
    // cluster state that gives back the slots of abandoned tasks (see `slots`).
    let jobs = InMemoryJobState::new(
        config.scheduler_id.clone(),
        share_file_statistics_cache(sessions_reading_buckets()),
        Arc::new(default_config_producer),
    );
    let cluster = BallistaCluster::new(
        Arc::new(SlotCheckedClusterState::default()),
        Arc::new(CheckedJobState::new(jobs)),
    );
    let scheduler: Server = create_scheduler(cluster, config.clone())
        .await
        .map_err(|e| ballista(e.to_string()))?;
    let grpc = SchedulerGrpcServer::new(scheduler.clone())
        .max_encoding_message_size(config.grpc_server_max_encoding_message_size as usize)
        .max_decoding_message_size(config.grpc_server_max_decoding_message_size as usize);
    let mut routes = tonic::service::RoutesBuilder::default();
    routes.add_service(grpc);
    let app = routes
        .routes()
        .into_axum_router()
        .route(STATUS_PATH, get(executors).with_state(Arc::new(scheduler)))
        .layer(axum::middleware::from_fn(handshake::gate));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|source| ClusterError::Io {
        what: format!("serving the scheduler on {addr}"),
        source,
    })
}

/// The registered executors with their slots and last heartbeat.
async fn executors(State(scheduler): State<Arc<Server>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let state = match scheduler.state.executor_manager.get_executors_state().await {
        Ok(s) => s,
        Err(e) => {
            return (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
    };
    let mut list: Vec<ExecutorStatus> = state
        .into_iter()
        .map(|(meta, heartbeat, _)| ExecutorStatus {
            id: meta.id,
            host: meta.host,
            port: meta.port,
            grpc_port: meta.grpc_port,
            slots: meta.specification.vcores,
            last_heartbeat_unix: heartbeat.map(|d| d.as_secs()),
            version: handshake::VERSION.to_string(),
        })
        .collect();
    list.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
    axum::Json(list).into_response()
}

#[cfg(test)]
mod tests {
    use ballista_core::serde::protobuf::GetJobStatusParams;
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;

    /// A gRPC client of the scheduler at `addr` that introduces itself as `agent`.
    async fn client(
        addr: std::net::SocketAddr,
        agent: &str,
    ) -> SchedulerGrpcClient<tonic::transport::Channel> {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .user_agent(agent)
            .unwrap();
        SchedulerGrpcClient::new(endpoint.connect().await.unwrap())
    }

    #[tokio::test]
    async fn a_peer_of_another_version_is_turned_away_by_a_real_scheduler() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(super::serve(listener, async {
            let _ = stopped.await;
        }));
        let ask = || GetJobStatusParams {
            job_id: "no-such-job".into(),
        };
        let refused = client(addr, "svodka/0.0.1")
            .await
            .get_job_status(ask())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(
            refused.message().contains("Svodka 0.0.1")
                && refused
                    .message()
                    .contains(&format!("Svodka {}", crate::handshake::VERSION)),
            "{}",
            refused.message()
        );
        let foreign = client(addr, "ballista-cli/55")
            .await
            .get_job_status(ask())
            .await;
        assert_eq!(foreign.unwrap_err().code(), tonic::Code::FailedPrecondition);
        // The same version passes the gate and reaches the scheduler.
        let ours = client(addr, &crate::handshake::agent())
            .await
            .get_job_status(ask())
            .await;
        if let Err(e) = &ours {
            assert_ne!(e.code(), tonic::Code::FailedPrecondition, "{e}");
        }
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
