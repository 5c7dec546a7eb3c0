//! The Judge0 CE 1.13.1 surface: Judge0's paths at the root (`/submissions`, `/languages`,
//! `/statuses`, `/config_info`, ...), so a Judge0 client works by changing its base URL.
//!
//! ```text
//!  Judge0 JSON ──request::convert──▶ SubmitRequest ──admission::submit──▶ job (v1's rules)
//!                    │ (Echo: what the client sent, judge0::store)               │
//!  Judge0 JSON ◀──render::submission── JobView + Echo ◀──── job store ◀──────────┘
//! ```
//!
//! Admission and the wait are v1's (`admission`); this module only translates. Errors come in
//! Judge0's shapes: `{"field": ["message"]}` for 422, `{"error": "..."}` otherwise.
//! docs/compatibility.md lists every endpoint and field: supported, different, or refused.

pub mod archive;
pub mod info;
pub mod render;
pub mod request;
pub mod status;
pub mod store;

use crate::admission;
use crate::error::{ApiError, ErrorCode};
use crate::job_view::JobView;
use crate::routes::AppState;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use request::{Echo, FieldErrors};
use serde_json::{json, Value};

/// Most submissions in one batch (Judge0's default `MAX_SUBMISSION_BATCH_SIZE`).
pub const MAX_BATCH: usize = 20;
/// `GET /submissions`: the default and the largest page.
const DEFAULT_PER_PAGE: u64 = 20;
const MAX_PER_PAGE: u64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/submissions", get(list).post(create))
        .route("/submissions/batch", get(batch_show).post(batch_create))
        .route("/submissions/{token}", get(show).delete(destroy))
        .route("/languages", get(info::languages))
        .route("/languages/all", get(info::all_languages))
        .route("/languages/{id}", get(info::language))
        .route("/statuses", get(info::statuses))
        .route("/about", get(info::about))
        .route("/version", get(info::version))
        .route("/config_info", get(info::config_info))
        .route("/system_info", get(info::system_info))
        .route("/workers", get(info::workers))
}

/// An error in Judge0's shape, with its code left for the request metrics.
#[derive(Debug)]
pub struct Judge0Error {
    pub status: StatusCode,
    pub body: Value,
    code: &'static str,
}

impl Judge0Error {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: json!({"error": message.into()}),
            code: "malformed_request",
        }
    }
    pub fn unprocessable(errors: FieldErrors) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: errors.into_value(),
            code: "invalid_request",
        }
    }
    pub fn not_found(what: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            body: json!({"error": format!("{what} not found")}),
            code: "not_found",
        }
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: json!({"error": message.into()}),
            code: "unavailable",
        }
    }
}

/// A v1 field path as the Judge0 field it came from.
fn judge0_field(v1: &str) -> &'static str {
    match v1 {
        "language" => "language_id",
        "source" | "files" | "entrypoint" => "source_code",
        "stdin" | "stdin_encoding" => "stdin",
        "args" => "command_line_arguments",
        "callback_url" => "callback_url",
        f if f.starts_with("args[") => "command_line_arguments",
        f if f.starts_with("compiler_options") => "compiler_options",
        "limits.cpu_time_ms" => "cpu_time_limit",
        "limits.wall_time_ms" => "wall_time_limit",
        "limits.memory_mb" => "memory_limit",
        "limits.processes" => "max_processes_and_or_threads",
        f if f.ends_with(".expected") || f.ends_with(".expected_encoding") => "expected_output",
        f if f.ends_with(".stdin") || f.ends_with(".stdin_encoding") => "stdin",
        _ => "base",
    }
}

/// Admission's surface-neutral rejection, rendered Judge0's way.
impl From<ApiError> for Judge0Error {
    fn from(e: ApiError) -> Self {
        let body = match (e.status, e.code) {
            (StatusCode::UNPROCESSABLE_ENTITY, _) => {
                let field = e.field.as_deref().map_or("base", judge0_field);
                json!({ field: [e.message] })
            }
            (_, "queue_full") => json!({"error": "queue is full"}),
            _ => json!({"error": e.message}),
        };
        Self {
            status: e.status,
            body,
            code: e.code,
        }
    }
}

impl From<redis::RedisError> for Judge0Error {
    fn from(e: redis::RedisError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for Judge0Error {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(2));
        }
        response
    }
}

