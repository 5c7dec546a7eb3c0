//! Job records in Redis: created queued by the api, marked running by the runner, finished by the
//! recorder (first result wins, so a redelivered job cannot overwrite what a client saw). The
//! record's fields, states and scripts are `rce_protocol::job_record`'s.

use crate::job_view::JobView;
use rce_protocol::events::{
    ControlAction, ControlMessage, EventKind, FIELD_DATA, FIELD_KIND, STDIN_DATA, STDIN_EOF,
    STREAM_MAX_LEN,
};
use rce_protocol::job::JobMessage;
use rce_protocol::job_record::{self, cancel_outcome, field};
use rce_protocol::redis_keys;
use rce_protocol::result::{JobStatus, ResultMessage, Verdict};
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What `DELETE /v1/jobs/{id}` did.
#[derive(Debug)]
pub enum CancelOutcome {
    /// No such job (or it expired).
    Missing,
    /// It had already ended; nothing changed.
    Finished(JobView),
    /// It was queued and is now cancelled: it will never run.
    Cancelled(JobView),
    /// It is running; the runners have been told to kill it.
    Requested(JobView),
}

/// The failed result of a job that was never admitted (see `routes::jobs`).
pub fn failed_result(job: &JobMessage, why: &str) -> ResultMessage {
    ResultMessage::platform_failure(
        job.id.clone(),
        job.language.clone(),
        job.created_at,
        why.to_string(),
    )
}

/// Input for an interactive job, from its WebSocket.
#[derive(Debug)]
pub enum StdinChunk<'a> {
    Data(&'a [u8]),
    Eof,
}

#[derive(Clone)]
pub struct JobStore {
    conn: ConnectionManager,
    ttl: Duration,
    record: Arc<redis::Script>,
    cancel: Arc<redis::Script>,
}

impl JobStore {
    pub fn new(conn: ConnectionManager, ttl: Duration) -> Self {
        Self {
            conn,
            ttl,
            record: Arc::new(redis::Script::new(job_record::RECORD_RESULT_LUA)),
            cancel: Arc::new(redis::Script::new(job_record::CANCEL_LUA)),
        }
    }

