//! Running the shim in a container with one `docker exec`: the job line, then control lines, in
//! on stdin; live events and last the record out on stdout.

use crate::error::PoolError;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use futures_util::StreamExt;
use rce_protocol::shim::{OutputStream, ShimControl, ShimJob, ShimMessage, ShimRecord, SHIM_PATH};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// The longest line the runner accepts from the shim: the record of a job at the largest output
/// cap, base64-encoded, with room to spare. Anything beyond is a broken shim.
const MAX_LINE_BYTES: usize = 64 << 20;

/// What the shim reports while the job runs, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveEvent {
    /// A step started; the output that follows is its.
    Step(String),
    /// Output of the current step, within its cap.
    Output { stream: OutputStream, data: Vec<u8> },
    /// The step hit its output cap.
    Truncated(String),
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

/// Runs `job` through the shim in container `id`; gives up after `deadline`.
pub async fn run_shim(
    docker: &Docker,
    id: &str,
    job: &ShimJob,
    deadline: Duration,
    channels: JobChannels,
) -> Result<ShimRecord, PoolError> {
    let mut payload = serde_json::to_vec(job)?;
    payload.push(b'\n');
    let exec = docker
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(vec![SHIM_PATH, "exec"]),
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(false),
                user: Some("root"),
                ..Default::default()
            },
        )
        .await?;
    let JobChannels { mut control, live } = channels;
    let run = async {
        let started = docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(64 << 10),
                }),
            )
            .await?;
        let StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        else {
            return Err(PoolError::Stream("exec started detached".into()));
        };
        input
            .write_all(&payload)
            .await
            .map_err(|e| PoolError::Stream(format!("writing the job: {e}")))?;
        drop(payload);
        let mut lines = LineSplitter::default();
        let mut stderr = Vec::new();
        let mut record = None;
        let mut control_open = true;
        loop {
            tokio::select! {
                frame = output.next() => {
                    let Some(frame) = frame else { break };
                    match frame? {
                        LogOutput::StdOut { message } => {
                            for line in lines.push(&message)? {
                                match serde_json::from_slice::<ShimMessage>(&line) {
                                    Ok(ShimMessage::Record(r)) => record = Some(r),
                                    Ok(message) => forward(&live, message).await,
                                    Err(e) => return Err(PoolError::Record(e.into())),
                                }
                            }
                        }
                        LogOutput::StdErr { message } if stderr.len() < 4096 => {
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
                        if input.write_all(&line).await.is_err() {
                            control_open = false;
                        }
                    }
                    None => control_open = false,
                },
            }
        }
        if !stderr.is_empty() {
            tracing::warn!(shim_stderr = %String::from_utf8_lossy(&stderr[..stderr.len().min(4096)]), "shim wrote to stderr");
        }
        let rest = lines.rest();
        match record {
            Some(r) => Ok(r),
            None if rest.is_empty() => Err(PoolError::Record(
                rce_protocol::shim::RecordError::Missing(0),
            )),
            // A record without its newline, or the stream cut mid-line: the container (or the
            // engine) died under the shim, which is the platform's fault and worth a retry.
            None => rce_protocol::shim::parse_record(rest)
                .map_err(|e| PoolError::Stream(format!("the shim's output ended mid-line ({e})"))),
        }
    };
    match tokio::time::timeout(deadline, run).await {
        Ok(result) => result,
        Err(_) => Err(PoolError::Timeout(deadline.as_millis() as u64)),
    }
}

async fn forward(live: &mpsc::Sender<LiveEvent>, message: ShimMessage) {
    let event = match message {
        ShimMessage::Step { name } => LiveEvent::Step(name),
        ShimMessage::Output { stream, data } => LiveEvent::Output {
            stream,
            data: data.0,
        },
        ShimMessage::Truncated { step } => LiveEvent::Truncated(step),
        ShimMessage::Record(_) | ShimMessage::Baseline(_) => return,
    };
    // A receiver that went away (nobody streams this job) is not the job's problem.
    let _ = live.send(event).await;
}

/// Splits the shim's stdout into complete lines, bounding how much an unfinished line may hold.
#[derive(Default)]
struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, PoolError> {
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
    fn rest(&self) -> &[u8] {
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
