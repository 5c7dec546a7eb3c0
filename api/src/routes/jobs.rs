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
use serde_json::{json, Value};
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
/// [`admission::submit`].
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

/// Most jobs in one batch, submitted or read.
pub const MAX_BATCH: usize = 100;
/// Jobs of a batch admitted at once.
const BATCH_CONCURRENCY: usize = 8;

/// `POST /v1/jobs/batch`: `{"jobs": [<job>, ...]}`, 1 to [`MAX_BATCH`]; each admitted on its own
/// (one invalid job does not reject the others). `202 {"jobs": [...]}` in request order, each
/// `{"id", "status", "links"}` or `{"error": {...}}` with the field paths under `jobs[i].`.
pub async fn submit_batch(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let bytes = super::read_body(body, state.max_body_bytes, "the request body").await?;
    let malformed = |message: String| {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", message).field("jobs")
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        jobs: Vec<Box<serde_json::value::RawValue>>,
    }
    let batch: Batch = serde_json::from_slice(&bytes).map_err(|e| {
        malformed(format!(
            "the body must be {{\"jobs\": [<job>, ...]}} and nothing else: {e}"
        ))
    })?;
    if batch.jobs.is_empty() || batch.jobs.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "invalid_batch",
            "jobs",
            format!(
                "a batch holds 1 to {MAX_BATCH} jobs, not {}",
                batch.jobs.len()
            ),
        ));
    }
    // A few at a time, in request order, in a task of its own: a client that hangs up mid-batch
    // does not leave a job between its record and its publish.
    let task = tokio::spawn(async move {
        use futures_util::StreamExt;
        futures_util::stream::iter(batch.jobs)
            .map(|raw| {
                let state = state.clone();
                async move {
                    match submission::parse(raw.get().as_bytes()) {
                        Ok(request) => admission::submit(&state, request, false).await,
                        Err(e) => {
                            state.metrics.count_submission(INVALID, e.code);
                            Err(e)
                        }
                    }
                }
            })
            .buffered(BATCH_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
    });
    let results = task.await.map_err(|_| {
        ApiError::unavailable("batch_failed", "the batch could not be completed; retry")
    })?;
    let mut answers = Vec::with_capacity(results.len());
    for (i, admitted) in results.into_iter().enumerate() {
        let at = |mut e: ApiError| {
            e.field = Some(match e.field.take() {
                Some(f) => format!("jobs[{i}].{f}"),
                None => format!("jobs[{i}]"),
            });
            e
        };
        answers.push(match admitted {
            Ok(a) => json!({
                "id": a.id,
                "status": JobStatus::Queued,
                "links": {"self": format!("/v1/jobs/{}", a.id), "events": format!("/v1/jobs/{}/events", a.id)},
            }),
            Err(e) => {
                let e = at(e);
                json!({"error": {"code": e.code, "message": e.message, "field": e.field}})
            }
        });
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"jobs": answers}))).into_response())
}

/// `GET /v1/jobs?ids=a,b,c`: up to [`MAX_BATCH`] jobs at once, in the order asked, `null` for an
/// id that is not (or no longer) known.
pub async fn get_jobs(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query?;
    let ids: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "ids")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            format!(
                "give 1 to {MAX_BATCH} job ids as ?ids=a,b,c (got {})",
                ids.len()
            ),
        )
        .field("ids"));
    }
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(id) = JobId::parse(id) else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                format!("{id:?} is not a job id"),
            )
            .field("ids"));
        };
        jobs.push(match state.store.get(id.as_str()).await? {
            Some(v) => serde_json::to_value(v).expect("a job serializes"),
            None => Value::Null,
        });
    }
    Ok(Json(json!({"jobs": jobs})).into_response())
}
