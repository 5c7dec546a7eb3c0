//! The runner's side of one job's conversation with the shim, whichever way the shim was
//! reached (a `docker exec`, or the agent's attached stream): the job line in, then control
//! lines for as long as the job runs; live events and the record out.

use crate::error::PoolError;
use bollard::container::LogOutput;
use futures_util::{Stream, StreamExt};
use rce_protocol::shim::{OutputStream, ShimControl, ShimMessage, ShimRecord};
use rce_protocol::step::StepName;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// The longest line the runner accepts from the shim: the record of a job at the largest output
/// cap, base64-encoded, with room to spare. Anything beyond is a broken shim.
const MAX_LINE_BYTES: usize = 64 << 20;
/// How much of the shim's stderr one job's log line keeps.
const STDERR_KEPT: usize = 4096;

/// What the shim reports while the job runs, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveEvent {
    /// A step started; the output that follows is its.
    Step(StepName),
    /// Output of the current step, within its cap.
    Output { stream: OutputStream, data: Vec<u8> },
    /// The step hit its output cap.
    Truncated(StepName),
}

/// The job's two live channels: control lines to the shim, live events from it. Dropping the
/// control sender is fine (no more control); a closed live receiver just discards events.
pub struct JobChannels {
    pub control: mpsc::UnboundedReceiver<ShimControl>,
    pub live: mpsc::Sender<LiveEvent>,
}

impl JobChannels {
    /// Channels nobody listens to: for callers that only want the record.
    pub fn detached() -> Self {
        let (_, control) = mpsc::unbounded_channel();
        let (live, _) = mpsc::channel(1);
        Self { control, live }
    }
}

/// Where a job's conversation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Exec mode: the exec'd shim exits after its record, which ends the stream.
    StreamEnd,
    /// Agent mode: the stream carries every job of the container; the agent's `done` line ends
    /// this one, and the stream ending means the container died.
    Done,
}

/// The shim's output stream as the engine hands it over.
pub type Frames =
    std::pin::Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// One job handed to a shim: what to send, and how the conversation ends.
pub struct Handoff<'a> {
    pub job_id: &'a str,
    /// The job as one JSON line, newline included.
    pub line: Vec<u8>,
    pub ending: Ending,
    /// Gets the shim's outcome the moment it arrives, so the job's result need not wait for
    /// the cleanup after it.
    pub early: Option<oneshot::Sender<ShimRecord>>,
}

