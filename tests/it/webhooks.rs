//! Webhooks and v1 batches through the real stack. The receivers are plain HTTP servers of the
//! test on 127.0.0.1 (the test api allows only 127.0.0.1/32 among non-public networks): what
//! arrives, signed how, retried how, never twice after a 2xx, never holding up other jobs; and
//! destinations a client must not reach.

use crate::helpers::{app, TestApp, IDLE, WEBHOOK_SECRET};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Hit {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    answered: u16,
}

/// A webhook receiver: answers 500 to its first `fail_first` requests, 200 after; each answer
/// waits for a permit of `gate` (released by the test) when there is one.
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Requests read, answered or not yet (held at the gate).
    arrivals: Arc<std::sync::atomic::AtomicUsize>,
}

async fn read_request(
    stream: &mut tokio::net::TcpStream,
) -> Option<(String, String, HashMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((method, target, headers, buf[header_end..].to_vec()))
}

impl Receiver {
    async fn start(fail_first: usize, gate: Option<Arc<Semaphore>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/hook?from=test",
            listener.local_addr().unwrap().port()
        );
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let arrivals: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (recorded, arrived) = (hits.clone(), arrivals.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (hits, gate, arrived) = (recorded.clone(), gate.clone(), arrived.clone());
                tokio::spawn(async move {
                    let Some((method, target, headers, body)) = read_request(&mut stream).await
                    else {
                        return;
                    };
                    arrived.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if let Some(gate) = gate {
                        gate.acquire().await.unwrap().forget();
                    }
                    let answered = {
                        let mut hits = hits.lock().unwrap();
                        let answered = if hits.len() < fail_first { 500 } else { 200 };
                        hits.push(Hit {
                            method,
                            target,
                            headers,
                            body,
                            answered,
                        });
                        answered
                    };
                    let reply = format!(
                        "HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        Self {
            url,
            hits,
            arrivals,
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until some hit answered 200, and returns every hit so far.
    async fn until_delivered(&self) -> Vec<Hit> {
        for _ in 0..300 {
            let hits = self.hits();
            if hits.iter().any(|h| h.answered == 200) {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no delivery within 30 s: {:?}", self.hits());
    }
}

fn verify(hit: &Hit) {
    let header = &hit.headers["x-rce-signature"];
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("signature header {header:?}"));
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&hit.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature verifies against the body");
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
    assert!((0..120).contains(&age), "t is the sending time: {t}");
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.post_json(path, &body).await
}

#[tokio::test]
async fn a_finished_job_is_posted_signed_once() {
    let app = app();
    let receiver = Receiver::start(0, None).await;
    let (status, job) = post(
        &app,
        "/v1/jobs?wait=true",
        json!({"language": "python", "source": "print('hooked')", "callback_url": receiver.url}),
    )
    .await;
    assert_eq!(status, 200, "{job}");
    let hits = receiver.until_delivered().await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    let hit = &hits[0];
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.target, "/hook?from=test");
    assert_eq!(hit.headers["x-rce-delivery"], job["id"].as_str().unwrap());
    assert_eq!(hit.headers["content-type"], "application/json");
    verify(hit);
    let body: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["id"], job["id"]);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["run"]["stdout"], "hooked\n");
    // Delivered once: nothing more comes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.hits().len(), 1);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_the_same_delivery_id_until_a_2xx() {
    let app = app();
    let receiver = Receiver::start(3, None).await;
    let (_, job) = post(
        &app,
        "/v1/jobs",
        json!({"language": "python", "source": "print(1)", "callback_url": receiver.url}),
    )
    .await;
    let id = job["id"].as_str().unwrap();
    let hits = receiver.until_delivered().await;
    assert_eq!(
        hits.iter().map(|h| h.answered).collect::<Vec<_>>(),
        [500, 500, 500, 200]
    );
    for hit in &hits {
        assert_eq!(hit.headers["x-rce-delivery"], id, "a stable delivery id");
        verify(hit);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.hits().len(), 4, "never again after the 2xx");
}

#[tokio::test]
async fn destinations_a_client_must_not_reach_are_refused() {
    let app = app();
    for url in [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://127.0.0.2:9/",
        "http://0.0.0.0:9/",
        "http://167772161/",
        "http://0xa.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "http://user:secret@127.0.0.1:9/",
        "not a url",
    ] {
        let (status, body) = post(
            &app,
            "/v1/jobs",
            json!({"language": "python", "source": "print(1)", "callback_url": url}),
        )
        .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["field"], "callback_url", "{url}: {body}");
    }
    let (status, body) = post(
        &app,
        "/submissions",
        json!({"language_id": 71, "source_code": "print(1)", "callback_url": "http://169.254.169.254/"}),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["callback_url"][0]
            .as_str()
            .unwrap()
            .contains("link-local"),
        "{body}"
    );
}

#[tokio::test]
async fn a_judge0_callback_is_a_put_of_judge0_fields() {
    let app = app();
    let receiver = Receiver::start(0, None).await;
    let (status, created) = post(
        &app,
        "/submissions",
        json!({"language_id": 71, "source_code": "print(6 * 7)", "callback_url": receiver.url}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let hits = receiver.until_delivered().await;
    let hit = &hits[0];
    assert_eq!(hit.method, "PUT");
    let body: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["token"], created["token"]);
    assert_eq!(body["status"], json!({"id": 3, "description": "Accepted"}));
    assert_eq!(body["stdout"], "NDIK\n", "base64, as Judge0 sends it");
    let (_, config) = app.get_json("/config_info").await;
    assert_eq!(config["enable_callbacks"], true);
}

#[tokio::test]
async fn a_job_cancelled_in_the_queue_is_sent_too() {
    let app = app();
    let receiver = Receiver::start(0, None).await;
    let (status, job) = post(
        &app,
        "/v1/jobs",
        json!({"language": IDLE, "source": "print(1)", "callback_url": receiver.url}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    let cancelled = app
        .http
        .delete(format!("{}/v1/jobs/{id}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status().as_u16(), 200);
    let hits = receiver.until_delivered().await;
    let body: Value = serde_json::from_slice(&hits[0].body).unwrap();
    assert_eq!(
        (body["id"].as_str(), body["status"].as_str()),
        (Some(id), Some("cancelled"))
    );
}

#[tokio::test]
async fn a_receiver_that_hangs_holds_up_no_other_job() {
    let app = app();
    let gate = Arc::new(Semaphore::new(0));
    let receiver = Receiver::start(0, Some(gate.clone())).await;
    let (_, first) = post(
        &app,
        "/v1/jobs?wait=true",
        json!({"language": "python", "source": "print('first')", "callback_url": receiver.url}),
    )
    .await;
    assert_eq!(first["status"], "completed");
    // Wait until its webhook arrived and is held, unanswered, at the gate.
    for _ in 0..300 {
        if receiver.arrivals.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(receiver.arrivals.load(std::sync::atomic::Ordering::SeqCst) > 0);
    // Meanwhile other jobs, with webhooks of their own, finish and are recorded.
    let other = Receiver::start(0, None).await;
    for i in 0..3 {
        let (status, job) = post(
            &app,
            "/v1/jobs?wait=true",
            json!({"language": "python", "source": format!("print({i})"), "callback_url": other.url}),
        )
        .await;
        assert_eq!(
            (status, job["status"].as_str()),
            (200, Some("completed")),
            "{job}"
        );
    }
    for _ in 0..300 {
        if other.hits().iter().filter(|h| h.answered == 200).count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        other.hits().len(),
        3,
        "the other jobs' webhooks went out while one hung"
    );
    assert!(
        receiver.hits().is_empty(),
        "the hung one was never answered meanwhile"
    );
    gate.add_permits(100);
    receiver.until_delivered().await;
}

#[tokio::test]
async fn v1_batches_admit_each_job_on_its_own_and_read_many() {
    let app = app();
    let (status, body) = post(
        &app,
        "/v1/jobs/batch",
        json!({"jobs": [
            {"language": "python", "source": "print('a')"},
            {"language": "cobol", "source": "x"},
            {"language": "python", "source": "print('c')", "limits": {"memory_mb": 999999}},
            {"language": "javascript", "source": "console.log('d')"},
        ]}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 4);
    assert!(jobs[0]["id"].is_string() && jobs[3]["id"].is_string());
    assert_eq!(jobs[0]["status"], "queued");
    assert_eq!(jobs[1]["error"]["field"], "jobs[1].language");
    assert_eq!(jobs[2]["error"]["field"], "jobs[2].limits.memory_mb");
    let ids = [
        jobs[0]["id"].as_str().unwrap(),
        jobs[3]["id"].as_str().unwrap(),
    ];
    let unknown = "01900000-0000-7000-8000-000000000000";
    let mut read = Value::Null;
    for _ in 0..300 {
        let response = app
            .http
            .get(format!(
                "{}/v1/jobs?ids={},{unknown},{}",
                app.base, ids[0], ids[1]
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        read = response.json().await.unwrap();
        if read["jobs"][0]["status"] == "completed" && read["jobs"][2]["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read["jobs"][0]["run"]["stdout"], "a\n", "{read}");
    assert_eq!(read["jobs"][1], Value::Null);
    assert_eq!(read["jobs"][2]["run"]["stdout"], "d\n");

    let (status, body) = post(&app, "/v1/jobs/batch", json!({"jobs": []})).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("jobs"))
    );
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"language": "python", "source": "1"}))
        .collect();
    assert_eq!(
        post(&app, "/v1/jobs/batch", json!({"jobs": many})).await.0,
        422
    );
    assert_eq!(
        post(&app, "/v1/jobs/batch", json!({"jobz": []})).await.0,
        400
    );
    let bad = app
        .http
        .get(format!("{}/v1/jobs?ids=not-an-id", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let none = app
        .http
        .get(format!("{}/v1/jobs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status().as_u16(), 400);
}
