//! Live output, interactive input and cancellation, through the real stack: SSE replay and
//! resume, batched streaming up to the output cap, WebSocket sessions with several round trips,
//! cancelling queued and running jobs, and many subscribers on one job.

use crate::helpers::{app, assert_verdict, both_modes, TestApp};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// One SSE event as a client parses it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SseEvent {
    id: String,
    event: String,
    data: String,
}

/// What an SSE connection delivered, until the server closed it.
#[derive(Debug, Default)]
struct SseCapture {
    events: Vec<SseEvent>,
    /// Comment lines (`:`): the heartbeats.
    comments: usize,
}

impl SseCapture {
    fn text(&self, kind: &str) -> String {
        self.events
            .iter()
            .filter(|e| e.event == kind)
            .map(|e| e.data.as_str())
            .collect()
    }
    fn done(&self) -> Value {
        let last = self.events.last().expect("at least one event");
        assert_eq!(
            last.event, "done",
            "the stream ends with done: {:?}",
            self.events
        );
        serde_json::from_str(&last.data).unwrap()
    }
}

/// Parses an SSE body (the `\n`-terminated lines axum writes).
fn parse_sse(buffer: &mut String, capture: &mut SseCapture) {
    while let Some(end) = buffer.find("\n\n") {
        let block: String = buffer.drain(..end + 2).collect();
        let mut event = SseEvent {
            id: String::new(),
            event: "message".into(),
            data: String::new(),
        };
        let mut data_lines = Vec::new();
        let mut is_event = false;
        for line in block.lines() {
            if line.starts_with(':') {
                capture.comments += 1;
            } else if let Some(v) = line.strip_prefix("id: ") {
                event.id = v.to_string();
                is_event = true;
            } else if let Some(v) = line.strip_prefix("event: ") {
                event.event = v.to_string();
                is_event = true;
            } else if let Some(v) = line.strip_prefix("data:") {
                data_lines.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                is_event = true;
            }
        }
        if is_event {
            event.data = data_lines.join("\n");
            capture.events.push(event);
        }
    }
}