/// The query parameters Judge0 reads (others are ignored, as Judge0 does).
#[derive(Debug, Default)]
struct Params {
    base64: bool,
    wait: bool,
    fields: Option<String>,
    tokens: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

fn params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Params, Judge0Error> {
    let Query(pairs) = query.map_err(|e| Judge0Error::bad_request(e.body_text()))?;
    let mut p = Params::default();
    for (k, v) in pairs {
        match k.as_str() {
            "base64_encoded" => p.base64 = v == "true",
            "wait" => p.wait = v == "true",
            "fields" => p.fields = Some(v),
            "tokens" => p.tokens = Some(v),
            "page" => p.page = Some(v),
            "per_page" => p.per_page = Some(v),
            _ => {}
        }
    }
    Ok(p)
}

fn fields(p: &Params) -> Result<Vec<&'static str>, Judge0Error> {
    render::parse_fields(p.fields.as_deref()).map_err(Judge0Error::bad_request)
}

async fn read_json(state: &AppState, body: Body) -> Result<Value, Judge0Error> {
    let bytes = crate::routes::read_body(body, state.max_body_bytes, "the request body").await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Judge0Error::bad_request(format!("the body is not JSON: {e}")))
}

/// The echo stored for `view`, or the defaults for a job submitted through another surface.
async fn echo_of(state: &AppState, view: &JobView) -> Result<Echo, Judge0Error> {
    Ok(match state.judge0.get(&view.id).await? {
        Some(echo) => echo,
        None => render::default_echo(view, &state.topology),
    })
}

/// Admits one Judge0 submission (and waits for it if `wait`): its token and, after a wait, its
/// record and echo.
async fn submit_one(
    state: &AppState,
    body: &Value,
    base64: bool,
    wait: bool,
) -> Result<(String, Option<(JobView, Echo)>), Judge0Error> {
    let converted = request::convert(body, base64, &state.topology).inspect_err(|_| {
        state
            .metrics
            .count_submission(admission::INVALID, "invalid_request");
    })?;
    let admitted = admission::submit(state, converted.request, wait).await?;
    let created_ms = admitted.job.created_at.timestamp_millis();
    if let Err(e) = state
        .judge0
        .put(&admitted.id, &converted.echo, created_ms)
        .await
    {
        // The job runs; only its Judge0 echo (limits as sent) falls back to the defaults.
        tracing::warn!(job_id = %admitted.id, error = %e, "storing the Judge0 echo failed");
    }
    Ok((
        admitted.id,
        admitted.view.map(|view| (view, converted.echo)),
    ))
}

/// `POST /submissions[?base64_encoded=true&wait=true&fields=...]`: 201 with the token, or after
/// a wait with the submission's fields.
async fn create(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Body,
) -> Result<Response, Judge0Error> {
    let p = params(query)?;
    let chosen = fields(&p)?;
    let body = read_json(&state, body).await?;
    let (token, waited) = submit_one(&state, &body, p.base64, p.wait).await?;
    let Some((view, echo)) = waited else {
        return Ok((StatusCode::CREATED, Json(json!({"token": token}))).into_response());
    };
    let rendered = match render::submission(&view, &echo, &chosen, p.base64, &state.topology) {
        Ok(v) => v,
        Err(why) => json!({"error": why, "token": token}),
    };
    Ok((StatusCode::CREATED, Json(rendered)).into_response())
}

/// `GET /submissions/{token}`.
async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Judge0Error> {
    let p = params(query)?;
    let chosen = fields(&p)?;
    let view = state
        .store
        .get(&token)
        .await?
        .ok_or_else(|| Judge0Error::not_found("submission"))?;
    let echo = echo_of(&state, &view).await?;
    let rendered = render::submission(&view, &echo, &chosen, p.base64, &state.topology)
        .map_err(Judge0Error::bad_request)?;
    Ok(Json(rendered).into_response())
}

