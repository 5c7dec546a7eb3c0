//! Forwarding what the shim streams to the job's Redis stream, batched: every event already
//! queued when a write starts goes in the same round trip (one Lua call), so a program printing
//! 1 MB in 10,000 lines costs as many round trips as the shim sent batches (a few dozen), not
//! 10,000. The stream's expiry follows the job record's.

use rce_pool::LiveEvent;
use rce_protocol::events::{EventKind, Utf8Chunker, STREAM_MAX_LEN};
use rce_protocol::job_record::{self, JobStatus};
use rce_protocol::redis_keys;
use rce_protocol::shim::OutputStream;
use rce_protocol::step::StepName;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Events a single write carries at most.
const MAX_BATCH: usize = 512;

/// What goes into a job's stream: the shim's live events, and judge mode's test results.
#[derive(Debug)]
pub enum StreamEvent {
    Shim(LiveEvent),
    /// A judged test's result, as JSON.
    Test(String),
}

impl From<LiveEvent> for StreamEvent {
    fn from(event: LiveEvent) -> Self {
        Self::Shim(event)
    }
}

#[derive(Clone)]
pub struct LiveEvents {
    conn: ConnectionManager,
    script: Arc<redis::Script>,
}

/// Turns shim events into stream entries: text that never splits a character, status JSON.
#[derive(Default)]
struct EntryBuilder {
    stdout: Utf8Chunker,
    stderr: Utf8Chunker,
    /// Output caps of the compile and run steps, for the truncation event.
    caps: StepCaps,
}

/// The output cap of each step.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepCaps {
    pub compile: u64,
    pub run: u64,
}

impl EntryBuilder {
    fn entries(&mut self, event: StreamEvent, out: &mut Vec<(EventKind, String)>) {
        let event = match event {
            StreamEvent::Shim(event) => event,
            StreamEvent::Test(json) => {
                out.push((EventKind::Test, json));
                return;
            }
        };
        match event {
            LiveEvent::Step(step) => {
                self.flush(out);
                let data = serde_json::json!({"status": JobStatus::Running, "step": step});
                out.push((EventKind::Status, data.to_string()));
            }
            LiveEvent::Output { stream, data } => {
                let (kind, chunker) = match stream {
                    OutputStream::Stdout => (EventKind::Stdout, &mut self.stdout),
                    OutputStream::Stderr => (EventKind::Stderr, &mut self.stderr),
                };
                let text = chunker.push(&data);
                if !text.is_empty() {
                    out.push((kind, text));
                }
            }
            LiveEvent::Truncated(step) => {
                self.flush(out);
                let cap = if step == StepName::Compile {
                    self.caps.compile
                } else {
                    self.caps.run
                };
                let data = serde_json::json!({"step": step, "output_bytes": cap});
                out.push((EventKind::Truncated, data.to_string()));
            }
            // Judged first (`judging`), which sends its result instead.
            LiveEvent::Test { .. } => {}
        }
    }

    /// Whatever a stream still holds back (a character cut by the end of the output).
    fn flush(&mut self, out: &mut Vec<(EventKind, String)>) {
        for (kind, chunker) in [
            (EventKind::Stdout, &mut self.stdout),
            (EventKind::Stderr, &mut self.stderr),
        ] {
            let text = chunker.finish();
            if !text.is_empty() {
                out.push((kind, text));
            }
        }
    }
}

impl LiveEvents {
    pub fn new(conn: ConnectionManager) -> Self {
        Self {
            conn,
            script: Arc::new(redis::Script::new(job_record::APPEND_EVENTS_LUA)),
        }
    }

    /// Writes `events` of job `id` to its stream until the sender side closes (the job ended);
    /// returns once everything received is written, so the caller can publish the result only
    /// after the last output is in the stream. Redis faults lose live events, never the job.
    pub async fn forward<E: Into<StreamEvent>>(
        &self,
        id: &str,
        caps: StepCaps,
        mut events: mpsc::Receiver<E>,
    ) -> u64 {
        let mut builder = EntryBuilder {
            caps,
            ..Default::default()
        };
        let mut batch = Vec::new();
        let mut writes = 0;
        while let Some(first) = events.recv().await {
            builder.entries(first.into(), &mut batch);
            while batch.len() < MAX_BATCH {
                match events.try_recv() {
                    Ok(event) => builder.entries(event.into(), &mut batch),
                    Err(_) => break,
                }
            }
            writes += self.append(id, &mut batch).await;
        }
        builder.flush(&mut batch);
        writes + self.append(id, &mut batch).await
    }

    /// Appends and empties `batch`; 1 if a write was made.
    async fn append(&self, id: &str, batch: &mut Vec<(EventKind, String)>) -> u64 {
        if batch.is_empty() {
            return 0;
        }
        let mut call = self.script.prepare_invoke();
        call.key(redis_keys::events(id))
            .key(redis_keys::job(id))
            .arg(STREAM_MAX_LEN);
        for (kind, data) in batch.drain(..) {
            call.arg(kind.as_str()).arg(data);
        }
        let result: redis::RedisResult<i32> = call.invoke_async(&mut self.conn.clone()).await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not append live events");
        }
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(events: Vec<LiveEvent>) -> Vec<(EventKind, String)> {
        let mut b = EntryBuilder {
            caps: StepCaps {
                compile: 5,
                run: 10,
            },
            ..Default::default()
        };
        let mut out = Vec::new();
        for e in events {
            b.entries(e.into(), &mut out);
        }
        b.flush(&mut out);
        out
    }

    #[test]
    fn steps_output_and_truncation_become_entries() {
        let euro = "€".as_bytes();
        let out = build(vec![
            LiveEvent::Step(StepName::Run),
            LiveEvent::Output {
                stream: OutputStream::Stdout,
                data: vec![b'a', euro[0]],
            },
            LiveEvent::Output {
                stream: OutputStream::Stderr,
                data: b"err".to_vec(),
            },
            LiveEvent::Output {
                stream: OutputStream::Stdout,
                data: euro[1..].to_vec(),
            },
            LiveEvent::Truncated(StepName::Run),
        ]);
        assert_eq!(
            out,
            vec![
                (
                    EventKind::Status,
                    r#"{"status":"running","step":"run"}"#.into()
                ),
                (EventKind::Stdout, "a".into()),
                (EventKind::Stderr, "err".into()),
                (EventKind::Stdout, "€".into()),
                (
                    EventKind::Truncated,
                    r#"{"output_bytes":10,"step":"run"}"#.into()
                ),
            ]
        );
    }

    #[test]
    fn a_cut_character_is_flushed_at_the_next_step() {
        let out = build(vec![
            LiveEvent::Step(StepName::Compile),
            LiveEvent::Output {
                stream: OutputStream::Stderr,
                data: vec![0xC3],
            },
            LiveEvent::Step(StepName::Run),
        ]);
        assert_eq!(out[1], (EventKind::Stderr, "\u{FFFD}".into()));
        assert_eq!(out[2].0, EventKind::Status);
    }
}
