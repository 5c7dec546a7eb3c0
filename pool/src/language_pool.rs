//! The pools the runner holds, one per language, and running a job in one of their containers.

use crate::container_spec::container_memory_mb;
use crate::conversation::JobChannels;
use crate::error::PoolError;
use crate::exec;
use crate::job_plan::{deadline_ms, job_uid, shim_job};
use crate::labels;
use crate::warm_container::{remove_container, ContainerManager, WarmContainer};
use bollard::models::ContainerUpdateBody;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use deadpool::managed::{Object, Pool};
use deadpool::Runtime;
use rce_protocol::job::JobMessage;
use rce_protocol::shim::ShimRecord;
use rce_protocol::topology::{Language, Sandbox, Topology};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::Instrument;

/// How long creating one container may take before the pool reports the engine unavailable.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a pool looks like right now, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Containers that exist (idle or busy).
    pub size: usize,
    /// Idle, warm containers.
    pub idle: usize,
    /// Jobs waiting for a container.
    pub waiting: usize,
    pub max: usize,
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
}

impl LanguagePool {
    pub fn new(docker: Docker, language: Language, sandbox: Sandbox, runner_id: &str) -> Arc<Self> {
        let epoch = Arc::new(AtomicU64::new(0));
        let manager = ContainerManager {
            epoch: epoch.clone(),
            docker: docker.clone(),
            language: language.clone(),
            sandbox: sandbox.clone(),
            runner_id: runner_id.to_string(),
            next_slot: Arc::new(AtomicU32::new(0)),
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
        })
    }

    /// Forgets every container made before now: after the engine restarted they are gone (or
    /// stopped husks). Idle ones leave the pool at once and their ids are returned for removal;
    /// busy ones are refused when their job returns them (their job may still be running, if
    /// the engine only seemed down).
    pub fn forget_containers(&self) -> Vec<String> {
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let gone = self.pool.retain(|c, _| c.epoch == epoch);
        gone.removed.into_iter().map(|c| c.id).collect()
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
        let s = self.pool.status();
        PoolStatus {
            size: s.size,
            idle: s.available,
            waiting: s.waiting,
            max: s.max_size,
            retired: Retirements {
                unclean: self.retired.unclean.load(Ordering::Relaxed),
                failed: self.retired.failed.load(Ordering::Relaxed),
                recycled: self.retired.recycled.load(Ordering::Relaxed),
            },
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
        let container = self.checkout().await?;
        let (early_tx, early_rx) = oneshot::channel();
        let this = Arc::clone(self);
        let job = job.clone();
        let finish = tokio::spawn(
            async move {
                let mut container = container;
                let result = this.run_in(&mut container, &job, channels, early_tx).await;
                this.settle(container, &result);
                result
            }
            .instrument(tracing::Span::current()),
        );
        match early_rx.await {
            Ok(outcome) => Ok(outcome),
            // No outcome (the job failed before its steps, or the shim or its container did):
            // the end of the conversation says what happened.
            Err(_) => finish.await.unwrap_or_else(|e| {
                Err(PoolError::Stream(format!(
                    "the job's container task failed: {e}"
                )))
            }),
        }
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
            Err(e) => {
                tracing::warn!(container = %container.name, error = %e, "job failed in container");
                container.healthy = false;
                &self.retired.failed
            }
        };
        if !container.healthy || container.jobs_run >= self.sandbox.max_jobs_per_container {
            counter.fetch_add(1, Ordering::Relaxed);
            self.retire(container);
        }
    }

    async fn run_in(
        &self,
        c: &mut WarmContainer,
        job: &JobMessage,
        channels: JobChannels,
        early: oneshot::Sender<ShimRecord>,
    ) -> Result<ShimRecord, PoolError> {
        let memory_mb = container_memory_mb(&self.language, &job.limits);
        if memory_mb != c.memory_mb {
            let bytes = (memory_mb as i64) << 20;
            self.docker
                .update_container(
                    &c.id,
                    ContainerUpdateBody {
                        memory: Some(bytes),
                        memory_swap: Some(bytes),
                        ..Default::default()
                    },
                )
                .await?;
            c.memory_mb = memory_mb;
        }
        let uid = job_uid(&self.sandbox, c.slot, c.jobs_run);
        c.jobs_run += 1;
        let mut plan = shim_job(job, &self.language, &self.sandbox, uid);
        plan.baseline = Some(c.baseline.clone());
        let deadline = Duration::from_millis(deadline_ms(&plan));
        let mut payload = serde_json::to_vec(&plan)?;
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
            Ok(result) => result,
            Err(_) => Err(PoolError::Timeout(deadline.as_millis() as u64)),
        }
    }

    /// Takes a container out of the pool for good, destroys it and warms a replacement, both in
    /// the background so the job that found the fault is not delayed further.
    fn retire(self: &Arc<Self>, container: Object<ContainerManager>) {
        let container = Object::take(container);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            remove_container(&this.docker, &container.id).await;
            if let Err(e) = this.checkout().await {
                tracing::error!(language = %this.language.id, error = %e, "could not warm a replacement container");
            }
        });
    }
}

/// Every language pool of one runner.
#[derive(Clone)]
pub struct Pools {
    by_language: BTreeMap<String, Arc<LanguagePool>>,
    docker: Docker,
    runner_id: String,
}

impl Pools {
    /// Pools for `languages` (all of the topology's when empty). Nothing is started yet.
    pub fn new(docker: Docker, topology: &Topology, runner_id: &str, languages: &[String]) -> Self {
        let by_language = topology
            .all_languages()
            .into_iter()
            .filter(|l| languages.is_empty() || languages.contains(&l.id))
            .map(|l| {
                let id = l.id.clone();
                (
                    id,
                    LanguagePool::new(docker.clone(), l, topology.sandbox.clone(), runner_id),
                )
            })
            .collect();
        Self {
            by_language,
            docker,
            runner_id: runner_id.to_string(),
        }
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
        let idle: Vec<String> = self.iter().flat_map(|p| p.forget_containers()).collect();
        let mut dead = self.list_containers(&["created", "exited", "dead"]).await?;
        dead.extend(idle);
        let removals = dead.iter().map(|id| remove_container(&self.docker, id));
        futures_util::future::join_all(removals).await;
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
