//! `POST /v1/jobs` and `GET /v1/jobs/{id}`.

use super::AppState;
use crate::admission::{self, INVALID};
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
use rce_protocol::result::JobStatus;
use serde_json::json;
use std::time::Instant;

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
/// [`admission::admit_and_publish`].
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
    let admitted = admission::submit(&state, request, wait).await?;
    let id = admitted.id;
    let Some(view) = admitted.view else {
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
    state
        .metrics
        .submit_seconds
        .with_label_values(&["true"])
        .observe(started.elapsed().as_secs_f64());
    if view.status.is_terminal() {
        Ok((StatusCode::OK, Json(view)).into_response())
    } else {
        Ok((StatusCode::ACCEPTED, Json(view)).into_response())
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
