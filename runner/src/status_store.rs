//! The runner's only write to job state: marking a job `running` when it is picked up, so a
//! client polling `GET /v1/jobs/{id}` sees it leave the queue (and its event stream says so).
//! The final result goes through RabbitMQ to the recorder, never directly to Redis.

use chrono::{DateTime, Utc};
use rce_protocol::events::STREAM_MAX_LEN;
use redis::aio::ConnectionManager;

/// Only a queued job becomes running: a redelivered job whose result is already recorded keeps
/// it. A job cancelled while queued, or whose cancel was requested before a runner died with
/// it, answers 2: the runner must not run it.
const MARK_RUNNING: &str = r#"
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'cancelled' or redis.call('HEXISTS', KEYS[1], 'cancel_requested') == 1 then
  return 2
end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'kind', 'status', 'data', '{"status":"running"}')
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
  return 1
end
return 0
"#;

/// What picking a job up found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pickup {
    /// Run it (it is now `running`, or its state could not be read: running is the safe side).
    Run,
    /// It was cancelled before it started: do not run it.
    Cancelled,
}

#[derive(Clone)]
pub struct StatusStore {
    conn: ConnectionManager,
    script: std::sync::Arc<redis::Script>,
}

impl StatusStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        Ok(Self {
            conn,
            script: std::sync::Arc::new(redis::Script::new(MARK_RUNNING)),
        })
    }

    /// Best effort: a Redis hiccup must not fail a job that can still run and report.
    pub async fn mark_running(&self, job_id: &str, at: DateTime<Utc>) -> Pickup {
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<i32> = self
            .script
            .key(rce_protocol::redis_keys::job(job_id))
            .key(rce_protocol::redis_keys::events(job_id))
            .arg(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .arg(STREAM_MAX_LEN)
            .invoke_async(&mut conn)
            .await;
        match result {
            Ok(2) => Pickup::Cancelled,
            Ok(_) => Pickup::Run,
            Err(e) => {
                tracing::warn!(error = %e, "could not mark the job running");
                Pickup::Run
            }
        }
    }

    /// The connection, shared with the live-event writer.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }
}
