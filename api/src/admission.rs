//! Admission, shared by every API surface: a submission that passed its surface's parsing is
//! validated against the topology (`submission::admit`), its inline test data stored, its record
//! written and the job published with a publisher confirm; and, for clients that asked to wait,
//! the wait for its end, bounded by the job's own time budget.
//!
//! v1 (`routes::jobs`, `routes::live`), the Judge0 surface (`judge0`) and the Piston surface
//! (`piston`) all come through here, so a job is admitted by the same rules whichever door it
//! used. A refusal is an [`ApiError`]: a status, a stable `code`, the offending `field` (a v1
//! JSON path) and a message. That value is the surface-neutral rejection: its `IntoResponse` is
//! v1's rendering, and the other surfaces render the same value in their own error shapes.

use crate::error::ApiError;
use crate::job_id::JobId;
use crate::job_view::JobView;
use crate::routes::AppState;
use crate::submission;
use axum::http::StatusCode;
use rce_broker::BrokerError;
use rce_protocol::job::JobMessage;
use rce_protocol::topology::{Language, Messaging};
use std::time::Duration;

/// Inline test data stored at once per job (each a Redis command on the shared connection,
/// which pipelines them).
const STAGING_CONCURRENCY: usize = 64;

/// The language label of a submission refused before its language was known to be valid, so
/// clients cannot choose the metric's cardinality.
pub const INVALID: &str = "invalid";

/// A job that was admitted: its id, its message, and (when the client waited) its record once
/// it ended or the wait ran out.
pub struct Admitted {
    pub id: String,
    pub job: JobMessage,
    /// `None` without a wait. With one: the record as it stands when the job ended or the wait
    /// ran out (then it is still `queued` or `running`).
    pub view: Option<JobView>,
}

/// Admits `request` under a fresh id and, if `wait`, waits for its end: what every surface's
/// "submit" does.
pub async fn submit(
    state: &AppState,
    request: submission::SubmitRequest,
    wait: bool,
) -> Result<Admitted, ApiError> {
    submit_as(state, request, wait, JobId::generate().into_string()).await
}

/// [`submit`] under an id the caller chose (a surface that stores something beside the job
/// before the job can end, such as the Judge0 surface's echo).
pub async fn submit_as(
    state: &AppState,
    request: submission::SubmitRequest,
    wait: bool,
    id: String,
) -> Result<Admitted, ApiError> {
    // Registered before the job is published, so its end cannot be announced unseen.
    let done = wait.then(|| state.completions.register(&id));
    let (job, _) = match admit_and_publish(state, request, id.clone()).await {
        Ok(admitted) => admitted,
        Err(e) => {
            state.completions.forget(&id);
            return Err(e);
        }
    };
    tracing::info!(job_id = %id, language = %job.language, wait, "job admitted");
    let view = match done {
        None => None,
        Some(done) => Some(wait_for_end(state, &job, done).await?),
    };
    Ok(Admitted { id, job, view })
}

/// Waits for `job`'s end (announced on `done`), for at most what the job may take plus the
/// configured margin, then reads its record: terminal, or as it stands when the wait ran out.
pub async fn wait_for_end(
    state: &AppState,
    job: &JobMessage,
    done: tokio::sync::oneshot::Receiver<()>,
) -> Result<JobView, ApiError> {
    // Bounded by what the job may take, plus a margin for queueing and the platform.
    let budget = Duration::from_millis(job.time_budget_ms(&state.topology)) + state.wait_margin;
    if tokio::time::timeout(budget, done).await.is_err() {
        state.completions.forget(&job.id);
    }
    state
        .store
        .get(&job.id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))
}

