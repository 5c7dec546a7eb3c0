//! The runner's side of one job's conversation with the shim, whichever way the shim was
//! reached (a `docker exec`, or the agent's attached stream): the job line in, then control
//! lines for as long as the job runs; live events and the record out.

use crate::error::{PoolError, StreamError};
use bollard::container::LogOutput;
use futures_util::{Stream, StreamExt};
use rce_protocol::shim::{OutputStream, ShimControl, ShimMessage, ShimRecord, StepOutcome};
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
    /// Judge mode: test `index` (0-based, in order) ended and its processes are gone.
    Test { index: usize, outcome: StepOutcome },
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
        .map_err(StreamError::WriteJob)?;
    input.flush().await.map_err(StreamError::WriteJob)?;
    drop(payload);
    let JobChannels { mut control, live } = channels;
    // Dropped at the outcome: nothing live follows it, and the live writer may finish.
    let mut live = Some(live);
    let mut outcome: Option<ShimRecord> = None;
    // Judge mode's per-test outcomes, gathered into the outcome when it comes.
    let mut tests = Vec::new();
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
                                Ok(ShimMessage::Test { index, outcome }) => {
                                    if index != tests.len() {
                                        return Err(StreamError::TestOutOfOrder {
                                            expected: tests.len(),
                                            got: index,
                                        }
                                        .into());
                                    }
                                    if let Some(live) = &live {
                                        // Judged as it arrives; a receiver gone is not the job's problem.
                                        let _ = live
                                            .send(LiveEvent::Test { index, outcome: outcome.clone() })
                                            .await;
                                    }
                                    tests.push(outcome);
                                }
                                Ok(ShimMessage::Outcome(mut o)) => {
                                    live = None;
                                    check_job_id(&o, job_id)?;
                                    o.tests = std::mem::take(&mut tests);
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
            (Some(failure), None) => return Err(StreamError::EndedWithoutRecord { failure }.into()),
            (None, _) => return Err(StreamError::EndedMidJob.into()),
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
            None => {
                rce_protocol::shim::parse_record(lines.rest()).map_err(StreamError::CutMidLine)?
            }
        },
    };
    check_job_id(&record, job_id)?;
    Ok(match outcome {
        Some(outcome) => ShimRecord {
            clean: record.clean,
            error: record.error.or(outcome.error),
            ..outcome
        },
        None => ShimRecord {
            tests: if record.tests.is_empty() {
                tests
            } else {
                record.tests
            },
            ..record
        },
    })
}

/// A record for another job means the stream is out of step: never attribute it.
fn check_job_id(record: &ShimRecord, job_id: &str) -> Result<(), PoolError> {
    if record.job_id == job_id {
        return Ok(());
    }
    Err(StreamError::WrongJob {
        expected: job_id.to_string(),
        got: record.job_id.clone(),
    }
    .into())
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
        | ShimMessage::Test { .. }
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
            return Err(StreamError::EndlessLine.into());
        }
        Ok(lines)
    }

    /// What is left without a final newline.
    pub fn rest(&self) -> &[u8] {
        &self.buf
    }
}

/// An in-memory stand-in for the far end of the wire, for tests: what the runner writes lands
/// in [`TestWire::shim_stdin`], and the chunks queued on [`TestWire::shim_stdout`] are what it
/// reads as the shim's stdout, frame by frame, exactly as the engine would hand them over.
/// Dropping `shim_stdout` ends the stream, as a container that exits does.
#[cfg(test)]
pub(crate) mod test_wire {
    use super::*;
    use rce_protocol::bytes::Base64Bytes;
    use rce_protocol::shim::{StepOutcome, Termination};
    use tokio::io::DuplexStream;

    pub struct TestWire {
        /// The runner's end of the shim's stdin.
        pub input: DuplexStream,
        /// The shim's end of its stdin: the job line and control lines arrive here.
        pub shim_stdin: DuplexStream,
        pub output: Frames,
        pub shim_stdout: mpsc::UnboundedSender<LogOutput>,
    }

