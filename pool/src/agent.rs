//! Agent mode: the shim is the container's main process (`rce-shim agent`), and the runner keeps
//! the container's stdin and stdout attached for the container's whole life. A job is one line
//! written there; the agent forks it into exactly what an exec'd shim runs and ends its output
//! with a `done` line. No engine or runc work happens per job, so a job costs about what its
//! program costs (docs/architecture.md, "Agent mode").

use crate::conversation::{converse, Ending, Frames, Handoff, JobChannels, LineSplitter};
use crate::error::{PoolError, StreamError};
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
        Err(StreamError::EndedBeforeBaseline {
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
        .into())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::test_wire::{done, line, outcome, whole_job, TestWire};
    use crate::error::StreamError;
    use rce_protocol::shim::ShimMessage;

    impl AgentLink {
        /// A link over an in-memory wire instead of an attached container.
        fn over(wire: TestWire) -> (Self, tokio::io::DuplexStream, TestSender) {
            let TestWire {
                input,
                shim_stdin,
                output,
                shim_stdout,
            } = wire;
            let link = Self {
                input: Box::pin(input),
                output,
                lines: LineSplitter::default(),
            };
            (link, shim_stdin, shim_stdout)
        }
    }

    type TestSender = tokio::sync::mpsc::UnboundedSender<LogOutput>;

    fn say(out: &TestSender, bytes: &[u8]) {
        out.send(LogOutput::StdOut {
            message: bytes.to_vec().into(),
        })
        .unwrap();
    }

    fn job(id: &str) -> ShimJob {
        serde_json::from_value(serde_json::json!({
            "schema": 1, "job_id": id, "uid": 20001, "files": [], "steps": []
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn one_stream_carries_the_baseline_then_job_after_job() {
        let (mut link, _stdin, out) = AgentLink::over(TestWire::new());
        let baseline = Baseline {
            processes: 2,
            ..Baseline::default()
        };
        // The second job's first bytes share a frame with the first job's done line: the
        // conversation must leave them for the next job, not drop them.
        let second = whole_job("j2");
        say(&out, &line(&ShimMessage::Baseline(baseline.clone())));
        say(
            &out,
            &[whole_job("j1"), done(), second[..10].to_vec()].concat(),
        );
        say(&out, &[&second[10..], &done()[..]].concat());
        assert_eq!(link.read_baseline().await.unwrap(), baseline);
        for id in ["j1", "j2"] {
            let record = link
                .run_job(&job(id), b"{}\n".to_vec(), JobChannels::detached(), None)
                .await
                .unwrap_or_else(|e| panic!("{id}: {e:?}"));
            assert_eq!(record.job_id, id);
            assert_eq!(record.steps, outcome(id).steps);
            assert!(record.clean);
        }
    }

    #[tokio::test]
    async fn an_agent_that_dies_as_it_starts_reports_its_stderr() {
        let (mut link, _stdin, out) = AgentLink::over(TestWire::new());
        out.send(LogOutput::StdErr {
            message: b"no cgroup".to_vec().into(),
        })
        .unwrap();
        drop(out);
        let err = link.read_baseline().await.expect_err("no baseline");
        assert!(
            matches!(&err, PoolError::Stream(StreamError::EndedBeforeBaseline { stderr }) if stderr == "no cgroup"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_first_line_that_is_not_the_baseline_is_refused() {
        let (mut link, _stdin, out) = AgentLink::over(TestWire::new());
        say(&out, &done());
        let err = link.read_baseline().await.expect_err("not a baseline");
        assert!(
            matches!(&err, PoolError::Stream(StreamError::NotBaseline { whose, .. }) if *whose == "the agent's first line"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_job_line_the_agent_cannot_take_is_a_write_failure() {
        let (mut link, stdin, _out) = AgentLink::over(TestWire::new());
        drop(stdin);
        let err = link
            .run_job(&job("j1"), b"{}\n".to_vec(), JobChannels::detached(), None)
            .await
            .expect_err("stdin closed");
        assert!(
            matches!(err, PoolError::Stream(StreamError::WriteJob(_))),
            "{err:?}"
        );
    }
}
