//! The pools the runner holds, one per language, and running a job in one of their containers.
//!
//! A pool has `pool` seats (deadpool objects), each holding one warm container. A container
//! that is retired keeps its seat checked out until a replacement fills it, so every
//! retirement is followed by a new warm container and the pool keeps its size; all pools of a
//! runner lease their containers' uid blocks from one [`UidBlocks`].

use crate::cgroup_delegation::CgroupDelegation;
use crate::conversation::JobChannels;
use crate::error::{PoolError, StreamError};
use crate::exec;
use crate::job_plan::{deadline_ms, job_uid, shim_job, UidBlocks, UidRange, UidRangeError};
use crate::labels;
use crate::warm_container::{remove_container, ContainerManager, WarmContainer};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
use bollard::Docker;
use deadpool::managed::{Manager, Object, Pool};
use deadpool::Runtime;
use rce_protocol::job::JobMessage;
use rce_protocol::shim::{ShimJob, ShimRecord, ShimTest, StepOutcome, Termination};
use rce_protocol::step::StepName;
use rce_protocol::topology::{Language, Sandbox, Topology};
use rce_service::backoff::Backoff;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::Instrument;

/// How long creating one container may take before the pool reports the engine unavailable.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a pool looks like right now, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Warm containers (idle or busy); below `max` only while retired containers are being
    /// replaced (`replacing`).
    pub size: usize,
    /// Idle, warm containers.
    pub idle: usize,
    /// Jobs waiting for a container.
    pub waiting: usize,
    /// The pool's configured size (`pool` in topology.yaml).
    pub max: usize,
    /// Retired containers whose replacement is not warm yet.
    pub replacing: usize,
    /// Containers destroyed since start, by why: the shim could not prove the container back at
    /// rest (`unclean`), the job failed in it (`failed`), or it had run its share (`recycled`).
    pub retired: Retirements,
}

/// Counts of retired containers; see [`PoolStatus::retired`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retirements {
    pub unclean: u64,
    pub failed: u64,
    pub recycled: u64,
}

#[derive(Default)]
struct RetirementCounters {
    unclean: AtomicU64,
    failed: AtomicU64,
    recycled: AtomicU64,
}

/// Warm containers for one language.
pub struct LanguagePool {
    pool: Pool<ContainerManager>,
    docker: Docker,
    language: Language,
    sandbox: Sandbox,
    retired: RetirementCounters,
    epoch: Arc<AtomicU64>,
    cgroups: Arc<CgroupDelegation>,
    /// Seats whose container was retired and whose replacement is not warm yet.
    replacing: AtomicUsize,
}

