//! Webhooks: a job with a `callback_url` (v1, or Judge0's) is sent there when it ends.
//!
//! ```text
//!  admission ── check the URL (destination) ──▶ record field `callback`
//!  any terminal transition (RECORD_RESULT_LUA, CANCEL_LUA) ── same script ──▶ ZADD rce:webhooks:due
//!  every api: Sender ── claim due ids (a lease) ──▶ deliver ──▶ 2xx: ZREM │ else: retry later
//! ```
//!
//! - **At least once.** The job joins the queue in the very script that makes it terminal, so no
//!   way of ending (a result, a dead letter, the stuck-job sweeper, a cancel) skips it. A delivery
//!   holds its job with a lease; an api that dies mid-delivery leaves it to another after the
//!   lease. Every attempt carries the same `X-RCE-Delivery` (the job id), so a receiver can drop
//!   repeats.
//! - **Never again after a 2xx**: the job leaves the queue as soon as one attempt succeeded, and a
//!   terminal record never moves again, so nothing puts it back.
//! - **Bounded**: failed attempts are retried with doubling, jittered backoff until
//!   `RCE_WEBHOOK_RETRY_SECS` after the job ended, then given up (counted).
//! - **Never in the way**: deliveries run beside the recorder, a bounded number at once, each
//!   with a timeout; a slow receiver delays only its own job's webhook.
//! - **Signed**: `X-RCE-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! - **Sent by the api**, never from a machine that runs untrusted code, and only to addresses
//!   `destination` allows.

pub mod destination;

use crate::job_store::JobStore;
use crate::job_view::JobView;
use crate::judge0;
use crate::metrics::ApiMetrics;
use destination::Net;
use hmac::{Hmac, Mac};
use rce_protocol::job_record::field;
use rce_protocol::redis_keys;
use rce_protocol::topology::Topology;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where a job is sent when it ends, and in which shape.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Callback {
    pub url: String,
    pub kind: CallbackKind,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    /// `POST` of the job as `GET /v1/jobs/{id}` shows it.
    V1,
    /// `PUT` of the submission as Judge0 sends it: its default fields, base64.
    Judge0,
}

/// Webhook settings (docs/api.md, "Webhooks"; the table in `config`).
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// The signing secret; without one, `callback_url` is refused (422 `webhooks_disabled`).
    pub secret: Option<String>,
    /// Networks that are not public but may be called anyway.
    pub allow_nets: Vec<Net>,
    /// One attempt's whole time (connect, send, answer).
    pub timeout: Duration,
    /// The first retry's delay; each later one doubles, up to [`MAX_BACKOFF`].
    pub backoff: Duration,
    /// How long after the job ended attempts go on.
    pub retry_for: Duration,
    /// Deliveries under way at once, per api.
    pub concurrency: usize,
}

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often an idle sender looks for due webhooks.
const POLL: Duration = Duration::from_millis(200);
/// Due webhooks claimed per look.
const CLAIM_BATCH: usize = 32;

impl WebhookConfig {
    /// The delay before attempt `attempt + 1` after `attempt` failures: doubling from
    /// `backoff`, capped, then jittered to between half and one and a half of it.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(MAX_BACKOFF);
        base.mul_f64(0.5 + fastrand::f64())
    }

    /// How many attempts fit in the retry window, without jitter (what `/config_info` reports).
    pub fn max_attempts(&self) -> u32 {
        let mut elapsed = Duration::ZERO;
        let mut attempts = 1;
        while attempts < 1000 {
            let next = self
                .backoff
                .saturating_mul(1u32 << (attempts - 1).min(20))
                .min(MAX_BACKOFF);
            if elapsed + next > self.retry_for {
                break;
            }
            elapsed += next;
            attempts += 1;
        }
        attempts
    }
}

