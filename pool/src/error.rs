//! Why the pool could not run a job. Every variant is the platform's fault, never the program's:
//! the runner reports them as `internal_error`.

use rce_protocol::shim::RecordError;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("docker engine: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("no warm container for {language}: {reason}")]
    Unavailable { language: String, reason: String },
    #[error("the shim did not finish within {0} ms (container destroyed)")]
    Timeout(u64),
    #[error("unreadable shim record: {0}")]
    Record(#[from] RecordError),
    #[error("could not encode the job for the shim: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("exec stream: {0}")]
    Stream(#[from] StreamError),
    #[error("job metering: {0}")]
    Metering(String),
    /// The job's line would be longer than the shim takes: no container would run it.
    #[error("the job is {0} bytes for the shim, over its {max} byte limit", max = rce_protocol::shim::MAX_JOB_LINE)]
    TooLarge(usize),
}

/// How the conversation with a container's main process or shim broke: each a distinct
/// failure of the stream itself (not of a record's contents), so the runner's logs and the
/// tests can tell them apart. All are the container's or the engine's doing, never the job's:
/// the job's processes never hold the shim's stdin or stdout.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The job line could not be written: the container's stdin is gone.
    #[error("writing the job: {0}")]
    WriteJob(#[source] std::io::Error),
    /// The engine started the exec without attaching its streams, so there is nobody to talk to.
    #[error("exec started detached")]
    Detached,
    /// A new container printed nothing within its start-up allowance.
    #[error("the container reported no baseline")]
    NoBaseline,
    /// The agent's stream ended before its first line (it died as it started).
    #[error("the agent ended before its baseline: {stderr:?}")]
    EndedBeforeBaseline { stderr: String },
    /// A container's first line was something other than its resting state.
    #[error("{whose} is not its baseline: {line:?}")]
    NotBaseline { whose: &'static str, line: String },
    /// Agent mode: the agent says the job's shim ended, but the shim never sent its record.
    #[error("the job's shim ended without a record ({})", failure.as_deref().unwrap_or("exit 0"))]
    EndedWithoutRecord { failure: Option<String> },
    /// Agent mode: the container's stream ended before the job's `done` (the agent died).
    #[error("the container's stream ended mid-job (its agent died)")]
    EndedMidJob,
    /// Exec mode: the stream ended inside a line, so the record, if it was one, is cut off.
    #[error("the shim's output ended mid-line ({0})")]
    CutMidLine(#[source] RecordError),
    /// A line about another job: the stream is out of step and nothing on it can be attributed.
    #[error("the shim answered for job {got:?} instead of {expected:?}")]
    WrongJob { expected: String, got: String },
    /// A line longer than any record can be: a broken shim.
    #[error("the shim printed an endless line")]
    EndlessLine,
    /// Judge mode: a test's outcome out of order (one lost or repeated): no test result on
    /// this stream can be attributed with certainty.
    #[error("the shim reported test {got} where test {expected} was due")]
    TestOutOfOrder { expected: usize, got: usize },
    /// The task that drove the job's container panicked or was aborted.
    #[error("the job's container task failed: {0}")]
    TaskFailed(#[source] tokio::task::JoinError),
}

impl PoolError {
    /// Whether another attempt could succeed: the engine or the container failed under the job
    /// (Docker restarted, the container vanished, the shim died mid-line or without a word).
    /// The runner hands such a job back to the broker instead of failing it; the queue's
    /// delivery limit bounds the retries. The job cannot cause these: its processes never hold
    /// the shim's stdout. A shim that overran its deadline is not retried: a job can make its
    /// steps slow, and running a hostile job again only multiplies its cost.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Docker(_)
            | Self::Unavailable { .. }
            | Self::Stream(_)
            | Self::Record(_)
            | Self::Metering(_) => true,
            Self::Timeout(_) | Self::Encode(_) | Self::TooLarge(_) => false,
        }
    }
}