impl LanguagePool {
    pub fn new(
        docker: Docker,
        language: Language,
        sandbox: Sandbox,
        runner_id: &str,
        cgroups: Arc<CgroupDelegation>,
        uid_blocks: Arc<UidBlocks>,
    ) -> Arc<Self> {
        let epoch = Arc::new(AtomicU64::new(0));
        let manager = ContainerManager {
            cgroups: cgroups.clone(),
            epoch: epoch.clone(),
            docker: docker.clone(),
            language: language.clone(),
            sandbox: sandbox.clone(),
            runner_id: runner_id.to_string(),
            next_slot: uid_blocks,
        };
        let pool = Pool::builder(manager)
            .max_size(language.pool)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CREATE_TIMEOUT))
            .build()
            .expect("a runtime is configured, so timeouts are valid");
        Arc::new(Self {
            pool,
            docker,
            language,
            sandbox,
            retired: RetirementCounters::default(),
            epoch,
            cgroups,
            replacing: AtomicUsize::new(0),
        })
    }

    /// Forgets every container made before now: after the engine restarted they are gone (or
    /// stopped husks). Idle ones leave the pool at once and are returned, to be dropped (giving
    /// back their uid blocks) only once removed; busy ones are refused when their job returns
    /// them (their job may still be running, if the engine only seemed down).
    pub fn forget_containers(&self) -> Vec<WarmContainer> {
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        self.pool.retain(|c, _| c.epoch == epoch).removed
    }
    pub fn language(&self) -> &Language {
        &self.language
    }

    /// Fills the pool to its size, starting containers concurrently.
    pub async fn warm(&self) -> Result<(), PoolError> {
        let gets = (0..self.language.pool).map(|_| self.checkout());
        let held = futures_util::future::join_all(gets).await;
        let mut first_error = None;
        for result in held {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    pub fn status(&self) -> PoolStatus {
        // Retirements first (see `settle`): a retirement seen here is seen in `replacing` too.
        let retired = Retirements {
            unclean: self.retired.unclean.load(Ordering::Acquire),
            failed: self.retired.failed.load(Ordering::Acquire),
            recycled: self.retired.recycled.load(Ordering::Acquire),
        };
        let s = self.pool.status();
        // Seats being refilled are checked out, so never idle.
        let replacing = self.replacing.load(Ordering::Relaxed).min(s.size);
        PoolStatus {
            size: s.size - replacing,
            idle: s.available.min(s.size - replacing),
            waiting: s.waiting,
            max: s.max_size,
            replacing,
            retired,
        }
    }

    async fn checkout(&self) -> Result<Object<ContainerManager>, PoolError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool::managed::PoolError::Backend(e) => e,
            other => PoolError::Unavailable {
                language: self.language.id.clone(),
                reason: other.to_string(),
            },
        })
    }

    /// Runs one job in a warm container and returns what the shim measured, as soon as the
    /// shim reported the job's outcome: the cleanup after it, and the check that the container is
    /// back at rest, go on in the background and decide only the container's fate (back to the
    /// pool, or destroyed and replaced). The container is busy until then, so the next job never
    /// sees it before it is clean. The returned record's `clean` is therefore not meaningful to
    /// callers; the pool acts on it.
    pub async fn run(
        self: &Arc<Self>,
        job: &JobMessage,
        channels: JobChannels,
    ) -> Result<ShimRecord, PoolError> {
        self.run_tests(job, Vec::new(), channels).await
    }

    /// A judge-mode test of this pool's jobs: `stdin` under `limits` (the sandbox adds its
    /// file-size and open-file limits).
    pub fn shim_test(&self, stdin: Vec<u8>, limits: &rce_protocol::limits::Limits) -> ShimTest {
        ShimTest {
            stdin: rce_protocol::bytes::Base64Bytes(stdin),
            limits: crate::job_plan::step_limits(limits, &self.sandbox),
            files: Vec::new(),
            report_file: None,
        }
    }

    /// [`LanguagePool::run`] in judge mode: the job's run step once per test of `tests` (none:
    /// a plain job), their outcomes in the record's `tests`.
    pub async fn run_tests(
        self: &Arc<Self>,
        job: &JobMessage,
        tests: Vec<ShimTest>,
        channels: JobChannels,
    ) -> Result<ShimRecord, PoolError> {
        let container = self.checkout().await?;
        let (early_tx, early_rx) = oneshot::channel();
        let this = Arc::clone(self);
        let job = job.clone();
        let finish = tokio::spawn(
            async move {
                let mut container = container;
                let result = this
                    .run_in(&mut container, &job, tests, channels, early_tx)
                    .await;
                this.settle(container, &result);
                result
            }
            .instrument(tracing::Span::current()),
        );
        let mut record = match early_rx.await {
            Ok(outcome) => outcome,
            // No outcome (the job failed before its steps, or the shim or its container did):
            // the end of the conversation says what happened.
            Err(_) => finish
                .await
                .unwrap_or_else(|e| Err(StreamError::TaskFailed(e).into()))?,
        };
        if let Some(sign) = &self.language.out_of_memory {
            sign.apply(&mut record);
        }
        Ok(record)
    }

    /// Returns the container to the pool, or retires it when the shim could not prove it clean,
    /// the job failed in it, or it has run its share of jobs.
    fn settle(
        self: &Arc<Self>,
        mut container: Object<ContainerManager>,
        result: &Result<ShimRecord, PoolError>,
    ) {
        let counter = match result {
            Ok(record) if record.clean => &self.retired.recycled,
            Ok(_) => {
                tracing::warn!(container = %container.name, "shim could not verify cleanup");
                container.healthy = false;
                &self.retired.unclean
            }
            // Refused before the container saw it: the container is as it was.
            Err(PoolError::TooLarge(_)) => &self.retired.recycled,
            Err(e) => {
                tracing::warn!(container = %container.name, error = %e, "job failed in container");
                container.healthy = false;
                &self.retired.failed
            }
        };
        if !container.healthy || container.jobs_run >= self.sandbox.max_jobs_per_container {
            // Counted after its seat is marked as being refilled, so that a status showing the
            // retirement shows the pool short of it (or refilled already).
            self.retire(container);
            counter.fetch_add(1, Ordering::Release);
        }
    }

    async fn run_in(
        &self,
        c: &mut WarmContainer,
        job: &JobMessage,
        tests: Vec<ShimTest>,
        channels: JobChannels,
        early: oneshot::Sender<ShimRecord>,
    ) -> Result<ShimRecord, PoolError> {
        let uid = job_uid(&self.sandbox, c.slot.index(), c.jobs_run);
        c.jobs_run += 1;
        let mut plan = shim_job(job, &self.language, &self.sandbox, uid);
        plan.baseline = Some(c.baseline.clone());
        plan.tests = tests;
        plan.stop_on_failure = job.judge.as_ref().is_some_and(|j| j.stop_on_failure);
        let deadline = Duration::from_millis(deadline_ms(&plan));
        let mut payload = serde_json::to_vec(&plan)?;
        if payload.len() > rce_protocol::shim::MAX_JOB_LINE {
            return Err(PoolError::TooLarge(payload.len()));
        }
        payload.push(b'\n');
        let run = async {
            match &mut c.agent {
                Some(agent) => agent.run_job(&plan, payload, channels, Some(early)).await,
                None => {
                    exec::run_job(&self.docker, &c.id, &plan, payload, channels, Some(early)).await
                }
            }
        };
        match tokio::time::timeout(deadline, run).await {
            Ok(Err(e)) if e.is_retryable() && self.oom_killed(&c.id).await => {
                // The container's own cgroup ran out (each step's cgroup is smaller, so this
                // takes memory the job kept outside its steps): the job did it. Its verdict, not
                // a retry on another container.
                tracing::warn!(container = %c.name, error = %e, "the container was OOM-killed under its job");
                Ok(oom_killed_record(&plan))
            }
            Ok(result) => result,
            Err(_) => Err(PoolError::Timeout(deadline.as_millis() as u64)),
        }
    }

    /// Whether the engine says the container was killed for memory.
    async fn oom_killed(&self, id: &str) -> bool {
        let inspected = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await;
        inspected
            .ok()
            .and_then(|c| c.state?.oom_killed)
            .unwrap_or(false)
    }

    /// Retires a container and fills its seat with a new one, in the background so the job that
    /// found the fault is not delayed further: the old container is removed while a replacement
    /// is warmed. The seat stays checked out until the replacement is in it, so the pool can
    /// neither grow past its size nor hand the seat to a job early, and dropping the seat puts
    /// the new container in the pool. (Deadpool only creates a container when a job finds none
    /// idle: a seat given up with `Object::take` would stay empty while the others idle.)
    fn retire(self: &Arc<Self>, mut seat: Object<ContainerManager>) {
        self.replacing.fetch_add(1, Ordering::Relaxed);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let removal = {
                let this = Arc::clone(&this);
                let (id, name) = (seat.id.clone(), seat.name.clone());
                tokio::spawn(async move { this.remove_for_good(&id, &name).await })
            };
            let replacement = this.warm_replacement().await;
            let retired = std::mem::replace(&mut *seat, replacement);
            this.replacing.fetch_sub(1, Ordering::Relaxed);
            drop(seat);
            // Its uid block is given back only once the container is gone.
            removal.await.ok();
            drop(retired);
        });
    }

    /// A new warm container, retried with backoff until the engine gives one. Not cut short by
    /// a timeout: the container's start bounds its own wait for the baseline, and a start
    /// cancelled halfway would leave a created container behind with its uid block given back.
    async fn warm_replacement(&self) -> WarmContainer {
        let mut backoff = Backoff::reconnect();
        loop {
            match self.pool.manager().create().await {
                Ok(container) => return container,
                Err(e) => tracing::error!(
                    language = %self.language.id, error = %e,
                    "could not warm a replacement container; retrying"
                ),
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Removes a retired container, again and again until the engine says it is gone.
    async fn remove_for_good(&self, id: &str, name: &str) {
        let mut backoff = Backoff::reconnect();
        loop {
            remove_container(&self.docker, id).await;
            match self
                .docker
                .inspect_container(id, None::<InspectContainerOptions>)
                .await
            {
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => break,
                Ok(_) => tracing::warn!(container = %name, "retired container still exists"),
                Err(e) => tracing::warn!(
                    container = %name, error = %e,
                    "cannot tell whether the retired container is gone"
                ),
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
        self.cgroups.release(name);
    }
}

/// The record of a job whose container the kernel OOM-killed: its last step ended at its memory
/// limit, and the container is not clean (it is retired).
fn oom_killed_record(plan: &ShimJob) -> ShimRecord {
    let step = plan.steps.last();
    ShimRecord {
        tests: Vec::new(),
        job_id: plan.job_id.clone(),
        steps: vec![StepOutcome {
            name: step.map_or(StepName::Run, |s| s.name),
            termination: Termination::MemoryLimit,
            exit_code: None,
            signal: Some(9),
            wall_ms: 0,
            cpu_ms: 0,
            memory_kb: step.map_or(0, |s| s.limits.memory_kb),
            stdout: Default::default(),
            stderr: Default::default(),
            truncated: false,
        }],
        clean: false,
        error: None,
    }
}

/// Every language pool of one runner.
#[derive(Clone)]
pub struct Pools {
    by_language: BTreeMap<String, Arc<LanguagePool>>,
    docker: Docker,
    runner_id: String,
    cgroups: Arc<CgroupDelegation>,
}

impl Pools {
    /// Pools for `languages` (all of the topology's when empty), their containers taking uid
    /// blocks from `uids`; refused when `uids` is too small for them. Nothing is started yet.
    pub fn new(
        docker: Docker,
        topology: &Topology,
        runner_id: &str,
        languages: &[String],
        cgroups: CgroupDelegation,
        uids: UidRange,
    ) -> Result<Self, UidRangeError> {
        let cgroups = Arc::new(cgroups);
        let served: Vec<Language> = topology
            .all_languages()
            .into_iter()
            .filter(|l| languages.is_empty() || languages.contains(&l.id))
            .collect();
        uids.check_holds(served.iter().map(|l| l.pool).sum())?;
        // One for all pools: no two containers of the runner ever share a uid block.
        let uid_blocks = UidBlocks::new(uids);
        let by_language = served
            .into_iter()
            .map(|l| {
                let id = l.id.clone();
                (
                    id,
                    LanguagePool::new(
                        docker.clone(),
                        l,
                        topology.sandbox.clone(),
                        runner_id,
                        cgroups.clone(),
                        uid_blocks.clone(),
                    ),
                )
            })
            .collect();
        Ok(Self {
            by_language,
            docker,
            runner_id: runner_id.to_string(),
            cgroups,
        })
    }

    pub fn get(&self, language: &str) -> Option<&Arc<LanguagePool>> {
        self.by_language.get(language)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<LanguagePool>> {
        self.by_language.values()
    }

    /// Checks that the engine has the OCI runtime of every language, so a topology naming one
    /// it lacks (gVisor's `runsc` on a host without it) fails at start with the reason, not as
    /// a container-create error per job.
    pub async fn check_runtimes(&self) -> Result<(), PoolError> {
        let info = self.docker.info().await?;
        let available: Vec<String> = info
            .runtimes
            .map(|r| r.into_keys().collect())
            .unwrap_or_default();
        for pool in self.iter() {
            let wanted = &pool.language().runtime;
            if !available.contains(wanted) {
                return Err(PoolError::Unavailable {
                    language: pool.language().id.clone(),
                    reason: format!(
                        "the docker engine has no OCI runtime {wanted:?} (it has: {})",
                        available.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// Rebuilds every pool after the engine came back: forgets the old containers, removes the
    /// idle ones and every one of ours that is no longer running, and warms the pools again.
    /// Running containers of busy jobs are left to their jobs (the engine may only have been
    /// slow), and are retired when the jobs return them.
    pub async fn rebuild(&self) -> Result<(), PoolError> {
        let idle: Vec<WarmContainer> = self.iter().flat_map(|p| p.forget_containers()).collect();
        let mut dead = self.list_containers(&["created", "exited", "dead"]).await?;
        dead.extend(idle.iter().map(|c| c.id.clone()));
        let removals = dead.iter().map(|id| remove_container(&self.docker, id));
        futures_util::future::join_all(removals).await;
        // Their uid blocks are free again now that they are gone.
        drop(idle);
        self.cgroups.sweep();
        tracing::info!(
            removed = dead.len(),
            "removed the containers the engine outage left behind"
        );
        self.warm_all().await
    }

    /// Warms every pool concurrently; the first error is returned after all have tried.
    pub async fn warm_all(&self) -> Result<(), PoolError> {
        let results = futures_util::future::join_all(self.iter().map(|p| p.warm())).await;
        results.into_iter().collect()
    }

    /// Removes every container carrying this runner's label: at start, what a predecessor with
    /// the same id orphaned; at shutdown, our own.
    pub async fn remove_all_containers(&self) -> Result<usize, PoolError> {
        let found = self.list_containers(&[]).await?;
        let removals = found.iter().map(|id| remove_container(&self.docker, id));
        futures_util::future::join_all(removals).await;
        self.cgroups.sweep();
        Ok(found.len())
    }

    /// Ids of this runner's containers, in one of `states` (any state when empty).
    async fn list_containers(&self, states: &[&str]) -> Result<Vec<String>, PoolError> {
        let mut filters = HashMap::from([(
            "label",
            vec![
                format!("{}=true", labels::MANAGED),
                format!("{}={}", labels::RUNNER, self.runner_id),
            ],
        )]);
        if !states.is_empty() {
            filters.insert("status", states.iter().map(|s| s.to_string()).collect());
        }
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let found = self.docker.list_containers(Some(options)).await?;
        Ok(found.into_iter().filter_map(|c| c.id).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup_delegation::CgroupVersion;

    /// Pools of every language of the repository's topology, taking blocks from `uids`. Nothing
    /// talks to the engine.
    fn pools(uids: UidRange) -> Result<Pools, UidRangeError> {
        let topology = Topology::from_source_tree().unwrap();
        let docker = Docker::connect_with_defaults().unwrap();
        let cgroups = CgroupDelegation::new(CgroupVersion::V2, "/nonexistent".into(), "t");
        Pools::new(docker, &topology, "t", &[], cgroups, uids)
    }

    #[test]
    fn containers_of_different_languages_never_share_a_uid_block() {
        let sandbox = Topology::from_source_tree().unwrap().sandbox;
        let pools = pools(UidRange::for_runner(&sandbox, 3, 64).unwrap()).unwrap();
        // The first container of every pool (each pool used to number its slots from 0).
        let first: Vec<_> = pools
            .iter()
            .map(|p| p.pool.manager().next_slot.lease(&p.language.id).unwrap())
            .collect();
        let mut blocks: Vec<u32> = first.iter().map(|b| b.index()).collect();
        blocks.sort_unstable();
        blocks.dedup();
        assert_eq!(blocks.len(), first.len(), "shared blocks: {first:?}");
        assert!(blocks.iter().all(|b| (3 * 64..4 * 64).contains(b)));
        let any = pools.iter().next().unwrap();
        assert_eq!(any.pool.manager().next_slot.leased(), first.len());
    }

    #[test]
    fn a_range_too_small_for_the_pools_is_refused() {
        let topology = Topology::from_source_tree().unwrap();
        let containers: usize = topology.all_languages().iter().map(|l| l.pool).sum();
        let blocks = (containers * 2) as u32;
        let fits = UidRange::for_runner(&topology.sandbox, 0, blocks).unwrap();
        assert!(pools(fits).is_ok());
        let short = UidRange::for_runner(&topology.sandbox, 0, blocks - 1).unwrap();
        assert!(matches!(pools(short), Err(UidRangeError::TooSmall { .. })));
    }
}