/// Checks a callback at admission: webhooks enabled, the URL well-formed, and every address its
/// host resolves to allowed. `Err` is the message for a 422 on `callback_url`.
pub async fn check(
    config: &WebhookConfig,
    callback: &Callback,
) -> Result<(), (&'static str, String)> {
    if config.secret.is_none() {
        return Err((
            "webhooks_disabled",
            "webhooks are not enabled on this service (its operator sets RCE_WEBHOOK_SECRET)"
                .into(),
        ));
    }
    let url = destination::parse_url(&callback.url).map_err(|m| ("invalid_callback_url", m))?;
    destination::resolve(&url, &config.allow_nets)
        .await
        .map_err(|m| ("invalid_callback_url", m))?;
    Ok(())
}

/// `X-RCE-Signature` of `body` sent at `t` (Unix seconds).
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// Claims up to `ARGV[2]` ids due by now (Redis's clock, as the scripts that queue them use)
/// from `KEYS[1]`, oldest first, pushing each one's score `ARGV[1]` ms ahead (its lease), so no
/// other sender takes it meanwhile.
const CLAIM_LUA: &str = r#"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', now + ARGV[1], id)
end
return ids
"#;

/// Makes `ARGV[2]` due again `ARGV[1]` ms from now (Redis's clock), if it is still queued.
const RESCHEDULE_LUA: &str = r#"
local t = redis.call('TIME')
return redis.call('ZADD', KEYS[1], 'XX', t[1] * 1000 + math.floor(t[2] / 1000) + ARGV[1], ARGV[2])
"#;

/// Deliveries to one host under way at once, per api: a receiver that never answers takes at
/// most these of the sender's slots, and the rest go to other hosts.
const PER_HOST: usize = 4;
/// When a host has [`PER_HOST`] deliveries under way, its next one waits this long.
const HOST_BUSY_DELAY: Duration = Duration::from_millis(500);
/// How long connecting to a receiver may take (within the attempt's whole timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The background sender: one per api instance.
#[derive(Clone)]
pub struct Sender {
    pub conn: ConnectionManager,
    pub config: Arc<WebhookConfig>,
    pub store: JobStore,
    pub judge0: judge0::store::Judge0Store,
    pub topology: Arc<Topology>,
    pub metrics: ApiMetrics,
    pub hosts: HostSlots,
}

enum Attempt {
    Delivered,
    Failed(String),
    /// The job is gone (expired): nothing left to send.
    Gone,
    /// Its host has [`PER_HOST`] deliveries under way: not an attempt, just later.
    HostBusy,
}

/// Deliveries under way per host, taken for one delivery and given back when it ends.
#[derive(Clone, Default)]
pub struct HostSlots(Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>);

struct HostSlot {
    slots: HostSlots,
    host: String,
}

impl HostSlots {
    fn take(&self, host: &str) -> Option<HostSlot> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = map.entry(host.to_string()).or_default();
        if *count >= PER_HOST {
            return None;
        }
        *count += 1;
        Some(HostSlot {
            slots: self.clone(),
            host: host.to_string(),
        })
    }
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        let mut map = self.slots.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = map.get_mut(&self.host) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(&self.host);
            }
        }
    }
}

