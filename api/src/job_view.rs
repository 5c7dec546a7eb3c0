//! The job as `GET /v1/jobs/{id}` shows it, assembled from what Redis holds.

use rce_protocol::result::{JobStatus, ResultMessage, StepReport, Verdict};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Serialize)]
pub struct JobView {
    pub id: String,
    pub language: String,
    pub status: JobStatus,
    pub verdict: Option<Verdict>,
    pub compile: Option<StepReport>,
    pub run: Option<StepReport>,
    /// Why the platform failed, for `internal_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub queue_ms: Option<u64>,
}

/// Hash fields of `rce:job:<id>`.
pub mod fields {
    pub const ID: &str = "id";
    pub const LANGUAGE: &str = "language";
    pub const STATUS: &str = "status";
    pub const CREATED_AT: &str = "created_at";
    pub const STARTED_AT: &str = "started_at";
    /// Present (`1`) when the job was submitted interactive.
    pub const INTERACTIVE: &str = "interactive";
    /// The first `ResultMessage` recorded for the job, as JSON.
    pub const RESULT: &str = "result";
}

fn millis(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl JobView {
    /// `None` when the hash is empty or missing its identity (expired or never existed).
    pub fn from_hash(mut h: HashMap<String, String>) -> Option<Self> {
        let id = h.remove(fields::ID)?;
        let language = h.remove(fields::LANGUAGE)?;
        let created_at = h.remove(fields::CREATED_AT)?;
        if let Some(result) = h.get(fields::RESULT) {
            if let Ok(r) = serde_json::from_str::<ResultMessage>(result) {
                return Some(Self::from_result(r));
            }
        }
        let status = match h.get(fields::STATUS).map(String::as_str) {
            Some("running") => JobStatus::Running,
            _ => JobStatus::Queued,
        };
        Some(Self {
            id,
            language,
            status,
            verdict: None,
            compile: None,
            run: None,
            error: None,
            created_at,
            started_at: h.remove(fields::STARTED_AT),
            finished_at: None,
            queue_ms: None,
        })
    }

    /// When the job was submitted, as a time; now if the stored text is unreadable (a result
    /// built from this view must still carry some creation time).
    pub fn created_at_utc(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(&self.created_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now())
    }

    pub fn from_result(r: ResultMessage) -> Self {
        Self {
            id: r.id,
            language: r.language,
            status: r.status,
            verdict: Some(r.verdict),
            compile: r.compile,
            run: r.run,
            error: r.error,
            created_at: millis(r.created_at),
            started_at: r.started_at.map(millis),
            finished_at: Some(millis(r.finished_at)),
            queue_ms: r.queue_ms,
        }
    }
}
