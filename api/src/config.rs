//! Api settings, from the environment, each with a default that works on one machine.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RCE_API_ADDR` | `127.0.0.1:8080` | where the HTTP API listens |
//! | `RCE_AMQP_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | RabbitMQ |
//! | `RCE_REDIS_URL` | `redis://127.0.0.1:6379/` | Redis |
//! | `RCE_TOPOLOGY` | `topology.yaml` | the fleet's topology |
//! | `RCE_JOB_TTL_SECS` | `86400` | how long job records are kept |
//! | `RCE_MAX_BODY_BYTES` | `2097152` | largest accepted request body (413 above) |
//! | `RCE_MAX_FILE_BYTES` | `67108864` | largest file `POST /v1/files` stores (413 above) |
//! | `RCE_FILE_TTL_SECS` | `604800` | how long a file is kept after its last upload or `HEAD` (Redis store) |
//! | `RCE_FILE_STORE` | `redis` | where files live: `redis` or `s3` (`RCE_S3_*`: see `rce_files::config`) |
//! | `RCE_WAIT_MARGIN_MS` | `15000` | `wait=true` waits for the job's limits plus this |
//! | `RCE_SSE_HEARTBEAT_SECS` | `15` | idle SSE streams get a comment line this often, so proxies keep them open |
//! | `RCE_STUCK_MARGIN_SECS` | `60` | a running job with no result this long past its limits is ended `internal_error` (its runner is lost) |
//! | `RCE_WORKER_THREADS` | `1` | async worker threads (see `rce_service::runtime`); scale out with instances |
//! | `RCE_WEBHOOK_SECRET` | none | signs webhooks (`X-RCE-Signature`); without it `callback_url` is refused |
//! | `RCE_WEBHOOK_ALLOW_NETS` | none | comma-separated networks (CIDR) webhooks may reach although not public, e.g. `10.0.0.0/8` |
//! | `RCE_WEBHOOK_TIMEOUT_MS` | `5000` | one webhook attempt's whole time |
//! | `RCE_WEBHOOK_BACKOFF_MS` | `1000` | the first retry's delay; later ones double (jittered), up to 5 minutes |
//! | `RCE_WEBHOOK_RETRY_SECS` | `3600` | how long after the job ended a failing webhook is retried |
//! | `RCE_WEBHOOK_CONCURRENCY` | `16` | webhook deliveries under way at once, per api |
//! | `RCE_JUDGE0_AUTHN_TOKENS` | none | space-separated tokens one of which every Judge0 request must carry (`X-Auth-Token` header or query parameter, Judge0's `AUTHN_TOKEN`); none: Judge0 requests need no token |
//! | `RCE_JUDGE0_AUTHZ_TOKENS` | none | space-separated tokens that may list and delete Judge0 submissions (`X-Auth-User`, Judge0's `AUTHZ_TOKEN`); without any, both are 403 |

use anyhow::Context;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub addr: SocketAddr,
    pub amqp_url: String,
    pub redis_url: String,
    pub topology_path: String,
    pub job_ttl: Duration,
    pub max_body_bytes: usize,
    /// Largest file `POST /v1/files` takes.
    pub max_file_bytes: usize,
    /// How long a file is kept after its last upload or `HEAD` (in Redis; a bucket's lifecycle
    /// rule decides in S3).
    pub file_ttl: Duration,
    /// Where files live; runners read the same variables, so they look where the api wrote.
    pub file_store: rce_files::StoreConfig,
    pub wait_margin: Duration,
    pub heartbeat: Duration,
    /// Past a running job's limits, how long before the stuck-job sweeper ends it: long enough
    /// for a runner to ride out a short broker outage with the result in hand.
    pub stuck_margin: Duration,
    pub webhooks: crate::webhooks::WebhookConfig,
    /// Judge0's `AUTHZ_TOKEN`: who may list and delete submissions on the Judge0 surface.
    pub judge0_authz_tokens: Vec<String>,
    /// Judge0's `AUTHN_TOKEN`: when set, every Judge0 request must carry one (`X-Auth-Token`).
    pub judge0_authn_tokens: Vec<String>,
}

use rce_service::env::var_or as var;

fn number(name: &str, default: u64) -> anyhow::Result<u64> {
    var(name, &default.to_string())
        .parse()
        .with_context(|| format!("{name} must be a whole number"))
}

impl ApiConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            addr: var("RCE_API_ADDR", "127.0.0.1:8080")
                .parse()
                .context("RCE_API_ADDR")?,
            amqp_url: var("RCE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            redis_url: var("RCE_REDIS_URL", "redis://127.0.0.1:6379/"),
            topology_path: var("RCE_TOPOLOGY", rce_protocol::topology::DEFAULT_PATH),
            job_ttl: Duration::from_secs(number("RCE_JOB_TTL_SECS", 86_400)?),
            max_body_bytes: number("RCE_MAX_BODY_BYTES", 2 << 20)? as usize,
            max_file_bytes: number("RCE_MAX_FILE_BYTES", 64 << 20)? as usize,
            file_ttl: Duration::from_secs(number("RCE_FILE_TTL_SECS", 7 * 86_400)?),
            file_store: rce_files::StoreConfig::from_env().context("the file store")?,
            wait_margin: Duration::from_millis(number("RCE_WAIT_MARGIN_MS", 15_000)?),
            heartbeat: Duration::from_secs(number("RCE_SSE_HEARTBEAT_SECS", 15)?.max(1)),
            stuck_margin: Duration::from_secs(number("RCE_STUCK_MARGIN_SECS", 60)?),
            webhooks: crate::webhooks::WebhookConfig {
                secret: std::env::var("RCE_WEBHOOK_SECRET")
                    .ok()
                    .filter(|s| !s.is_empty()),
                allow_nets: crate::webhooks::destination::parse_nets(&var(
                    "RCE_WEBHOOK_ALLOW_NETS",
                    "",
                ))
                .map_err(anyhow::Error::msg)
                .context("RCE_WEBHOOK_ALLOW_NETS")?,
                timeout: Duration::from_millis(number("RCE_WEBHOOK_TIMEOUT_MS", 5000)?.max(1)),
                backoff: Duration::from_millis(number("RCE_WEBHOOK_BACKOFF_MS", 1000)?.max(1)),
                retry_for: Duration::from_secs(number("RCE_WEBHOOK_RETRY_SECS", 3600)?),
                concurrency: number("RCE_WEBHOOK_CONCURRENCY", 16)?.max(1) as usize,
            },
            judge0_authz_tokens: var("RCE_JUDGE0_AUTHZ_TOKENS", "")
                .split_whitespace()
                .map(String::from)
                .collect(),
            judge0_authn_tokens: var("RCE_JUDGE0_AUTHN_TOKENS", "")
                .split_whitespace()
                .map(String::from)
                .collect(),
        })
    }
}
