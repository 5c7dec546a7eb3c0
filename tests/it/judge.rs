//! Judge mode through the whole stack (`tests`, `checker`, files by reference): per-test
//! verdicts, the job's first-failure verdict and score, `stop_on_failure`, the built-in
//! checkers on their edge cases, what a hostile solution can reach between tests, live `test`
//! events, and refusals that name the field.

use crate::helpers::{app, assert_verdict, TestApp, REDIS_DB};
use serde_json::{json, Value};

const APLUSB_CPP: &str =
    "#include <iostream>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}";
const APLUSB_PY: &str = "a, b = map(int, input().split())\nprint(a + b)";
const APLUSB_JAVA: &str = "import java.util.Scanner;\npublic class Main { public static void main(String[] x) { Scanner s = new Scanner(System.in); long a = s.nextLong(), b = s.nextLong(); System.out.println(a + b); } }";
/// Prints its input back: the test's `stdin` is the output the checker sees.
const ECHO_PY: &str = "import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read())";

/// 50 a+b tests; the expected answer of test `wrong` (0-based) is off by one.
fn aplusb_tests(wrong: usize) -> Vec<Value> {
    (0..50)
        .map(|i| {
            let (a, b) = (i * 7 + 1, i * 13 + 2);
            let sum = a + b + usize::from(i == wrong);
            json!({"stdin": format!("{a} {b}\n"), "expected": format!("{sum}\n")})
        })
        .collect()
}

fn verdicts(job: &Value) -> Vec<String> {
    job["tests"]
        .as_array()
        .unwrap_or_else(|| panic!("no tests in {job:#}"))
        .iter()
        .map(|t| t["verdict"].as_str().unwrap().to_string())
        .collect()
}

