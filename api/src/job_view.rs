//! The job as `GET /v1/jobs/{id}` shows it, assembled from what Redis holds (the job record,
//! `rce_protocol::job_record`).

use rce_protocol::job_record::{self, field};
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
    /// Judge mode: each test's result, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests: Option<Vec<rce_protocol::judge::TestResult>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<rce_protocol::judge::Score>,
}

fn millis(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl JobView {
    /// `None` when the hash is empty or missing its identity (expired or never existed).
    pub fn from_hash(mut h: HashMap<String, String>) -> Option<Self> {
        let id = h.remove(field::ID)?;
        let language = h.remove(field::LANGUAGE)?;
        let created_at = h.remove(field::CREATED_AT)?;
        if let Some(result) = h.get(field::RESULT) {
            if let Ok(r) = serde_json::from_str::<ResultMessage>(result) {
                return Some(Self::from_result(r));
            }
        }
        // Without a result the record is queued or running (see `job_record`).
        let status = match h
            .get(field::STATUS)
            .map(String::as_str)
            .and_then(job_record::parse_state)
        {
            Some(JobStatus::Running) => JobStatus::Running,
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
            started_at: h.remove(field::STARTED_AT),
            finished_at: None,
            queue_ms: None,
            tests: None,
            score: None,
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
            tests: r.tests,
            score: r.score,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_record_without_a_result_is_queued_or_running() {
        let identity = [
            (field::ID, "j"),
            (field::LANGUAGE, "python"),
            (field::CREATED_AT, "2026-01-01T00:00:00.000Z"),
        ];
        let with = |status: &str, started: Option<&str>| {
            let mut h = record(&identity);
            h.insert(field::STATUS.into(), status.into());
            if let Some(t) = started {
                h.insert(field::STARTED_AT.into(), t.into());
            }
            JobView::from_hash(h).unwrap()
        };
        let running = with("running", Some("2026-01-01T00:00:01.000Z"));
        assert_eq!(running.status, JobStatus::Running);
        assert_eq!(
            running.started_at.as_deref(),
            Some("2026-01-01T00:00:01.000Z")
        );
        assert_eq!(with("queued", None).status, JobStatus::Queued);
        assert!(JobView::from_hash(record(&identity[..2])).is_none());
    }

    #[test]
    fn a_recorded_result_is_the_view() {
        let result = ResultMessage::platform_failure(
            "j".into(),
            "python".into(),
            chrono::Utc::now(),
            "lost".into(),
        );
        let mut h = record(&[
            (field::ID, "j"),
            (field::LANGUAGE, "python"),
            (field::CREATED_AT, "2026-01-01T00:00:00.000Z"),
            (field::STATUS, JobStatus::Failed.as_str()),
        ]);
        h.insert(
            field::RESULT.into(),
            serde_json::to_string(&result).unwrap(),
        );
        let view = JobView::from_hash(h).unwrap();
        assert_eq!(view.status, JobStatus::Failed);
        assert_eq!(view.verdict, Some(Verdict::InternalError));
        assert_eq!(view.error.as_deref(), Some("lost"));
    }
}
