//! The shape of a request, checked at the door (issue 13 items 5-8 and 10): reserved file names,
//! trailing data and positional arrays, JSON errors for the framework's own refusals, messages in
//! the API's terms, and one counted outcome per request.

use crate::helpers::{app, stack};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn send(req: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let resp = req.send().await.expect("api reachable");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, ctype, body)
}

/// Asserts `body` is the documented error shape with `code`.
#[track_caller]
fn assert_error(status: u16, ctype: &Option<String>, body: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(ctype.as_deref(), Some("application/json"), "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(
        body["error"].get("field").is_some(),
        "field always present: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reserved_file_names_are_422_naming_the_file() {
    let app = app();
    for name in [".tmp", ".cache"] {
        let job = json!({"language": "python", "files": [
            {"name": "main.py", "content": "print(1)"},
            {"name": name, "content": "x"}]});
        let (status, body) = app.post_jobs("?wait=true", job.to_string()).await;
        assert_eq!(status, 422, "{name}: {body}");
        assert_eq!(body["error"]["code"], "invalid_file_name", "{body}");
        assert_eq!(body["error"]["field"], "files[1].name", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(name) && message.contains("reserved"),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn data_after_the_json_body_is_400() {
    let (status, body) = app()
        .post_jobs("", r#"{"language": "python", "source": "print(7)"} xyz"#)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "malformed_request");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("more than one JSON value"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_positional_array_is_400() {
    let (status, body) = app()
        .post_jobs(
            "",
            r#"["python","print(7)",null,null,"","utf8",[],{},false]"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "malformed_request");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.contains("SubmitRequest"), "{message}");
    assert!(message.contains("must be a JSON object"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_frameworks_refusals_are_json_errors() {
    let app = app();
    let job = json!({"language": "python", "source": "1"}).to_string();
    let (s, t, b) = send(
        app.http
            .post(format!("{}/v1/jobs?wait=true&wait=true", app.base))
            .body(job.clone()),
    )
    .await;
    assert_error(s, &t, &b, 400, "malformed_request");
    assert_eq!(b["error"]["field"], "wait", "{b}");
    // Not UTF-8 once percent-decoded: the query extractor's own rejection.
    let (s, t, b) = send(
        app.http
            .post(format!("{}/v1/jobs?wait=%FF", app.base))
            .body(job),
    )
    .await;
    assert_error(s, &t, &b, 400, "malformed_request");
    let (s, t, b) = send(app.http.get(format!("{}/no/such/route", app.base))).await;
    assert_error(s, &t, &b, 404, "not_found");
    let (s, t, b) = send(app.http.put(format!("{}/v1/jobs", app.base))).await;
    assert_error(s, &t, &b, 405, "method_not_allowed");
    // A WebSocket route asked without a handshake.
    let (s, t, b) = send(app.http.get(format!("{}/v1/jobs/ws", app.base))).await;
    assert!(s == 400 || s == 426, "{s} {b}");
    assert_eq!(t.as_deref(), Some("application/json"), "{b}");
    assert!(b["error"]["code"].is_string(), "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_name_the_field_what_was_expected_and_what_was_given() {
    let app = app();
    let cases = [
        (
            json!({"source": "x"}),
            400,
            "language",
            "language is required",
        ),
        (
            json!({"language": "python", "source": "x", "limits": {"memory_mb": 1e20}}),
            400,
            "limits.memory_mb",
            "must be a whole number",
        ),
        (
            json!({"language": "python", "source": "x", "limits": {"memory_mb": "lots"}}),
            400,
            "limits.memory_mb",
            "but it is the string \"lots\"",
        ),
        (
            json!({"language": "python", "files": [{"name": "a.py", "content": "!!", "encoding": "base64"}]}),
            422,
            "files[0].content",
            "'!' at offset 0 is not in the base64 alphabet",
        ),
    ];
    for (job, want, field, says) in cases {
        let (status, body) = app.post_jobs("", job.to_string()).await;
        assert_eq!(status, want, "{job}: {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{job}: {message}");
        for leak in [
            "u64",
            "struct",
            "floating point",
            "Invalid symbol",
            "elements",
        ] {
            assert!(!message.contains(leak), "{leak} leaks in {message}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_integral_float_is_an_integer() {
    let job = app()
        .run(json!({"language": "python", "source": "print(7)",
                    "limits": {"wall_time_ms": 5000.0, "memory_mb": 128.0}}))
        .await;
    assert_eq!(job["verdict"], "ok", "{job}");
}

/// The value of the series `name` whose labels include `labels`, summed; 0 when absent.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// Whether the series `name` with `labels` is present at all.
fn has_series(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    text.lines().any(|l| {
        l.starts_with(&format!("{name}{{"))
            && labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
    })
}

/// An api of this test's own, whose Redis does not exist (nothing listens on its port), so its
/// metrics see only this test's requests and every store access fails.
#[tokio::test(flavor = "multi_thread")]
async fn every_request_ends_in_exactly_one_counted_outcome() {
    stack(); // owns the vhost
    let port = rce_tests::free_port();
    let topology = rce_tests::repo_root().join("topology.yaml");
    let mut config = crate::helpers::api_config(port, topology.to_str().unwrap());
    config.redis_url = format!("redis://127.0.0.1:{}/", rce_tests::free_port());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn(rce_api::app::run(config, async {
        stop_rx.await.ok();
    }));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the private api did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scrape = || async {
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = scrape().await;
    for labels in [
        [("language", "python"), ("outcome", "store_unavailable")],
        [("language", "python"), ("outcome", "queue_full")],
        [("language", "python"), ("outcome", "broker_unavailable")],
        [("language", "invalid"), ("outcome", "malformed_request")],
    ] {
        assert!(
            has_series(&before, "rce_api_submissions_total", &labels),
            "{labels:?} exists at zero from the start:\n{before}"
        );
        assert_eq!(metric(&before, "rce_api_submissions_total", &labels), 0.0);
    }
    let post = |body: String| {
        http.post(format!("{base}/v1/jobs"))
            .header("content-type", "application/json")
            .body(body)
    };
    let requests: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (
            post(json!({"language": "python", "source": "print(1)"}).to_string()),
            503,
        ),
        (post("{".into()), 400),
        (
            post(json!({"language": "python", "source": "x".repeat(3 << 20)}).to_string()),
            413,
        ),
        (
            post(json!({"language": "cobol", "source": "x"}).to_string()),
            422,
        ),
        (
            http.get(format!(
                "{base}/v1/jobs/0193a0b4-6c1e-7d2a-9f3b-5e8d2c4a1b07"
            )),
            503,
        ),
        (http.get(format!("{base}/v1/jobs/not-an-id")), 404),
        (http.get(format!("{base}/nowhere")), 404),
        (http.delete(format!("{base}/v1/jobs")), 405),
    ];
    let sent = requests.len() as f64;
    for (request, want) in requests {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{:?}", resp.text().await);
    }
    let after = scrape().await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        metric(&after, name, labels) - metric(&before, name, labels)
    };
    let s = "rce_api_submissions_total";
    assert_eq!(
        delta(
            s,
            &[("language", "python"), ("outcome", "store_unavailable")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            s,
            &[("language", "invalid"), ("outcome", "malformed_request")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            s,
            &[("language", "invalid"), ("outcome", "payload_too_large")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            s,
            &[("language", "invalid"), ("outcome", "unknown_language")]
        ),
        1.0
    );
    assert_eq!(delta(s, &[]), 4.0, "one per submission:\n{after}");
    let r = "rce_api_requests_total";
    for (labels, n) in [
        (
            vec![
                ("route", "/v1/jobs"),
                ("status", "503"),
                ("outcome", "store_unavailable"),
            ],
            1.0,
        ),
        (
            vec![
                ("route", "/v1/jobs"),
                ("status", "400"),
                ("outcome", "malformed_request"),
            ],
            1.0,
        ),
        (
            vec![
                ("route", "/v1/jobs"),
                ("status", "413"),
                ("outcome", "payload_too_large"),
            ],
            1.0,
        ),
        (
            vec![
                ("route", "/v1/jobs"),
                ("status", "422"),
                ("outcome", "unknown_language"),
            ],
            1.0,
        ),
        (vec![("route", "/v1/jobs/{id}"), ("status", "503")], 1.0),
        (vec![("route", "/v1/jobs/{id}"), ("status", "404")], 1.0),
        (vec![("route", "unmatched"), ("status", "404")], 1.0),
        (vec![("method", "DELETE"), ("status", "405")], 1.0),
        (
            vec![("route", "/metrics"), ("status", "200"), ("outcome", "ok")],
            1.0,
        ),
    ] {
        assert_eq!(delta(r, &labels), n, "{labels:?}:\n{after}");
    }
    // Every request counted once: those sent, and the first scrape (counted after it answered).
    assert_eq!(delta(r, &[]), sent + 1.0, "{after}");
    stop_tx.send(()).ok();
    tokio::time::timeout(Duration::from_secs(30), api)
        .await
        .expect("the private api stops")
        .unwrap()
        .unwrap();
}
