//! The scheduler's cluster state: Ballista's in-memory one, except that the slots of a
//! task no running job still counts as running are given back before tasks are bound.
//!
//! Why: Ballista 55 gives a finished task's slots back by looking its slot count up in its
//! stage. When an executor is lost, a running stage whose input lived there is rolled back
//! and forgets its tasks; one of them still running on a surviving executor then finishes,
//! its slots are never given back, and with two slots an executor can be left with none.
//! Nothing more is scheduled on it — not even the stage run again — and the run waits
//! until its timeout. The slots an executor has reserved are counted here as well, and any
//! beyond those of the tasks the running jobs list on it are given back: such a task was
//! abandoned (its job ended or its stage was rolled back) and Ballista has already sent
//! its cancel. The executor may run it a moment longer beside new work, as Ballista allows
//! when it cancels a job.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ballista_core::JobId;
use ballista_core::error::Result;
use ballista_core::serde::protobuf::{ExecutorHeartbeat, RunningTask, task_status};
use ballista_core::serde::scheduler::{ExecutorData, ExecutorMetadata};
use ballista_scheduler::cluster::memory::InMemoryClusterState;
use ballista_scheduler::cluster::{BoundTask, ClusterState, ClusterStateEventStream, ExecutorSlot};
use ballista_scheduler::config::TaskDistributionPolicy;
use ballista_scheduler::state::task_manager::JobInfoCache;
use tokio::sync::Mutex;

/// Ballista's in-memory cluster state with a ledger of the slots each executor has
/// reserved, which gives back what no running task holds.
#[derive(Default)]
pub(crate) struct SlotCheckedClusterState {
    inner: InMemoryClusterState,
    /// Slots reserved on each registered executor: bound and not yet given back. Locked
    /// across each bind and unbind, so it always equals what the inner state has lent out.
    reserved: Mutex<HashMap<String, u32>>,
}

/// The slots the tasks that `jobs` list as running hold on each executor.
async fn running_slots(jobs: &HashMap<JobId, JobInfoCache>) -> HashMap<String, u32> {
    let mut held = HashMap::new();
    for job in jobs.values() {
        let graph = job.execution_graph.read().await;
        for stage in graph.stages().values() {
            for task in stage.task_infos().unwrap_or_default() {
                if let task_status::Status::Running(RunningTask { executor_id }) = &task.task_status
                {
                    *held.entry(executor_id.clone()).or_default() += task.vcores_consumed;
                }
            }
        }
    }
    held
}

#[async_trait::async_trait]
impl ClusterState for SlotCheckedClusterState {
    async fn init(&self) -> Result<()> {
        self.inner.init().await
    }

    async fn bind_schedulable_tasks(
        &self,
        distribution: TaskDistributionPolicy,
        active_jobs: Arc<HashMap<JobId, JobInfoCache>>,
        executors: Option<HashSet<String>>,
    ) -> Result<Vec<BoundTask>> {
        // The ledger is locked before the graphs are read, as Ballista locks its free
        // slots before it binds, so no other bind can slip in between the count and the
        // refund.
        let mut reserved = self.reserved.lock().await;
        let held = running_slots(&active_jobs).await;
        let mut abandoned = Vec::new();
        for (executor, slots) in reserved.iter_mut() {
            let holding = held.get(executor).copied().unwrap_or(0);
            if *slots > holding {
                log::warn!(
                    "executor {executor}: giving back {} slot(s) held by tasks no running \
                     job counts",
                    *slots - holding
                );
                abandoned.push((executor.clone(), *slots - holding));
                *slots = holding;
            }
        }
        if !abandoned.is_empty() {
            self.inner.unbind_tasks(abandoned).await?;
        }
        let bound = self
            .inner
            .bind_schedulable_tasks(distribution, active_jobs, executors)
            .await?;
        for (executor, task) in &bound {
            *reserved.entry(executor.clone()).or_default() += task.vcores_consumed;
        }
        Ok(bound)
    }

