//! Live events: `GET /v1/jobs/{id}/events` (Server-Sent Events) and `GET /v1/jobs/{id}/ws`
//! (WebSocket: the same events, plus interactive input and cancel), and `GET /v1/jobs/ws`, which
//! submits a job and attaches to it on one socket.

use super::AppState;
use crate::error::ApiError;
use crate::event_feed::{self, StoredEvent};
use crate::job_id::JobId;
use crate::job_store::StdinChunk;
use crate::job_view::JobView;
use crate::submission;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use rce_protocol::events::EventKind;
use rce_protocol::result::JobStatus;
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;

/// The largest single piece of input a WebSocket client may send.
pub const MAX_STDIN_MESSAGE: usize = 64 << 10;

/// Where a subscriber starts: after `Last-Event-ID`, or from the beginning.
fn start_from(headers: &HeaderMap) -> Result<String, ApiError> {
    match headers.get("last-event-id") {
        None => Ok("0".into()),
        Some(v) => match v.to_str() {
            Ok(id) if event_feed::is_event_id(id.trim()) => Ok(id.trim().to_string()),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                "Last-Event-ID must be an event id this api sent (`<ms>-<seq>`, each a 64-bit number)",
            )
            .field("Last-Event-ID")),
        },
    }
}

/// The job, or the 404 (or 503) a live endpoint answers before it starts streaming.
async fn existing_job(state: &AppState, id: &JobId) -> Result<JobView, ApiError> {
    state
        .store
        .get(id.as_str())
        .await
        .map_err(|_| ApiError::store_unavailable())?
        .ok_or_else(|| ApiError::not_found("job"))
}

