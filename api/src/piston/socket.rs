//! Piston's interactive WebSocket, `GET /api/v2/connect`: an `init` (an execute request) within
//! a second, then the program's stages, output and exits as they happen, with the client's
//! `data` frames fed to its stdin. Closes with Piston's codes: 4000 a second init, 4001 no init in
//! time, 4002 after an `error` frame, 4003 data or a signal before init, 4004 data for a stream
//! other than stdin, 4005 an unknown signal, 4999 the job is over.
//!
//! Built on the v1 machinery: the job is an interactive job admitted by `admission`, its
//! events come from its Redis stream (`event_feed`), and input goes through the job's stdin
//! stream. A `signal` frame ends the program (a cancel: it is killed whatever the signal).

use super::request;
use crate::admission;
use crate::event_feed;
use crate::job_store::StdinChunk;
use crate::routes::AppState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rce_protocol::events::EventKind;
use serde_json::{json, Value};
use std::time::Duration;

/// How long a client has to send `init`.
const INIT_PATIENCE: Duration = Duration::from_secs(1);
/// Signal names a `signal` frame may carry.
const SIGNALS: [&str; 14] = [
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGABRT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGALRM",
    "SIGTERM", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGPIPE", "SIGSEGV",
];
/// The largest stdin frame (as v1's WebSocket).
const MAX_STDIN_FRAME: usize = crate::routes::live::MAX_STDIN_MESSAGE;

pub async fn connect(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    // An init carries the program's files: as much as a request body, and no frame more.
    let largest = state.max_body_bytes.max(MAX_STDIN_FRAME * 2);
    upgrade
        .max_message_size(largest)
        .max_frame_size(largest)
        .on_upgrade(move |socket| session(state, socket))
}

/// How long one frame may take to go out: a client that stops reading is let go.
const SEND_PATIENCE: Duration = Duration::from_secs(10);

/// Cancels the session's job when the session ends any way but through the job's own end (the
/// client left, broke the protocol, stopped reading, or the task was dropped).
struct CancelUnlessDone {
    state: AppState,
    id: String,
    done: bool,
}

impl Drop for CancelUnlessDone {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (state, id) = (self.state.clone(), std::mem::take(&mut self.id));
        tokio::spawn(async move {
            if let Err(e) = state.store.cancel(&id).await {
                tracing::warn!(job_id = %id, error = %e, "cancelling a Piston session's job failed");
            }
        });
    }
}

type Tx = SplitSink<WebSocket, Message>;

async fn close(tx: &mut Tx, code: u16, reason: &'static str) {
    let closing = tx.send(Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    })));
    // A client that stopped reading is let go all the same.
    let _ = tokio::time::timeout(SEND_PATIENCE, closing).await;
}

async fn send(tx: &mut Tx, frame: Value) -> bool {
    let sending = tx.send(Message::Text(frame.to_string().into()));
    matches!(
        tokio::time::timeout(SEND_PATIENCE, sending).await,
        Ok(Ok(()))
    )
}

async fn error_and_close(tx: &mut Tx, message: String) {
    send(tx, json!({"type": "error", "message": message})).await;
    close(tx, 4002, "Notified Error").await;
}

/// The first frame, which must be `init` and arrive within [`INIT_PATIENCE`].
async fn init(tx: &mut Tx, rx: &mut SplitStream<WebSocket>) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + INIT_PATIENCE;
    loop {
        let frame = match tokio::time::timeout_at(deadline, rx.next()).await {
            Err(_) => {
                close(tx, 4001, "Initialization Timeout").await;
                return None;
            }
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(_) => return None,
        };
        let Ok(value) = serde_json::from_str::<Value>(frame.as_str()) else {
            continue;
        };
        match value["type"].as_str() {
            Some("init") => return Some(value),
            Some("data" | "signal") => {
                close(tx, 4003, "Not yet initialized").await;
                return None;
            }
            // Piston ignores other types.
            _ => continue,
        }
    }
}