async fn aplusb(language: &str, source: &str) {
    let app = app();
    let job = app
        .run(json!({"language": language, "source": source, "tests": aplusb_tests(16)}))
        .await;
    assert_verdict(&job, "wrong_answer");
    let v = verdicts(&job);
    assert_eq!(v.len(), 50);
    for (i, verdict) in v.iter().enumerate() {
        let want = if i == 16 { "wrong_answer" } else { "accepted" };
        assert_eq!(verdict, want, "test {i}: {job:#}");
    }
    assert_eq!(job["score"], json!({"points": 49.0, "max_points": 50.0}));
    let wrong = &job["tests"][16];
    assert_eq!(wrong["name"], "17");
    assert!(
        wrong["checker_message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{wrong}"
    );
    assert!(
        job["tests"][0].get("stdout").is_none(),
        "stdout only with return_output"
    );
    assert!(job["run"].is_null(), "{job:#}");
    for t in job["tests"].as_array().unwrap() {
        assert!(t["wall_ms"].as_u64().unwrap() < 5000, "{t}");
        assert!(t["memory_kb"].as_u64().unwrap() > 0, "{t}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aplusb_in_cpp_with_one_wrong_answer() {
    aplusb("cpp", APLUSB_CPP).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aplusb_in_python_with_one_wrong_answer() {
    aplusb("python", APLUSB_PY).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aplusb_in_java_with_one_wrong_answer() {
    aplusb("java", APLUSB_JAVA).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compile_once_and_stop_on_failure_skips_the_rest() {
    let app = app();
    let mut tests = aplusb_tests(2);
    tests[0]["points"] = json!(5);
    let job = app
        .run(json!({"language": "cpp", "source": APLUSB_CPP, "tests": tests[..6], "stop_on_failure": true}))
        .await;
    assert_verdict(&job, "wrong_answer");
    assert_eq!(
        verdicts(&job),
        [
            "accepted",
            "accepted",
            "wrong_answer",
            "skipped",
            "skipped",
            "skipped"
        ]
    );
    assert_eq!(job["score"], json!({"points": 6.0, "max_points": 10.0}));
    assert_eq!(job["compile"]["exit_code"], 0, "one compile: {job:#}");

    // A runtime error stops them too, and a compile error runs none.
    let crash = "int main(){return 3;}";
    let job = app
        .run(json!({"language": "cpp", "source": crash, "tests": tests[..3], "stop_on_failure": true}))
        .await;
    assert_verdict(&job, "runtime_error");
    assert_eq!(verdicts(&job), ["runtime_error", "skipped", "skipped"]);
    assert_eq!(job["tests"][0]["exit_code"], 3);
    let job = app
        .run(json!({"language": "cpp", "source": "int main({", "tests": tests[..3]}))
        .await;
    assert_verdict(&job, "compile_error");
    assert_eq!(verdicts(&job), ["skipped", "skipped", "skipped"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_per_test_and_verdicts_of_how_a_test_ended() {
    let app = app();
    let source = "import sys\nmode = sys.stdin.read().strip()\nif mode == 'spin':\n    while True: pass\nif mode == 'eat':\n    x = bytearray(400 << 20)\nif mode == 'crash':\n    raise SystemExit(4)\nif mode == 'flood':\n    sys.stdout.write('x' * 100000)\nprint('ok')";
    let job = app
        .run(json!({
            "language": "python", "source": source,
            "limits": {"cpu_time_ms": 500, "memory_mb": 128, "output_bytes": 1000},
            "tests": [
                {"stdin": "fine", "expected": "ok\n"},
                {"stdin": "spin"},
                {"stdin": "eat"},
                {"stdin": "crash"},
                {"stdin": "flood"},
                {"stdin": "fine", "expected": "ok\n", "limits": {"cpu_time_ms": 2000}},
            ],
        }))
        .await;
    assert_eq!(
        verdicts(&job),
        [
            "accepted",
            "time_limit_exceeded",
            "memory_limit_exceeded",
            "runtime_error",
            "output_limit_exceeded",
            "accepted"
        ],
        "{job:#}"
    );
    assert_verdict(&job, "time_limit_exceeded");
    let spin = &job["tests"][1];
    let cpu = spin["cpu_ms"].as_u64().unwrap();
    assert!(
        (500..600).contains(&cpu),
        "noticed within 100 ms of the limit: {spin}"
    );
    // No wall limit given: 2 x CPU + 1 s.
    assert!(spin["wall_ms"].as_u64().unwrap() < 2000, "{spin}");
    // Each test's figures are its own, though tests may share a meter (a cgroup reused between
    // tests of the same memory limit): the CPU the spinner burned is not the eater's, and the
    // memory the eater filled is not the next test's peak.
    let (eat, crash) = (&job["tests"][2], &job["tests"][3]);
    assert!(eat["cpu_ms"].as_u64().unwrap() < 450, "{eat}");
    assert!(
        crash["memory_kb"].as_u64().unwrap() < 64 * 1024,
        "the eater's 128 MiB peak is not the next test's: {crash}"
    );
    assert!(crash["cpu_ms"].as_u64().unwrap() < 450, "{crash}");
}

/// One job per checker, the program echoing each test's input: `(output, expected, accepted)`.
async fn checker_cases(app: &TestApp, checker: Value, cases: &[(&str, &str, bool)]) {
    let tests: Vec<Value> = cases
        .iter()
        .map(|(out, want, _)| json!({"stdin": out, "expected": want}))
        .collect();
    let job = app
        .run(json!({"language": "python", "source": ECHO_PY, "tests": tests, "checker": checker}))
        .await;
    for (i, (out, want, ok)) in cases.iter().enumerate() {
        let verdict = &job["tests"][i]["verdict"];
        let expected = if *ok { "accepted" } else { "wrong_answer" };
        assert_eq!(
            verdict, expected,
            "{checker}: output {out:?} vs {want:?}: {job:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_built_in_checker_on_its_edge_cases() {
    let app = app();
    checker_cases(
        &app,
        json!({"type": "exact"}),
        &[
            ("3\n", "3\n", true),
            ("3", "3\n", false),
            ("", "", true),
            ("3 \n", "3\n", false),
        ],
    )
    .await;
    // The default: trailing whitespace of lines and trailing empty lines do not count.
    checker_cases(
        &app,
        json!({"type": "lines"}),
        &[
            ("3  \n\n\n", "3\n", true),
            ("3", "3\n", true),
            ("", "", true),
            ("", "3\n", false),
            (" 3\n", "3\n", false),
            ("1\n2\n", "1\n2\n3\n", false),
        ],
    )
    .await;
    checker_cases(
        &app,
        json!({"type": "tokens"}),
        &[
            ("1   2\n\n3", "1 2 3\n", true),
            ("1 2 3 4", "1 2 3", false),
            ("YES", "yes", false),
            ("", "", true),
        ],
    )
    .await;
    checker_cases(
        &app,
        json!({"type": "tokens", "case_sensitive": false}),
        &[("YES no", "yes NO", true), ("YES", "yess", false)],
    )
    .await;
    checker_cases(
        &app,
        json!({"type": "float", "abs_tolerance": 0.01}),
        &[
            ("1.005", "1.0", true),
            ("1.02", "1.0", false),
            ("1.0 abc", "1.0 abc", true),
            ("1.0 abd", "1.0 abc", false),
            ("nan", "1.0", false),
            ("1.0 2.0", "1.0", false),
        ],
    )
    .await;
    checker_cases(
        &app,
        json!({"type": "float", "rel_tolerance": 0.001}),
        &[("1000.9", "1000", true), ("1002", "1000", false)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn return_output_and_capped_stderr() {
    let app = app();
    let source = "import sys\nsys.stderr.write('e' * 5000)\nprint(input())";
    let job = app
        .run(
            json!({"language": "python", "source": source, "return_output": true,
                    "tests": [{"stdin": "hi\n", "expected": "hi\n"}, {"stdin": "\u{0}\u{ff}"}]}),
        )
        .await;
    assert_verdict(&job, "accepted");
    assert_eq!(job["tests"][0]["stdout"], "hi\n");
    let stderr = job["tests"][0]["stderr"].as_str().unwrap();
    assert_eq!(stderr.len(), 1024, "capped: {}", stderr.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_output_neither_slows_nor_fools_the_checker() {
    let app = app();
    // The language's largest output (4 MiB) as one token without a newline, invalid UTF-8 and
    // NUL, 2 x 10^6 tokens. (10^7 tokens and 64 MiB are the checkers' unit tests.)
    let source = "import sys\nm = sys.stdin.read()\nif m == 'huge': sys.stdout.write('9' * 4_000_000)\nif m == 'bytes': sys.stdout.buffer.write(b'3\\x00\\xff\\xfe\\n')\nif m == 'many': sys.stdout.write('1 ' * 2_000_000)";
    let job = app
        .run(
            json!({"language": "python", "source": source, "checker": {"type": "tokens"},
            "limits": {"output_bytes": 4_194_304, "cpu_time_ms": 10000, "memory_mb": 512},
            "tests": [
                {"stdin": "huge", "expected": "9"},
                {"stdin": "bytes", "expected": "3\n"},
                {"stdin": "many", "expected": "1 1"},
                {"stdin": "bytes", "expected": "3\u{0}\u{fffd}\n"},
            ]}),
        )
        .await;
    assert_eq!(
        verdicts(&job),
        [
            "wrong_answer",
            "wrong_answer",
            "wrong_answer",
            "wrong_answer"
        ],
        "{job:#}"
    );
    for t in job["tests"].as_array().unwrap() {
        let message = t["checker_message"].as_str().unwrap();
        assert!(message.len() <= 256, "{message}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_solution_cannot_reach_other_tests_or_what_a_test_left() {
    let app = app();
    // Test 1 leaves a daemon and files; every test looks for the other tests' data, for what
    // test 1 left, and through /proc for anything of the shim's. It prints what it found.
    let source = r#"
import os, sys, glob, subprocess
data = sys.stdin.read()
found = []
secrets = ['EXPECTED-ONE', 'EXPECTED-TWO', 'INPUT-TWO', 'INPUT-ONE']
mine = data.strip()
def look(path):
    try:
        with open(path, 'rb') as f:
            blob = f.read(1 << 20)
        for s in secrets:
            if s != mine and s.encode() in blob:
                found.append(f'{s} in {path}')
    except Exception:
        pass
for pattern in ['/work/**', '/tmp/**', '/dev/shm/**', '/run/**', '/var/**', '/proc/*/environ', '/proc/*/cmdline', '/proc/*/mem', '/proc/*/fd/*', '/proc/*/root/work/**']:
    for p in glob.glob(pattern, recursive=True)[:2000]:
        if os.path.isfile(p) or p.startswith('/proc'):
            look(p)
if mine == 'INPUT-ONE':
    open('/tmp/left-by-one', 'w').write('x')
    open('left-in-workspace', 'w').write('x')
    subprocess.Popen(['sleep', '30'], start_new_session=True)
else:
    for p in ['/tmp/left-by-one', 'left-in-workspace']:
        if os.path.exists(p): found.append('left: ' + p)
    out = subprocess.run(['ps', '-eo', 'comm'], capture_output=True, text=True).stdout if os.path.exists('/bin/ps') else ''
    procs = [d for d in os.listdir('/proc') if d.isdigit()]
    for d in procs:
        try:
            if open(f'/proc/{d}/comm').read().strip() == 'sleep': found.append('daemon survived')
        except Exception: pass
print('found:', found)
"#;
    let job = app
        .run(json!({"language": "python", "source": source, "return_output": true, "checker": {"type": "exact"},
                    "tests": [
                        {"stdin": "INPUT-ONE", "expected": "EXPECTED-ONE"},
                        {"stdin": "INPUT-TWO", "expected": "EXPECTED-TWO"},
                    ]}))
        .await;
    for t in job["tests"].as_array().unwrap() {
        assert_eq!(t["stdout"], "found: []\n", "{job:#}");
        assert_eq!(t["verdict"], "wrong_answer");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn files_by_reference_and_refusals_that_name_the_field() {
    let app = app();
    let upload = |bytes: Vec<u8>| {
        let app = &app;
        async move {
            crate::files::upload(app, bytes).await.1["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let input = upload(b"20 22\n".to_vec()).await;
    let answer = upload(b"42\n".to_vec()).await;
    let job = app
        .run(json!({"language": "python", "source": APLUSB_PY,
                    "tests": [{"stdin_file": input, "expected_file": answer}, {"stdin": "1 1", "expected": "2"}]}))
        .await;
    assert_verdict(&job, "accepted");

    let missing = format!("sha256:{}", "ab".repeat(32));
    let mut tests = vec![json!({"stdin": "1 1"}); 3];
    tests.push(json!({"stdin_file": missing}));
    let (status, body) = app
        .post_jobs(
            "",
            json!({"language": "python", "source": APLUSB_PY, "tests": tests}).to_string(),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "unknown_file");
    assert_eq!(body["error"]["field"], "tests[3].stdin_file");

    for (job, field) in [
        (
            json!({"language": "python", "source": "x", "tests": []}),
            "tests",
        ),
        (
            json!({"language": "python", "source": "x", "checker": {"type": "lines"}}),
            "checker",
        ),
        (
            json!({"language": "python", "source": "x", "tests": [{"stdin": "a", "stdin_file": input}]}),
            "tests[0].stdin_file",
        ),
        (
            json!({"language": "python", "source": "x", "tests": [{"expected_file": "sha256:xyz"}]}),
            "tests[0].expected_file",
        ),
        (
            json!({"language": "python", "source": "x", "tests": [{"points": -1}]}),
            "tests[0].points",
        ),
        (
            json!({"language": "python", "source": "x", "tests": [{"limits": {"memory_mb": 999999}}]}),
            "tests[0].limits.memory_mb",
        ),
        (
            json!({"language": "python", "source": "x", "tests": [{}], "checker": {"type": "float", "abs_tolerance": -1}}),
            "checker.abs_tolerance",
        ),
        (
            json!({"language": "python", "source": "x", "tests": [{}], "checker": {"type": "regex"}}),
            "checker.type",
        ),
        (
            json!({"language": "python", "source": "x", "tests": [{}], "stdin": "a"}),
            "stdin",
        ),
        (
            json!({"language": "python", "source": "x", "tests": [{"nmae": "a"}]}),
            "tests[0].nmae",
        ),
    ] {
        let (status, body) = app.post_jobs("", job.to_string()).await;
        assert!(status == 422 || status == 400, "{job}: {status} {body}");
        assert_eq!(body["error"]["field"], field, "{job}: {body}");
    }
    let too_many = vec![json!({}); 1001];
    let (status, body) = app
        .post_jobs(
            "",
            json!({"language": "python", "source": "x", "tests": too_many}).to_string(),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("tests")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_blob_is_an_internal_error_never_a_verdict() {
    let app = app();
    let bytes = format!("corrupt-me {}\n", uuid::Uuid::now_v7()).into_bytes();
    let id = rce_files::FileId::of(&bytes);
    let (status, _) = crate::files::upload(&app, bytes).await;
    assert_eq!(status, 201);
    let redis = redis::Client::open(format!("redis://127.0.0.1:6379/{REDIS_DB}")).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(rce_files::store::key(&id))
        .arg("something else")
        .query_async(&mut conn)
        .await
        .unwrap();
    for field in ["stdin_file", "expected_file"] {
        let job = app
            .run(json!({"language": "python", "source": ECHO_PY, "tests": [{field: id.as_str()}]}))
            .await;
        assert_verdict(&job, "internal_error");
        assert_eq!(job["status"], "failed");
        assert!(job["tests"][0]["verdict"] != "accepted", "{job:#}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_tests_stream_their_events_in_order() {
    let app = app();
    let tests: Vec<Value> = (0..1000)
        .map(|i| json!({"stdin": format!("{i} 1\n"), "expected": format!("{}\n", i + 1)}))
        .collect();
    let (status, body) = app
        .post_jobs(
            "",
            json!({"language": "cpp", "source": APLUSB_CPP, "tests": tests}).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap();
    let text = app
        .http
        .get(format!("{}/v1/jobs/{id}/events", app.base))
        .timeout(std::time::Duration::from_secs(300))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut indices = Vec::new();
    let mut done = None;
    let mut kind = String::new();
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("event: ") {
            kind = k.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            match kind.as_str() {
                "test" => {
                    let t: Value = serde_json::from_str(data).unwrap();
                    assert_eq!(t["verdict"], "accepted", "{t}");
                    indices.push(t["index"].as_u64().unwrap());
                }
                "done" => done = Some(serde_json::from_str::<Value>(data).unwrap()),
                _ => {}
            }
        }
    }
    assert_eq!(indices, (0..1000).collect::<Vec<u64>>());
    let done = done.expect("a done event");
    assert_verdict(&done, "accepted");
    assert_eq!(done["tests"].as_array().unwrap().len(), 1000);
    assert_eq!(done["score"]["points"], 1000.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn test_events_over_a_websocket_in_order_before_done() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let app = app();
    let url = format!("{}/v1/jobs/ws", app.base.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let job = json!({"language": "python", "source": APLUSB_PY, "tests": aplusb_tests(3)[..5]});
    ws.send(Message::Text(
        json!({"type": "submit", "job": job}).to_string().into(),
    ))
    .await
    .unwrap();
    let mut indices = Vec::new();
    let done = loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(60), ws.next())
            .await
            .expect("the server answers")
            .expect("the socket is open")
            .unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        match v["event"].as_str() {
            Some("test") => indices.push(v["data"]["index"].as_u64().unwrap()),
            Some("done") => break v["data"].clone(),
            _ => {}
        }
    };
    assert_eq!(indices, [0, 1, 2, 3, 4]);
    assert_verdict(&done, "wrong_answer");
    assert_eq!(done["tests"][3]["verdict"], "wrong_answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_64_mib_input_by_reference_end_to_end() {
    let app = app();
    // Distinct per run, so the upload and the runner's first fetch are both real.
    let mut bytes = vec![b'x'; 64 << 20];
    let tag = uuid::Uuid::now_v7().to_string();
    bytes[..tag.len()].copy_from_slice(tag.as_bytes());
    let (status, body) = crate::files::upload(&app, bytes).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    // The same 64 MiB as five tests' expected output is 320 MiB to read and compare: refused.
    let tests: Vec<Value> = (0..5).map(|_| json!({"expected_file": id})).collect();
    let (status, body) = app
        .post_jobs(
            "",
            json!({"language": "cpp", "source": "int main(){}", "tests": tests}).to_string(),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (413, Some("tests")),
        "{body}"
    );
    let count = "#include <cstdio>\nint main(){static char b[1<<16];long long n=0;size_t r;while((r=fread(b,1,sizeof b,stdin))>0)n+=r;printf(\"%lld\\n\",n);}";
    for _ in 0..2 {
        let job = app
            .run(json!({"language": "cpp", "source": count,
                        "tests": [{"stdin_file": id, "expected": format!("{}\n", 64 << 20)}]}))
            .await;
        assert_verdict(&job, "accepted");
    }
}