/// SSE has no way to carry a carriage return inside data (it ends a line), so live text uses
/// `\n` line ends; the `done` event carries the exact bytes.
fn sse_text(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

fn sse_event(e: StoredEvent) -> Event {
    let data = match e.kind {
        EventKind::Stdout | EventKind::Stderr => sse_text(&e.data),
        _ => e.data,
    };
    Event::default().id(e.id).event(e.kind.as_str()).data(data)
}

/// `GET /v1/jobs/{id}/events`.
pub async fn events(
    State(state): State<AppState>,
    id: JobId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let from = start_from(&headers)?;
    existing_job(&state, &id).await?;
    // 204 is what makes a browser's EventSource stop reconnecting.
    if event_feed::ended_by(&state.redis, id.as_str(), &from)
        .await
        .map_err(|_| ApiError::store_unavailable())?
    {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let feed = event_feed::follow(
        state.redis.clone(),
        id.into_string(),
        from,
        state.closing.clone(),
    );
    state.metrics.live_clients.with_label_values(&["sse"]).inc();
    let gauge = state.metrics.live_clients.with_label_values(&["sse"]);
    let guard = DecOnDrop(gauge);
    let stream = feed.map(move |e| {
        let _ = &guard;
        Ok::<_, Infallible>(sse_event(e))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.heartbeat))
        .into_response())
}

struct DecOnDrop(prometheus::IntGauge);

impl Drop for DecOnDrop {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A server-to-client WebSocket message: an event, with `data` as JSON for structured kinds and
/// as a string for output.
fn ws_event(e: &StoredEvent) -> String {
    let data = match e.kind {
        EventKind::Stdout | EventKind::Stderr => Value::String(e.data.clone()),
        _ => serde_json::from_str(&e.data).unwrap_or_else(|_| Value::String(e.data.clone())),
    };
    json!({"id": e.id, "event": e.kind.as_str(), "data": data}).to_string()
}

fn ws_error(error: &ApiError) -> String {
    json!({"event": "error", "data": {"error": {
        "code": error.code, "message": error.message, "field": error.field}}})
    .to_string()
}

/// What a WebSocket client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    /// Only as the first message on `/v1/jobs/ws` (read there as a [`SubmitMessage`]); later,
    /// an error.
    Submit {
        #[serde(default, rename = "job")]
        _job: serde::de::IgnoredAny,
    },
    Stdin {
        data: String,
        #[serde(default)]
        encoding: Option<String>,
    },
    StdinEof,
    Cancel,
}

/// The first message on `/v1/jobs/ws`. A struct of its own: an internally tagged enum buffers
/// its fields, which a raw JSON value cannot be read from.
#[derive(Debug, Deserialize)]
struct SubmitMessage {
    #[serde(rename = "type")]
    kind: String,
    job: Box<serde_json::value::RawValue>,
}

/// `GET /v1/jobs/{id}/ws`.
pub async fn attach(
    State(state): State<AppState>,
    id: JobId,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(handshake_error)?;
    let from = start_from(&headers)?;
    existing_job(&state, &id).await?;
    let interactive = state
        .store
        .is_interactive(id.as_str())
        .await
        .map_err(|_| ApiError::store_unavailable())?;
    let job = Some((id.into_string(), interactive));
    Ok(ws
        .on_upgrade(move |socket| session(state, socket, job, from))
        .into_response())
}

/// `GET /v1/jobs/ws`: the first message submits the job.
pub async fn submit_and_attach(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(handshake_error)?;
    Ok(ws
        .max_message_size(state.max_body_bytes)
        .on_upgrade(move |socket| session(state, socket, None, "0".into()))
        .into_response())
}

/// A request to a WebSocket route that is not a usable handshake, in the documented error shape
/// (axum's own answer is plain text, which clients parsing our errors cannot read). The field is
/// the header the client got wrong, when there is one.
fn handshake_error(r: WebSocketUpgradeRejection) -> ApiError {
    use WebSocketUpgradeRejection as R;
    let field = match &r {
        R::InvalidConnectionHeader(_) => Some("Connection"),
        R::InvalidUpgradeHeader(_) => Some("Upgrade"),
        R::InvalidWebSocketVersionHeader(_) => Some("Sec-WebSocket-Version"),
        R::WebSocketKeyHeaderMissing(_) => Some("Sec-WebSocket-Key"),
        _ => None,
    };
    let status = r.status();
    let code = if status == StatusCode::UPGRADE_REQUIRED {
        "upgrade_required"
    } else {
        "malformed_request"
    };
    let e = ApiError::new(
        status,
        code,
        format!(
            "this route is a WebSocket: send a GET WebSocket handshake ({})",
            r.body_text()
        ),
    );
    match field {
        Some(f) => e.field(f),
        None => e,
    }
}

async fn session(state: AppState, socket: WebSocket, job: Option<(String, bool)>, from: String) {
    let (mut tx, mut rx) = socket.split();
    let (id, interactive) = match job {
        Some(job) => job,
        None => match first_submit(&state, &mut rx).await {
            Ok((id, interactive)) => {
                let accepted = json!({
                    "event": "accepted",
                    "data": {"id": id, "status": JobStatus::Queued},
                });
                if tx
                    .send(Message::Text(accepted.to_string().into()))
                    .await
                    .is_err()
                {
                    return;
                }
                (id, interactive)
            }
            Err(e) => {
                let _ = tx.send(Message::Text(ws_error(&e).into())).await;
                let _ = tx.send(Message::Close(None)).await;
                return;
            }
        },
    };
    let gauge = state.metrics.live_clients.with_label_values(&["ws"]);
    gauge.inc();
    let _guard = DecOnDrop(gauge);
    let mut feed = Box::pin(event_feed::follow(
        state.redis.clone(),
        id.clone(),
        from,
        state.closing.clone(),
    ));
    loop {
        tokio::select! {
            event = feed.next() => match event {
                Some(e) => {
                    let done = e.kind == EventKind::Done;
                    if tx.send(Message::Text(ws_event(&e).into())).await.is_err() {
                        return;
                    }
                    if done {
                        let _ = tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "done".into() }))).await;
                        return;
                    }
                }
                None => {
                    let (code, reason) = if state.closing.is_cancelled() {
                        (1001, "the api is shutting down")
                    } else {
                        (1011, "the job's events are no longer available")
                    };
                    let _ = tx.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    return;
                }
            },
            message = rx.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if let Err(e) = client_message(&state, &id, interactive, text.as_str()).await {
                        if tx.send(Message::Text(ws_error(&e).into())).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Reads the submit message that must open a `/v1/jobs/ws` session and admits its job.
async fn first_submit(
    state: &AppState,
    rx: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Result<(String, bool), ApiError> {
    let bad = |m: &str| {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", m.to_string()).field("type")
    };
    let text = loop {
        match rx.next().await {
            Some(Ok(Message::Text(text))) => break text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => {
                return Err(bad(
                    "the first message must be {\"type\": \"submit\", \"job\": {...}}",
                ))
            }
        }
    };
    let submit = match serde_json::from_str::<SubmitMessage>(text.as_str()) {
        Ok(m) if m.kind == "submit" => m,
        _ => {
            return Err(bad(
                "the first message must be {\"type\": \"submit\", \"job\": {...}}",
            ))
        }
    };
    let request = submission::parse(submit.job.get().as_bytes()).map_err(|mut e| {
        e.field = e.field.map(|f| format!("job.{f}"));
        e
    })?;
    let interactive = request.interactive;
    let id = crate::admission::submit(state, request, false).await?.id;
    tracing::info!(job_id = %id, interactive, "job admitted over a websocket");
    Ok((id, interactive))
}

async fn client_message(
    state: &AppState,
    id: &str,
    interactive: bool,
    text: &str,
) -> Result<(), ApiError> {
    let message: ClientMessage = serde_json::from_str(text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            format!("not a client message: {e}"),
        )
        .field("type")
    })?;
    let not_interactive = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "not_interactive",
            "this job was not submitted with \"interactive\": true; its stdin is closed",
        )
        .field("type")
    };
    match message {
        ClientMessage::Submit { .. } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_attached",
            "this socket is already attached to a job",
        )
        .field("type")),
        ClientMessage::Stdin { data, encoding } => {
            if !interactive {
                return Err(not_interactive());
            }
            let bytes = match encoding.as_deref() {
                None | Some("utf8") => data.into_bytes(),
                Some("base64") => base64::engine::general_purpose::STANDARD
                    .decode(data.as_bytes())
                    .map_err(|e| {
                        ApiError::invalid(
                            "invalid_base64",
                            "data",
                            format!("not valid base64: {e}"),
                        )
                    })?,
                Some(other) => {
                    return Err(ApiError::invalid(
                        "invalid_encoding",
                        "encoding",
                        format!("encoding {other:?} is not utf8 or base64"),
                    ))
                }
            };
            if bytes.len() > MAX_STDIN_MESSAGE {
                return Err(ApiError::invalid(
                    "stdin_too_large",
                    "data",
                    format!("one stdin message carries at most {MAX_STDIN_MESSAGE} bytes"),
                ));
            }
            state
                .store
                .append_stdin(id, StdinChunk::Data(&bytes))
                .await
                .map_err(|_| ApiError::store_unavailable())
        }
        ClientMessage::StdinEof => {
            if !interactive {
                return Err(not_interactive());
            }
            state
                .store
                .append_stdin(id, StdinChunk::Eof)
                .await
                .map_err(|_| ApiError::store_unavailable())
        }
        // Whatever it did, the events that follow (a `done`) say the rest.
        ClientMessage::Cancel => state
            .store
            .cancel(id)
            .await
            .map(drop)
            .map_err(|_| ApiError::store_unavailable()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_text_uses_newlines_only() {
        assert_eq!(sse_text("a\r\nb\rc\n"), "a\nb\nc\n");
    }

    #[test]
    fn ws_events_carry_json_for_structured_kinds() {
        let status = StoredEvent {
            id: "1-0".into(),
            kind: EventKind::Status,
            data: r#"{"status":"running"}"#.into(),
        };
        let v: Value = serde_json::from_str(&ws_event(&status)).unwrap();
        assert_eq!(v["data"]["status"], "running");
        let out = StoredEvent {
            id: "1-1".into(),
            kind: EventKind::Stdout,
            data: "{\"not\": \"parsed\"}\r\n".into(),
        };
        let v: Value = serde_json::from_str(&ws_event(&out)).unwrap();
        assert_eq!(v["data"], "{\"not\": \"parsed\"}\r\n");
        assert_eq!(v["event"], "stdout");
    }

    #[test]
    fn client_messages_parse() {
        assert!(matches!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"stdin","data":"x"}"#).unwrap(),
            ClientMessage::Stdin { .. }
        ));
        assert!(matches!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"stdin_eof"}"#).unwrap(),
            ClientMessage::StdinEof
        ));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"nope"}"#).is_err());
    }
}
