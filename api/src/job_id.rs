//! The job id: made here for every new job, and checked here for every request path that names
//! one, before it can reach Redis. An id is a UUIDv7 in its canonical text form, 36 characters of
//! lowercase hex and hyphens (`0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b07`), exactly as the api hands
//! it out. Anything else in a path is a 404 naming the problem: without the check, a path such as
//! `<id>:events` reached the job's event stream key, whose Redis type made the read fail, and the
//! api answered `503 store_unavailable`, so any client could fake a storage outage.
//!
//! Uppercase, braces, a `urn:uuid:` prefix or the hyphenless form are refused rather than
//! normalized: the api never produces them, and one spelling per job keeps ids comparable as
//! strings (in logs, metrics exemplars and clients' own tables). Any UUID version is accepted,
//! so ids stay readable should the generator change.

use crate::error::ApiError;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use std::fmt;

/// A job id known to be in canonical form. The only way to a job's records from a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JobId(String);

impl JobId {
    /// A fresh id for a new job (time-ordered, so ids sort by submission).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// `text` as a job id, if it is a UUID in canonical lowercase hyphenated form.
    pub fn parse(text: &str) -> Option<Self> {
        // The length check first: a 10 KB path segment costs nothing more than a short one.
        if text.len() != uuid::fmt::Hyphenated::LENGTH {
            return None;
        }
        let parsed = uuid::Uuid::try_parse(text).ok()?;
        // try_parse also takes uppercase; only the exact form the api generates is an id.
        (parsed.hyphenated().to_string() == text).then(|| Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The 404 of a path whose id cannot name any job. The id itself is not echoed: it may be
/// kilobytes long or not text at all.
fn not_a_job_id() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "job not found: a job id is a UUID in lowercase hyphenated form, as POST /v1/jobs \
         returns it (e.g. 0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b07); this path's id is not one",
    )
}

/// Extracts the `{id}` of a `/v1/jobs/{id}...` route. A segment that does not even decode
/// (percent-encoded bytes that are not UTF-8) is the same 404.
impl<S: Send + Sync> FromRequestParts<S> for JobId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_a_job_id())?;
        Self::parse(&raw).ok_or_else(not_a_job_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        for _ in 0..100 {
            let id = JobId::generate();
            assert_eq!(JobId::parse(id.as_str()), Some(id.clone()));
            assert_eq!(id.as_str().len(), 36);
            assert_eq!(&id.as_str()[14..15], "7", "a UUIDv7: {id}");
        }
    }

    #[test]
    fn only_the_canonical_form_is_an_id() {
        let id = "0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b07";
        assert!(JobId::parse(id).is_some());
        assert!(JobId::parse("00000000-0000-0000-0000-000000000000").is_some());
        for bad in [
            "",
            "x",
            "..",
            "../..",
            "0193A0B4-6C1E-7D2A-9F3B-5E8D2C4A1B07",
            "0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1B07",
            "0193a0b46c1e7d2a9f3b5e8d2c4a1b07",
            "{0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b07}",
            "urn:uuid:0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b07",
            "0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b07:events",
            "0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b0g",
            "0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b0",
            "0193a0b4+6c1e-7d2a-9f3b-5e8d2c4a1b07",
            "0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b07\n",
            " 193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b07",
            "0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b\u{e9}",
        ] {
            assert_eq!(JobId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(JobId::parse(&"a".repeat(10_000)), None);
    }
}
