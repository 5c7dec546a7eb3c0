//! The Piston v2 surface: `GET /api/v2/runtimes`, `POST /api/v2/execute` and the WebSocket
//! `GET /api/v2/connect`, so a Piston client works by changing its base URL.
//!
//! ```text
//!  Piston JSON ──request::convert──▶ SubmitRequest ──admission──▶ job (v1's rules)
//!  Piston JSON ◀──stage()────────── JobView (compile, run) ◀──── wait / live events
//! ```
//!
//! Errors are Piston's `{"message": "..."}`. docs/compatibility.md lists what matches Piston
//! and what differs (`output` is stdout then stderr, not interleaved; compile limits are the
//! language's own).

pub mod request;
pub mod semver;
mod socket;

use crate::admission;
use crate::error::ApiError;
use crate::job_view::JobView;
use crate::routes::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rce_protocol::encoding::Encoding;
use rce_protocol::result::{JobStatus, StepReport, Verdict};
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/runtimes", get(runtimes))
        .route("/api/v2/execute", post(execute))
        .route("/api/v2/connect", get(socket::connect))
}

/// Piston's error: `{"message": ...}` with its status.
#[derive(Debug)]
pub struct PistonError {
    status: StatusCode,
    message: String,
    code: &'static str,
}

impl PistonError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            code: "malformed_request",
        }
    }
}

/// Admission's rejection, Piston's way: the message, the status.
impl From<ApiError> for PistonError {
    fn from(e: ApiError) -> Self {
        let status = if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            e.status
        };
        Self {
            status,
            message: e.message,
            code: e.code,
        }
    }
}

impl IntoResponse for PistonError {
    fn into_response(self) -> Response {
        let response = (self.status, Json(json!({"message": self.message}))).into_response();
        let retry = (self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(2);
        crate::error::tagged(response, self.code, retry)
    }
}

/// `GET /api/v2/runtimes`: each language with its version and aliases.
async fn runtimes(State(state): State<AppState>) -> Json<Value> {
    let list = state
        .topology
        .all_languages()
        .into_iter()
        .map(|l| json!({"language": l.id, "version": l.version, "aliases": l.compat.aliases}))
        .collect();
    Json(Value::Array(list))
}

/// A result field as Piston's text (bytes that are not UTF-8 replaced).
fn text(s: &str, encoding: Encoding) -> String {
    String::from_utf8_lossy(&encoding.decode(s.to_owned()).unwrap_or_default()).into_owned()
}

/// One stage's result as Piston reports it. `verdict` says how a run stage ended (a compile
/// stage is read from its exit alone).
fn stage(step: &StepReport, verdict: Option<Verdict>) -> Value {
    let stdout = text(&step.stdout, step.stdout_encoding);
    let stderr = text(&step.stderr, step.stderr_encoding);
    let (mut status, mut message): (Option<&str>, Option<String>) =
        match (step.signal.as_deref(), step.exit_code) {
            (Some(sig), _) => (Some("SG"), Some(format!("Caught fatal signal {sig}"))),
            (None, Some(0)) | (None, None) => (None, None),
            (None, Some(code)) => (Some("RE"), Some(format!("Exited with error status {code}"))),
        };
    let mut signal = step.signal.clone();
    match verdict {
        Some(Verdict::TimeLimitExceeded) => {
            status = Some("TO");
            message = Some("Time limit exceeded".into());
            signal = Some("SIGKILL".into());
        }
        Some(Verdict::OutputLimitExceeded) => {
            status = Some("OL");
            message = Some("stdout length exceeded".into());
            signal = Some("SIGKILL".into());
        }
        Some(Verdict::MemoryLimitExceeded) => {
            status = Some("SG");
            message = Some("Memory limit exceeded".into());
            signal = signal.or(Some("SIGKILL".into()));
        }
        _ => {}
    }
    json!({
        "stdout": stdout,
        "stderr": stderr,
        "code": step.exit_code,
        "signal": signal,
        "output": format!("{stdout}{stderr}"),
        "memory": step.memory_kb * 1024,
        "message": message,
        "status": status,
        "cpu_time": step.cpu_ms,
        "wall_time": step.wall_ms,
    })
}

/// A finished job as Piston's execute response.
pub fn response(view: &JobView, language: &str, version: &str) -> Value {
    let mut body = json!({"language": language, "version": version});
    let compile = view.compile.as_ref().map(|c| stage(c, None));
    if let Some(c) = &compile {
        body["compile"] = c.clone();
    }
    body["run"] = match (&view.run, view.verdict) {
        (Some(run), verdict) => stage(run, verdict),
        // A failed compile: Piston shows it as the run too.
        (None, Some(Verdict::CompileError)) if compile.is_some() => compile.unwrap_or_default(),
        (None, _) => json!({
            "stdout": "", "stderr": "", "code": null, "signal": null, "output": "",
            "memory": null, "cpu_time": null, "wall_time": null, "status": "XX",
            "message": view.error.clone().unwrap_or_else(|| "the job did not run".into()),
        }),
    };
    body
}

/// Piston refuses any body that is not declared JSON.
fn require_json(headers: &HeaderMap) -> Result<(), PistonError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if json {
        Ok(())
    } else {
        Err(PistonError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "requests must be of type application/json".into(),
            code: "unsupported_media_type",
        })
    }
}

/// `POST /api/v2/execute`: runs the program and answers when it ended.
async fn execute(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PistonError> {
    require_json(&headers)?;
    let bytes = crate::routes::read_body(body, state.max_body_bytes, "the request body").await?;
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| PistonError::bad_request(format!("the body is not JSON: {e}")))?;
    let converted = request::convert(&body, &state.topology, false).map_err(|m| {
        state
            .metrics
            .count_submission(admission::INVALID, "invalid_request");
        PistonError::bad_request(m)
    })?;
    let admitted = admission::submit(&state, converted.request, true).await?;
    let view = admitted.view.expect("a wait returns the record");
    if !view.status.is_terminal() || view.status == JobStatus::Queued {
        return Err(PistonError {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: format!(
                "job {} did not finish within its time budget; it is still {:?}",
                admitted.id, view.status
            ),
            code: "timeout",
        });
    }
    let language = converted.language;
    Ok(Json(response(&view, &language.id, &language.version)).into_response())
}
