//! What a runner publishes to `rce.results`, and what the api stores and shows.

use crate::encoding::Encoding;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Lifecycle of a job as clients see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Cancelled,
    Failed,
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::Failed)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }
}

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    /// Judge mode: every test was accepted.
    Accepted,
    /// Judge mode: the first failed test's verdict, when it is one of these two.
    WrongAnswer,
    PresentationError,
    CompileError,
    RuntimeError,
    TimeLimitExceeded,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    Cancelled,
    InternalError,
}

impl Verdict {
    /// The verdict as it appears in JSON, for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Accepted => "accepted",
            Self::WrongAnswer => "wrong_answer",
            Self::PresentationError => "presentation_error",
            Self::CompileError => "compile_error",
            Self::RuntimeError => "runtime_error",
            Self::TimeLimitExceeded => "time_limit_exceeded",
            Self::MemoryLimitExceeded => "memory_limit_exceeded",
            Self::OutputLimitExceeded => "output_limit_exceeded",
            Self::Cancelled => "cancelled",
            Self::InternalError => "internal_error",
        }
    }
}

/// One step (compile or run) as the client sees it. Output reaches the client faithfully: as text
/// when it is UTF-8, otherwise as base64 with `stdout_encoding`/`stderr_encoding: "base64"` (the
/// encoding fields are omitted when they are `utf8`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    pub stdout: String,
    #[serde(default, skip_serializing_if = "Encoding::is_utf8")]
    pub stdout_encoding: Encoding,
    pub stderr: String,
    #[serde(default, skip_serializing_if = "Encoding::is_utf8")]
    pub stderr_encoding: Encoding,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub wall_ms: u64,
    pub cpu_ms: u64,
    pub memory_kb: u64,
    pub truncated: bool,
}

/// The final outcome of a job, published once per execution; the recorder keeps the first one
/// per job id, so a redelivered job cannot overwrite what a client already saw.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultMessage {
    pub schema: u32,
    pub id: String,
    pub language: String,
    pub status: JobStatus,
    pub verdict: Verdict,
    pub compile: Option<StepReport>,
    pub run: Option<StepReport>,
    /// Why the platform failed, when `verdict` is `internal_error`; never the program's fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    pub queue_ms: Option<u64>,
    /// Which runner and container ran it: for operators chasing a bad container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    /// Judge mode: every test's result, in order (skipped ones included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<Vec<crate::judge::TestResult>>,
    /// Judge mode: points earned over points possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<crate::judge::Score>,
}

impl ResultMessage {
    /// The end of a job the platform could not run (dead-lettered, stuck past its limits, never
    /// admitted): `failed` with `internal_error`, and `error` saying why, so no client waits
    /// forever for a job that will not come.
    pub fn platform_failure(
        id: String,
        language: String,
        created_at: DateTime<Utc>,
        error: String,
    ) -> Self {
        Self {
            schema: crate::SCHEMA_VERSION,
            id,
            language,
            status: JobStatus::Failed,
            verdict: Verdict::InternalError,
            compile: None,
            run: None,
            error: Some(error),
            created_at,
            started_at: None,
            finished_at: Utc::now(),
            queue_ms: None,
            runner: None,
            tests: None,
            score: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_json() {
        for v in [
            Verdict::Ok,
            Verdict::Accepted,
            Verdict::WrongAnswer,
            Verdict::PresentationError,
            Verdict::CompileError,
            Verdict::RuntimeError,
            Verdict::TimeLimitExceeded,
            Verdict::MemoryLimitExceeded,
            Verdict::OutputLimitExceeded,
            Verdict::Cancelled,
            Verdict::InternalError,
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        for s in [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Completed,
            JobStatus::Cancelled,
            JobStatus::Failed,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
