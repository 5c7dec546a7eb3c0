//! Job records in Redis: created queued by the api, marked running by the runner, finished by the
//! recorder (first result wins, so a redelivered job cannot overwrite what a client saw).

use crate::job_view::{fields, JobView};
use rce_protocol::job::JobMessage;
use rce_protocol::redis_keys;
use rce_protocol::result::ResultMessage;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Stores the result only if none is stored yet, then announces the job on the done channel.
const RECORD_RESULT: &str = r#"
if redis.call('HSETNX', KEYS[1], 'result', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'id', ARGV[4], 'language', ARGV[5], 'created_at', ARGV[6])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('PUBLISH', KEYS[2], ARGV[4])
  return 1
end
return 0
"#;

#[derive(Clone)]
pub struct JobStore {
    conn: ConnectionManager,
    ttl: Duration,
    record: Arc<redis::Script>,
}

impl JobStore {
    pub fn new(conn: ConnectionManager, ttl: Duration) -> Self {
        Self {
            conn,
            ttl,
            record: Arc::new(redis::Script::new(RECORD_RESULT)),
        }
    }

    /// Writes the queued record, before the job is published, so a result can never arrive for a
    /// job the store does not know.
    pub async fn create(&self, job: &JobMessage) -> redis::RedisResult<()> {
        let key = redis_keys::job(&job.id);
        let created = job
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    (fields::ID, job.id.as_str()),
                    (fields::LANGUAGE, job.language.as_str()),
                    (fields::STATUS, "queued"),
                    (fields::CREATED_AT, created.as_str()),
                ],
            )
            .ignore()
            .expire(&key, self.ttl.as_secs() as i64)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
    }

    /// Forgets a job that was never admitted (its publish failed).
    pub async fn delete(&self, id: &str) -> redis::RedisResult<()> {
        redis::cmd("DEL")
            .arg(redis_keys::job(id))
            .query_async(&mut self.conn.clone())
            .await
    }

    pub async fn get(&self, id: &str) -> redis::RedisResult<Option<JobView>> {
        let hash: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(redis_keys::job(id))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(JobView::from_hash(hash))
    }

    /// Records `result` unless one is already recorded; true when this one was kept.
    pub async fn record(&self, result: &ResultMessage) -> redis::RedisResult<bool> {
        let json = serde_json::to_string(result).expect("a result always serializes");
        let kept: i32 = self
            .record
            .key(redis_keys::job(&result.id))
            .key(redis_keys::DONE_CHANNEL)
            .arg(json)
            .arg(result.status.as_str())
            .arg(self.ttl.as_secs())
            .arg(&result.id)
            .arg(&result.language)
            .arg(
                result
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(kept == 1)
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING").query_async(&mut self.conn.clone()).await
    }
}
