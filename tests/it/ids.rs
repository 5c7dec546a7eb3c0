//! Job ids in request paths are checked before they reach Redis: anything but a job id in its
//! canonical form (a lowercase hyphenated UUID) is a JSON 404 on every route that takes one, never
//! a 503 (which `<id>:events`, the key of the job's event stream, used to produce: a fake storage
//! outage, `Retry-After` included, that any client could trigger).

use crate::helpers::{app, TestApp};
use serde_json::{json, Value};

/// Sends `method` to `path` and returns status, whether a `Retry-After` came, and the JSON body.
async fn request(app: &TestApp, method: reqwest::Method, path: &str) -> (u16, bool, Value) {
    let resp = app
        .http
        .request(method, format!("{}{path}", app.base))
        .send()
        .await
        .expect("api reachable");
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key("retry-after");
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

/// Asserts the 404 of an id that cannot name a job: JSON in the usual error shape, saying why.
#[track_caller]
fn assert_not_a_job_id(what: &str, (status, retry_after, body): (u16, bool, Value)) {
    assert_eq!(status, 404, "{what}: {body}");
    assert!(!retry_after, "{what}: a 404 has no Retry-After");
    assert_eq!(body["error"]["code"], "not_found", "{what}: {body}");
    assert!(body["error"]["field"].is_null(), "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("job id") && message.contains("UUID"),
        "{what}: the message must say what a job id is: {body}"
    );
    assert!(message.len() < 300, "{what}: the id is not echoed: {body}");
}

/// The paths of every route that takes a job id, for `id`.
fn routes_for(id: &str) -> Vec<(reqwest::Method, String)> {
    vec![
        (reqwest::Method::GET, format!("/v1/jobs/{id}")),
        (reqwest::Method::DELETE, format!("/v1/jobs/{id}")),
        (reqwest::Method::GET, format!("/v1/jobs/{id}/events")),
        // Not a WebSocket handshake: the id is checked before the handshake is.
        (reqwest::Method::GET, format!("/v1/jobs/{id}/ws")),
    ]
}

/// A finished job's id.
async fn real_id(app: &TestApp) -> String {
    let job = app
        .run(json!({"language": "python", "source": "print(1)"}))
        .await;
    job["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_of_a_jobs_event_stream_is_not_a_job_id() {
    let app = app();
    let id = real_id(&app).await;
    for suffix in [":events", ":stdin", ":"] {
        for (method, path) in routes_for(&format!("{id}{suffix}")) {
            let what = format!("{method} {path}");
            assert_not_a_job_id(&what, request(&app, method, &path).await);
        }
    }
    // The job itself is untouched.
    let (status, job) = app.get_job(&id).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["verdict"], "ok", "{job}");
}

#[tokio::test(flavor = "multi_thread")]
async fn junk_ids_are_404_on_every_route() {
    let app = app();
    let long = "a".repeat(10 << 10);
    let junk = [
        "x",
        "..%2f..",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "%FF%FE",
        "rce:done",
        "*",
        long.as_str(),
        // The hyphenless, braced and URN forms of a UUID: not how the api spells ids.
        "0193a0b46c1e7d2a9f3b5e8d2c4a1b07",
        "%7B0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b07%7D",
        "urn:uuid:0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b07",
    ];
    for id in junk {
        for (method, path) in routes_for(id) {
            let what = format!("{method} {}", &path[..path.len().min(80)]);
            assert_not_a_job_id(&what, request(&app, method, &path).await);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uppercase_id_is_not_the_job() {
    // Documented in docs/api.md: ids are matched exactly as the api returned them.
    let app = app();
    let id = real_id(&app).await;
    for (method, path) in routes_for(&id.to_uppercase()) {
        let what = format!("{method} {path}");
        assert_not_a_job_id(&what, request(&app, method, &path).await);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_handshake_with_a_junk_id_is_refused_with_404() {
    let app = app();
    let id = real_id(&app).await;
    let ws_base = app.base.replacen("http://", "ws://", 1);
    for junk in [
        format!("{id}:events"),
        "x".to_string(),
        "..%2f..".to_string(),
    ] {
        let url = format!("{ws_base}/v1/jobs/{junk}/ws");
        match tokio_tungstenite::connect_async(&url).await {
            Ok(_) => panic!("{url}: the handshake succeeded"),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 404, "{url}");
                if let Some(body) = resp.body() {
                    let body: Value = serde_json::from_slice(body).unwrap();
                    assert_eq!(body["error"]["code"], "not_found", "{url}: {body}");
                }
            }
            Err(e) => panic!("{url}: {e}"),
        }
    }
    // The real id still attaches.
    let (ws, _) = tokio_tungstenite::connect_async(format!("{ws_base}/v1/jobs/{id}/ws"))
        .await
        .expect("a real job's websocket");
    drop(ws);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_well_formed_unknown_id_is_still_a_plain_404() {
    let app = app();
    let unknown = uuid::Uuid::now_v7().to_string();
    for (method, path) in routes_for(&unknown) {
        let what = format!("{method} {path}");
        if path.ends_with("/ws") {
            // A valid id goes on to the handshake check (the framework's plain 400) when the
            // request is not a WebSocket handshake; a real handshake gets the 404.
            continue;
        }
        let (status, retry_after, body) = request(&app, method, &path).await;
        assert_eq!(status, 404, "{what}: {body}");
        assert!(!retry_after, "{what}");
        assert_eq!(body["error"]["code"], "not_found", "{what}: {body}");
        assert_eq!(body["error"]["message"], "job not found", "{what}: {body}");
    }
    let url = format!(
        "{}/v1/jobs/{unknown}/ws",
        app.base.replacen("http://", "ws://", 1)
    );
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 404, "{url}")
        }
        other => panic!("{url}: expected a 404, got {other:?}"),
    }
}
