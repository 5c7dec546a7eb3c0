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
}
