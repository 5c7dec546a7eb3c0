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
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use request::{Echo, FieldErrors};
use serde_json::{json, Value};

/// Most submissions in one batch (Judge0's default `MAX_SUBMISSION_BATCH_SIZE`).
pub const MAX_BATCH: usize = 20;
/// Submissions of a batch admitted at once.
const BATCH_CONCURRENCY: usize = 8;
/// `GET /submissions`: the default and the largest page.
const DEFAULT_PER_PAGE: u64 = 20;
const MAX_PER_PAGE: u64 = 100;

pub fn routes(state: AppState) -> Router<AppState> {
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
        .route_layer(axum::middleware::from_fn_with_state(state, authenticate))
}

/// Judge0's header for its authentication token.
pub const AUTHN_HEADER: &str = "x-auth-token";

/// Judge0's authentication: with tokens configured (`RCE_JUDGE0_AUTHN_TOKENS`), every request
/// to this surface carries one, in the `X-Auth-Token` header or a query parameter of that name;
/// otherwise a 401 with no body, as Judge0 answers.
async fn authenticate(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.judge0_authn.is_empty() {
        return next.run(request).await;
    }
    let from_header = request
        .headers()
        .get(AUTHN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let from_query = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case("x-auth-token"))
            .map(|(_, v)| v.into_owned())
    });
    let given = from_header.or(from_query).unwrap_or_default();
    let known = !given.is_empty()
        && state
            .judge0_authn
            .iter()
            .any(|t| constant_time_eq(t.as_bytes(), given.as_bytes()));
    if known {
        next.run(request).await
    } else {
        crate::error::tagged(
            StatusCode::UNAUTHORIZED.into_response(),
            "unauthorized",
            None,
        )
    }
}

/// An error in Judge0's shape, with its code left for the request metrics.
#[derive(Debug)]
pub struct Judge0Error {
    pub status: StatusCode,
    /// `Value::Null`: no body at all (Judge0's 401 and 403).
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
    /// Judge0's refusal of an endpoint that needs its authorization token: 403, no body.
    pub fn forbidden() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            body: Value::Null,
            code: "forbidden",
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
        let response = if self.body.is_null() {
            self.status.into_response()
        } else {
            (self.status, Json(self.body)).into_response()
        };
        let retry = (self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(2);
        crate::error::tagged(response, self.code, retry)
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

/// Judge0's authorization (`X-Auth-User`, one of the operator's `RCE_JUDGE0_AUTHZ_TOKENS`) for
/// the endpoints that reach other clients' submissions: the list and delete. Without tokens
/// configured they are refused to everyone, as in Judge0.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Judge0Error> {
    let given = headers
        .get(AUTHZ_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let known = state
        .judge0_authz
        .iter()
        .any(|t| !given.is_empty() && constant_time_eq(t.as_bytes(), given.as_bytes()));
    if known {
        Ok(())
    } else {
        Err(Judge0Error::forbidden())
    }
}

/// Judge0's authorization header.
pub const AUTHZ_HEADER: &str = "x-auth-user";

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The job behind `token`, or Judge0's 404.
async fn find(state: &AppState, token: &str) -> Result<(String, JobView), Judge0Error> {
    let token = known_token(token).ok_or_else(|| Judge0Error::not_found("submission"))?;
    let view = state
        .store
        .get(&token)
        .await?
        .ok_or_else(|| Judge0Error::not_found("submission"))?;
    Ok((token, view))
}

/// A token as Judge0 clients send it: our job id, or nothing this surface knows.
fn known_token(token: &str) -> Option<String> {
    crate::job_id::JobId::parse(token).map(|id| id.as_str().to_string())
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

/// Conversions that inflate an archive, at once (each may inflate 10 MiB; on the blocking
/// pool, never on the runtime's workers).
static ARCHIVE_SLOTS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::OnceLock::new();
const ARCHIVE_CONVERSIONS: usize = 2;

/// Reads one submission: in place, or with `additional_files` on the blocking pool, a few at
/// a time.
async fn convert(
    state: &AppState,
    body: &Value,
    base64: bool,
) -> Result<request::Converted, Judge0Error> {
    if body.get("additional_files").is_none_or(Value::is_null) {
        return request::convert(body, base64, &state.topology);
    }
    let slots = ARCHIVE_SLOTS
        .get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(ARCHIVE_CONVERSIONS)));
    let _permit = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Judge0Error::unavailable("shutting down"))?;
    let (body, topology) = (body.clone(), state.topology.clone());
    tokio::task::spawn_blocking(move || request::convert(&body, base64, &topology))
        .await
        .map_err(|_| Judge0Error::unavailable("reading the submission failed; retry"))?
}

/// Admits one Judge0 submission (and waits for it if `wait`): its token and, after a wait, its
/// record and echo. The echo is stored first, so a webhook or a read can never see the job
/// without it.
async fn submit_one(
    state: &AppState,
    body: &Value,
    base64: bool,
    wait: bool,
) -> Result<(String, Option<(JobView, Echo)>), Judge0Error> {
    let converted = convert(state, body, base64).await.inspect_err(|_| {
        state
            .metrics
            .count_submission(admission::INVALID, "invalid_request");
    })?;
    let id = crate::job_id::JobId::generate().into_string();
    state
        .judge0
        .put(&id, &converted.echo, chrono::Utc::now().timestamp_millis())
        .await?;
    match admission::submit_as(state, converted.request, wait, id.clone()).await {
        Ok(admitted) => Ok((
            admitted.id,
            admitted.view.map(|view| (view, converted.echo)),
        )),
        Err(e) => {
            // Refused: its echo goes. Admitted but the wait's last read failed: the job runs,
            // and keeps its echo.
            if matches!(state.store.get(&id).await, Ok(None)) {
                if let Err(e) = state.judge0.delete(&id).await {
                    tracing::warn!(job_id = %id, error = %e, "removing the echo of a refused submission failed");
                }
            }
            Err(e.into())
        }
    }
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
    let (_, view) = find(&state, &token).await?;
    let echo = echo_of(&state, &view).await?;
    let rendered = render::submission(&view, &echo, &chosen, p.base64, &state.topology)
        .map_err(Judge0Error::bad_request)?;
    Ok(Json(rendered).into_response())
}

/// `DELETE /submissions/{token}`, with Judge0's authorization: a finished submission is
/// deleted and shown (base64, as Judge0 does); one still queued or running is refused.
async fn destroy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Judge0Error> {
    authorize(&state, &headers)?;
    let p = params(query)?;
    let chosen = fields(&p)?;
    let (token, view) = find(&state, &token).await?;
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
    // A few at a time, in request order, in a task of its own: a client that hangs up mid-batch
    // does not leave a job between its record and its publish.
    let base64 = p.base64;
    let task = tokio::spawn(async move {
        use futures_util::StreamExt;
        futures_util::stream::iter(items)
            .map(|item| {
                let state = state.clone();
                async move { submit_one(&state, &item, base64, false).await }
            })
            .buffered(BATCH_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
    });
    let results = task
        .await
        .map_err(|_| Judge0Error::unavailable("the batch failed; retry"))?;
    let mut answers = Vec::with_capacity(results.len());
    let mut admitted = 0;
    for result in results {
        match result {
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
        let view = match known_token(token) {
            Some(token) => state.store.get(&token).await?,
            None => None,
        };
        let Some(view) = view else {
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

/// `GET /submissions?page=&per_page=`, with Judge0's authorization: the submissions made through
/// this surface, newest first, with Judge0's pagination `meta`.
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Judge0Error> {
    authorize(&state, &headers)?;
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
