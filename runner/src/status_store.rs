//! The runner's writes to job state: marking a job `running` when it is picked up (so a client
//! polling `GET /v1/jobs/{id}` sees it leave the queue, and the stuck-job sweeper knows its
//! deadline) and back to `queued` when the runner hands it back. The final result goes through
//! RabbitMQ to the recorder, never directly to Redis.

use chrono::{DateTime, Utc};
use rce_protocol::events::STREAM_MAX_LEN;
use rce_protocol::redis_keys;
use redis::aio::ConnectionManager;

/// Picks job KEYS[1] up for attempt ARGV[3], as run ARGV[6] (a token unique to this execution).
/// A job whose result is recorded answers 3: this delivery is a duplicate (redelivered after its
/// runner vanished, or published by an api that never got the broker's confirm) and must not
/// run again. A job cancelled while queued, or whose cancel was requested before a runner died
/// with it, answers 2. A job another run holds a live lease on answers 4: the broker redelivered
/// it (a connection died) while that run goes on. Otherwise the job is `running` under this
/// run's token with a lease of ARGV[7] ms (Redis's clock, so runners' clocks do not matter), its
/// event stream says which attempt this is, and its deadline ARGV[4] goes into the sweeper's set
/// KEYS[3].
const MARK_RUNNING: &str = r#"
if redis.call('HEXISTS', KEYS[1], 'result') == 1 then return 3 end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'cancelled' or redis.call('HEXISTS', KEYS[1], 'cancel_requested') == 1 then
  return 2
end
if not status then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if status == 'running' then
  local owner = redis.call('HGET', KEYS[1], 'owner')
  local lease = tonumber(redis.call('HGET', KEYS[1], 'lease') or '0')
  if owner and owner ~= ARGV[6] and lease > now then return 4 end
end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1], 'attempt', ARGV[3],
  'owner', ARGV[6], 'lease', now + tonumber(ARGV[7]))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'kind', 'status', 'data',
  '{"status":"running","attempt":' .. ARGV[3] .. '}')
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
return 1
"#;

/// Extends run ARGV[1]'s lease on job KEYS[1] to ARGV[2] ms from now, while it still holds it.
const RENEW_LEASE: &str = r#"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if redis.call('HEXISTS', KEYS[1], 'result') == 1 then return 0 end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'lease', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2]))
return 1
"#;

/// Hands job KEYS[1] back: `queued` again and out of the sweeper's set, only if run ARGV[3]
/// still holds it (a newer pickup elsewhere must not be undone by a stale hand-back).
const MARK_REQUEUED: &str = r#"
if redis.call('HEXISTS', KEYS[1], 'result') == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'owner', 'lease')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'kind', 'status', 'data', '{"status":"queued"}')
redis.call('ZREM', KEYS[3], ARGV[2])
return 1
"#;

/// How long a run's claim on its job lasts without renewal; renewed every third of it while the
/// job runs. A redelivery waits at most this long after its first run's runner died.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(15);

/// What picking a job up found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pickup {
    /// Run it (it is now `running`, or its state could not be read: running is the safe side).
    Run,
    /// It was cancelled before it started: do not run it.
    Cancelled,
    /// Its result is already recorded: this delivery is a duplicate; ack it and do nothing.
    Finished,
    /// Another run of it is live: wait for it to end (its result makes this a duplicate) or
    /// for its lease to lapse (its runner died: run it then).
    Busy,
}

#[derive(Clone)]
pub struct StatusStore {
    conn: ConnectionManager,
    running: std::sync::Arc<redis::Script>,
    renew: std::sync::Arc<redis::Script>,
    requeued: std::sync::Arc<redis::Script>,
}

impl StatusStore {
    pub fn new(conn: ConnectionManager) -> Self {
        Self {
            conn,
            running: std::sync::Arc::new(redis::Script::new(MARK_RUNNING)),
            renew: std::sync::Arc::new(redis::Script::new(RENEW_LEASE)),
            requeued: std::sync::Arc::new(redis::Script::new(MARK_REQUEUED)),
        }
    }

    /// Best effort: a Redis outage must not fail a job that can still run and report through
    /// RabbitMQ. `deadline` is when the job's own limits run out; `run` identifies this
    /// execution (see [`LEASE`]).
    pub async fn mark_running(
        &self,
        job_id: &str,
        run: &str,
        at: DateTime<Utc>,
        attempt: u32,
        deadline: DateTime<Utc>,
    ) -> Pickup {
        let result: redis::RedisResult<i32> = self
            .running
            .key(redis_keys::job(job_id))
            .key(redis_keys::events(job_id))
            .key(redis_keys::DEADLINES)
            .arg(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .arg(STREAM_MAX_LEN)
            .arg(attempt)
            .arg(deadline.timestamp_millis())
            .arg(job_id)
            .arg(run)
            .arg(LEASE.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await;
        match result {
            Ok(4) => Pickup::Busy,
            Ok(3) => Pickup::Finished,
            Ok(2) => Pickup::Cancelled,
            Ok(_) => Pickup::Run,
            Err(e) => {
                tracing::warn!(error = %e, "could not mark the job running");
                Pickup::Run
            }
        }
    }

    /// Renews run `run`'s lease on job `job_id`; best effort.
    pub async fn renew_lease(&self, job_id: &str, run: &str) {
        let result: redis::RedisResult<i32> = self
            .renew
            .key(redis_keys::job(job_id))
            .arg(run)
            .arg(LEASE.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not renew the job's lease");
        }
    }

    /// Best effort, like [`StatusStore::mark_running`]: the next pickup overwrites it anyway.
    pub async fn mark_requeued(&self, job_id: &str, run: &str) {
        let result: redis::RedisResult<i32> = self
            .requeued
            .key(redis_keys::job(job_id))
            .key(redis_keys::events(job_id))
            .key(redis_keys::DEADLINES)
            .arg(STREAM_MAX_LEN)
            .arg(job_id)
            .arg(run)
            .invoke_async(&mut self.conn.clone())
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not mark the job queued again");
        }
    }

    /// The connection, shared with the live-event writer.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }
}
