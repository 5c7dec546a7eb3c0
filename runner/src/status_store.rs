//! The runner's writes to job state: marking a job `running` when it is picked up (so a client
//! polling `GET /v1/jobs/{id}` sees it leave the queue, and the stuck-job sweeper knows its
//! deadline) and back to `queued` when the runner hands it back. The final result goes through
//! RabbitMQ to the recorder, never directly to Redis. The scripts and what they answer are
//! `rce_protocol::job_record`'s.

use chrono::{DateTime, Utc};
use rce_protocol::events::STREAM_MAX_LEN;
use rce_protocol::job_record::{self, claim_outcome};
use rce_protocol::redis_keys;
use redis::aio::ConnectionManager;

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
            running: std::sync::Arc::new(redis::Script::new(job_record::MARK_RUNNING_LUA)),
            renew: std::sync::Arc::new(redis::Script::new(job_record::RENEW_LEASE_LUA)),
            requeued: std::sync::Arc::new(redis::Script::new(job_record::MARK_REQUEUED_LUA)),
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
            Ok(claim_outcome::BUSY) => Pickup::Busy,
            Ok(claim_outcome::FINISHED) => Pickup::Finished,
            Ok(claim_outcome::CANCELLED) => Pickup::Cancelled,
            // Claimed, or no record left to claim.
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

    /// Whether a cancel was requested for job `id` while it ran (the api flags its record); a
    /// Redis fault reads as no.
    pub async fn cancel_requested(&self, job_id: &str) -> bool {
        let flag: redis::RedisResult<Option<String>> = redis::cmd("HGET")
            .arg(rce_protocol::redis_keys::job(job_id))
            .arg(rce_protocol::job_record::field::CANCEL_REQUESTED)
            .query_async(&mut self.conn.clone())
            .await;
        matches!(flag, Ok(Some(_)))
    }

    /// The connection, shared with the live-event writer.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }
}
