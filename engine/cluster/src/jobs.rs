//! The scheduler's job state: Ballista's in-memory one, except that a job whose finished
//! work was redone after an executor was lost ends failed, with [`REDONE`], instead of
//! handing back its results.
//!
//! Why: Ballista 55 recovers from a lost executor by running again the tasks whose output
//! lived there, but it keeps the lost executor's locations of final results beside the new
//! ones, and a stage rolled back after passing results on passes them on a second time.
//! The client then reads some rows twice: a wrong sum, not an error. A job that redid
//! finished work is failed instead, and the run starts over (`Cluster::may_run_again`).

use std::collections::HashSet;

use ballista_core::serde::protobuf::failed_task::FailedReason;
use ballista_core::serde::protobuf::job_status::Status;
use ballista_core::serde::protobuf::{FailedTask, JobStatus, task_status};
use ballista_core::{JobId, JobStatusSubscriber};
use ballista_scheduler::cluster::memory::InMemoryJobState;
use ballista_scheduler::cluster::{JobState, JobStateEventStream};
use ballista_scheduler::state::execution_graph::{ExecutionGraph, ExecutionGraphBox};
use ballista_scheduler::state::execution_stage::{ExecutionStage, TaskInfo};
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;

/// The start of the message of a job failed for redone work; the run looks for it.
pub(crate) const REDONE: &str =
    "the cluster lost an executor while the job ran and redid finished work";

/// Ballista's in-memory job state, failing the jobs [`redone_work`] finds.
pub(crate) struct CheckedJobState {
    inner: InMemoryJobState,
}

impl CheckedJobState {
    pub(crate) fn new(inner: InMemoryJobState) -> CheckedJobState {
        CheckedJobState { inner }
    }
}

/// Why a job that reports success cannot be trusted: which stage ran again, or which
/// result partition is listed twice. `None` for a job that did each piece of work once,
/// and for one that has not succeeded.
fn redone_work(graph: &dyn ExecutionGraph) -> Option<String> {
    if !matches!(graph.status().status, Some(Status::Successful(_))) {
        return None;
    }
    let mut stages: Vec<_> = graph.stages().iter().collect();
    stages.sort_by_key(|(id, _)| **id);
    for (id, stage) in stages {
        let (attempt, tasks): (usize, &[TaskInfo]) = match stage {
            ExecutionStage::Running(s) => (s.stage_attempt_num, &s.task_infos),
            ExecutionStage::Successful(s) => (s.stage_attempt_num, &s.task_infos),
            _ => continue,
        };
        if attempt > 0 {
            return Some(format!("stage {id} ran {} times", attempt + 1));
        }
        let lost = tasks.iter().any(|t| {
            matches!(
                &t.task_status,
                task_status::Status::Failed(FailedTask {
                    failed_reason: Some(FailedReason::ResultLost(_)),
                    ..
                })
            )
        });
        if lost {
            return Some(format!(
                "stage {id} ran tasks again whose results were lost"
            ));
        }
    }
    let mut seen = HashSet::new();
    for location in graph.output_locations() {
        let key = (
            location.partition_id.stage_id,
            location.partition_id.partition_id,
            location.map_partition_id,
        );
        if !seen.insert(key) {
            return Some(format!(
                "result partition {} of stage {} is listed twice",
                key.1, key.0
            ));
        }
    }
    None
}

#[async_trait::async_trait]
impl JobState for CheckedJobState {
    fn accept_job(
        &self,
        job_id: &JobId,
        job_name: &str,
        queued_at: u64,
    ) -> ballista_core::error::Result<()> {
        self.inner.accept_job(job_id, job_name, queued_at)
    }

    fn pending_job_number(&self) -> usize {
        self.inner.pending_job_number()
    }

    async fn submit_job(
        &self,
        job_id: JobId,
        graph: &ExecutionGraphBox,
        subscriber: Option<JobStatusSubscriber>,
    ) -> ballista_core::error::Result<()> {
        self.inner.submit_job(job_id, graph, subscriber).await
    }

