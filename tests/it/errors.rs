//! Bad requests get the documented JSON errors and never become jobs.

use crate::helpers::app;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn unknown_language_is_422_naming_the_field() {
    let (status, body) = app()
        .post_jobs(
            "",
            json!({"language": "cobol", "source": "DISPLAY 'HI'."}).to_string(),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "unknown_language");
    assert_eq!(body["error"]["field"], "language");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("python"));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_source_is_422() {
    let (status, body) = app()
        .post_jobs("", json!({"language": "python"}).to_string())
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "missing_source");
    assert_eq!(body["error"]["field"], "source");
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_over_the_maximum_is_422_with_the_maximum() {
    let app = app();
    let python = app.language("python").await;
    let max = python["limits"]["max"]["wall_time_ms"].as_u64().unwrap();
    let (status, body) = app
        .post_jobs(
            "",
            json!({"language": "python", "source": "1", "limits": {"wall_time_ms": max + 1}})
                .to_string(),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "limits.wall_time_ms");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&max.to_string()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_400() {
    let (status, body) = app().post_jobs("", "{\"language\": \"python\", ").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "malformed_request");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_body_is_413() {
    let huge = "x".repeat(3 << 20);
    let (status, body) = app()
        .post_jobs(
            "",
            json!({"language": "python", "source": huge}).to_string(),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test(flavor = "multi_thread")]
async fn languages_lists_the_topology() {
    let app = app();
    let resp = app
        .http
        .get(format!("{}/v1/languages", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let list: serde_json::Value = resp.json().await.unwrap();
    let ids: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "bash",
            "bash_exec",
            "bash_recycled",
            "bash_uids",
            "c",
            "c_exec",
            "cpp",
            "cpp_exec",
            "go",
            "java",
            "javascript",
            "javascript_exec",
            "javascript_solo",
            "javascript_solo_exec",
            "python",
            "python_exec",
            "python_idle",
            "python_killed",
            "python_solo",
            "python_solo_exec",
            "python_uids",
            "python_unclean",
            "python_unserved",
            "rust"
        ],
        "the repository's languages and the tests' solo, exec-mode, unserved, idle and pool-test copies"
    );
    let c = list
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "c")
        .unwrap();
    assert_eq!(c["compiled"], true);
    assert_eq!(c["file"], "main.c");
}
