//! Runner settings, from the environment, each with a default that works on one machine.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RCE_AMQP_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | RabbitMQ |
//! | `RCE_REDIS_URL` | `redis://127.0.0.1:6379/` | Redis (job state) |
//! | `RCE_TOPOLOGY` | `topology.yaml` | the fleet's topology |
//! | `RCE_RUNNER_ID` | the host name | names and labels this runner's containers |
//! | `RCE_RUNNER_LANGUAGES` | all in the topology | comma-separated languages to serve |
//! | `RCE_RUNNER_METRICS_ADDR` | `127.0.0.1:9090` | `/metrics` and `/healthz` |
//! | `RCE_SHUTDOWN_GRACE_SECS` | `30` | how long in-flight jobs may finish after SIGTERM |
//! | `RCE_RUNNER_INDEX` | `0` | which range of job uids this runner owns: every runner sharing a Docker engine (or a kernel) needs its own index |
//! | `RCE_RUNNER_UID_BLOCKS` | `1024` | uid blocks (of `sandbox.uid_span` uids) per runner, the same on every runner: its range is blocks `index × blocks` to `(index + 1) × blocks − 1`; at least 2 per warm container |
//! | `RCE_CGROUP_ROOT` | `/sys/fs/cgroup` | the engine host's cgroup filesystem: each container's delegated cgroup directory is made here (`rce_pool::cgroup_delegation`) |
//! | `RCE_FILE_CACHE_DIR` | `/var/cache/rce/files-<runner id>` | judge mode's on-disk cache of test data (content-addressed, verified on every read) |
//! | `RCE_FILE_CACHE_MB` | `2048` | the most that cache holds; least recently used files go first |
//! | `RCE_FILE_STORE`, `RCE_S3_*` | `redis` | where test data is stored: the api's setting, which runners must share (`rce_files::config`) |
//! | `RCE_WORKER_THREADS` | `1` | async worker threads (see `rce_service::runtime`); scale out with instances |

use anyhow::Context;
use rce_pool::job_plan::UidRange;
use rce_protocol::topology::Sandbox;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default of `RCE_RUNNER_UID_BLOCKS`: about a million uids per runner (with the topology's
/// 1000-uid blocks), room for some 2000 runners below the highest job uid.
pub const DEFAULT_UID_BLOCKS: u32 = 1024;

#[derive(Clone, Debug)]
pub struct RunnerConfig {
    pub amqp_url: String,
    pub redis_url: String,
    pub topology_path: String,
    pub runner_id: String,
    pub languages: Vec<String>,
    pub metrics_addr: SocketAddr,
    pub shutdown_grace: Duration,
    /// Which range of job uids this runner owns (see [`RunnerConfig::uid_range`]).
    pub runner_index: u32,
    /// How many uid blocks each runner owns.
    pub uid_blocks: u32,
    pub cgroup_root: PathBuf,
    pub file_cache_dir: PathBuf,
    pub file_cache_bytes: u64,
    pub file_store: rce_files::StoreConfig,
}

use rce_service::env::var_or as var;

impl RunnerConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "runner".into());
        let runner_id: String = var("RCE_RUNNER_ID", &host)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let cache_dir = var(
            "RCE_FILE_CACHE_DIR",
            &format!("/var/cache/rce/files-{runner_id}"),
        );
        let cache_mb: u64 = var("RCE_FILE_CACHE_MB", "2048")
            .parse()
            .context("RCE_FILE_CACHE_MB")?;
        Ok(Self {
            file_cache_dir: cache_dir.into(),
            file_cache_bytes: cache_mb << 20,
            file_store: rce_files::StoreConfig::from_env().context("the file store")?,
            amqp_url: var("RCE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            redis_url: var("RCE_REDIS_URL", "redis://127.0.0.1:6379/"),
            topology_path: var("RCE_TOPOLOGY", rce_protocol::topology::DEFAULT_PATH),
            runner_id,
            languages: var("RCE_RUNNER_LANGUAGES", "")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            metrics_addr: var("RCE_RUNNER_METRICS_ADDR", "127.0.0.1:9090")
                .parse()
                .context("RCE_RUNNER_METRICS_ADDR")?,
            shutdown_grace: Duration::from_secs(
                var("RCE_SHUTDOWN_GRACE_SECS", "30")
                    .parse()
                    .context("RCE_SHUTDOWN_GRACE_SECS")?,
            ),
            cgroup_root: var("RCE_CGROUP_ROOT", "/sys/fs/cgroup").into(),
            runner_index: var("RCE_RUNNER_INDEX", "0")
                .parse()
                .context("RCE_RUNNER_INDEX")?,
            uid_blocks: var("RCE_RUNNER_UID_BLOCKS", &DEFAULT_UID_BLOCKS.to_string())
                .parse()
                .context("RCE_RUNNER_UID_BLOCKS")?,
        })
    }

    /// The job uids this runner owns: refused when they would pass the highest job uid. Two
    /// runners with different indices (and the same block count) never share a uid, so the
    /// kernel's per-uid budgets (`RLIMIT_NPROC`, ...) are never shared between their jobs.
    pub fn uid_range(&self, sandbox: &Sandbox) -> anyhow::Result<UidRange> {
        UidRange::for_runner(sandbox, self.runner_index, self.uid_blocks)
            .context("RCE_RUNNER_INDEX and RCE_RUNNER_UID_BLOCKS")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_protocol::topology::Topology;

    fn config(runner_index: u32, uid_blocks: u32) -> RunnerConfig {
        RunnerConfig {
            amqp_url: String::new(),
            redis_url: String::new(),
            topology_path: String::new(),
            runner_id: "r".into(),
            languages: Vec::new(),
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            shutdown_grace: Duration::ZERO,
            cgroup_root: PathBuf::new(),
            file_cache_dir: PathBuf::new(),
            file_cache_bytes: 0,
            file_store: rce_files::StoreConfig::Redis,
            runner_index,
            uid_blocks,
        }
    }

    #[test]
    fn the_default_range_fits_and_neighbouring_runners_do_not_overlap() {
        let sandbox = Topology::from_source_tree().unwrap().sandbox;
        let first = config(0, DEFAULT_UID_BLOCKS).uid_range(&sandbox).unwrap();
        let second = config(1, DEFAULT_UID_BLOCKS).uid_range(&sandbox).unwrap();
        assert_eq!(first.uids().0, sandbox.uid_base);
        assert_eq!(first.uids().1 + 1, second.uids().0);
    }

    #[test]
    fn a_range_past_the_last_job_uid_is_refused() {
        let sandbox = Topology::from_source_tree().unwrap().sandbox;
        let too_far = config(u32::MAX / DEFAULT_UID_BLOCKS, DEFAULT_UID_BLOCKS);
        let e = too_far.uid_range(&sandbox).unwrap_err();
        assert!(format!("{e:#}").contains("RCE_RUNNER_INDEX"), "{e:#}");
        assert!(config(0, 0).uid_range(&sandbox).is_err());
    }
}
