//! The HTTP surface (`../shared/api.md`), as a `Router` tests can drive without a socket.

pub mod files;
pub mod health;
pub mod jobs;
pub mod languages;
pub mod live;

use crate::completions::Completions;
use crate::error::{ApiError, ErrorCode};
use crate::job_store::JobStore;
use crate::metrics::ApiMetrics;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use axum::Router;
use rce_broker::BrokerLink;
use rce_protocol::topology::Topology;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Everything a request handler may touch.
#[derive(Clone)]
pub struct AppState {
    pub topology: Arc<Topology>,
    pub store: JobStore,
    /// RabbitMQ, reconnecting on its own; publishes fail fast (503) while it is down.
    pub broker: BrokerLink,
    pub completions: Completions,
    pub metrics: ApiMetrics,
    pub max_body_bytes: usize,
    /// Test data, by content.
    pub files: rce_files::FileStore,
    pub max_file_bytes: usize,
    pub wait_margin: Duration,
    /// For connections of their own: live subscribers hold theirs in blocking reads.
    pub redis: redis::Client,
    /// Cancelled when the api starts shutting down: live streams end so the server can drain.
    pub closing: CancellationToken,
    pub heartbeat: Duration,
    /// What Judge0 clients sent with their submissions (the Judge0 surface).
    pub judge0: crate::judge0::store::Judge0Store,
    pub webhooks: Arc<crate::webhooks::WebhookConfig>,
    /// Judge0's authorization tokens (`X-Auth-User`) for listing and deleting submissions.
    pub judge0_authz: Arc<Vec<String>>,
    /// Judge0's authentication tokens (`X-Auth-Token`); empty: none needed.
    pub judge0_authn: Arc<Vec<String>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/jobs", post(jobs::submit).get(jobs::get_jobs))
        .route("/v1/jobs/batch", post(jobs::submit_batch))
        .route("/v1/jobs/ws", get(live::submit_and_attach))
        .route("/v1/jobs/{id}", get(jobs::get_job).delete(jobs::cancel_job))
        .route("/v1/jobs/{id}/events", get(live::events))
        .route("/v1/jobs/{id}/ws", get(live::attach))
        .route("/v1/files", post(files::upload))
        .route("/v1/files/{id}", head(files::head))
        .route("/v1/languages", get(languages::list))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .merge(crate::judge0::routes(state.clone()))
        .merge(crate::piston::routes())
        .fallback(health::no_route)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

/// The whole body, or a `413 payload_too_large` once it passes `limit` bytes (`what` names it in
/// the message: "the request body", "the file").
pub(crate) async fn read_body(
    body: axum::body::Body,
    limit: usize,
    what: &str,
) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("{what} is larger than {limit} bytes"),
        )
    })
}

/// Longest framework error text carried over into a JSON error.
const REJECTION_TEXT_LIMIT: usize = 4096;

/// Where every request ends, once: an error answer that is not yet the documented JSON shape
/// (a framework rejection no handler converted) is rewritten into it, and the request is
/// counted in `rce_api_requests_total` by its route template (never the raw path: clients must
/// not choose the metric's cardinality), status and outcome.
async fn edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let mut response = next.run(request).await;
    let status = response.status();
    if status.as_u16() >= 400 && response.extensions().get::<ErrorCode>().is_none() {
        response = as_json_error(response).await;
    }
    let outcome = response
        .extensions()
        .get::<ErrorCode>()
        .map_or("ok", |c| c.0);
    state
        .metrics
        .requests
        .with_label_values(&[method, &route, status.as_str(), outcome])
        .inc();
    response
}

/// `response`, an error in some other shape, as our JSON error with the same status and
/// headers (`Allow`, `Sec-WebSocket-Version`, ...) and its text as the message.
async fn as_json_error(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, REJECTION_TEXT_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let text = if text.is_empty() {
        parts
            .status
            .canonical_reason()
            .unwrap_or("refused")
            .to_string()
    } else {
        text
    };
    let mut json =
        ApiError::rejection(parts.status, "the request was refused", &text).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}