/// Follows `/v1/jobs/{id}/events` until the server ends the stream; `on_event` sees each event
/// as it arrives.
async fn sse(
    app: &TestApp,
    id: &str,
    last_event_id: Option<&str>,
    mut on_event: impl FnMut(&SseEvent),
) -> SseCapture {
    let mut request = app.http.get(format!("{}/v1/jobs/{id}/events", app.base));
    if let Some(last) = last_event_id {
        request = request.header("Last-Event-ID", last);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut capture = SseCapture::default();
    while let Some(chunk) = body.next().await {
        buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        let before = capture.events.len();
        parse_sse(&mut buffer, &mut capture);
        for e in &capture.events[before..] {
            on_event(e);
        }
    }
    capture
}

async fn submit(app: &TestApp, job: Value) -> String {
    let (status, body) = app.post_jobs("", job.to_string()).await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().to_string()
}

async fn delete(app: &TestApp, id: &str) -> (u16, Value) {
    let resp = app
        .http
        .delete(format!("{}/v1/jobs/{id}", app.base))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_subscriber_replays_everything_and_gets_done() {
    let app = app();
    let src = "import sys\nfor i in range(5):\n    print('out', i, flush=True)\n    print('err', i, file=sys.stderr, flush=True)";
    let job = app.run(json!({"language": "python", "source": src})).await;
    assert_verdict(&job, "ok");
    let id = job["id"].as_str().unwrap();
    let capture = sse(&app, id, None, |_| {}).await;
    let kinds: Vec<&str> = capture.events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"status"), "{kinds:?}");
    assert!(
        capture.events[0].data.contains("queued"),
        "{:?}",
        capture.events
    );
    assert!(
        capture
            .events
            .iter()
            .any(|e| e.event == "status" && e.data.contains(r#""step":"run""#)),
        "{:?}",
        capture.events
    );
    assert_eq!(
        capture.text("stdout"),
        job["run"]["stdout"].as_str().unwrap()
    );
    assert_eq!(
        capture.text("stderr"),
        job["run"]["stderr"].as_str().unwrap()
    );
    assert_eq!(capture.done(), job, "done carries the whole job");
    let ids: Vec<&str> = capture.events.iter().map(|e| e.id.as_str()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "every event has its own id");
}

#[tokio::test(flavor = "multi_thread")]
async fn last_event_id_resumes_without_duplicates() {
    let app = app();
    let src = "for i in range(20): print('line', i, flush=True)";
    let job = app.run(json!({"language": "python", "source": src})).await;
    let id = job["id"].as_str().unwrap();
    let all = sse(&app, id, None, |_| {}).await;
    assert!(all.events.len() >= 4, "{:?}", all.events);
    for cut in [0, 1, all.events.len() / 2, all.events.len() - 2] {
        let resumed = sse(&app, id, Some(&all.events[cut].id), |_| {}).await;
        assert_eq!(
            resumed.events,
            all.events[cut + 1..],
            "resuming after event {cut} gives exactly the rest"
        );
    }
    let (status, body) = {
        let resp = app
            .http
            .get(format!("{}/v1/jobs/{id}/events", app.base))
            .header("Last-Event-ID", "not-an-id")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "Last-Event-ID");
}

/// A follower that reconnects after `done` (a browser's `EventSource` resumes from the id of
/// the last event it saw) is told there is nothing more: 204 over SSE, a normal close over a
/// WebSocket, at once, not heartbeats until the job expires. An id out of Redis' range is a
/// 400 naming the header, not a read that fails forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_follower_resuming_after_done_is_ended_at_once() {
    let app = app();
    let job = app
        .run(json!({"language": "python", "source": "print('hi')"}))
        .await;
    let id = job["id"].as_str().unwrap();
    let all = sse(&app, id, None, |_| {}).await;
    let done_id = all.events.last().unwrap().id.clone();
    assert_eq!(all.events.last().unwrap().event, "done");
    let get = |last: &str| {
        app.http
            .get(format!("{}/v1/jobs/{id}/events", app.base))
            .header("Last-Event-ID", last)
            .timeout(Duration::from_secs(3))
            .send()
    };
    let resp = get(&done_id).await.expect("answered at once");
    assert_eq!(resp.status(), 204, "after done: {:?}", resp.headers());
    // Resuming from the event before done still gets done.
    let before = &all.events[all.events.len() - 2].id;
    let rest = sse(&app, id, Some(before), |_| {}).await;
    assert_eq!(rest.events.len(), 1);
    rest.done();
    let resp = get("99999999999999999999999-0").await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["field"], "Last-Event-ID", "{body}");

    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url(
            &app,
            &format!("/v1/jobs/{id}/ws"),
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("last-event-id", done_id.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(3), ws.next())
        .await
        .expect("the socket is closed at once after done");
    assert!(
        matches!(next, Some(Ok(Message::Close(_))) | None),
        "{next:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn output_is_live_while_the_program_runs() {
    let app = app();
    let src = "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')";
    let id = submit(&app, json!({"language": "python", "source": src})).await;
    let mut status_when_first_arrived = None;
    let (base, http, job_id) = (app.base.clone(), app.http.clone(), id.clone());
    let capture = sse(&app, &id, None, |e| {
        if e.event == "stdout" && e.data.contains("first") && status_when_first_arrived.is_none() {
            // Read the job's status the moment its first line arrives.
            let (base, http, job_id) = (base.clone(), http.clone(), job_id.clone());
            status_when_first_arrived = Some(std::thread::spawn(move || {
                tokio::runtime::Runtime::new()
                    .unwrap()
                    .block_on(async move {
                        let v: Value = http
                            .get(format!("{base}/v1/jobs/{job_id}"))
                            .send()
                            .await
                            .unwrap()
                            .json()
                            .await
                            .unwrap();
                        v["status"].as_str().unwrap().to_string()
                    })
            }));
        }
    })
    .await;
    let status = status_when_first_arrived
        .expect("the first line arrived as an event")
        .join()
        .unwrap();
    assert_eq!(status, "running", "output arrived before the job ended");
    assert_eq!(capture.text("stdout"), "first\nsecond\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_megabyte_of_output_streams_in_batches_up_to_the_cap() {
    let app = app();
    // 10,000 lines of 100 bytes; the cap stops it at 65,536 bytes.
    let src = "import sys\nline = 'x' * 99 + '\\n'\nfor i in range(10000): sys.stdout.write(line)";
    let id = submit(
        &app,
        json!({"language": "python", "source": src, "limits": {"output_bytes": 65536}}),
    )
    .await;
    let capture = sse(&app, &id, None, |_| {}).await;
    let job = capture.done();
    assert_verdict(&job, "output_limit_exceeded");
    let streamed = capture.text("stdout");
    assert_eq!(streamed.len(), 65536, "exactly the cap");
    assert_eq!(streamed, job["run"]["stdout"].as_str().unwrap());
    let truncated: Vec<&SseEvent> = capture
        .events
        .iter()
        .filter(|e| e.event == "truncated")
        .collect();
    assert_eq!(truncated.len(), 1, "{:?}", capture.events.len());
    let t: Value = serde_json::from_str(&truncated[0].data).unwrap();
    assert_eq!(t["output_bytes"], 65536);
    let chunks = capture
        .events
        .iter()
        .filter(|e| e.event == "stdout")
        .count();
    assert!(
        chunks < 100,
        "656 lines arrived in {chunks} events: batched, not one per line"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_subscribers_on_one_job_receive_identical_streams() {
    let app = app();
    let src =
        "import time\nfor i in range(60):\n    print('tick', i, flush=True)\n    time.sleep(0.01)";
    let id = submit(&app, json!({"language": "python", "source": src})).await;
    let clients = (0..50).map(|i| {
        let (app, id) = (crate::helpers::app(), id.clone());
        tokio::spawn(async move {
            // Some join at once, some while it runs, some late: all must see the same.
            tokio::time::sleep(Duration::from_millis(i * 20)).await;
            sse(&app, &id, None, |_| {}).await.events
        })
    });
    let streams: Vec<Vec<SseEvent>> = futures_util::future::join_all(clients)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let first = &streams[0];
    assert_eq!(first.last().unwrap().event, "done");
    let stdout: String = first
        .iter()
        .filter(|e| e.event == "stdout")
        .map(|e| e.data.as_str())
        .collect();
    assert_eq!(stdout.lines().count(), 60, "{stdout}");
    for (i, s) in streams.iter().enumerate() {
        assert_eq!(s, first, "client {i} saw a different stream");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_streams_get_heartbeats() {
    let app = app();
    let id = submit(
        &app,
        json!({"language": "python", "source": "import time\ntime.sleep(3)"}),
    )
    .await;
    let capture = sse(&app, &id, None, |_| {}).await;
    assert_verdict(&capture.done(), "ok");
    // The test api sends one every second (RCE_SSE_HEARTBEAT_SECS).
    assert!(capture.comments >= 1, "no heartbeat in a 3 s silence");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_an_unknown_job_are_404() {
    let app = app();
    let resp = app
        .http
        .get(format!("{}/v1/jobs/no-such-job/events", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let (status, _) = delete(&app, "no-such-job").await;
    assert_eq!(status, 404);
}

fn ws_url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.base.replacen("http://", "ws://", 1))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// Reads server messages until `pred` matches one (returned), or the socket closes (panic).
async fn ws_until(ws: &mut Ws, seen: &mut Vec<Value>, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("the server answers within 20 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = message {
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            seen.push(v.clone());
            if pred(&v) {
                return v;
            }
        }
    }
}

both_modes! {
    async fn an_interactive_session_over_a_websocket(mode) {
        let app = app();
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&app, "/v1/jobs/ws"))
            .await
            .unwrap();
        // Reads a line, answers, reads again: like a terminal session, three round trips.
        let src = "while True:\n    try:\n        line = input()\n    except EOFError:\n        print('bye')\n        break\n    print(line.upper())";
        ws_send(
            &mut ws,
            json!({"type": "submit", "job": {"language": mode.lang("python"), "source": src, "interactive": true}}),
        )
        .await;
        let mut seen = Vec::new();
        let accepted = ws_until(&mut ws, &mut seen, |v| v["event"] != "status").await;
        assert_eq!(accepted["event"], "accepted", "{accepted}");
        let id = accepted["data"]["id"].as_str().unwrap().to_string();
        let mut stdout = String::new();
        for word in ["hello", "interactive", "world"] {
            ws_send(
                &mut ws,
                json!({"type": "stdin", "data": format!("{word}\n")}),
            )
            .await;
            let expected = format!("{}\n", word.to_uppercase());
            while !stdout.ends_with(&expected) {
                let e = ws_until(&mut ws, &mut seen, |v| v["event"] == "stdout").await;
                stdout.push_str(e["data"].as_str().unwrap());
            }
        }
        ws_send(&mut ws, json!({"type": "stdin_eof"})).await;
        let done = ws_until(&mut ws, &mut seen, |v| v["event"] == "done").await;
        assert_eq!(done["data"]["id"], id.as_str());
        assert_verdict(&done["data"], "ok");
        assert_eq!(
            done["data"]["run"]["stdout"],
            "HELLO\nINTERACTIVE\nWORLD\nbye\n"
        );
        // The server closes the socket after done.
        let next = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap();
        assert!(
            matches!(next, Some(Ok(Message::Close(_))) | None),
            "{next:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_on_a_plain_job_refuses_input_but_streams() {
    let app = app();
    let id = submit(
        &app,
        json!({"language": "python", "source": "import time\ntime.sleep(1)\nprint('done')"}),
    )
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&app, &format!("/v1/jobs/{id}/ws")))
        .await
        .unwrap();
    ws_send(&mut ws, json!({"type": "stdin", "data": "x"})).await;
    let mut seen = Vec::new();
    let error = ws_until(&mut ws, &mut seen, |v| v["event"] == "error").await;
    assert_eq!(error["data"]["error"]["code"], "not_interactive");
    ws_send(&mut ws, json!({"type": "what"})).await;
    let error = ws_until(&mut ws, &mut seen, |v| v["event"] == "error").await;
    assert_eq!(error["data"]["error"]["code"], "malformed_request");
    let done = ws_until(&mut ws, &mut seen, |v| v["event"] == "done").await;
    assert_eq!(done["data"]["run"]["stdout"], "done\n");
}

both_modes! {
    async fn cancel_a_queued_and_a_running_job(mode) {
        let app = app();
        // The solo language has one container: the first job holds it, the second must queue.
        let sleeper = "import time\nprint('started', flush=True)\ntime.sleep(20)";
        let running = submit(
            &app,
            json!({"language": mode.lang("python_solo"), "source": sleeper, "limits": {"wall_time_ms": 25000}}),
        )
        .await;
        let queued = submit(
            &app,
            json!({"language": mode.lang("python_solo"), "source": "print('I must never run')"}),
        )
        .await;
        // Follow the first job; cancel once its program really runs (its first line arrived).
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let follower = {
            let (app, id) = (crate::helpers::app(), running.clone());
            tokio::spawn(async move {
                let mut started_tx = Some(started_tx);
                sse(&app, &id, None, |e| {
                    if e.event == "stdout" && e.data.contains("started") {
                        if let Some(tx) = started_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                })
                .await
            })
        };
        tokio::time::timeout(Duration::from_secs(30), started_rx)
            .await
            .expect("the first job started within 30 s")
            .unwrap();
        let (_, second) = app.get_job(&queued).await;
        assert_eq!(second["status"], "queued", "{second}");

        let (status, body) = delete(&app, &queued).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "cancelled");
        assert_eq!(body["verdict"], "cancelled");

        let asked = Instant::now();
        let (status, body) = delete(&app, &running).await;
        assert_eq!(status, 202, "{body}");
        let capture = follower.await.unwrap();
        let took = asked.elapsed();
        let first = capture.done();
        assert_eq!(first["status"], "cancelled", "{first}");
        assert_eq!(first["verdict"], "cancelled", "{first}");
        assert_eq!(first["run"]["stdout"], "started\n", "{first}");
        assert!(
            first["run"]["wall_ms"].as_u64().unwrap() < 15_000,
            "killed long before its 20 s sleep: {first}"
        );
        assert!(took < Duration::from_secs(5), "cancel took {took:?}");

        // The queued job never ran, even after the container was free again.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, second) = app.get_job(&queued).await;
        assert_eq!(second["status"], "cancelled", "{second}");
        assert!(
            second["run"].is_null() && second["started_at"].is_null(),
            "{second}"
        );

        // Cancelling again is a harmless no-op; a finished job cannot be cancelled.
        let (status, body) = delete(&app, &queued).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("cancelled")));
        let finished = app.run_source(&mode.lang("python_solo"), "print('fine')", "").await;
        assert_verdict(&finished, "ok");
        let (status, body) = delete(&app, finished["id"].as_str().unwrap()).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "already_finished");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn live_streams_end_cleanly_when_the_api_shuts_down() {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (base, api) = crate::helpers::second_api(async move {
        let _ = stop_rx.await;
    });
    let app = TestApp {
        base,
        http: reqwest::Client::new(),
    };
    // Ready once it answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the second api never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = submit(
        &app,
        json!({"language": "python", "source": "import time\nprint('up', flush=True)\ntime.sleep(20)", "limits": {"wall_time_ms": 25000}}),
    )
    .await;
    let (up_tx, up_rx) = tokio::sync::oneshot::channel();
    let follower = {
        let (base, id) = (app.base.clone(), id.clone());
        tokio::spawn(async move {
            let app = TestApp {
                base,
                http: reqwest::Client::new(),
            };
            let mut up_tx = Some(up_tx);
            sse(&app, &id, None, |e| {
                if e.event == "stdout" {
                    if let Some(tx) = up_tx.take() {
                        let _ = tx.send(());
                    }
                }
            })
            .await
        })
    };
    up_rx.await.unwrap();
    let asked = Instant::now();
    stop_tx.send(()).unwrap();
    let capture = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .expect("the stream ended when the api shut down")
        .unwrap();
    assert!(
        capture.events.iter().all(|e| e.event != "done"),
        "it ended because of the shutdown, not the job"
    );
    tokio::time::timeout(Duration::from_secs(10), api)
        .await
        .expect("the api finished shutting down")
        .unwrap()
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(10));
    // The job itself is unaffected: the shared api sees it through (cancelled, to be quick).
    let shared = crate::helpers::app();
    let (status, _) = delete(&shared, &id).await;
    assert_eq!(status, 202);
    let end = sse(&shared, &id, None, |_| {}).await.done();
    assert_eq!(end["verdict"], "cancelled");
}

/// Follows job `id` and returns, for each stdout line `t=<unix seconds>`, how long after the
/// program printed it the event arrived here (same kernel clock inside and outside the sandbox).
async fn delivery_delays(app: &TestApp, id: &str) -> Vec<Duration> {
    let mut delays = Vec::new();
    let capture = sse(app, id, None, |e| {
        if e.event != "stdout" {
            return;
        }
        let arrived = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        for line in e.data.lines() {
            if let Some(t) = line.strip_prefix("t=") {
                let printed: f64 = t.parse().unwrap();
                delays.push(Duration::from_secs_f64((arrived - printed).max(0.0)));
            }
        }
    })
    .await;
    assert_verdict(&capture.done(), "ok");
    delays
}

/// Output printed after a long silence arrives at once: the api's blocking read of the event
/// stream must not time out and reconnect (with backoff) while the program is quiet.
#[tokio::test(flavor = "multi_thread")]
async fn output_after_a_silence_arrives_at_once() {
    let app = app();
    let printer = |pauses: &[u32]| {
        let mut src = String::from("import time\n");
        for p in pauses {
            src.push_str(&format!(
                "time.sleep({p})\nprint(f't={{time.time()}}', flush=True)\n"
            ));
        }
        src
    };
    let short = json!({"language": "python", "source": printer(&[0, 3, 10]), "limits": {"wall_time_ms": 20000}});
    let long =
        json!({"language": "python", "source": printer(&[27]), "limits": {"wall_time_ms": 30000}});
    let (a, b) = (submit(&app, short).await, submit(&app, long).await);
    let readers = readers_through(rce_service::redis_conn::events_reader_name(&b), 25);
    let ((short, long), readers) = tokio::join!(
        async { tokio::join!(delivery_delays(&app, &a), delivery_delays(&app, &b)) },
        readers
    );
    assert_eq!((short.len(), long.len()), (3, 1), "{short:?} {long:?}");
    // On a quiet machine each arrives within a few milliseconds (the issue asked for 50); the
    // bound is loose because the suite's own load once stretched one to 55 ms, while the bug
    // this guards against made them 0.3 to 3 s late. The connection check below is the exact one.
    for (silence, delay) in [0, 3, 10, 27].iter().zip(short.iter().chain(&long)) {
        eprintln!("output after {silence} s of silence arrived {delay:?} after it was printed");
        assert!(
            *delay < Duration::from_millis(250),
            "output after {silence} s of silence arrived {delay:?} late"
        );
    }
    // Quiet underneath too: the follower's blocking reads kept one Redis connection through the
    // 27 s silence (a read that timed out would have dropped it and opened another).
    assert_one_connection(&readers, "the api's event reader");
}

/// The Redis client ids of the connections named `name`, sampled every second for `seconds`.
async fn readers_through(name: String, seconds: u64) -> Vec<Vec<u64>> {
    let client = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut samples = Vec::new();
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .unwrap();
        let ids = list
            .lines()
            .filter(|line| line.split(' ').any(|f| f == format!("name={name}")))
            .filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok())
            .collect();
        samples.push(ids);
    }
    samples
}

/// Every sample after the reader first connected shows the same one connection.
fn assert_one_connection(samples: &[Vec<u64>], what: &str) {
    let seen: Vec<&Vec<u64>> = samples.iter().skip_while(|ids| ids.is_empty()).collect();
    assert!(!seen.is_empty(), "{what} never connected: {samples:?}");
    let first = seen[0];
    assert_eq!(first.len(), 1, "{what}: {samples:?}");
    // The last samples may come after the job ended and the reader closed.
    let live: Vec<_> = seen.iter().take_while(|ids| !ids.is_empty()).collect();
    assert!(
        live.iter().all(|ids| **ids == first) && live.len() + 2 >= seen.len(),
        "{what} reconnected during the silence (client ids per second): {samples:?}"
    );
}

/// Input sent after the program waited idle reaches it at once: the runner's blocking read of
/// the job's input stream must not time out and back off either.
#[tokio::test(flavor = "multi_thread")]
async fn input_after_an_idle_wait_is_echoed_at_once() {
    let app = app();
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&app, "/v1/jobs/ws"))
        .await
        .unwrap();
    let src = "print('ready', flush=True)\nprint(input().upper(), flush=True)";
    ws_send(
        &mut ws,
        json!({"type": "submit", "job": {"language": "python", "source": src, "interactive": true, "limits": {"wall_time_ms": 20000}}}),
    )
    .await;
    let mut seen = Vec::new();
    ws_until(&mut ws, &mut seen, |v| {
        v["event"] == "stdout" && v["data"].as_str().unwrap_or("").contains("ready")
    })
    .await;
    let job_id = seen
        .iter()
        .find(|v| v["event"] == "accepted")
        .and_then(|v| v["data"]["id"].as_str())
        .map(str::to_string);
    let readers = match &job_id {
        Some(id) => readers_through(rce_service::redis_conn::stdin_reader_name(id), 12).await,
        None => panic!("no job id among the first events: {seen:?}"),
    };
    let sent = Instant::now();
    ws_send(&mut ws, json!({"type": "stdin", "data": "echo\n"})).await;
    ws_until(&mut ws, &mut seen, |v| {
        v["event"] == "stdout" && v["data"].as_str().unwrap_or("").contains("ECHO")
    })
    .await;
    let round_trip = sent.elapsed();
    assert!(
        round_trip < Duration::from_millis(250),
        "an echo after 12 s idle took {round_trip:?}"
    );
    // The runner's input reader kept one Redis connection through the idle wait.
    assert_one_connection(&readers, "the runner's stdin reader");
}

/// A request to a WebSocket route that is not a handshake gets the documented JSON error naming
/// the header that is wrong, not axum's plain text.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_websocket_handshake_is_a_json_400() {
    let app = app();
    let id = submit(&app, json!({"language": "python", "source": "print(1)"})).await;
    for path in [format!("/v1/jobs/{id}/ws"), "/v1/jobs/ws".to_string()] {
        let resp = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], "malformed_request", "{path}: {body}");
        assert_eq!(body["error"]["field"], "Connection", "{path}: {body}");
        let resp = app
            .http
            .get(format!("{}{path}", app.base))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.expect("a JSON error body");
        assert_eq!(
            body["error"]["field"], "Sec-WebSocket-Key",
            "{path}: {body}"
        );
    }
}
