//! The Judge0 CE 1.13.1 surface through the real stack: the official Python SDK used unchanged,
//! Judge0's documented requests, its response types, field selection, base64, batches,
//! pagination, deletion, its error shapes, and what a hostile client would try through it.

use crate::helpers::{app, TestApp, JUDGE0_AUTHZ};
use base64::Engine;
use rce_tests::repo_root;
use serde_json::{json, Value};
use std::time::Duration;

const C_HELLO: &str = "#include <stdio.h>\n\nint main(void) {\n  char name[10];\n  scanf(\"%s\", name);\n  printf(\"hello, %s\\n\", name);\n  return 0;\n}\n";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unb64(text: &str) -> Vec<u8> {
    let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(flat)
        .expect("base64")
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    app.send_json(method, path, body.as_ref()).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    send(app, reqwest::Method::POST, path, Some(body)).await
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    send(app, reqwest::Method::GET, path, None).await
}

/// Polls `GET /submissions/{token}` until its status is past 1 and 2, as Judge0 clients do.
async fn finished(app: &TestApp, token: &str, query: &str) -> Value {
    for _ in 0..600 {
        let (status, body) = get(app, &format!("/submissions/{token}?{query}")).await;
        assert_eq!(status, 200, "{body}");
        let id = body["status"]["id"].as_u64().or(body["status_id"].as_u64());
        if !matches!(id, Some(1) | Some(2)) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("submission {token} did not finish");
}

/// The compatibility venv's python (made by scripts/compat-venv.sh, which `make test` runs first).
fn compat_python() -> String {
    if let Ok(p) = std::env::var("RCE_COMPAT_PYTHON") {
        return p;
    }
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/compat-venv.sh"))
        .output()
        .expect("bash runs scripts/compat-venv.sh");
    assert!(
        out.status.success(),
        "scripts/compat-venv.sh failed (the Judge0 SDK is needed): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn the_official_judge0_sdk_works_unchanged() {
    let app = app();
    let python = compat_python();
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(python);
        cmd.arg(repo_root().join("tests/compat/judge0_sdk.py"))
            .arg(&base);
        // Nothing but 127.0.0.1: every other destination goes to a dead local proxy.
        for var in [
            "JUDGE0_CE_ENDPOINT",
            "JUDGE0_CE_AUTH_HEADERS",
            "JUDGE0_RAPID_API_KEY",
        ] {
            cmd.env_remove(var);
        }
        for var in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
        ] {
            cmd.env(var, "http://127.0.0.1:9");
        }
        cmd.env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1");
        cmd.output().expect("the venv's python runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let checks: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        out.status.success() && checks.len() >= 10,
        "the SDK's checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(checks.iter().all(|c| c["ok"] == json!(true)), "{stdout}");
}

#[tokio::test]
async fn the_documented_example_and_judge0_response_types() {
    let app = app();
    let (status, body) = post(
        &app,
        "/submissions?base64_encoded=false&wait=true",
        json!({"source_code": C_HELLO, "language_id": 50, "stdin": "Judge0"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "compile_output",
            "memory",
            "message",
            "status",
            "stderr",
            "stdout",
            "time",
            "token"
        ]
    );
    assert_eq!(body["stdout"], "hello, Judge0\n");
    assert_eq!(body["status"], json!({"id": 3, "description": "Accepted"}));
    assert_eq!(body["stderr"], Value::Null, "empty output is null");
    let time: f64 = body["time"]
        .as_str()
        .expect("time is a decimal string")
        .parse()
        .unwrap();
    assert!((0.0..5.0).contains(&time));
    assert!(
        body["memory"].as_u64().is_some_and(|m| m > 0),
        "memory is KB: {body}"
    );

    // Without wait: the token only, then polling with chosen fields.
    let (status, body) = post(
        &app,
        "/submissions",
        json!({"source_code": "print(6 * 7)", "language_id": 71}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let done = finished(
        &app,
        &token,
        "fields=stdout,status_id,language_id,created_at,finished_at,exit_code,wall_time",
    )
    .await;
    assert_eq!(done["stdout"], "42\n");
    assert_eq!(done["status_id"], 3);
    assert_eq!(done["language_id"], 71);
    assert_eq!(done["exit_code"], 0);
    for stamp in ["created_at", "finished_at"] {
        let text = done[stamp].as_str().unwrap();
        assert!(
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.fZ").is_ok()
                && text.len() == 24,
            "{stamp} {text}"
        );
    }
    let (_, all) = get(&app, &format!("/submissions/{token}?fields=*")).await;
    assert_eq!(all.as_object().unwrap().len(), 35, "{all}");
    assert_eq!(all["cpu_time_limit"], "3.0");
    assert_eq!(all["enable_network"], false);
    assert_eq!(all["language"]["id"], 71);
}

#[tokio::test]
async fn base64_both_ways_and_output_that_is_not_text() {
    let app = app();
    // Prints two invalid UTF-8 bytes and its input back.
    let source = "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe' + sys.stdin.buffer.read())\n";
    let stdin = b"\x00\x01binary\n";
    let (status, body) = post(
        &app,
        "/submissions?base64_encoded=true&wait=true&fields=token,stdout,status",
        json!({"source_code": b64(source.as_bytes()), "language_id": 71, "stdin": b64(stdin)}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let stdout = body["stdout"].as_str().unwrap();
    assert!(
        stdout.ends_with('\n'),
        "Ruby's encode64 ends with a newline"
    );
    let mut expected = b"\xff\xfe".to_vec();
    expected.extend_from_slice(stdin);
    assert_eq!(unb64(stdout), expected);
    let token = body["token"].as_str().unwrap();
    // The same output without base64 cannot be shown: Judge0's 400.
    let (status, body) = get(&app, &format!("/submissions/{token}")).await;
    assert_eq!(status, 400);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("use base64_encoded=true"));
    // Ruby's encode64 breaks lines every 60 characters.
    let (_, body) = post(
        &app,
        "/submissions?base64_encoded=true&wait=true",
        json!({"source_code": b64(b"print('x' * 100)"), "language_id": 71}),
    )
    .await;
    let stdout = body["stdout"].as_str().unwrap();
    assert_eq!(stdout.lines().next().unwrap().len(), 60, "{stdout:?}");
    assert_eq!(unb64(stdout), [vec![b'x'; 100], b"\n".to_vec()].concat());
}

#[tokio::test]
async fn judge0_errors_in_judge0_shapes() {
    let app = app();
    let cases = [
        (
            json!({"language_id": 9999, "source_code": "x"}),
            "language_id",
            "language with id 9999 doesn't exist",
        ),
        (json!({"source_code": "x"}), "language_id", "can't be blank"),
        (json!({"language_id": 71}), "source_code", "can't be blank"),
        (
            json!({"language_id": 71, "source_code": "x", "enable_network": true}),
            "enable_network",
            "enabling network is not allowed",
        ),
        (
            json!({"language_id": 71, "source_code": "x", "cpu_time_limit": 999}),
            "cpu_time_limit",
            "must be less than or equal to 20",
        ),
        (
            json!({"language_id": 71, "source_code": "x", "memory_limit": "lots"}),
            "memory_limit",
            "is not a number",
        ),
        (
            json!({"language_id": 71, "source_code": "x", "callback_url": "ftp://127.0.0.1/"}),
            "callback_url",
            "callback_url must be http or https, not \"ftp\"",
        ),
    ];
    for (body, field, message) in cases {
        let (status, answer) = post(&app, "/submissions", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert_eq!(answer[field], json!([message]), "{body} -> {answer}");
    }
    let (status, body) = get(
        &app,
        "/submissions/00000000-0000-4000-8000-000000000000?fields=stdout,foo",
    )
    .await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "invalid fields: [foo]"}))
    );
    let (status, body) = get(&app, "/submissions/00000000-0000-4000-8000-000000000000").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].is_string());
    let response = app
        .http
        .post(format!("{}/submissions", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn languages_statuses_about_config_and_workers() {
    let app = app();
    let (status, languages) = get(&app, "/languages").await;
    assert_eq!(status, 200);
    let ids: Vec<u64> = languages
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_u64().unwrap())
        .collect();
    for id in [46, 50, 52, 54, 60, 62, 63, 71, 73] {
        assert!(ids.contains(&id), "Judge0 id {id} missing from {languages}");
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
    let (_, cpp) = get(&app, "/languages/54").await;
    assert_eq!(cpp["source_file"], "main.cpp");
    assert!(cpp["compile_cmd"].as_str().unwrap().starts_with("g++ "));
    assert_eq!(cpp["is_archived"], false);
    let (_, python) = get(&app, "/languages/71").await;
    assert_eq!(python["compile_cmd"], Value::Null);
    assert_eq!(get(&app, "/languages/9999").await.0, 404);
    let (_, all) = get(&app, "/languages/all").await;
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["is_archived"] == false));

    let (_, statuses) = get(&app, "/statuses").await;
    assert_eq!(statuses.as_array().unwrap().len(), 14);
    assert_eq!(
        statuses[12],
        json!({"id": 13, "description": "Internal Error"})
    );

    let (_, about) = get(&app, "/about").await;
    assert_eq!(about["version"], "1.13.1");
    assert!(about["rce"]["version"].is_string());
    assert_eq!(get(&app, "/version").await.1, json!("1.13.1"));

    // Every key the SDK's Config model requires, with the JSON type it validates.
    let (_, config) = get(&app, "/config_info").await;
    let floats = [
        "callbacks_timeout",
        "cpu_extra_time",
        "cpu_time_limit",
        "max_cpu_extra_time",
        "max_cpu_time_limit",
        "max_wall_time_limit",
        "submission_cache_duration",
        "wall_time_limit",
    ];
    let ints = [
        "callbacks_max_tries",
        "max_extract_size",
        "max_file_size",
        "max_max_file_size",
        "max_max_processes_and_or_threads",
        "max_memory_limit",
        "max_number_of_runs",
        "max_processes_and_or_threads",
        "max_queue_size",
        "max_stack_limit",
        "max_submission_batch_size",
        "memory_limit",
        "number_of_runs",
        "stack_limit",
    ];
    let bools = [
        "allow_enable_network",
        "allow_enable_per_process_and_thread_memory_limit",
        "allow_enable_per_process_and_thread_time_limit",
        "enable_additional_files",
        "enable_batched_submissions",
        "enable_callbacks",
        "enable_command_line_arguments",
        "enable_compiler_options",
        "enable_network",
        "enable_per_process_and_thread_memory_limit",
        "enable_per_process_and_thread_time_limit",
        "enable_submission_delete",
        "enable_wait_result",
        "maintenance_mode",
        "redirect_stderr_to_stdout",
        "use_docs_as_homepage",
    ];
    for k in floats {
        assert!(config[k].is_number(), "{k}: {config}");
    }
    for k in ints {
        assert!(config[k].is_u64(), "{k}: {config}");
    }
    for k in bools {
        assert!(config[k].is_boolean(), "{k}: {config}");
    }
    assert!(config["allowed_languages_for_compile_options"].is_array());
    assert_eq!(config["max_cpu_time_limit"], 20.0, "our real maximum");
    assert_eq!(config["max_memory_limit"], 1024 * 1024);

    let (status, workers) = get(&app, "/workers").await;
    assert_eq!(status, 200, "{workers}");
    let python = workers
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["queue"] == "python")
        .expect("the python queue");
    assert!(python["size"].is_u64());
    assert!(
        python["available"].as_u64().unwrap() >= 1,
        "a runner consumes it: {python}"
    );
    let (_, system) = get(&app, "/system_info").await;
    assert!(system["CPU(s)"].as_str().unwrap().parse::<u32>().unwrap() >= 1);
}

#[tokio::test]
async fn batches_pages_and_deletion() {
    let app = app();
    let (status, answers) = post(
        &app,
        "/submissions/batch",
        json!({"submissions": [
            {"language_id": 71, "source_code": "print('a')"},
            {"language_id": 9999, "source_code": "x"},
            {"language_id": 63, "source_code": "console.log('b')"},
        ]}),
    )
    .await;
    assert_eq!(status, 201, "{answers}");
    assert!(answers[0]["token"].is_string());
    assert_eq!(
        answers[1]["language_id"],
        json!(["language with id 9999 doesn't exist"])
    );
    assert!(answers[2]["token"].is_string());
    let (a, b) = (
        answers[0]["token"].as_str().unwrap(),
        answers[2]["token"].as_str().unwrap(),
    );
    finished(&app, a, "").await;
    finished(&app, b, "").await;
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, shown) = get(
        &app,
        &format!("/submissions/batch?tokens={a},{unknown},{b}&fields=stdout,status_id"),
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown["submissions"],
        json!([{"stdout": "a\n", "status_id": 3}, null, {"stdout": "b\n", "status_id": 3}])
    );
    let (status, none) = post(
        &app,
        "/submissions/batch",
        json!({"submissions": [{"source_code": "x"}]}),
    )
    .await;
    assert_eq!(status, 422, "{none}");
    let many: Vec<Value> = (0..21)
        .map(|_| json!({"language_id": 71, "source_code": "1"}))
        .collect();
    let (status, body) = post(&app, "/submissions/batch", json!({"submissions": many})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "number of submissions in a batch should be less than or equal to 20"
    );
    let (status, body) = post(&app, "/submissions/batch", json!({"submissions": []})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            400,
            Some("there should be at least one submission in a batch")
        )
    );

    // Listing and deleting reach other clients' submissions: Judge0's authorization only.
    let authorized = |method: reqwest::Method, path: String| {
        app.http
            .request(method, format!("{}{path}", app.base))
            .header("X-Auth-User", JUDGE0_AUTHZ)
            .send()
    };
    for (method, path) in [
        (reqwest::Method::GET, "/submissions".to_string()),
        (reqwest::Method::DELETE, format!("/submissions/{a}")),
    ] {
        let response = app
            .http
            .request(method.clone(), format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403, "{method} {path}");
        assert!(
            response.bytes().await.unwrap().is_empty(),
            "no body, as Judge0"
        );
        let wrong = app
            .http
            .request(method.clone(), format!("{}{path}", app.base))
            .header("X-Auth-User", "not-the-token")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 403);
    }
    let response = authorized(
        reqwest::Method::GET,
        "/submissions?page=1&per_page=2&fields=token".into(),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["submissions"].as_array().unwrap().len(), 2);
    assert_eq!(page["meta"]["current_page"], 1);
    assert_eq!(page["meta"]["prev_page"], Value::Null);
    assert!(page["meta"]["total_count"].as_u64().unwrap() >= 2);
    let zero = authorized(reqwest::Method::GET, "/submissions?page=0".into())
        .await
        .unwrap();
    assert_eq!(zero.status().as_u16(), 400);

    let response = authorized(
        reqwest::Method::DELETE,
        format!("/submissions/{a}?fields=stdout,status_id"),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let deleted: Value = response.json().await.unwrap();
    assert_eq!(
        unb64(deleted["stdout"].as_str().unwrap()),
        b"a\n",
        "shown in base64"
    );
    // Not a job id at all: not found.
    assert_eq!(get(&app, "/submissions/..%2F..%2Fetc").await.0, 404);
    assert_eq!(get(&app, "/submissions/x:events").await.0, 404);
    assert_eq!(get(&app, &format!("/submissions/{a}")).await.0, 404);
}

