//! Agent mode: the shim is the container's main process (`rce-shim agent`), and the runner keeps
//! the container's stdin and stdout attached for the container's whole life. A job is one line
//! written there; the agent forks it into exactly what an exec'd shim runs and ends its output
//! with a `done` line. No engine or runc work happens per job, so a job costs about what its
//! program costs (docs/architecture.md, "Agent mode").

use crate::conversation::{converse, Ending, Frames, Handoff, JobChannels, LineSplitter};
use crate::error::PoolError;
use crate::warm_container::baseline_line;
use bollard::container::LogOutput;
use bollard::query_parameters::AttachContainerOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use rce_protocol::shim::{Baseline, ShimJob, ShimRecord};
use std::fmt;
use std::pin::Pin;
use tokio::io::AsyncWrite;
use tokio::sync::oneshot;

/// The runner's end of one container's attached stdin and stdout.
pub struct AgentLink {
    input: Pin<Box<dyn AsyncWrite + Send>>,
    output: Frames,
    /// Carries a partial line over from one read to the next (there is none between jobs).
    lines: LineSplitter,
}

impl fmt::Debug for AgentLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentLink").finish_non_exhaustive()
    }
}

impl AgentLink {
    /// Attaches to container `id` before it starts, so not a byte of the agent's output is
    /// missed. The container is created with `stdin_once`: when this link goes away (the runner
    /// died), the agent reads end-of-file and the container stops by itself.
    pub async fn attach(docker: &Docker, id: &str) -> Result<Self, PoolError> {
        let options = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = docker.attach_container(id, Some(options)).await?;
        Ok(Self {
            input: attached.input,
            output: attached.output,
            lines: LineSplitter::default(),
        })
    }

    /// The agent's first line: the container's resting state, measured before any job.
    pub async fn read_baseline(&mut self) -> Result<Baseline, PoolError> {
        let mut stderr = Vec::new();
        while let Some(frame) = self.output.next().await {
            match frame? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    if let Some(first) = self.lines.push(&message)?.into_iter().next() {
                        return baseline_line(&first, "the agent's first line");
                    }
                }
                LogOutput::StdErr { message } if stderr.len() < 4096 => {
                    stderr.extend_from_slice(&message)
                }
                _ => {}
            }
        }
        Err(PoolError::Stream(format!(
            "the agent ended before its baseline: {:?}",
            String::from_utf8_lossy(&stderr)
        )))
    }

    /// Hands `job` (already encoded as `payload`, one line) to the agent and follows it to its
    /// `done` line; the outcome also goes to `early`.
    pub async fn run_job(
        &mut self,
        job: &ShimJob,
        payload: Vec<u8>,
        channels: JobChannels,
        early: Option<oneshot::Sender<ShimRecord>>,
    ) -> Result<ShimRecord, PoolError> {
        let handoff = Handoff {
            job_id: &job.job_id,
            line: payload,
            ending: Ending::Done,
            early,
        };
        converse(
            &mut self.input,
            &mut self.output,
            &mut self.lines,
            handoff,
            channels,
        )
        .await
    }
}
