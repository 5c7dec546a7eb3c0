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
    Stream(String),
    #[error("job metering: {0}")]
    Metering(String),
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
            Self::Timeout(_) | Self::Encode(_) => false,
        }
    }
}