    /// Writes the queued record, before the job is published, so a result can never arrive for a
    /// job the store does not know.
    pub async fn create(
        &self,
        job: &JobMessage,
        callback: Option<&crate::webhooks::Callback>,
    ) -> redis::RedisResult<()> {
        let key = redis_keys::job(&job.id);
        let events = redis_keys::events(&job.id);
        let created = job
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut record = vec![
            (field::ID, job.id.as_str()),
            (field::LANGUAGE, job.language.as_str()),
            (field::STATUS, JobStatus::Queued.as_str()),
            (field::CREATED_AT, created.as_str()),
        ];
        if job.interactive {
            record.push((field::INTERACTIVE, job_record::FLAG_SET));
        }
        let callback = callback.map(|c| serde_json::to_string(c).expect("a callback serializes"));
        if let Some(callback) = &callback {
            record.push((field::CALLBACK, callback.as_str()));
        }
        redis::pipe()
            .atomic()
            .hset_multiple(&key, &record)
            .ignore()
            .expire(&key, self.ttl.as_secs() as i64)
            .ignore()
            .cmd("XADD")
            .arg(&events)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAX_LEN)
            .arg("*")
            .arg(FIELD_KIND)
            .arg(EventKind::Status.as_str())
            .arg(FIELD_DATA)
            .arg(serde_json::json!({"status": JobStatus::Queued}).to_string())
            .ignore()
            .expire(&events, self.ttl.as_secs() as i64)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
    }

    /// Forgets a job that was never admitted (its publish failed).
    pub async fn delete(&self, id: &str) -> redis::RedisResult<()> {
        redis::cmd("DEL")
            .arg(redis_keys::job(id))
            .arg(redis_keys::events(id))
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
        let done = serde_json::to_string(&JobView::from_result(result.clone()))
            .expect("a job always serializes");
        let kept: i32 = self
            .record
            .key(redis_keys::job(&result.id))
            .key(redis_keys::DONE_CHANNEL)
            .key(redis_keys::events(&result.id))
            .key(redis_keys::DEADLINES)
            .key(redis_keys::WEBHOOKS_DUE)
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
            .arg(done)
            .arg(STREAM_MAX_LEN)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(kept == 1)
    }

    /// Cancels job `id` (see [`CancelOutcome`]).
    pub async fn cancel(&self, id: &str) -> redis::RedisResult<CancelOutcome> {
        let Some(view) = self.get(id).await? else {
            return Ok(CancelOutcome::Missing);
        };
        let created_at = view.created_at_utc();
        // What the job becomes if it is still queued.
        let result = ResultMessage {
            schema: rce_protocol::SCHEMA_VERSION,
            id: view.id.clone(),
            language: view.language.clone(),
            status: JobStatus::Cancelled,
            verdict: Verdict::Cancelled,
            compile: None,
            run: None,
            error: None,
            created_at,
            started_at: None,
            finished_at: chrono::Utc::now(),
            queue_ms: None,
            runner: None,
            tests: None,
            score: None,
        };
        let cancelled_view = JobView::from_result(result.clone());
        let announcement = ControlMessage {
            job_id: id.to_string(),
            action: ControlAction::Cancel,
        };
        let outcome: String = self
            .cancel
            .key(redis_keys::job(id))
            .key(redis_keys::DONE_CHANNEL)
            .key(redis_keys::events(id))
            .key(redis_keys::CONTROL_CHANNEL)
            .key(redis_keys::WEBHOOKS_DUE)
            .arg(serde_json::to_string(&result).expect("a result always serializes"))
            .arg(serde_json::to_string(&cancelled_view).expect("a job always serializes"))
            .arg(id)
            .arg(STREAM_MAX_LEN)
            .arg(serde_json::to_string(&announcement).expect("a control message serializes"))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match outcome.as_str() {
            cancel_outcome::CANCELLED => CancelOutcome::Cancelled(cancelled_view),
            cancel_outcome::REQUESTED => CancelOutcome::Requested(view),
            cancel_outcome::FINISHED => match self.get(id).await? {
                Some(v) => CancelOutcome::Finished(v),
                None => CancelOutcome::Missing,
            },
            _ => CancelOutcome::Missing,
        })
    }

    /// Whether job `id` was submitted interactive (its stdin stays open for WebSocket input).
    pub async fn is_interactive(&self, id: &str) -> redis::RedisResult<bool> {
        let flag: Option<String> = redis::cmd("HGET")
            .arg(redis_keys::job(id))
            .arg(field::INTERACTIVE)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(flag.is_some())
    }

    /// Appends input for interactive job `id`; the runner reads the stream from the start.
    pub async fn append_stdin(&self, id: &str, chunk: StdinChunk<'_>) -> redis::RedisResult<()> {
        let key = redis_keys::stdin(id);
        let (kind, data): (&str, &[u8]) = match chunk {
            StdinChunk::Data(d) => (STDIN_DATA, d),
            StdinChunk::Eof => (STDIN_EOF, b""),
        };
        redis::pipe()
            .cmd("XADD")
            .arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAX_LEN)
            .arg("*")
            .arg("kind")
            .arg(kind)
            .arg("data")
            .arg(data)
            .ignore()
            .expire(&key, self.ttl.as_secs() as i64)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
    }

    /// Up to `limit` running jobs whose limits ran out before `cutoff`.
    pub async fn overdue(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> redis::RedisResult<Vec<String>> {
        redis::cmd("ZRANGEBYSCORE")
            .arg(redis_keys::DEADLINES)
            .arg("-inf")
            .arg(cutoff.timestamp_millis())
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await
    }

    /// Ends overdue job `id` as a platform failure (unless a result beat us to it).
    pub async fn end_overdue(&self, id: &str, why: &str) -> redis::RedisResult<bool> {
        let Some(view) = self.get(id).await? else {
            // Expired meanwhile: nothing left to end.
            return redis::cmd("ZREM")
                .arg(redis_keys::DEADLINES)
                .arg(id)
                .query_async::<i32>(&mut self.conn.clone())
                .await
                .map(|_| false);
        };
        let created_at = view.created_at_utc();
        let result =
            ResultMessage::platform_failure(view.id, view.language, created_at, why.to_string());
        self.record(&result).await
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING").query_async(&mut self.conn.clone()).await
    }
}
