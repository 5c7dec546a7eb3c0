//! Every error a client can get, as `{"error": {"code", "message", "field"}}` with its status.
//! axum's own rejections (query string, path, JSON body, WebSocket handshake) convert into the
//! same shape through the `From` impls below, so no handler answers with the framework's plain
//! text; `routes::edge` turns anything else that slips through into it as well.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }
    /// 422: the request is well-formed but a value is not acceptable.
    pub fn invalid(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).field(field)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    /// 503 when Redis, which holds every job record, does not answer. Prefer converting the
    /// `RedisError` itself (`?` or `ApiError::from`), which logs the cause.
    pub fn store_unavailable() -> Self {
        Self::unavailable(
            "store_unavailable",
            "job storage is unavailable; retry shortly",
        )
    }
    /// 503 for anything the client can retry once our dependencies are back.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message).retry_after(2)
    }
}

/// The code a status gets when the error comes from the framework, not from a rule of ours.
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UPGRADE_REQUIRED => "upgrade_required",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        s if s.is_server_error() => "internal_error",
        _ => "malformed_request",
    }
}

impl ApiError {
    /// A framework rejection as our error: its status, a code for that status, and its text
    /// after `context` (which says what the client got wrong in this api's terms).
    pub fn rejection(status: StatusCode, context: &str, text: &str) -> Self {
        Self::new(
            status,
            code_for_status(status),
            format!("{context}: {text}"),
        )
    }
}

/// A Redis failure: logged here, once, with its cause (the client only learns that storage is
/// unavailable), and answered `503 store_unavailable`.
impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        tracing::error!(error = %e, "redis failed; answering 503 store_unavailable");
        Self::store_unavailable()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::rejection(
            r.status(),
            "the query string cannot be read",
            &r.body_text(),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::rejection(r.status(), "the path cannot be read", &r.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        Self::rejection(
            r.status(),
            "the body is not the JSON expected",
            &r.body_text(),
        )
    }
}

/// A request to a WebSocket route that is not a usable handshake: 405 for a method other than
/// GET, 400 for missing or wrong `Connection`/`Upgrade`/`Sec-WebSocket-*` headers, 426 when the
/// connection cannot be upgraded at all (HTTP/1.0).
impl From<WebSocketUpgradeRejection> for ApiError {
    fn from(r: WebSocketUpgradeRejection) -> Self {
        Self::rejection(
            r.status(),
            "this route is a WebSocket: send a GET WebSocket handshake",
            &r.body_text(),
        )
    }
}

/// The error code of a response, left in its extensions so the request metrics (`routes::edge`)
/// count it without parsing the body.
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "field": self.field}});
        tagged(
            (self.status, Json(body)).into_response(),
            self.code,
            self.retry_after,
        )
    }
}

/// An error response of any surface, finished: its code left for the request metrics (and so
/// that `routes::edge` does not rewrite it into v1's shape), and `Retry-After` when given.
pub fn tagged(mut response: Response, code: &'static str, retry_after: Option<u32>) -> Response {
    response.extensions_mut().insert(ErrorCode(code));
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