    impl TestWire {
        pub fn new() -> Self {
            let (input, shim_stdin) = tokio::io::duplex(1 << 20);
            let (shim_stdout, frames) = mpsc::unbounded_channel();
            let output: Frames = Box::pin(futures_util::stream::unfold(frames, |mut rx| async {
                rx.recv().await.map(|frame| (Ok(frame), rx))
            }));
            Self {
                input,
                shim_stdin,
                output,
                shim_stdout,
            }
        }

        /// Queues `bytes` as stdout frames of at most `frame` bytes each, so lines are cut
        /// across frames the way the engine's buffering cuts them.
        pub fn say(&self, bytes: &[u8], frame: usize) {
            for chunk in bytes.chunks(frame) {
                self.shim_stdout
                    .send(LogOutput::StdOut {
                        message: chunk.to_vec().into(),
                    })
                    .unwrap();
            }
        }

        /// What the runner wrote to the shim so far.
        pub async fn heard(&mut self) -> Vec<u8> {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0; 1 << 20];
            let n = self.shim_stdin.read(&mut buf).await.unwrap();
            buf.truncate(n);
            buf
        }
    }

    pub fn line(message: &ShimMessage) -> Vec<u8> {
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        line
    }

    /// What a shim reports for job `job_id` whose run step printed `hi`.
    pub fn outcome(job_id: &str) -> ShimRecord {
        ShimRecord {
            tests: Vec::new(),
            job_id: job_id.into(),
            steps: vec![StepOutcome {
                name: StepName::Run,
                termination: Termination::Exited,
                exit_code: Some(0),
                signal: None,
                wall_ms: 3,
                cpu_ms: 2,
                memory_kb: 900,
                stdout: Base64Bytes(b"hi\n".to_vec()),
                stderr: Base64Bytes::default(),
                truncated: false,
            }],
            clean: false,
            error: None,
        }
    }

    /// The final record after an outcome: no steps (they were in the outcome), only `clean`.
    pub fn clean_record(job_id: &str) -> ShimRecord {
        ShimRecord {
            job_id: job_id.into(),
            clean: true,
            ..ShimRecord::default()
        }
    }

    /// Everything a shim prints for a job that ran and was cleaned up.
    pub fn whole_job(job_id: &str) -> Vec<u8> {
        [
            line(&ShimMessage::Step {
                name: StepName::Run,
            }),
            line(&ShimMessage::Output {
                stream: OutputStream::Stdout,
                data: Base64Bytes(b"hi\n".to_vec()),
            }),
            line(&ShimMessage::Outcome(outcome(job_id))),
            line(&ShimMessage::Record(clean_record(job_id))),
        ]
        .concat()
    }

    pub fn done() -> Vec<u8> {
        line(&ShimMessage::Done { failure: None })
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

    use super::test_wire::{clean_record, done, line, outcome, whole_job, TestWire};
    use crate::error::StreamError;
    use rce_protocol::shim::RecordError;

    /// Runs one conversation over `wire` for job `j1`; returns its end, the live events it
    /// forwarded and the early outcome, if any.
    async fn converse_j1(
        wire: &mut TestWire,
        ending: Ending,
    ) -> (
        Result<ShimRecord, PoolError>,
        Vec<LiveEvent>,
        Option<ShimRecord>,
    ) {
        let (live_tx, mut live_rx) = mpsc::channel(64);
        let (_control_tx, control) = mpsc::unbounded_channel();
        let (early_tx, early_rx) = oneshot::channel();
        let handoff = Handoff {
            job_id: "j1",
            line: b"{\"job\":\"j1\"}\n".to_vec(),
            ending,
            early: Some(early_tx),
        };
        let channels = JobChannels {
            control,
            live: live_tx,
        };
        let mut lines = LineSplitter::default();
        let end = converse(
            &mut wire.input,
            &mut wire.output,
            &mut lines,
            handoff,
            channels,
        )
        .await;
        let mut live = Vec::new();
        while let Ok(event) = live_rx.try_recv() {
            live.push(event);
        }
        (end, live, early_rx.await.ok())
    }

    #[tokio::test]
    async fn an_agent_job_ends_at_its_done_line_with_outcome_and_clean_record() {
        let mut wire = TestWire::new();
        // Frames of 7 bytes: every line arrives cut across several of them.
        wire.say(&[whole_job("j1"), done()].concat(), 7);
        let (end, live, early) = converse_j1(&mut wire, Ending::Done).await;
        let record = end.expect("a whole job");
        assert_eq!(record.job_id, "j1");
        assert_eq!(
            record.steps,
            outcome("j1").steps,
            "steps come from the outcome"
        );
        assert!(record.clean, "clean comes from the final record");
        assert_eq!(
            live,
            [
                LiveEvent::Step(StepName::Run),
                LiveEvent::Output {
                    stream: OutputStream::Stdout,
                    data: b"hi\n".to_vec()
                }
            ]
        );
        assert_eq!(early.expect("the outcome, early").steps, record.steps);
        assert_eq!(
            wire.heard().await,
            b"{\"job\":\"j1\"}\n",
            "the job line, whole"
        );
    }

    /// Judge mode: each test's outcome is a line of its own, handed on live as it comes (to be
    /// judged) and gathered in order into the outcome.
    #[tokio::test]
    async fn test_lines_are_gathered_into_the_outcome_in_order() {
        let test = |index, text: &[u8]| {
            let mut o = outcome("j1").steps.remove(0);
            o.stdout = rce_protocol::bytes::Base64Bytes(text.to_vec());
            line(&ShimMessage::Test { index, outcome: o })
        };
        let mut wire = TestWire::new();
        let lines = [
            test(0, b"3\n"),
            test(1, b"7\n"),
            line(&ShimMessage::Outcome(ShimRecord {
                steps: Vec::new(),
                ..outcome("j1")
            })),
            line(&ShimMessage::Record(clean_record("j1"))),
            done(),
        ];
        wire.say(&lines.concat(), 5);
        let (end, live, early) = converse_j1(&mut wire, Ending::Done).await;
        let record = end.expect("a whole job");
        let outputs: Vec<_> = record.tests.iter().map(|t| t.stdout.0.clone()).collect();
        assert_eq!(outputs, [b"3\n".to_vec(), b"7\n".to_vec()]);
        assert_eq!(early.expect("the outcome, early").tests.len(), 2);
        let live_tests: Vec<_> = live
            .iter()
            .map(|e| match e {
                LiveEvent::Test { index, outcome } => (*index, outcome.stdout.0.clone()),
                other => panic!("not a test: {other:?}"),
            })
            .collect();
        assert_eq!(live_tests, [(0, b"3\n".to_vec()), (1, b"7\n".to_vec())]);

        let mut wire = TestWire::new();
        wire.say(&[test(0, b""), test(2, b"")].concat(), 4096);
        let (end, _, _) = converse_j1(&mut wire, Ending::Done).await;
        let err = end.expect_err("a test went missing");
        assert!(
            matches!(
                err,
                PoolError::Stream(StreamError::TestOutOfOrder {
                    expected: 1,
                    got: 2
                })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn an_agent_stream_that_ends_before_done_is_the_agent_dying() {
        let mut wire = TestWire::new();
        // Even a whole record is not the end in agent mode: only `done` is.
        wire.say(&whole_job("j1"), 4096);
        end_stream(&mut wire);
        let (end, _, _) = converse_j1(&mut wire, Ending::Done).await;
        let err = end.expect_err("no done line");
        assert!(
            matches!(err, PoolError::Stream(StreamError::EndedMidJob)),
            "{err:?}"
        );
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn done_without_a_record_says_how_the_shim_ended() {
        let mut wire = TestWire::new();
        wire.say(
            &line(&ShimMessage::Done {
                failure: Some("killed by signal 9".into()),
            }),
            4096,
        );
        let (end, _, early) = converse_j1(&mut wire, Ending::Done).await;
        let err = end.expect_err("no record");
        assert!(
            matches!(&err, PoolError::Stream(StreamError::EndedWithoutRecord { failure: Some(f) }) if f == "killed by signal 9"),
            "{err:?}"
        );
        assert!(early.is_none(), "no outcome was sent");
    }

    #[tokio::test]
    async fn a_record_for_another_job_is_never_attributed() {
        let mut wire = TestWire::new();
        wire.say(&line(&ShimMessage::Record(outcome("j2"))), 4096);
        end_stream(&mut wire);
        let (end, _, _) = converse_j1(&mut wire, Ending::StreamEnd).await;
        let err = end.expect_err("another job's record");
        assert!(
            matches!(&err, PoolError::Stream(StreamError::WrongJob { expected, got }) if expected == "j1" && got == "j2"),
            "{err:?}"
        );
        // The same for an outcome, which would otherwise be published at once.
        let mut wire = TestWire::new();
        wire.say(&[whole_job("j2"), done()].concat(), 4096);
        let (end, _, early) = converse_j1(&mut wire, Ending::Done).await;
        let err = end.expect_err("another job's outcome");
        assert!(
            matches!(&err, PoolError::Stream(StreamError::WrongJob { got, .. }) if got == "j2"),
            "{err:?}"
        );
        assert!(early.is_none(), "never handed on as this job's outcome");
    }

    #[tokio::test]
    async fn an_exec_stream_cut_mid_line_is_a_platform_fault() {
        let record = line(&ShimMessage::Record(outcome("j1")));
        let mut wire = TestWire::new();
        wire.say(&record[..record.len() / 2], 16);
        end_stream(&mut wire);
        let (end, _, _) = converse_j1(&mut wire, Ending::StreamEnd).await;
        let err = end.expect_err("half a record");
        assert!(
            matches!(
                err,
                PoolError::Stream(StreamError::CutMidLine(RecordError::Invalid(_)))
            ),
            "{err:?}"
        );
        assert!(err.is_retryable(), "the container died under the shim");
    }

    #[tokio::test]
    async fn an_exec_record_missing_only_its_newline_still_counts() {
        let record = line(&ShimMessage::Record(outcome("j1")));
        let mut wire = TestWire::new();
        wire.say(&record[..record.len() - 1], 16);
        end_stream(&mut wire);
        let (end, _, _) = converse_j1(&mut wire, Ending::StreamEnd).await;
        assert_eq!(end.expect("a whole record").steps, outcome("j1").steps);
    }

    #[tokio::test]
    async fn an_exec_stream_that_ends_silently_has_no_record() {
        let mut wire = TestWire::new();
        end_stream(&mut wire);
        let (end, _, _) = converse_j1(&mut wire, Ending::StreamEnd).await;
        let err = end.expect_err("nothing said");
        assert!(
            matches!(err, PoolError::Record(RecordError::Missing(0))),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_line_that_is_no_message_is_unreadable() {
        let mut wire = TestWire::new();
        wire.say(b"{\"type\":\"record\",\"oops\":1}\n", 4096);
        wire.say(&line(&ShimMessage::Record(clean_record("j1"))), 4096);
        end_stream(&mut wire);
        let (end, _, _) = converse_j1(&mut wire, Ending::StreamEnd).await;
        let err = end.expect_err("garbage first");
        assert!(
            matches!(err, PoolError::Record(RecordError::Invalid(_))),
            "{err:?}"
        );
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut s = LineSplitter::default();
        let err = s
            .push(&vec![b'x'; MAX_LINE_BYTES + 1])
            .expect_err("too long");
        assert!(
            matches!(err, PoolError::Stream(StreamError::EndlessLine)),
            "{err:?}"
        );
    }

    /// The container exits: its stream ends after what was queued.
    fn end_stream(wire: &mut TestWire) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut wire.shim_stdout, closed));
    }
}