/// `DELETE /submissions/{token}`: a finished submission is deleted and shown (base64, as Judge0
/// does); one still queued or running is refused.
async fn destroy(
    State(state): State<AppState>,
    Path(token): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Judge0Error> {
    let p = params(query)?;
    let chosen = fields(&p)?;
    let view = state
        .store
        .get(&token)
        .await?
        .ok_or_else(|| Judge0Error::not_found("submission"))?;
    if let Some(id) = status::of_unfinished(view.status) {
        return Err(Judge0Error::bad_request(format!(
            "submission cannot be deleted because its status is {id} ({})",
            status::description(id)
        )));
    }
    let echo = echo_of(&state, &view).await?;
    let rendered = render::submission(&view, &echo, &chosen, true, &state.topology)
        .map_err(Judge0Error::bad_request)?;
    state.store.delete(&token).await?;
    state.judge0.delete(&token).await?;
    Ok(Json(rendered).into_response())
}

/// The batch size rules of both batch endpoints.
fn check_batch_size(n: usize) -> Result<(), Judge0Error> {
    if n == 0 {
        return Err(Judge0Error::bad_request(
            "there should be at least one submission in a batch",
        ));
    }
    if n > MAX_BATCH {
        return Err(Judge0Error::bad_request(format!(
            "number of submissions in a batch should be less than or equal to {MAX_BATCH}"
        )));
    }
    Ok(())
}

/// `POST /submissions/batch`: `{"submissions": [...]}` → one `{"token"}` or error object per
/// submission, in order; 201 when at least one was admitted, else 422.
async fn batch_create(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Body,
) -> Result<Response, Judge0Error> {
    let p = params(query)?;
    let body = read_json(&state, body).await?;
    let items = body
        .get("submissions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    check_batch_size(items.len())?;
    let mut answers = Vec::with_capacity(items.len());
    let mut admitted = 0;
    for item in &items {
        match submit_one(&state, item, p.base64, false).await {
            Ok((token, _)) => {
                admitted += 1;
                answers.push(json!({"token": token}));
            }
            Err(e) => answers.push(e.body),
        }
    }
    let status = if admitted > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut response = (status, Json(Value::Array(answers))).into_response();
    if admitted == 0 {
        response
            .extensions_mut()
            .insert(ErrorCode("invalid_request"));
    }
    Ok(response)
}

/// `GET /submissions/batch?tokens=a,b,c` (or a `tokens` header): `{"submissions": [...]}` in
/// token order, `null` for a token not found.
async fn batch_show(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Judge0Error> {
    let p = params(query)?;
    let chosen = fields(&p)?;
    let tokens = p
        .tokens
        .clone()
        .or_else(|| {
            headers
                .get("tokens")
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        })
        .unwrap_or_default();
    let tokens: Vec<&str> = tokens
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    check_batch_size(tokens.len())?;
    let mut list = Vec::with_capacity(tokens.len());
    for token in tokens {
        let Some(view) = state.store.get(token).await? else {
            list.push(Value::Null);
            continue;
        };
        let echo = echo_of(&state, &view).await?;
        list.push(
            render::submission(&view, &echo, &chosen, p.base64, &state.topology).map_err(|_| {
                Judge0Error::bad_request("some attributes for one or more submissions cannot be converted to UTF-8, use base64_encoded=true query parameter")
            })?,
        );
    }
    Ok(Json(json!({"submissions": list})).into_response())
}

/// A positive page parameter, or Judge0's 400.
fn page_param(value: Option<&str>, name: &str, default: u64) -> Result<u64, Judge0Error> {
    let Some(text) = value else {
        return Ok(default);
    };
    match text.trim().parse::<i64>() {
        Ok(n) if n > 0 || (name == "per_page" && n == 0) => Ok(n as u64),
        _ => Err(Judge0Error::bad_request(format!("invalid {name}: {text}"))),
    }
}

/// `GET /submissions?page=&per_page=`: the submissions made through this surface, newest first,
/// with Judge0's pagination `meta`.
async fn list(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Judge0Error> {
    let p = params(query)?;
    let chosen = fields(&p)?;
    let page = page_param(p.page.as_deref(), "page", 1)?;
    let per_page =
        page_param(p.per_page.as_deref(), "per_page", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE);
    let (tokens, total) = state.judge0.page(page, per_page).await?;
    let mut list = Vec::with_capacity(tokens.len());
    for token in tokens {
        if let Some(view) = state.store.get(&token).await? {
            let echo = echo_of(&state, &view).await?;
            list.push(
                render::submission(&view, &echo, &chosen, p.base64, &state.topology).map_err(|_| {
                    Judge0Error::bad_request("some attributes for one or more submissions cannot be converted to UTF-8, use base64_encoded=true query parameter")
                })?,
            );
        }
    }
    let total_pages = if per_page == 0 {
        0
    } else {
        total.div_ceil(per_page)
    };
    let meta = json!({
        "current_page": page,
        "next_page": (page < total_pages).then_some(page + 1),
        "prev_page": (page > 1).then(|| page - 1),
        "total_pages": total_pages,
        "total_count": total,
    });
    Ok(Json(json!({"submissions": list, "meta": meta})).into_response())
}