/// What the program saw as its arguments, and that no shell ever ran them.
#[tokio::test]
async fn hostile_arguments_options_and_limits() {
    let app = app();
    let argv = "$(id) `id` ';' 'rm -rf /' | cat > /tmp/x";
    let (status, body) = post(
        &app,
        "/submissions?wait=true&fields=stdout,status_id",
        json!({"language_id": 71, "source_code": "import sys, json\nprint(json.dumps(sys.argv[1:]))",
               "command_line_arguments": argv}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let seen: Vec<String> = serde_json::from_str(body["stdout"].as_str().unwrap()).unwrap();
    assert_eq!(
        seen,
        ["$(id)", "`id`", ";", "rm -rf /", "|", "cat", ">", "/tmp/x"]
    );

    let (status, body) = post(
        &app,
        "/submissions",
        json!({"language_id": 54, "source_code": "int main(){}", "compiler_options": "-O2 -fplugin=/tmp/evil.so"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = post(
        &app,
        "/submissions?wait=true&fields=stdout,status_id,compile_output",
        json!({"language_id": 54, "compiler_options": "-O0 -DONLINE_JUDGE",
               "source_code": "#include <cstdio>\nint main(){\n#ifdef ONLINE_JUDGE\nputs(\"judged\");\n#endif\n}"}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["stdout"], "judged\n", "{body}");

    // stderr into stdout, in the order written.
    let (_, body) = post(
        &app,
        "/submissions?wait=true&fields=stdout,stderr,status_id",
        json!({"language_id": 71, "redirect_stderr_to_stdout": true,
               "source_code": "import sys\nprint('one', flush=True)\nprint('two', file=sys.stderr, flush=True)\nprint('three')"}),
    )
    .await;
    assert_eq!(body["stdout"], "one\ntwo\nthree\n", "{body}");
    assert_eq!(body["stderr"], Value::Null);

    // Past cpu_time_limit but within its extra time: allowed to finish, and still a time limit.
    let (_, body) = post(
        &app,
        "/submissions?wait=true&fields=stdout,status_id,time",
        json!({"language_id": 71, "cpu_time_limit": 0.2, "cpu_extra_time": 3,
               "source_code": "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\nprint('done')"}),
    )
    .await;
    assert_eq!(body["status_id"], 5, "{body}");
    assert_eq!(body["stdout"], "done\n");
    assert!(
        body["time"].as_str().unwrap().parse::<f64>().unwrap() >= 0.4,
        "{body}"
    );

    // Several runs: one compile, the outputs of the last, time averaged.
    let (_, body) = post(
        &app,
        "/submissions?wait=true&fields=stdout,status_id,time,memory",
        json!({"language_id": 50, "number_of_runs": 3, "stdin": "5", "expected_output": "25",
               "source_code": "#include <stdio.h>\nint main(){int n;scanf(\"%d\",&n);printf(\"%d\\n\",n*n);}"}),
    )
    .await;
    assert_eq!(body["status_id"], 3, "{body}");
    assert_eq!(body["stdout"], "25\n");

    // A memory hog: Judge0 has no memory status; it is Runtime Error (Other) with our message.
    let (_, body) = post(
        &app,
        "/submissions?wait=true&fields=status,message",
        json!({"language_id": 71, "memory_limit": 65536,
               "source_code": "x = bytearray(512 * 1024 * 1024)\nprint(len(x))"}),
    )
    .await;
    assert!(
        body["status"]["id"] == 12 || body["status"]["id"] == 11,
        "{body}"
    );
}

fn zip_of(entries: &[(&str, &[u8])]) -> String {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    b64(&w.finish().unwrap().into_inner())
}

#[tokio::test]
async fn additional_files_join_the_program_and_hostile_archives_are_refused() {
    let app = app();
    let files = zip_of(&[
        ("answer.h", b"#define ANSWER 42\n"),
        ("data.txt", b"from the zip\n"),
    ]);
    let (status, body) = post(
        &app,
        "/submissions?wait=true&fields=stdout,status_id,compile_output",
        json!({"language_id": 50, "additional_files": files,
               "source_code": "#include <stdio.h>\n#include \"answer.h\"\nint main(){char l[64];FILE*f=fopen(\"data.txt\",\"r\");fgets(l,64,f);printf(\"%d %s\",ANSWER,l);}"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["stdout"], "42 from the zip\n", "{body}");
    let module = zip_of(&[("helper.py", b"def twice(x):\n    return 2 * x\n")]);
    let (_, body) = post(
        &app,
        "/submissions?wait=true&fields=stdout,additional_files",
        json!({"language_id": 71, "additional_files": module,
               "source_code": "import helper\nprint(helper.twice(21))"}),
    )
    .await;
    assert_eq!(body["stdout"], "42\n", "{body}");
    assert_eq!(body["additional_files"], module);
    for (entries, why) in [
        (vec![("../escape.txt", &b"x"[..])], "path separator"),
        (vec![("main.py", &b"print('shadow')"[..])], "program's own"),
        (vec![(".tmp", &b"x"[..])], "reserved"),
    ] {
        let (status, body) = post(
            &app,
            "/submissions",
            json!({"language_id": 71, "source_code": "print(1)", "additional_files": zip_of(&entries)}),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        let message = body["additional_files"][0].as_str().unwrap_or_default();
        assert!(message.contains(why), "{why}: {body}");
    }
    // A zip bomb: 64 MiB of zeros in a few KB.
    let bomb = zip_of(&[("zeros", &vec![0u8; 64 << 20][..])]);
    let (status, body) = post(
        &app,
        "/submissions",
        json!({"language_id": 71, "source_code": "print(1)", "additional_files": bomb}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = post(
        &app,
        "/submissions",
        json!({"language_id": 71, "source_code": "print(1)", "additional_files": "bm90IGEgemlw"}),
    )
    .await;
    assert_eq!(status, 422);
}

/// Judge0's authentication: with tokens configured, every Judge0 request carries one (header or
/// query parameter), else a 401 with no body; v1 is not affected.
#[tokio::test]
async fn with_authentication_tokens_judge0_requests_need_one() {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (base, api) = crate::helpers::second_api_with(
        async move {
            let _ = stop_rx.await;
        },
        |c| c.judge0_authn_tokens = vec!["tok-1".into(), "tok-2".into()],
    );
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the second api did not start");
    let status = |r: reqwest::Response| r.status().as_u16();
    let bare = http.get(format!("{base}/languages")).send().await.unwrap();
    assert_eq!(bare.status().as_u16(), 401);
    assert!(bare.bytes().await.unwrap().is_empty(), "no body, as Judge0");
    let wrong = http
        .get(format!("{base}/languages"))
        .header("X-Auth-Token", "tok-3")
        .send()
        .await
        .unwrap();
    assert_eq!(status(wrong), 401);
    let by_header = http
        .get(format!("{base}/languages"))
        .header("X-Auth-Token", "tok-2")
        .send()
        .await
        .unwrap();
    assert_eq!(status(by_header), 200);
    let by_query = http
        .post(format!("{base}/submissions?X-Auth-Token=tok-1&wait=true"))
        .json(&json!({"language_id": 71, "source_code": "print(1)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(by_query), 201);
    // v1 is another surface: its own rules (accounts come with issue 20).
    let v1 = http
        .get(format!("{base}/v1/languages"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(v1), 200);
    let _ = stop_tx.send(());
    let _ = api.await;
}
