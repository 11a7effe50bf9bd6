//! `svodka cluster executor`: Ballista's executor with Svodka's codecs, introducing itself
//! to the scheduler as this Svodka version.

use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::JobId;
use ballista_core::serde::protobuf::ShuffleWritePartition;
use ballista_executor::execution_engine::{
    DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor,
};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use datafusion::error::Result as BallistaResult;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::prelude::SessionConfig;

use crate::{ClusterError, codec, handshake};

/// How often an executor tells the scheduler it is alive (Ballista's default: a minute),
/// so that a lost one is noticed within [`crate::scheduler::EXECUTOR_TIMEOUT_SECONDS`].
pub const HEARTBEAT_SECONDS: u64 = 5;

/// How an executor runs.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's `HOST:PORT`.
    pub scheduler: String,
    /// The address the executor listens on and tells the scheduler.
    pub bind_host: String,
    /// Where other executors and runs fetch this executor's results (Arrow Flight).
    pub port: u16,
    /// Where the scheduler sends tasks.
    pub grpc_port: u16,
    /// Where intermediate results are written; default: a temporary folder.
    pub work_dir: Option<PathBuf>,
    /// Tasks at once; default: the machine's cores.
    pub concurrent_tasks: Option<usize>,
}

/// Runs an executor until it is stopped (Ctrl-C, SIGTERM, or the scheduler stops it).
pub async fn run(options: ExecutorOptions) -> Result<(), ClusterError> {
    let (scheduler_host, scheduler_port) = crate::host_port(&options.scheduler, "--scheduler")?;
    let work_dir = match &options.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| ClusterError::Io {
                what: format!("the work folder {}", dir.display()),
                source,
            })?;
            Some(dir.to_string_lossy().into_owned())
        }
        None => None,
    };
    let (logical, physical) = codec::codecs();
    // Tasks read stores in buckets through clients made from this process's environment,
    // one per bucket, kept for every task; they spill where Ballista's own runtime would.
    let buckets = Arc::new(svodka_store::bucket::Buckets::default());
    let spill_dir = work_dir.clone();
    let runtime: ballista_core::RuntimeProducer = Arc::new(move |_config: &SessionConfig| {
        let builder = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_object_store_registry(buckets.clone());
        let builder = match &spill_dir {
            Some(dir) => builder.with_temp_file_path(dir),
            None => builder,
        };
        builder.build_arc()
    });
    let config = ExecutorProcessConfig {
        bind_host: options.bind_host.clone(),
        external_host: Some(options.bind_host.clone()),
        port: options.port,
        grpc_port: options.grpc_port,
        scheduler_host,
        scheduler_port,
        vcores: options.concurrent_tasks.unwrap_or(0),
        work_dir,
        print_thread_info: false,
        override_logical_codec: Some(logical),
        override_physical_codec: Some(physical),
        override_create_grpc_client_endpoint: Some(handshake::introduce()),
        override_execution_engine: Some(Arc::new(WithoutOperatorMetrics::default())),
        override_runtime_producer: Some(runtime),
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| ClusterError::Ballista {
            role: "executor",
            message: e.to_string(),
        })
}

/// Ballista's engine, reporting no per-operator metrics to the scheduler. Ballista 55
/// checks that every task of a stage reports as many operator metric sets as the first
/// one did; an operator that one task never starts (a join's probe side over an empty
/// build side) reports none, the check fails, the task's status is dropped and the job
/// waits for ever. The metrics only feed the scheduler's display of finished stages.
#[derive(Default)]
struct WithoutOperatorMetrics(DefaultExecutionEngine);

impl ExecutionEngine for WithoutOperatorMetrics {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> BallistaResult<Arc<dyn QueryStageExecutor>> {
        let stage = self.0.create_query_stage_exec(
            job_id,
            stage_id,
            task_id,
            global_output_partition_ids,
            plan,
            work_dir,
            config,
        )?;
        Ok(Arc::new(Quiet(stage)))
    }
}

/// A stage whose operator metrics stay in the executor.
#[derive(Debug)]
struct Quiet(Arc<dyn QueryStageExecutor>);

impl std::fmt::Display for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[async_trait::async_trait]
impl QueryStageExecutor for Quiet {
    async fn execute_query_stage(
        &self,
        task_id: usize,
        context: Arc<TaskContext>,
    ) -> BallistaResult<Vec<ShuffleWritePartition>> {
        self.0.execute_query_stage(task_id, context).await
    }

    fn collect_plan_metrics(&self) -> Vec<MetricsSet> {
        Vec::new()
    }

    fn collect_runtime_stats_reports(
        &self,
    ) -> Vec<ballista_core::serde::protobuf::RuntimeStatsReport> {
        self.0.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(
        &self,
    ) -> BallistaResult<Vec<ballista_core::serde::protobuf::WindowStateReport>> {
        self.0.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<ballista_core::serde::protobuf::TaskColumnStats> {
        self.0.collect_column_stats()
    }
}