/// Validates `request`, writes the queued record and publishes the job: the part of [`submit`]
/// before any wait.
async fn admit_and_publish(
    state: &AppState,
    request: submission::SubmitRequest,
    id: String,
) -> Result<(JobMessage, Language), ApiError> {
    let mut request = request;
    let callback = request.callback.take();
    let admitted = submission::admit(request, &state.topology, id.clone(), chrono::Utc::now());
    let (job, language, staging) = match admitted {
        Ok(ok) => ok,
        Err(e) => {
            // Not the requested language as a label: clients must not choose metric cardinality.
            state.metrics.count_submission(INVALID, e.code);
            return Err(e);
        }
    };
    if let Some(callback) = &callback {
        if let Err((code, message)) = crate::webhooks::check(&state.webhooks, callback).await {
            state.metrics.count_submission(&job.language, code);
            return Err(ApiError::invalid(code, "callback_url", message));
        }
    }
    if let Err(e) = stage_test_data(state, staging).await {
        state.metrics.count_submission(&job.language, e.code);
        return Err(e);
    }
    if let Err(e) = state.store.create(&job, callback.as_ref()).await {
        let refused = ApiError::from(e);
        state.metrics.count_submission(&job.language, refused.code);
        return Err(refused);
    }
    let payload = serde_json::to_vec(&job).expect("a job always serializes");
    let published = state
        .broker
        .publish_json(
            &state.topology.messaging.jobs_exchange,
            &Messaging::job_routing_key(&job.language),
            &id,
            &payload,
        )
        .await;
    if let Err(e) = published {
        let outcome = match &e {
            BrokerError::Refused => ApiError::unavailable(
                "queue_full",
                format!("the {} queue is full; retry shortly", job.language),
            ),
            other => {
                tracing::error!(job_id = %id, error = %other, "publishing the job failed");
                ApiError::unavailable(
                    "broker_unavailable",
                    "the job broker is unavailable; retry shortly",
                )
            }
        };
        forget_unadmitted(state, &job, &e).await;
        state.metrics.count_submission(&job.language, outcome.code);
        return Err(outcome);
    }
    state.metrics.count_submission(&job.language, "accepted");
    Ok((job, language))
}

/// Stores the test data a judge-mode job carried inline, and checks that every file it names
/// is stored (which renews it for another lifetime, so it outlives the job's wait in the
/// queue) and that its inputs together fit in a job.
async fn stage_test_data(state: &AppState, staging: submission::Staging) -> Result<(), ApiError> {
    use rce_protocol::judge::{MAX_TOTAL_EXPECTED_BYTES, MAX_TOTAL_INPUT_BYTES};
    let mut input_bytes = staging.inline_input_bytes;
    let mut expected_bytes = staging.inline_expected_bytes;
    // Each distinct file is asked about once, however many tests name it.
    let mut sizes = std::collections::HashMap::new();
    for (field, id) in &staging.references {
        let size = match sizes.get(id) {
            Some(size) => *size,
            None => {
                let size = state.files.size(id).await?;
                sizes.insert(id.clone(), size);
                size
            }
        };
        match size {
            None => {
                return Err(ApiError::invalid(
                    "unknown_file",
                    field.clone(),
                    format!("{field}: file {id} is not stored; upload it with POST /v1/files"),
                ))
            }
            Some(size) if field.ends_with(".stdin_file") => input_bytes += size,
            Some(size) => expected_bytes += size,
        }
    }
    if expected_bytes > MAX_TOTAL_EXPECTED_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the tests' expected outputs add up to {expected_bytes} bytes (counted per test); a job's may add up to {MAX_TOTAL_EXPECTED_BYTES}"
            ),
        )
        .field("tests"));
    }
    if input_bytes > MAX_TOTAL_INPUT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the tests' inputs add up to {input_bytes} bytes; a job's inputs may add up to {MAX_TOTAL_INPUT_BYTES}"
            ),
        )
        .field("tests"));
    }
    // Stored only once the job is known to be admissible; many at once (a 1,000-test job
    // carries up to 2,000 files inline: one after the other, that was 2,000 round trips).
    use futures_util::{StreamExt, TryStreamExt};
    // Owned futures (a stream of futures that borrow would not be `Send` for every lifetime the
    // spawned handlers need).
    let puts = staging.uploads.into_iter().map(|(id, bytes)| {
        let files = state.files.clone();
        async move {
            files.put(&bytes).await.map(drop).map_err(|e| {
                tracing::warn!(file = %id, error = %e, "storing inline test data failed");
                ApiError::from(e)
            })
        }
    });
    futures_util::stream::iter(puts)
        .buffer_unordered(STAGING_CONCURRENCY)
        .try_for_each(|_| async { Ok(()) })
        .await
}

/// Undoes the queued record of a job the client is told was refused. When the broker surely
/// does not have it (it nacked, or it was never sent) the record goes. When the outcome is
/// unknown (the connection died or the confirm never came, though the broker may have stored
/// it) the job is recorded as failed instead, so that a copy that did reach the queue is
/// recognised at pickup and never runs behind the client's back.
async fn forget_unadmitted(state: &AppState, job: &JobMessage, error: &BrokerError) {
    let surely_absent = matches!(
        error,
        BrokerError::Refused | BrokerError::Unavailable | BrokerError::Unroutable
    );
    let undone = if surely_absent {
        state.store.delete(&job.id).await
    } else {
        let reason = format!("not admitted: the broker did not confirm the job ({error}); the client was answered 503");
        state
            .store
            .record(&crate::job_store::failed_result(job, &reason))
            .await
            .map(|_| ())
    };
    if let Err(e) = undone {
        tracing::warn!(job_id = %job.id, error = %e, "could not undo the record of a refused job");
    }
}
