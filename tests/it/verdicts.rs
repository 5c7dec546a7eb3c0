//! Programs that hit their limits get the matching verdict, within their limits, and the next
//! job in the same language still works; and a job submitted without waiting can be followed.

use crate::helpers::{app, assert_verdict};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn infinite_loop_is_time_limit_exceeded() {
    let app = app();
    let job = app
        .run(json!({"language": "python", "source": "while True: pass",
                    "limits": {"cpu_time_ms": 1000, "wall_time_ms": 3000}}))
        .await;
    assert_verdict(&job, "time_limit_exceeded");
    let cpu = job["run"]["cpu_ms"].as_u64().unwrap();
    assert!(
        (900..=2500).contains(&cpu),
        "stopped near its CPU limit: {job:#}"
    );
    let next = app.run_source("python", "print('after')", "").await;
    assert_verdict(&next, "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn sleeping_forever_is_stopped_at_the_wall_limit() {
    let job = app()
        .run(json!({"language": "bash", "source": "sleep 1000",
                    "limits": {"wall_time_ms": 1000}}))
        .await;
    assert_verdict(&job, "time_limit_exceeded");
    let wall = job["run"]["wall_ms"].as_u64().unwrap();
    assert!((1000..3000).contains(&wall), "{job:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_hog_is_memory_limit_exceeded() {
    let app = app();
    let hog = "x = bytearray(200 * 1024 * 1024)\nprint(len(x))";
    let job = app
        .run(json!({"language": "python", "source": hog, "limits": {"memory_mb": 64}}))
        .await;
    assert_verdict(&job, "memory_limit_exceeded");
    assert_eq!(
        job["run"]["stdout"], "",
        "the allocation never succeeded: {job:#}"
    );
    // The same program fits when the client asks for enough memory.
    let fits = app
        .run(json!({"language": "python", "source": hog, "limits": {"memory_mb": 512}}))
        .await;
    assert_verdict(&fits, "ok");
    assert!(
        fits["run"]["memory_kb"].as_u64().unwrap() > 200 * 1024,
        "{fits:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn output_flood_is_output_limit_exceeded() {
    let app = app();
    let job = app
        .run(json!({"language": "c",
                    "source": "#include <stdio.h>\nint main(void){for(;;)puts(\"flood flood flood\");}",
                    "limits": {"output_bytes": 10000}}))
        .await;
    assert_verdict(&job, "output_limit_exceeded");
    assert_eq!(job["run"]["truncated"], true);
    let out = job["run"]["stdout"].as_str().unwrap();
    assert!(
        out.len() <= 10000 && out.len() > 9000,
        "capped at the limit: {} bytes",
        out.len()
    );
    assert!(out.starts_with("flood flood flood\n"));
    let next = app.run_source("c", "int main(void){return 0;}", "").await;
    assert_verdict(&next, "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn submitted_without_waiting_then_read_until_done() {
    let app = app();
    let (status, accepted) = app
        .post_jobs(
            "",
            json!({"language": "python", "source": "import time\ntime.sleep(0.3)\nprint('late')"})
                .to_string(),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "queued");
    let id = accepted["id"].as_str().unwrap().to_string();
    assert_eq!(accepted["links"]["self"], format!("/v1/jobs/{id}"));
    assert_eq!(accepted["links"]["events"], format!("/v1/jobs/{id}/events"));

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = vec![];
    let job = loop {
        let (status, job) = app.get_job(&id).await;
        assert_eq!(status, 200, "{job}");
        let s = job["status"].as_str().unwrap().to_string();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == "completed" {
            break job;
        }
        assert!(["queued", "running"].contains(&s.as_str()), "{job}");
        assert!(Instant::now() < deadline, "job did not finish: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_verdict(&job, "ok");
    assert_eq!(job["run"]["stdout"], "late\n");
    assert_eq!(job["id"], id.as_str());
    for field in ["created_at", "started_at", "finished_at"] {
        assert!(job[field].is_string(), "{field}: {job:#}");
    }
    assert!(job["queue_ms"].is_u64(), "{job:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_job_is_404() {
    let (status, body) = app().get_job("0193aaaa-0000-7000-8000-000000000000").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}
