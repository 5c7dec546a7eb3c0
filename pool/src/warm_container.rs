//! One pre-warmed container and the deadpool manager that creates and retires them.

use crate::agent::AgentLink;
use crate::cgroup_delegation::CgroupDelegation;
use crate::container_spec::{container_body, place_cgroup, CgroupPlacement};
use crate::error::{PoolError, StreamError};
use crate::job_plan::{UidBlock, UidBlocks};
use bollard::container::LogOutput;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptions, RemoveContainerOptionsBuilder,
    StartContainerOptions,
};
use bollard::Docker;
use deadpool::managed::{Manager, Metrics, RecycleError, RecycleResult};
use futures_util::StreamExt;
use rce_protocol::shim::{Baseline, ShimMessage};
use rce_protocol::topology::{ExecMode, Language, Sandbox};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a new container may take to start and report its resting state.
const BASELINE_TIMEOUT: Duration = Duration::from_secs(20);

/// A running, hardened container waiting for (or running) exactly one job.
#[derive(Debug)]
pub struct WarmContainer {
    pub id: String,
    pub name: String,
    /// The uid block this container's jobs use (see `job_plan::job_uid`), held until the
    /// container has been removed.
    pub slot: UidBlock,
    pub jobs_run: u64,
    /// Cleared when the container can no longer be trusted with a job.
    pub healthy: bool,
    /// Its resting state, measured before any job ran; every job's shim checks it returned there.
    pub baseline: Baseline,
    /// The engine epoch it was created in: after the engine restarted, containers of an older
    /// epoch are dead husks and are never handed out again.
    pub epoch: u64,
    /// Agent mode: the attached stream its jobs go through. `None` in exec mode.
    pub agent: Option<AgentLink>,
}

/// Creates containers for one language; recycling refuses containers that are unhealthy or have
/// run their share of jobs, and removes them from the engine on the way out.
pub struct ContainerManager {
    pub(crate) docker: Docker,
    pub(crate) language: Language,
    pub(crate) sandbox: Sandbox,
    pub(crate) runner_id: String,
    /// The runner's uid blocks, shared by all its pools.
    pub(crate) next_slot: Arc<UidBlocks>,
    pub(crate) epoch: Arc<AtomicU64>,
    pub(crate) cgroups: Arc<CgroupDelegation>,
}

impl ContainerManager {
    async fn start_one(&self) -> Result<WarmContainer, PoolError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let slot = self.next_slot.lease(&self.language.id)?;
        let name = format!("rce-{}-{}-{}", self.runner_id, self.language.id, slot);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let mut body = container_body(&self.language, &self.sandbox, &self.runner_id);
        let binds = self.cgroups.prepare(&name)?;
        let parent = self.cgroups.parent(&name);
        place_cgroup(&mut body, CgroupPlacement { parent, binds });
        let created = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created,
            Err(e) => {
                self.cgroups.release(&name);
                return Err(e.into());
            }
        };
        let started = async {
            match self.language.exec_mode {
                ExecMode::Agent => {
                    let mut agent = AgentLink::attach(&self.docker, &created.id).await?;
                    self.docker
                        .start_container(&created.id, None::<StartContainerOptions>)
                        .await?;
                    let baseline = agent.read_baseline().await?;
                    Ok((baseline, Some(agent)))
                }
                ExecMode::Exec => {
                    self.docker
                        .start_container(&created.id, None::<StartContainerOptions>)
                        .await?;
                    Ok((read_baseline(&self.docker, &created.id).await?, None))
                }
            }
        };
        let started = tokio::time::timeout(BASELINE_TIMEOUT, started)
            .await
            .unwrap_or_else(|_| Err(StreamError::NoBaseline.into()));
        let (baseline, agent) = match started {
            Ok(started) => started,
            Err(e) => {
                remove_container(&self.docker, &created.id).await;
                self.cgroups.release(&name);
                return Err(e);
            }
        };
        tracing::debug!(container = %name, language = %self.language.id, "warm container started");
        Ok(WarmContainer {
            id: created.id,
            name,
            slot,
            jobs_run: 0,
            healthy: true,
            baseline,
            epoch,
            agent,
        })
    }
}

/// The resting state in the first line the main process printed (`whose` names that line in
/// the error), the same for the idle shim's log and the agent's stream.
pub(crate) fn baseline_line(first: &[u8], whose: &'static str) -> Result<Baseline, PoolError> {
    match serde_json::from_slice::<ShimMessage>(first) {
        Ok(ShimMessage::Baseline(baseline)) => Ok(baseline),
        _ => Err(StreamError::NotBaseline {
            whose,
            line: String::from_utf8_lossy(&first[..first.len().min(200)]).into_owned(),
        }
        .into()),
    }
}

/// Exec mode: the resting state `rce-shim idle` prints as the first line of the container's
/// log. Only the idle shim writes there before the first job, and jobs never can: their output
/// goes to pipes of the exec'd shim.
async fn read_baseline(docker: &Docker, id: &str) -> Result<Baseline, PoolError> {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        ..Default::default()
    };
    let mut logs = docker.logs(id, Some(options));
    let mut line = Vec::new();
    let read = async {
        while let Some(frame) = logs.next().await {
            if let LogOutput::StdOut { message } | LogOutput::Console { message } = frame? {
                line.extend_from_slice(&message);
                if line.contains(&b'\n') {
                    break;
                }
            }
        }
        let first = line.split(|b| *b == b'\n').next().unwrap_or_default();
        baseline_line(first, "the container's first log line")
    };
    read.await
}

impl Manager for ContainerManager {
    type Type = WarmContainer;
    type Error = PoolError;

    async fn create(&self) -> Result<WarmContainer, PoolError> {
        self.start_one().await
    }

    async fn recycle(&self, c: &mut WarmContainer, _: &Metrics) -> RecycleResult<PoolError> {
        let current = c.epoch == self.epoch.load(Ordering::Acquire);
        if current && c.healthy && c.jobs_run < self.sandbox.max_jobs_per_container {
            return Ok(());
        }
        remove_container(&self.docker, &c.id).await;
        self.cgroups.release(&c.name);
        Err(RecycleError::Message("container retired".into()))
    }
}

/// Force-removes a container, logging rather than failing: a container that is already gone is
/// exactly what the caller wanted.
pub async fn remove_container(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => tracing::debug!(container = %id, "container removed"),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => tracing::warn!(container = %id, error = %e, "could not remove container"),
    }
}