/// Takes `id` off the webhook queue, with its attempt count.
async fn dequeue(conn: &mut ConnectionManager, id: &str) -> redis::RedisResult<()> {
    redis::pipe()
        .zrem(redis_keys::WEBHOOKS_DUE, id)
        .ignore()
        .hdel(redis_keys::WEBHOOK_ATTEMPTS, id)
        .ignore()
        .query_async(conn)
        .await
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Sender {
    /// Sends due webhooks until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let claim = redis::Script::new(CLAIM_LUA);
        let slots = Arc::new(tokio::sync::Semaphore::new(self.config.concurrency.max(1)));
        let lease = self.config.timeout + Duration::from_secs(10);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
            let free = slots.available_permits().min(CLAIM_BATCH);
            if free == 0 {
                continue;
            }
            let claimed: Result<Vec<String>, _> = claim
                .key(redis_keys::WEBHOOKS_DUE)
                .arg(lease.as_millis() as u64)
                .arg(free)
                .invoke_async(&mut self.conn.clone())
                .await;
            let ids = match claimed {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming due webhooks failed; retrying");
                    continue;
                }
            };
            for id in ids {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let sender = self.clone();
                tokio::spawn(async move {
                    sender.deliver(&id).await;
                    drop(permit);
                });
            }
        }
    }

    async fn deliver(&self, id: &str) {
        let attempt = self.attempt(id).await;
        let mut conn = self.conn.clone();
        if matches!(attempt, Attempt::HostBusy) {
            let _: redis::RedisResult<i64> = redis::Script::new(RESCHEDULE_LUA)
                .key(redis_keys::WEBHOOKS_DUE)
                .arg(HOST_BUSY_DELAY.as_millis() as u64)
                .arg(id)
                .invoke_async(&mut conn)
                .await;
            return;
        }
        match attempt {
            Attempt::HostBusy => {}
            Attempt::Delivered | Attempt::Gone => {
                let outcome = if matches!(attempt, Attempt::Delivered) {
                    "delivered"
                } else {
                    "dropped"
                };
                self.metrics.webhooks.with_label_values(&[outcome]).inc();
                tracing::info!(job_id = %id, outcome, "webhook done");
                // Out of the queue, or it would be sent again after its lease: retried through a
                // short Redis outage.
                for pause in [0u64, 100, 500, 2000] {
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    if dequeue(&mut conn, id).await.is_ok() {
                        return;
                    }
                }
                tracing::error!(job_id = %id, "could not take a finished webhook off the queue; it may be sent again");
            }
            Attempt::Failed(why) => {
                let attempts: redis::RedisResult<u32> = redis::cmd("HINCRBY")
                    .arg(redis_keys::WEBHOOK_ATTEMPTS)
                    .arg(id)
                    .arg(1)
                    .query_async(&mut conn)
                    .await;
                let attempts = attempts.unwrap_or(1);
                let ended = self.ended_at(id).await.unwrap_or_else(now_ms);
                let delay = self.config.delay(attempts);
                if now_ms() + delay.as_millis() as i64
                    > ended + self.config.retry_for.as_millis() as i64
                {
                    self.metrics.webhooks.with_label_values(&["given_up"]).inc();
                    tracing::warn!(job_id = %id, attempts, error = %why, "webhook given up: its retry window ran out");
                    let _ = dequeue(&mut conn, id).await;
                } else {
                    self.metrics.webhooks.with_label_values(&["retry"]).inc();
                    tracing::info!(job_id = %id, attempts, error = %why, "webhook attempt failed; retrying later");
                    let _: redis::RedisResult<i64> = redis::Script::new(RESCHEDULE_LUA)
                        .key(redis_keys::WEBHOOKS_DUE)
                        .arg(delay.as_millis() as u64)
                        .arg(id)
                        .invoke_async(&mut conn)
                        .await;
                }
            }
        }
    }

    async fn ended_at(&self, id: &str) -> Option<i64> {
        let view = self.store.get(id).await.ok()??;
        let finished = view.finished_at?;
        chrono::DateTime::parse_from_rfc3339(&finished)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    async fn attempt(&self, id: &str) -> Attempt {
        let view = match self.store.get(id).await {
            Ok(Some(v)) => v,
            Ok(None) => return Attempt::Gone,
            Err(e) => return Attempt::Failed(format!("reading the job: {e}")),
        };
        let callback: redis::RedisResult<Option<String>> = redis::cmd("HGET")
            .arg(redis_keys::job(id))
            .arg(field::CALLBACK)
            .query_async(&mut self.conn.clone())
            .await;
        let callback: Callback = match callback {
            Ok(Some(json)) => match serde_json::from_str(&json) {
                Ok(c) => c,
                Err(_) => return Attempt::Gone,
            },
            Ok(None) => return Attempt::Gone,
            Err(e) => return Attempt::Failed(format!("reading the callback: {e}")),
        };
        let host = url::Url::parse(&callback.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        let Some(_slot) = self.hosts.take(&host) else {
            return Attempt::HostBusy;
        };
        let (method, body) = match self.body(&view, callback.kind).await {
            Ok(b) => b,
            Err(e) => return Attempt::Failed(e),
        };
        match self.send(id, &callback.url, method, body).await {
            Ok(()) => Attempt::Delivered,
            Err(e) => Attempt::Failed(e),
        }
    }

    /// The method and body for `kind`.
    async fn body(
        &self,
        view: &JobView,
        kind: CallbackKind,
    ) -> Result<(reqwest13::Method, Vec<u8>), String> {
        match kind {
            CallbackKind::V1 => Ok((
                reqwest13::Method::POST,
                serde_json::to_vec(view).expect("a job serializes"),
            )),
            CallbackKind::Judge0 => {
                let echo = match self.judge0.get(&view.id).await {
                    Ok(Some(e)) => e,
                    Ok(None) => judge0::render::default_echo(view, &self.topology),
                    Err(e) => return Err(format!("reading the submission: {e}")),
                };
                let body = judge0::render::submission(
                    view,
                    &echo,
                    &judge0::render::DEFAULT_FIELDS,
                    true,
                    &self.topology,
                )
                .map_err(String::from)?;
                Ok((reqwest13::Method::PUT, body.to_string().into_bytes()))
            }
        }
    }

    async fn send(
        &self,
        id: &str,
        url: &str,
        method: reqwest13::Method,
        body: Vec<u8>,
    ) -> Result<(), String> {
        let secret = self
            .config
            .secret
            .as_deref()
            .ok_or("webhooks are disabled")?;
        let parsed = destination::parse_url(url)?;
        // Checked again now (DNS may answer differently than at admission), and connected to
        // the very address that was checked.
        let addr = destination::resolve(&parsed, &self.config.allow_nets).await?;
        let host = parsed
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']']);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest13::Client::builder()
            .redirect(reqwest13::redirect::Policy::none())
            .timeout(self.config.timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(self.config.timeout))
            .resolve(host, addr)
            .no_proxy()
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let t = chrono::Utc::now().timestamp();
        let response = client
            .request(method, parsed)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("rce-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("x-rce-delivery", id)
            .header("x-rce-event", "job.finished")
            .header("x-rce-signature", signature(secret, t, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| format!("sending: {e}"))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WebhookConfig {
        WebhookConfig {
            secret: Some("s".into()),
            allow_nets: vec![],
            timeout: Duration::from_secs(5),
            backoff: Duration::from_secs(1),
            retry_for: Duration::from_secs(3600),
            concurrency: 4,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let c = config();
        for attempt in 1..40 {
            let d = c.delay(attempt).as_secs_f64();
            let base = (2f64.powi(attempt as i32 - 1)).min(300.0);
            assert!(d >= base * 0.5 && d < base * 1.5, "attempt {attempt}: {d}");
        }
        // 1+2+4+...+256 = 511 s, then 300 s each: 3600 s hold 9 + 10 more attempts.
        assert_eq!(c.max_attempts(), 20);
    }

    #[test]
    fn signatures_are_hmac_sha256_of_t_dot_body() {
        // Python: hmac.new(b"key", b"1.The quick brown fox jumps over the lazy dog", sha256).
        let sig = signature("key", 1, b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            sig,
            "t=1,v1=3ff4d3cc115b639a16dc5b217aa5c89be41d1e4b54efc356d63d0cd2a65b30f1"
        );
        assert_ne!(
            sig,
            signature("key", 2, b"The quick brown fox jumps over the lazy dog")
        );
        assert_ne!(
            sig,
            signature("other", 1, b"The quick brown fox jumps over the lazy dog")
        );
    }
}