async fn session(state: AppState, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let Some(init) = init(&mut tx, &mut rx).await else {
        return;
    };
    let converted = match request::convert(&init, &state.topology, true) {
        Ok(c) => c,
        Err(message) => return error_and_close(&mut tx, message).await,
    };
    let id = match admission::submit(&state, converted.request, false).await {
        Ok(admitted) => admitted.id,
        Err(e) => return error_and_close(&mut tx, e.message).await,
    };
    tracing::info!(job_id = %id, "job admitted over Piston's websocket");
    // From here, every way out but the job's own end cancels it.
    let mut guard = CancelUnlessDone {
        state: state.clone(),
        id: id.clone(),
        done: false,
    };
    let language = converted.language;
    let runtime = json!({"type": "runtime", "language": language.id, "version": language.version});
    if !send(&mut tx, runtime).await {
        return;
    }
    let mut feed = Box::pin(event_feed::follow(
        state.redis.clone(),
        id.clone(),
        "0".into(),
        state.closing.clone(),
    ));
    let mut stage: Option<String> = None;
    loop {
        tokio::select! {
            event = feed.next() => {
                let Some(event) = event else {
                    return close(&mut tx, 1011, "the job's events are no longer available").await;
                };
                match event.kind {
                    EventKind::Status => {
                        let data: Value = serde_json::from_str(&event.data).unwrap_or_default();
                        let Some(step) = data["step"].as_str() else { continue };
                        if stage.as_deref() == Some(step) {
                            continue;
                        }
                        // The run starting means the compile succeeded.
                        if stage.as_deref() == Some("compile") {
                            send(&mut tx, json!({"type": "exit", "stage": "compile", "code": 0, "signal": null})).await;
                        }
                        stage = Some(step.to_string());
                        if !send(&mut tx, json!({"type": "stage", "stage": step})).await {
                            return;
                        }
                    }
                    EventKind::Stdout | EventKind::Stderr => {
                        let frame = json!({"type": "data", "stream": event.kind.as_str(), "data": event.data});
                        if !send(&mut tx, frame).await {
                            return;
                        }
                    }
                    EventKind::Done => {
                        // The job as `GET /v1/jobs/{id}` shows it.
                        let job: Value = serde_json::from_str(&event.data).unwrap_or_default();
                        let stage_name = if job["run"].is_object() { "run" } else { "compile" };
                        let step = &job[stage_name];
                        let mut exit = json!({
                            "type": "exit",
                            "stage": stage_name,
                            "code": step["exit_code"],
                            "signal": step["signal"],
                        });
                        if let Some(error) = job["error"].as_str() {
                            exit["error"] = json!(error);
                        }
                        guard.done = true;
                        send(&mut tx, exit).await;
                        return close(&mut tx, 4999, "Job Completed").await;
                    }
                    _ => {}
                }
            }
            frame = rx.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => continue,
                    // The client left: its program goes too.
                    _ => {
                        return;
                    }
                };
                let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                match value["type"].as_str() {
                    Some("init") => return close(&mut tx, 4000, "Already Initialized").await,
                    Some("data") => {
                        if value["stream"].as_str() != Some("stdin") {
                            return close(&mut tx, 4004, "Can only write to stdin").await;
                        }
                        let data = value["data"].as_str().unwrap_or("").as_bytes();
                        if data.len() > MAX_STDIN_FRAME {
                            return error_and_close(&mut tx, format!("a data frame carries at most {MAX_STDIN_FRAME} bytes")).await;
                        }
                        if state.store.append_stdin(&id, StdinChunk::Data(data)).await.is_err() {
                            return error_and_close(&mut tx, "job storage is unavailable".into()).await;
                        }
                    }
                    Some("signal") => {
                        let valid = value["signal"].as_str().is_some_and(|s| SIGNALS.contains(&s));
                        if !valid {
                            return close(&mut tx, 4005, "Invalid signal").await;
                        }
                        // Any signal ends the program: a cancel.
                        if let Err(e) = state.store.cancel(&id).await {
                            tracing::warn!(job_id = %id, error = %e, "cancelling on a signal frame failed");
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