    /// Gives back at most what each executor has reserved: a late refund of slots already
    /// given back as abandoned must not lend out more slots than the executor has.
    async fn unbind_tasks(&self, executor_slots: Vec<ExecutorSlot>) -> Result<()> {
        let mut reserved = self.reserved.lock().await;
        let mut refunds = Vec::new();
        for (executor, slots) in executor_slots {
            let refund = match reserved.get_mut(&executor) {
                Some(held) => {
                    let refund = slots.min(*held);
                    *held -= refund;
                    refund
                }
                // Not bound through the ledger: Ballista's own handling stands.
                None => slots,
            };
            if refund > 0 {
                refunds.push((executor, refund));
            }
        }
        if refunds.is_empty() {
            return Ok(());
        }
        self.inner.unbind_tasks(refunds).await
    }

    async fn register_executor(
        &self,
        metadata: ExecutorMetadata,
        spec: ExecutorData,
    ) -> Result<()> {
        let mut reserved = self.reserved.lock().await;
        let executor = spec.executor_id.clone();
        let lent = spec.total_vcores.saturating_sub(spec.available_vcores);
        self.inner.register_executor(metadata, spec).await?;
        reserved.insert(executor, lent);
        Ok(())
    }

    async fn save_executor_metadata(&self, metadata: ExecutorMetadata) -> Result<()> {
        self.inner.save_executor_metadata(metadata).await
    }

    async fn get_executor_metadata(&self, executor_id: &str) -> Result<ExecutorMetadata> {
        self.inner.get_executor_metadata(executor_id).await
    }

    async fn registered_executor_metadata(&self) -> Vec<ExecutorMetadata> {
        self.inner.registered_executor_metadata().await
    }

    async fn save_executor_heartbeat(&self, heartbeat: ExecutorHeartbeat) -> Result<()> {
        self.inner.save_executor_heartbeat(heartbeat).await
    }

    async fn remove_executor(&self, executor_id: &str) -> Result<()> {
        let mut reserved = self.reserved.lock().await;
        self.inner.remove_executor(executor_id).await?;
        reserved.remove(executor_id);
        Ok(())
    }

    fn executor_heartbeats(&self) -> HashMap<String, ExecutorHeartbeat> {
        self.inner.executor_heartbeats()
    }

    fn get_executor_heartbeat(&self, executor_id: &str) -> Option<ExecutorHeartbeat> {
        self.inner.get_executor_heartbeat(executor_id)
    }

    async fn cluster_state_events(&self) -> Result<ClusterStateEventStream> {
        self.inner.cluster_state_events().await
    }
}

#[cfg(test)]
mod tests {
    //! Ballista's own execution graph and in-memory cluster state, driven as its scheduler
    //! drives them: slots are bound, given back as each stage lists them when a task
    //! reports, and an executor is lost while the last stage runs.

    use super::*;
    use crate::graph_fixture::{executor, finished, sum_by_key};
    use ballista_scheduler::state::execution_graph::TaskDescription;

    /// Registers `ids` with two slots each.
    async fn with_executors(state: &dyn ClusterState, ids: &[&str]) {
        for id in ids {
            let spec = ExecutorData {
                executor_id: id.to_string(),
                total_vcores: 2,
                available_vcores: 2,
            };
            state.register_executor(executor(id), spec).await.unwrap();
        }
    }

    /// Running jobs of the two-stage sum, one per name.
    async fn jobs(names: &[&str]) -> Arc<HashMap<JobId, JobInfoCache>> {
        let mut jobs = HashMap::new();
        for name in names {
            let graph = Box::new(sum_by_key().await);
            jobs.insert(JobId::from(*name), JobInfoCache::new(graph));
        }
        Arc::new(jobs)
    }

    /// Starts the stages that are ready and binds their tasks, on `only` when given.
    async fn bind(
        state: &dyn ClusterState,
        jobs: &Arc<HashMap<JobId, JobInfoCache>>,
        only: Option<&str>,
    ) -> Vec<BoundTask> {
        for job in jobs.values() {
            job.execution_graph.write().await.revive();
        }
        let only = only.map(|id| HashSet::from([id.to_string()]));
        state
            .bind_schedulable_tasks(TaskDistributionPolicy::Bias, jobs.clone(), only)
            .await
            .unwrap()
    }

