//! The project end to end: `POST /v1/jobs?wait=true` over a keep-alive connection, as a client
//! of the api would do it, checking that every job completed `ok` with the expected output.

use crate::cell::JobFn;
use crate::child_process::snippet;
use crate::results::ProgramCost;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The one HTTP client of a run: connections are kept alive and reused across jobs.
pub fn http_client(max_idle: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(max_idle)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")
}

/// The request body of a job.
pub fn job_request(language: &str, source: &str) -> Value {
    json!({"language": language, "source": source})
}

/// The job: submit with `wait=true` and check the answer.
pub fn job(
    client: reqwest::Client,
    api: &str,
    language: &str,
    source: &str,
    expected: &'static str,
) -> JobFn {
    let url = Arc::new(format!("{api}/v1/jobs?wait=true"));
    let body = Arc::new(job_request(language, source));
    Arc::new(move || {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        Box::pin(async move {
            let response = client.post(url.as_str()).json(&*body).send().await?;
            let status = response.status();
            let text = response.text().await?;
            if status != reqwest::StatusCode::OK {
                bail!("HTTP {status}: {}", snippet(&text));
            }
            let job: Value = serde_json::from_str(&text).context("the job is not JSON")?;
            Ok(Some(check_job(&job, expected)?))
        })
    })
}

/// Whether a job's record shows it completed `ok` printing `expected`; what the service said
/// the program cost, if so.
pub fn check_job(job: &Value, expected: &str) -> anyhow::Result<ProgramCost> {
    let (status, verdict) = (&job["status"], &job["verdict"]);
    if status != "completed" || verdict != "ok" {
        bail!(
            "job {} ended {status} / {verdict}: {}{}",
            job["id"].as_str().unwrap_or("?"),
            job["error"].as_str().unwrap_or_default(),
            snippet(
                job["run"]["stderr"]
                    .as_str()
                    .or(job["compile"]["stderr"].as_str())
                    .unwrap_or_default()
            ),
        );
    }
    let run = &job["run"];
    if run["stdout"] != expected {
        bail!("job printed {}, expected {expected:?}", run["stdout"]);
    }
    Ok(ProgramCost {
        run_wall_ms: run["wall_ms"].as_f64().context("run.wall_ms")?,
        run_cpu_ms: run["cpu_ms"].as_f64().context("run.cpu_ms")?,
        compile_wall_ms: job["compile"]["wall_ms"].as_f64(),
        compile_cpu_ms: job["compile"]["cpu_ms"].as_f64(),
        queue_ms: job["queue_ms"].as_f64(),
    })
}

/// Whether a job's status is final.
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ok_job_gives_the_programs_cost() {
        let job = json!({"id": "j", "status": "completed", "verdict": "ok", "queue_ms": 2,
            "compile": {"stdout": "", "wall_ms": 120, "cpu_ms": 90},
            "run": {"stdout": "1\n", "stderr": "", "wall_ms": 12, "cpu_ms": 9}});
        let cost = check_job(&job, "1\n").unwrap();
        assert_eq!(cost.run_wall_ms, 12.0);
        assert_eq!(cost.compile_cpu_ms, Some(90.0));
        assert_eq!(cost.queue_ms, Some(2.0));
    }

    #[test]
    fn anything_else_is_a_failure() {
        let wrong = json!({"status": "completed", "verdict": "ok",
            "run": {"stdout": "2\n", "wall_ms": 1, "cpu_ms": 1}});
        assert!(check_job(&wrong, "1\n").is_err());
        let failed = json!({"status": "failed", "verdict": "internal_error", "error": "boom",
            "run": null});
        let e = check_job(&failed, "1\n").unwrap_err().to_string();
        assert!(e.contains("internal_error") && e.contains("boom"), "{e}");
        let interpreter = json!({"status": "completed", "verdict": "runtime_error",
            "compile": null, "run": {"stdout": "", "stderr": "Traceback", "wall_ms": 1, "cpu_ms": 1}});
        assert!(check_job(&interpreter, "1\n")
            .unwrap_err()
            .to_string()
            .contains("Traceback"));
    }

    #[test]
    fn terminal_statuses() {
        assert!(is_terminal("completed") && is_terminal("failed") && is_terminal("cancelled"));
        assert!(!is_terminal("queued") && !is_terminal("running"));
    }
}
