//! `POST /v1/jobs` and `GET /v1/jobs/{id}`.

use super::AppState;
use crate::error::ApiError;
use crate::job_id::JobId;
use crate::job_store::CancelOutcome;
use crate::submission;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rce_broker::BrokerError;
use rce_protocol::job::JobMessage;
use rce_protocol::result::JobStatus;
use rce_protocol::topology::{Language, Messaging};
use serde_json::json;
use std::time::{Duration, Instant};

/// The language label of a submission refused before its language was known to be valid, so
/// clients cannot choose the metric's cardinality.
const INVALID: &str = "invalid";

/// `wait` from the query string's pairs. Given twice it is refused: which one a client meant
/// cannot be guessed. Other parameters are ignored (cache busters, tracing tags).
fn parse_wait(pairs: &[(String, String)]) -> Result<bool, ApiError> {
    let mut waits = pairs.iter().filter(|(k, _)| k == "wait");
    let first = waits.next();
    if waits.next().is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "wait is given more than once; give it once, as true or false",
        )
        .field("wait"));
    }
    match first.map(|(_, v)| v.as_str()) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            format!("wait must be true or false (or 1, 0), but it is {other:?}"),
        )
        .field("wait")),
    }
}

/// `POST /v1/jobs`. Every submission is counted exactly once in `rce_api_submissions_total`:
/// refusals before the job is read (bad `wait`, 413, 400) here, the rest by
/// [`admit_and_publish`].
pub async fn submit(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (wait, request) = match read_submission(&state, query, body).await {
        Ok(read) => read,
        Err(e) => {
            state.metrics.count_submission(INVALID, e.code);
            return Err(e);
        }
    };
    let id = JobId::generate().into_string();
    // Registered before the job is published, so its end cannot be announced unseen.
    let done = wait.then(|| state.completions.register(&id));
    let (job, _) = match admit_and_publish(&state, request, id.clone()).await {
        Ok(admitted) => admitted,
        Err(e) => {
            state.completions.forget(&id);
            return Err(e);
        }
    };
    tracing::info!(job_id = %id, language = %job.language, wait, "job admitted");

    let Some(done) = done else {
        state
            .metrics
            .submit_seconds
            .with_label_values(&["false"])
            .observe(started.elapsed().as_secs_f64());
        let body = json!({
            "id": id,
            "status": JobStatus::Queued,
            "links": {"self": format!("/v1/jobs/{id}"), "events": format!("/v1/jobs/{id}/events")},
        });
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    };
    // Bounded by what the job may take, plus a margin for queueing and the platform.
    let budget = Duration::from_millis(job.time_budget_ms(&state.topology)) + state.wait_margin;
    if tokio::time::timeout(budget, done).await.is_err() {
        state.completions.forget(&id);
    }
    let view = state.store.get(&id).await?;
    state
        .metrics
        .submit_seconds
        .with_label_values(&["true"])
        .observe(started.elapsed().as_secs_f64());
    match view {
        Some(v) if v.status.is_terminal() => Ok((StatusCode::OK, Json(v)).into_response()),
        Some(v) => Ok((StatusCode::ACCEPTED, Json(v)).into_response()),
        None => Err(ApiError::not_found("job")),
    }
}

/// The query's `wait` and the parsed body, in the order the checks are documented.
async fn read_submission(
    state: &AppState,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Body,
) -> Result<(bool, submission::SubmitRequest), ApiError> {
    let Query(pairs) = query?;
    let wait = parse_wait(&pairs)?;
    let bytes = super::read_body(body, state.max_body_bytes, "the request body").await?;
    Ok((wait, submission::parse(&bytes)?))
}

/// Validates `request`, writes the queued record and publishes the job: what `POST /v1/jobs` and
/// the WebSocket's submit-and-attach share.
pub async fn admit_and_publish(
    state: &AppState,
    request: submission::SubmitRequest,
    id: String,
) -> Result<(JobMessage, Language), ApiError> {
    let admitted = submission::admit(request, &state.topology, id.clone(), chrono::Utc::now());
    let (job, language, staging) = match admitted {
        Ok(ok) => ok,
        Err(e) => {
            // Not the requested language as a label: clients must not choose metric cardinality.
            state.metrics.count_submission(INVALID, e.code);
            return Err(e);
        }
    };
    if let Err(e) = stage_test_data(state, staging).await {
        state.metrics.count_submission(&job.language, e.code);
        return Err(e);
    }
    if let Err(e) = state.store.create(&job).await {
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
    // Stored only once the job is known to be admissible.
    for (id, bytes) in &staging.uploads {
        state.files.put(bytes).await.map_err(|e| {
            tracing::warn!(file = %id, error = %e, "storing inline test data failed");
            ApiError::from(e)
        })?;
    }
    Ok(())
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

/// `DELETE /v1/jobs/{id}`: a queued job is cancelled on the spot (200); a running one is asked
/// to stop and ends `cancelled` within a second (202); cancelling it again is a harmless 200;
/// a job that already ended otherwise is a 409 that changes nothing.
pub async fn cancel_job(State(state): State<AppState>, id: JobId) -> Result<Response, ApiError> {
    let outcome = state.store.cancel(id.as_str()).await?;
    match outcome {
        CancelOutcome::Missing => Err(ApiError::not_found("job")),
        CancelOutcome::Cancelled(view) => {
            tracing::info!(job_id = %id, "cancelled while queued");
            Ok((StatusCode::OK, Json(view)).into_response())
        }
        CancelOutcome::Requested(view) => {
            tracing::info!(job_id = %id, "cancel requested while running");
            Ok((StatusCode::ACCEPTED, Json(view)).into_response())
        }
        CancelOutcome::Finished(view) if view.status == JobStatus::Cancelled => {
            Ok((StatusCode::OK, Json(view)).into_response())
        }
        CancelOutcome::Finished(view) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_finished",
            format!(
                "job {id} already finished with verdict {}; there is nothing to cancel",
                view.verdict.map_or("none", |v| v.as_str())
            ),
        )),
    }
}

pub async fn get_job(State(state): State<AppState>, id: JobId) -> Result<Response, ApiError> {
    let view = state.store.get(id.as_str()).await?;
    match view {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(ApiError::not_found("job")),
    }
}