    /// What the scheduler does when `task` of job `job` reports finished: give back the
    /// slots its stage lists for it, then update the graph.
    async fn report(
        state: &dyn ClusterState,
        jobs: &HashMap<JobId, JobInfoCache>,
        job: &str,
        (on, task): (String, TaskDescription),
    ) {
        let mut graph = jobs[&JobId::from(job)].execution_graph.write().await;
        let slots = graph
            .task_vcores(task.key.stage_id, task.key.task_id)
            .unwrap_or(0);
        state.unbind_tasks(vec![(on.clone(), slots)]).await.unwrap();
        let status = finished(task, &on);
        graph
            .update_task_status(&executor(&on), vec![status], 4, 4)
            .unwrap();
    }

    fn slots_bound(tasks: &[BoundTask], on: &str) -> u32 {
        tasks
            .iter()
            .filter(|(executor, _)| executor == on)
            .map(|(_, task)| task.vcores_consumed)
            .sum()
    }

    /// The partial sums on `one`, the final stage on `two`, then `one` is lost and the
    /// final stage's task, rolled back, finishes on `two`: what is bound next.
    async fn bound_after_losing_the_input(state: &dyn ClusterState) -> Vec<BoundTask> {
        with_executors(state, &["one", "two"]).await;
        let jobs = jobs(&["job"]).await;
        let partial = bind(state, &jobs, Some("one")).await;
        assert_eq!(partial.len(), 1);
        assert_eq!(partial[0].1.key.stage_id, 1);
        report(state, &jobs, "job", partial.into_iter().next().unwrap()).await;
        let last = bind(state, &jobs, Some("two")).await;
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].1.key.stage_id, 2);
        assert_eq!(slots_bound(&last, "two"), 2);

        let graph = &jobs[&JobId::from("job")].execution_graph;
        graph
            .write()
            .await
            .reset_stages_on_lost_executor("one")
            .unwrap();
        state.remove_executor("one").await.unwrap();
        report(state, &jobs, "job", last.into_iter().next().unwrap()).await;
        bind(state, &jobs, None).await
    }

    #[tokio::test]
    async fn ballistas_state_keeps_the_slots_of_a_task_its_rolled_back_stage_forgot() {
        let stalled = bound_after_losing_the_input(&InMemoryClusterState::default()).await;
        assert!(stalled.is_empty(), "{stalled:?}");
    }

    #[tokio::test]
    async fn the_stage_run_again_gets_the_slots_of_the_forgotten_task() {
        let state = SlotCheckedClusterState::default();
        let again = bound_after_losing_the_input(&state).await;
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(again[0].1.key.stage_id, 1);
        assert_eq!(again[0].1.global_input_partition_ids, [0, 1]);
        // The partial sums gather both inputs in one task, which Ballista runs in one slot.
        assert_eq!(slots_bound(&again, "two"), 1);
        assert_eq!(state.reserved.lock().await["two"], 1);
    }

    #[tokio::test]
    async fn slots_of_running_tasks_are_not_given_back() {
        let state = SlotCheckedClusterState::default();
        with_executors(&state, &["one"]).await;
        let first = jobs(&["first"]).await;
        assert_eq!(slots_bound(&bind(&state, &first, None).await, "one"), 1);
        let all = Arc::new(
            first
                .iter()
                .chain(jobs(&["second", "third"]).await.iter())
                .map(|(id, job)| (id.clone(), job.clone()))
                .collect::<HashMap<_, _>>(),
        );
        // One slot is free; the other stays with the first job's running task.
        assert_eq!(slots_bound(&bind(&state, &all, None).await, "one"), 1);
        assert_eq!(state.reserved.lock().await["one"], 2);
        assert!(bind(&state, &all, None).await.is_empty());
    }

    #[tokio::test]
    async fn a_late_refund_never_lends_more_slots_than_an_executor_has() {
        let state = SlotCheckedClusterState::default();
        with_executors(&state, &["one"]).await;
        state.unbind_tasks(vec![("one".into(), 3)]).await.unwrap();
        let bound = bind(&state, &jobs(&["a", "b"]).await, None).await;
        assert_eq!(slots_bound(&bound, "one"), 2, "{bound:?}");
    }
}