    async fn get_jobs(&self) -> ballista_core::error::Result<HashSet<JobId>> {
        self.inner.get_jobs().await
    }

    async fn get_all_jobs(&self) -> ballista_core::error::Result<HashSet<JobId>> {
        self.inner.get_all_jobs().await
    }

    async fn get_job_status(
        &self,
        job_id: &JobId,
    ) -> ballista_core::error::Result<Option<JobStatus>> {
        self.inner.get_job_status(job_id).await
    }

    async fn get_execution_graph(
        &self,
        job_id: &JobId,
    ) -> ballista_core::error::Result<Option<ExecutionGraphBox>> {
        self.inner.get_execution_graph(job_id).await
    }

    /// Where a finished job's status reaches its client: a job that redid finished work
    /// is saved failed.
    async fn save_job(
        &self,
        job_id: &JobId,
        graph: &ExecutionGraphBox,
    ) -> ballista_core::error::Result<()> {
        match redone_work(graph.as_ref()) {
            Some(why) => {
                log::warn!("job {job_id} failed: {REDONE} ({why})");
                let mut failed = graph.cloned();
                failed.fail_job(format!("{REDONE} ({why})"));
                self.inner.save_job(job_id, &failed).await
            }
            None => self.inner.save_job(job_id, graph).await,
        }
    }

    async fn fail_unscheduled_job(
        &self,
        job_id: &JobId,
        reason: String,
    ) -> ballista_core::error::Result<()> {
        self.inner.fail_unscheduled_job(job_id, reason).await
    }

    async fn remove_job(&self, job_id: &JobId) -> ballista_core::error::Result<()> {
        self.inner.remove_job(job_id).await
    }

    async fn try_acquire_job(
        &self,
        job_id: &JobId,
    ) -> ballista_core::error::Result<Option<ExecutionGraphBox>> {
        self.inner.try_acquire_job(job_id).await
    }

    async fn job_state_events(&self) -> ballista_core::error::Result<JobStateEventStream> {
        self.inner.job_state_events().await
    }

    async fn create_or_update_session(
        &self,
        session_id: &str,
        config: &SessionConfig,
    ) -> ballista_core::error::Result<Arc<SessionContext>> {
        self.inner
            .create_or_update_session(session_id, config)
            .await
    }

    async fn remove_session(&self, session_id: &str) -> ballista_core::error::Result<()> {
        self.inner.remove_session(session_id).await
    }

    fn produce_config(&self) -> SessionConfig {
        self.inner.produce_config()
    }
}

#[cfg(test)]
mod tests {
    //! Ballista's own execution graph, driven as its scheduler drives it, with an executor
    //! lost while the last stage runs.

    use super::*;
    use crate::graph_fixture::{executor, finished, sum_by_key};
    use ballista_core::serde::scheduler::{ExecutorMetadata, TaskKey};
    use ballista_scheduler::state::execution_graph::{
        StaticExecutionGraph, TaskDescription, create_task_info,
    };

    /// Binds one ready task to `on`, as the scheduler's `bind_one` does, and reports it
    /// finished there; false when no task is ready.
    fn run_one(graph: &mut StaticExecutionGraph, on: &ExecutorMetadata) -> bool {
        graph.revive();
        let Some(stage) = graph.fetch_running_stage(&[]) else {
            return false;
        };
        let partitions = stage.pending.next_slice(1);
        if partitions.is_empty() {
            return false;
        }
        let task_id = stage.task_infos.len();
        let mut info = create_task_info(on.id.clone(), task_id);
        info.global_input_partition_ids = partitions.clone();
        stage.task_infos.push(info);
        let task = TaskDescription {
            session_id: "session".into(),
            key: TaskKey {
                job_id: "job".into(),
                stage_id: stage.stage_id,
                task_id,
            },
            stage_attempt_num: stage.stage_attempt_num,
            task_attempt: 0,
            global_input_partition_ids: partitions,
            vcores_consumed: 1,
            plan: stage.plan.clone(),
            session_config: stage.session_config.clone(),
        };
        let status = finished(task, &on.id);
        graph.update_task_status(on, vec![status], 4, 4).unwrap();
        true
    }

