//! Test fixtures shared by the scheduler's state tests: Ballista's own execution graph of
//! a small two-stage job, the executors that run it, and what they report back.

use std::sync::Arc;

use ballista_core::execution_plans::{ShuffleWriter, ShuffleWriterExec};
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::protobuf::{
    ShuffleWritePartition, SuccessfulTask, TaskStatus, task_status,
};
use ballista_core::serde::scheduler::{
    ExecutorMetadata, ExecutorOperatingSystemSpecification, ExecutorSpecification,
};
use ballista_scheduler::planner::DefaultDistributedPlanner;
use ballista_scheduler::state::execution_graph::{
    ExecutionGraph, StaticExecutionGraph, TaskDescription,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::empty::EmptyTable;
use datafusion::prelude::{SessionConfig, SessionContext};

/// An executor of one slot, as Ballista describes it.
pub(crate) fn executor(id: &str) -> ExecutorMetadata {
    ExecutorMetadata {
        id: id.into(),
        host: "127.0.0.1".into(),
        port: 50051,
        grpc_port: 50052,
        specification: ExecutorSpecification::default().with_vcores(1),
        os_info: ExecutorOperatingSystemSpecification::default(),
    }
}

/// What an executor reports for a task it finished: a file per partition it hashed its
/// rows into or, in the last stage, one per input partition, under that partition's id.
pub(crate) fn finished(task: TaskDescription, executor: &str) -> TaskStatus {
    let hashed = task
        .plan
        .downcast_ref::<ShuffleWriterExec>()
        .and_then(|w| w.shuffle_output_partitioning())
        .is_some();
    let ids: Vec<usize> = match hashed {
        true => (0..task.get_output_partition_number()).collect(),
        false => task.global_input_partition_ids.clone(),
    };
    let partitions = ids
        .into_iter()
        .map(|p| ShuffleWritePartition {
            partition_id: p as u64,
            num_batches: 1,
            num_rows: 1,
            num_bytes: 1,
            file_id: None,
            is_sort_shuffle: false,
        })
        .collect();
    TaskStatus {
        task_id: task.key.task_id as u32,
        job_id: task.key.job_id.to_string(),
        stage_id: task.key.stage_id as u32,
        stage_attempt_num: task.stage_attempt_num as u32,
        launch_time: 0,
        start_exec_time: 0,
        end_exec_time: 0,
        metrics: vec![],
        status: Some(task_status::Status::Successful(SuccessfulTask {
            executor_id: executor.into(),
            partitions,
            runtime_stats: vec![],
            task_column_stats: vec![],
            window_state: vec![],
        })),
    }
}

/// A sum by key over two partitions: a partial-aggregate stage, then the final one.
pub(crate) async fn sum_by_key() -> StaticExecutionGraph {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("n", DataType::UInt64, false),
    ]));
    ctx.register_table("t", Arc::new(EmptyTable::new(schema).with_partitions(2)))
        .unwrap();
    let plan = ctx
        .sql("select id, sum(n) from t group by id")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let graph = StaticExecutionGraph::new(
        "scheduler",
        &"job".into(),
        "job",
        "session",
        plan,
        0,
        Arc::new(SessionConfig::new_with_ballista()),
        &mut DefaultDistributedPlanner::new(),
        None,
    )
    .unwrap();
    assert_eq!(graph.stage_count(), 2);
    graph
}
