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
//! | `RCE_WORKER_THREADS` | `1` | async worker threads (see `rce_service::runtime`); scale out with instances |

use anyhow::Context;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct RunnerConfig {
    pub amqp_url: String,
    pub redis_url: String,
    pub topology_path: String,
    pub runner_id: String,
    pub languages: Vec<String>,
    pub metrics_addr: SocketAddr,
    pub shutdown_grace: Duration,
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
        Ok(Self {
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
        })
    }
}