    /// The stages running now, after ready ones are started.
    fn running(graph: &mut StaticExecutionGraph) -> Vec<usize> {
        graph.revive();
        let mut ids = graph.running_stages();
        ids.sort();
        ids
    }

    fn partitions_listed(graph: &StaticExecutionGraph) -> Vec<usize> {
        let mut listed: Vec<usize> = graph
            .output_locations()
            .iter()
            .map(|l| l.partition_id.partition_id)
            .collect();
        listed.sort();
        listed
    }

    #[tokio::test]
    async fn a_job_that_ran_each_task_once_is_trusted() {
        let mut graph = sum_by_key().await;
        let (one, two) = (executor("one"), executor("two"));
        while run_one(&mut graph, &one) | run_one(&mut graph, &two) {}
        assert!(graph.is_successful());
        assert_eq!(partitions_listed(&graph), [0, 1]);
        assert_eq!(redone_work(&graph), None);
    }

    #[tokio::test]
    async fn a_job_that_redid_a_lost_result_lists_it_twice_and_is_failed() {
        let mut graph = sum_by_key().await;
        let (one, two) = (executor("one"), executor("two"));
        // The partial aggregates (stage 1) on `two`; one final task on `one`, which is
        // then lost.
        while running(&mut graph) == [1] {
            assert!(run_one(&mut graph, &two));
        }
        assert_eq!(running(&mut graph), [2]);
        assert!(run_one(&mut graph, &one));
        assert_eq!(redone_work(&graph), None, "not finished yet");
        graph.reset_stages_on_lost_executor(&one.id).unwrap();
        while run_one(&mut graph, &two) {}
        assert!(graph.is_successful());
        // Ballista keeps the lost executor's location of the result it ran again: a
        // client would read that partition's rows twice.
        assert_eq!(partitions_listed(&graph), [0, 0, 1]);
        assert_eq!(
            redone_work(&graph).as_deref(),
            Some("stage 2 ran tasks again whose results were lost")
        );

        // Saved through the checked job state, the job reaches its client failed.
        let jobs = CheckedJobState::new(InMemoryJobState::new(
            "scheduler",
            Arc::new(ballista_core::utils::default_session_builder),
            Arc::new(ballista_core::utils::default_config_producer),
        ));
        let job: JobId = "job".into();
        jobs.accept_job(&job, "job", 0).unwrap();
        let graph: ExecutionGraphBox = Box::new(graph);
        jobs.submit_job(job.clone(), &graph, None).await.unwrap();
        jobs.save_job(&job, &graph).await.unwrap();
        let status = jobs.get_job_status(&job).await.unwrap().unwrap().status;
        match status {
            Some(Status::Failed(failed)) => {
                assert!(failed.error.starts_with(REDONE), "{}", failed.error)
            }
            other => panic!("expected a failed job, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_job_whose_inputs_were_lost_under_a_running_stage_is_not_trusted() {
        let mut graph = sum_by_key().await;
        let (one, two) = (executor("one"), executor("two"));
        // The partial aggregates on both; one final task on `two`; then `one` and the
        // partial aggregates it held are lost.
        assert!(run_one(&mut graph, &one));
        while running(&mut graph) == [1] {
            assert!(run_one(&mut graph, &two));
        }
        assert!(run_one(&mut graph, &two));
        graph.reset_stages_on_lost_executor(&one.id).unwrap();
        while run_one(&mut graph, &two) {}
        assert!(graph.is_successful());
        // The final stage ran again from the start: the result its first attempt made on
        // `two`, an executor still there, is listed beside the new one.
        assert_eq!(partitions_listed(&graph), [0, 0, 1]);
        assert_eq!(redone_work(&graph).as_deref(), Some("stage 1 ran 2 times"));
    }
}
