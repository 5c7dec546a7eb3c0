//! Input that is not what a well-behaved client sends: bytes that are not UTF-8 in source, stdin
//! and output, file names that try to leave the workspace, and sources near the size limit.

use crate::helpers::{app, assert_verdict};
use serde_json::json;

fn b64(bytes: &[u8]) -> String {
    use std::fmt::Write;
    // A tiny encoder, so the tests do not trust the code under test to produce their input.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.write_char(T[(n >> (18 - 6 * i) & 63) as usize] as char)
                    .unwrap();
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn non_utf8_output_reaches_the_client_byte_for_byte() {
    let job = app()
        .run_source("python", "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe\\x00ok\\n')\nprint('text', file=sys.stderr)", "")
        .await;
    assert_verdict(&job, "ok");
    assert_eq!(job["run"]["stdout_encoding"], "base64", "{job:#}");
    assert_eq!(job["run"]["stdout"], b64(b"\xff\xfe\x00ok\n"));
    assert_eq!(job["run"]["stderr"], "text\n");
    assert!(job["run"].get("stderr_encoding").is_none(), "{job:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn non_utf8_stdin_is_delivered_and_echoed_faithfully() {
    let input = b"\x80\x81 binary \xff\n";
    let job = app()
        .run(json!({"language": "bash", "source": "cat", "stdin": b64(input), "stdin_encoding": "base64"}))
        .await;
    assert_verdict(&job, "ok");
    assert_eq!(job["run"]["stdout_encoding"], "base64");
    assert_eq!(job["run"]["stdout"], b64(input));
}

#[tokio::test(flavor = "multi_thread")]
async fn non_utf8_source_runs_or_fails_cleanly() {
    let app = app();
    let bash = b"# \xff\xfe comment that is not UTF-8\necho fine\n";
    let job = app
        .run(json!({"language": "bash", "files": [{"name": "main.sh", "content": b64(bash), "encoding": "base64"}]}))
        .await;
    assert_verdict(&job, "ok");
    assert_eq!(job["run"]["stdout"], "fine\n");
    let python = b"print('\xff')\n";
    let job = app
        .run(json!({"language": "python", "files": [{"name": "main.py", "content": b64(python), "encoding": "base64"}]}))
        .await;
    assert_verdict(&job, "runtime_error");
    assert!(
        job["run"]["stderr"]
            .as_str()
            .unwrap()
            .contains("SyntaxError"),
        "{job:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn file_names_that_leave_the_workspace_are_refused() {
    let app = app();
    for name in [
        "../escape.py",
        "/etc/passwd",
        "a/b.py",
        "..",
        "-rf",
        "nul\u{0}.py",
    ] {
        let (status, body) = app
            .post_jobs(
                "",
                json!({"language": "python", "files": [{"name": name, "content": "print(1)"}]})
                    .to_string(),
            )
            .await;
        assert_eq!(status, 422, "{name:?}: {body}");
        assert_eq!(body["error"]["field"], "files[0].name", "{name:?}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_source_just_under_the_body_limit_runs() {
    let source = format!("#{}\nprint('big')\n", "x".repeat(1_900_000));
    let job = app().run_source("python", &source, "").await;
    assert_verdict(&job, "ok");
    assert_eq!(job["run"]["stdout"], "big\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_reach_the_program_as_argv_never_through_a_shell() {
    let args = [
        "two words",
        "$(touch /tmp/pwned)",
        "`id`",
        "; rm -rf ~",
        "'quoted'\"",
        "*",
        "",
        "-rf",
        "ü\n",
    ];
    let job = app()
        .run(json!({
            "language": "python",
            "source": "import json, os, sys\nprint(json.dumps(sys.argv[1:]))\nprint(os.path.exists('/tmp/pwned'))",
            "args": args,
        }))
        .await;
    assert_verdict(&job, "ok");
    let out = job["run"]["stdout"].as_str().unwrap();
    let (argv, pwned) = out.trim_end().rsplit_once('\n').unwrap();
    let argv: Vec<String> = serde_json::from_str(argv).unwrap();
    assert_eq!(argv, args, "every argument unchanged, none expanded");
    assert_eq!(pwned, "False", "no substitution ran");
}