/// Writes the job line, relays control lines and forwards live events until the conversation
/// ends as the handoff says; returns the record of the job (its steps from the shim's outcome
/// line, `clean` from its final record).
pub async fn converse<W: AsyncWrite + Unpin + ?Sized>(
    input: &mut W,
    output: &mut Frames,
    lines: &mut LineSplitter,
    handoff: Handoff<'_>,
    channels: JobChannels,
) -> Result<ShimRecord, PoolError> {
    let Handoff {
        job_id,
        line: payload,
        ending,
        mut early,
    } = handoff;
    input
        .write_all(&payload)
        .await
        .map_err(|e| PoolError::Stream(format!("writing the job: {e}")))?;
    input
        .flush()
        .await
        .map_err(|e| PoolError::Stream(format!("writing the job: {e}")))?;
    drop(payload);
    let JobChannels { mut control, live } = channels;
    // Dropped at the outcome: nothing live follows it, and the live writer may finish.
    let mut live = Some(live);
    let mut outcome: Option<ShimRecord> = None;
    let mut stderr = Vec::new();
    let mut record = None;
    let mut control_open = true;
    let mut done = None;
    while done.is_none() {
        tokio::select! {
            frame = output.next() => {
                let Some(frame) = frame else { break };
                match frame? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        for line in lines.push(&message)? {
                            match serde_json::from_slice::<ShimMessage>(&line) {
                                Ok(ShimMessage::Record(r)) => record = Some(r),
                                Ok(ShimMessage::Outcome(o)) => {
                                    live = None;
                                    check_job_id(&o, job_id)?;
                                    if let Some(early) = early.take() {
                                        // A caller that stopped listening only wants the end.
                                        let _ = early.send(o.clone());
                                    }
                                    outcome = Some(o);
                                }
                                Ok(ShimMessage::Done { failure }) if ending == Ending::Done => {
                                    done = Some(failure);
                                    break;
                                }
                                Ok(message) => {
                                    if let Some(live) = &live {
                                        forward(live, message).await;
                                    }
                                }
                                Err(e) => return Err(PoolError::Record(e.into())),
                            }
                        }
                    }
                    LogOutput::StdErr { message } if stderr.len() < STDERR_KEPT => {
                        stderr.extend_from_slice(&message)
                    }
                    _ => {}
                }
            }
            next = control.recv(), if control_open => match next {
                Some(message) => {
                    let mut line = serde_json::to_vec(&message)?;
                    line.push(b'\n');
                    // The shim may be gone already (it exits after its record): not an error.
                    if input.write_all(&line).await.is_err() || input.flush().await.is_err() {
                        control_open = false;
                    }
                }
                None => control_open = false,
            },
        }
    }
    if !stderr.is_empty() {
        tracing::warn!(shim_stderr = %String::from_utf8_lossy(&stderr[..stderr.len().min(STDERR_KEPT)]), "shim wrote to stderr");
    }
    let record = match ending {
        Ending::Done => match (done, record) {
            (Some(_), Some(record)) => record,
            (Some(failure), None) => {
                return Err(PoolError::Stream(format!(
                    "the job's shim ended without a record ({})",
                    failure.as_deref().unwrap_or("exit 0")
                )))
            }
            (None, _) => {
                return Err(PoolError::Stream(
                    "the container's stream ended mid-job (its agent died)".into(),
                ))
            }
        },
        Ending::StreamEnd => match record {
            Some(record) => record,
            None if lines.rest().is_empty() => {
                return Err(PoolError::Record(rce_protocol::shim::RecordError::Missing(
                    0,
                )))
            }
            // A record without its newline, or the stream cut mid-line: the container (or the
            // engine) died under the shim, which is the platform's fault and worth a retry.
            None => rce_protocol::shim::parse_record(lines.rest()).map_err(|e| {
                PoolError::Stream(format!("the shim's output ended mid-line ({e})"))
            })?,
        },
    };
    check_job_id(&record, job_id)?;
    Ok(match outcome {
        Some(outcome) => ShimRecord {
            clean: record.clean,
            error: record.error.or(outcome.error),
            ..outcome
        },
        None => record,
    })
}

/// A record for another job means the stream is out of step: never attribute it.
fn check_job_id(record: &ShimRecord, job_id: &str) -> Result<(), PoolError> {
    if record.job_id == job_id {
        return Ok(());
    }
    Err(PoolError::Stream(format!(
        "the shim answered for job {:?} instead of {job_id:?}",
        record.job_id
    )))
}

async fn forward(live: &mpsc::Sender<LiveEvent>, message: ShimMessage) {
    let event = match message {
        ShimMessage::Step { name } => LiveEvent::Step(name),
        ShimMessage::Output { stream, data } => LiveEvent::Output {
            stream,
            data: data.0,
        },
        ShimMessage::Truncated { step } => LiveEvent::Truncated(step),
        ShimMessage::Record(_)
        | ShimMessage::Outcome(_)
        | ShimMessage::Baseline(_)
        | ShimMessage::Done { .. } => return,
    };
    // A receiver that went away (nobody streams this job) is not the job's problem.
    let _ = live.send(event).await;
}

/// Splits the shim's stdout into complete lines, bounding how much an unfinished line may hold.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, PoolError> {
        self.buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            if line.iter().any(|b| !b.is_ascii_whitespace()) {
                lines.push(line);
            }
        }
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(PoolError::Stream("the shim printed an endless line".into()));
        }
        Ok(lines)
    }

    /// What is left without a final newline.
    pub fn rest(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_frames_are_joined() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"{\"a\":").unwrap().is_empty());
        let lines = s.push(b"1}\n{\"b\":2}\n\n{\"c\"").unwrap();
        assert_eq!(
            lines,
            vec![b"{\"a\":1}\n".to_vec(), b"{\"b\":2}\n".to_vec()]
        );
        assert_eq!(s.rest(), b"{\"c\"");
    }
}
