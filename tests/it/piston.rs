//! The Piston v2 surface through the real stack, as a client written from Piston's documentation
//! would use it: runtimes, execute (stages, status codes, encodings, SemVer ranges, Piston's
//! errors), and the interactive WebSocket with its frames and close codes.

use crate::helpers::{app, TestApp};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

async fn execute(app: &TestApp, body: Value) -> (u16, Value) {
    app.post_json("/api/v2/execute", &body).await
}

#[tokio::test]
async fn runtimes_list_languages_versions_and_aliases() {
    let app = app();
    let (_, runtimes) = app.get_json("/api/v2/runtimes").await;
    let python = runtimes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["language"] == "python")
        .expect("python is a runtime");
    assert!(python["version"].as_str().unwrap().starts_with("3."));
    assert!(python["aliases"].as_array().unwrap().contains(&json!("py")));
}

#[tokio::test]
async fn execute_runs_and_reports_stages_like_piston() {
    let app = app();
    // Piston ends stdin with a newline; arguments follow the file.
    let (status, body) = execute(
        &app,
        json!({"language": "py", "version": "3.x", "stdin": "abc",
               "args": ["one", "two words"],
               "files": [{"content": "import sys\nprint(repr(sys.stdin.read()), sys.argv[1:])\nprint('err', file=sys.stderr)"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["language"], "python");
    let run = &body["run"];
    assert_eq!(run["stdout"], "'abc\\n' ['one', 'two words']\n");
    assert_eq!(run["stderr"], "err\n");
    assert_eq!(run["output"], "'abc\\n' ['one', 'two words']\nerr\n");
    assert_eq!(run["code"], 0);
    assert_eq!(run["status"], Value::Null);
    assert_eq!(run["signal"], Value::Null);
    assert!(run["cpu_time"].is_u64() && run["wall_time"].is_u64() && run["memory"].is_u64());
    assert!(
        body.get("compile").is_none(),
        "python has no compile stage: {body}"
    );

    // A compiled language: a compile stage; files in base64 and hex.
    let source =
        "#include <stdio.h>\n#include \"two.h\"\nint main(){printf(\"%d\\n\", TWO);return 3;}";
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, source);
    let hex: String = "#define TWO 2\n"
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (status, body) = execute(
        &app,
        json!({"language": "gcc", "version": "*",
               "files": [{"name": "main.c", "content": b64, "encoding": "base64"},
                         {"name": "two.h", "content": hex, "encoding": "hex"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["compile"]["code"], 0, "{body}");
    assert_eq!(body["run"]["stdout"], "2\n");
    assert_eq!(body["run"]["code"], 3);
    assert_eq!(body["run"]["status"], "RE");
    assert_eq!(body["run"]["message"], "Exited with error status 3");

    // A failed compile is shown as the run too.
    let (_, body) = execute(
        &app,
        json!({"language": "c++", "version": "12", "files": [{"content": "int main() { nope; }"}]}),
    )
    .await;
    assert_ne!(body["compile"]["code"], 0, "{body}");
    assert_eq!(body["run"], body["compile"]);

    // Time limit and signal.
    let (_, body) = execute(
        &app,
        json!({"language": "python", "version": "*", "run_cpu_time": 300,
               "files": [{"content": "while True: pass"}]}),
    )
    .await;
    assert_eq!(body["run"]["status"], "TO", "{body}");
    assert_eq!(body["run"]["signal"], "SIGKILL");
    let (_, body) = execute(
        &app,
        json!({"language": "python", "version": "*",
               "files": [{"content": "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"}]}),
    )
    .await;
    assert_eq!(body["run"]["status"], "SG", "{body}");
    assert_eq!(body["run"]["signal"], "SIGSEGV");
}

#[tokio::test]
async fn piston_errors_and_the_json_requirement() {
    let app = app();
    let cases = [
        (
            json!({"version": "*", "files": []}),
            "language is required as a string",
        ),
        (
            json!({"language": "python", "files": []}),
            "version is required as a string",
        ),
        (
            json!({"language": "python", "version": "*"}),
            "files is required as an array",
        ),
        (
            json!({"language": "brainfuck", "version": "*", "files": [{"content": ""}]}),
            "brainfuck-* runtime is unknown",
        ),
        (
            json!({"language": "python", "version": "2.7", "files": [{"content": ""}]}),
            "python-2.7 runtime is unknown",
        ),
        (
            json!({"language": "python", "version": "*", "files": [{"name": "x.py"}]}),
            "files[0].content is required as a string",
        ),
        (
            json!({"language": "python", "version": "*", "files": [{"content": ""}], "run_memory_limit": -1}),
            "run_memory_limit must be non-negative",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = execute(&app, body.clone()).await;
        assert_eq!(
            (status, answer),
            (400, json!({"message": message})),
            "{body}"
        );
    }
    // A file name that climbs out of the workspace is refused by admission, in Piston's shape.
    let (status, answer) = execute(
        &app,
        json!({"language": "python", "version": "*", "files": [{"name": "../../etc/passwd", "content": "x"}]}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].is_string());
    let response = app
        .http
        .post(format!("{}/api/v2/execute", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("language=python")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"message": "requests must be of type application/json"})
    );
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp) -> Ws {
    let url = format!(
        "{}/api/v2/connect",
        app.base.replacen("http://", "ws://", 1)
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// Frames until the close, with the close's code and reason.
async fn until_close(ws: &mut Ws) -> (Vec<Value>, Option<(u16, String)>) {
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                frames.push(serde_json::from_str(t.as_str()).unwrap())
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return (
                    frames,
                    frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                )
            }
            Ok(Some(Ok(_))) => {}
            Ok(_) => return (frames, None),
            Err(_) => panic!("no close within a minute; frames so far: {frames:?}"),
        }
    }
}

#[tokio::test]
async fn the_websocket_runs_an_interactive_program() {
    let app = app();
    let mut ws = connect(&app).await;
    send(
        &mut ws,
        json!({"type": "init", "language": "python", "version": "*",
               "files": [{"content": "name = input()\nprint('hello', name, flush=True)\nprint('bye', input())"}]}),
    )
    .await;
    let runtime = ws.next().await.unwrap().unwrap();
    let runtime: Value = serde_json::from_str(runtime.to_text().unwrap()).unwrap();
    assert_eq!(
        runtime,
        json!({"type": "runtime", "language": "python", "version": runtime["version"]})
    );
    send(
        &mut ws,
        json!({"type": "data", "stream": "stdin", "data": "world\n"}),
    )
    .await;
    send(
        &mut ws,
        json!({"type": "data", "stream": "stdin", "data": "now\n"}),
    )
    .await;
    let (frames, close) = until_close(&mut ws).await;
    assert_eq!(close, Some((4999, "Job Completed".into())), "{frames:?}");
    assert!(
        frames.contains(&json!({"type": "stage", "stage": "run"})),
        "{frames:?}"
    );
    let stdout: String = frames
        .iter()
        .filter(|f| f["type"] == "data" && f["stream"] == "stdout")
        .map(|f| f["data"].as_str().unwrap())
        .collect();
    assert_eq!(stdout, "hello world\nbye now\n");
    assert_eq!(
        frames.last().unwrap(),
        &json!({"type": "exit", "stage": "run", "code": 0, "signal": null})
    );

    // A compiled program: compile stage and exit, then run.
    let mut ws = connect(&app).await;
    send(
        &mut ws,
        json!({"type": "init", "language": "c", "version": "*",
               "files": [{"content": "#include <stdio.h>\nint main(){puts(\"compiled\");}"}]}),
    )
    .await;
    let (frames, close) = until_close(&mut ws).await;
    assert_eq!(close.map(|c| c.0), Some(4999), "{frames:?}");
    let kinds: Vec<String> = frames
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["type"].as_str().unwrap(),
                f["stage"].as_str().unwrap_or("")
            )
        })
        .collect();
    let at = |k: &str| {
        kinds
            .iter()
            .position(|x| x == k)
            .unwrap_or_else(|| panic!("{k} missing: {kinds:?}"))
    };
    assert!(at("stage:compile") < at("exit:compile") && at("exit:compile") < at("stage:run"));
    assert!(at("stage:run") < at("exit:run"));
}

#[tokio::test]
async fn the_websocket_close_codes() {
    let app = app();
    // No init within a second.
    let mut ws = connect(&app).await;
    let (_, close) = until_close(&mut ws).await;
    assert_eq!(close, Some((4001, "Initialization Timeout".into())));
    // Data before init.
    let mut ws = connect(&app).await;
    send(
        &mut ws,
        json!({"type": "data", "stream": "stdin", "data": "x"}),
    )
    .await;
    assert_eq!(until_close(&mut ws).await.1.map(|c| c.0), Some(4003));
    // An init that cannot run: an error frame, then 4002.
    let mut ws = connect(&app).await;
    send(
        &mut ws,
        json!({"type": "init", "language": "nope", "version": "*", "files": [{"content": ""}]}),
    )
    .await;
    let (frames, close) = until_close(&mut ws).await;
    assert_eq!(
        frames,
        vec![json!({"type": "error", "message": "nope-* runtime is unknown"})]
    );
    assert_eq!(close, Some((4002, "Notified Error".into())));
    // A program that waits for input; then misuse.
    let waiting = json!({"type": "init", "language": "python", "version": "*", "files": [{"content": "input()"}]});
    for (misuse, code) in [
        (
            json!({"type": "init", "language": "python", "version": "*", "files": [{"content": ""}]}),
            4000,
        ),
        (
            json!({"type": "data", "stream": "stdout", "data": "x"}),
            4004,
        ),
        (json!({"type": "signal", "signal": "SIGNOPE"}), 4005),
    ] {
        let mut ws = connect(&app).await;
        send(&mut ws, waiting.clone()).await;
        send(&mut ws, misuse.clone()).await;
        let (frames, close) = until_close(&mut ws).await;
        assert_eq!(close.map(|c| c.0), Some(code), "{misuse} -> {frames:?}");
    }
    // A valid signal ends the program.
    let mut ws = connect(&app).await;
    send(&mut ws, waiting).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&mut ws, json!({"type": "signal", "signal": "SIGKILL"})).await;
    let (frames, close) = until_close(&mut ws).await;
    assert_eq!(close.map(|c| c.0), Some(4999), "{frames:?}");
}
