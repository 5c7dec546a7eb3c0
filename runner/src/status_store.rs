//! The runner's only write to job state: marking a job `running` when it is picked up, so a
//! client polling `GET /v1/jobs/{id}` sees it leave the queue. The final result goes through
//! RabbitMQ to the recorder, never directly to Redis.

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;

/// Only a queued job becomes running: a redelivered job whose result is already recorded keeps it.
const MARK_RUNNING: &str = r#"
if redis.call('HGET', KEYS[1], 'status') == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1])
  return 1
end
return 0
"#;

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
    pub async fn mark_running(&self, job_id: &str, at: DateTime<Utc>) {
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<i32> = self
            .script
            .key(rce_protocol::redis_keys::job(job_id))
            .arg(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not mark the job running");
        }
    }
}
