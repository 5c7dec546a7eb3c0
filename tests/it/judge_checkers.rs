//! Custom checkers through the whole stack, in both dialects and two languages: what each
//! answer means, partial credit, and that a checker that crashes, loops or answers outside its
//! dialect makes the test `internal_error`, never `accepted`.

use crate::helpers::{app, assert_verdict};
use serde_json::{json, Value};

/// Prints its input back, so each test's input is also the output the checker reads.
const ECHO_PY: &str = "import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read())";

/// testlib dialect (`checker input output answer`), in C++, with a header of its own (as a
/// checker brings `testlib.h`): the input's first word says how to answer.
const TESTLIB_CPP: &str = r#"
#include "verdicts.h"
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <cstdlib>
static std::string slurp(const char* p) { std::ifstream f(p); std::stringstream s; s << f.rdbuf(); return s.str(); }
int main(int argc, char** argv) {
    if (argc != 4) { std::cerr << "usage"; return 3; }
    std::string input = slurp(argv[1]), output = slurp(argv[2]), answer = slurp(argv[3]);
    std::string mode = input.substr(0, input.find(' '));
    if (mode == "ac") return OK;
    if (mode == "wa") { std::cerr << "expected something else"; return WA; }
    if (mode == "pe") return PE;
    if (mode == "fail") return FAIL;
    if (mode == "partial") { std::cout << "points 0.7\n"; std::cerr << "most of it"; return PARTIAL; }
    if (mode == "crash") std::abort();
    if (mode == "loop") for (volatile unsigned long i = 0;; i++) {}
    if (mode == "garbage") return 5;
    if (mode == "cmp") { if (output == answer) return OK; std::cerr << "differs"; return WA; }
    return FAIL;
}
"#;
const VERDICTS_H: &str = "#pragma once\nenum { OK = 0, WA = 1, PE = 2, FAIL = 3, PARTIAL = 7 };\n";

/// Kattis dialect (`checker input answer feedback_dir < output`), in Python.
const KATTIS_PY: &str = r#"
import os, sys
input_file, answer_file, feedback = sys.argv[1], sys.argv[2], sys.argv[3]
mode = open(input_file).read().split(' ')[0]
output = sys.stdin.read()
def say(text):
    with open(os.path.join(feedback, 'judgemessage.txt'), 'w') as f:
        f.write(text)
if mode == 'ac': sys.exit(42)
if mode == 'wa':
    say('not quite')
    sys.exit(43)
if mode == 'crash': raise RuntimeError('checker bug')
if mode == 'garbage': sys.exit(0)
if mode == 'loop':
    while True: pass
if mode == 'cmp':
    if output == open(answer_file).read(): sys.exit(42)
    say('differs')
    sys.exit(43)
sys.exit(1)
"#;

fn test(mode: &str, answer: Option<&str>) -> Value {
    let mut t = json!({"stdin": format!("{mode} tail"), "points": 10});
    if let Some(a) = answer {
        t["expected"] = json!(a);
    }
    t
}

fn verdicts(job: &Value) -> Vec<String> {
    by_name(job).into_iter().map(|(v, _, _)| v).collect()
}

fn by_name(job: &Value) -> Vec<(String, f64, Option<String>)> {
    job["tests"]
        .as_array()
        .unwrap_or_else(|| panic!("no tests: {job:#}"))
        .iter()
        .map(|t| {
            (
                t["verdict"].as_str().unwrap().to_string(),
                t["points"].as_f64().unwrap(),
                t["checker_message"].as_str().map(String::from),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_testlib_checker_in_cpp_speaks_its_dialect() {
    let app = app();
    let checker = json!({"type": "custom", "language": "cpp", "dialect": "testlib",
        "files": [{"name": "checker.cpp", "content": TESTLIB_CPP}, {"name": "verdicts.h", "content": VERDICTS_H}]});
    let tests = vec![
        test("ac", None),
        test("wa", None),
        test("pe", None),
        test("partial", None),
        test("fail", None),
        test("crash", None),
        test("garbage", None),
        test("cmp", Some("cmp tail")),
        test("cmp", Some("something else")),
        test("loop", None),
    ];
    let job = app
        .run(json!({"language": "python", "source": ECHO_PY, "tests": tests, "checker": checker}))
        .await;
    let got = by_name(&job);
    assert_eq!(
        verdicts(&job),
        [
            "accepted",
            "wrong_answer",
            "presentation_error",
            "wrong_answer",
            "internal_error",
            "internal_error",
            "internal_error",
            "accepted",
            "wrong_answer",
            "internal_error"
        ],
        "{job:#}"
    );
    assert_eq!(got[1].2.as_deref(), Some("expected something else"));
    assert_eq!((got[3].1, got[3].2.as_deref()), (7.0, Some("most of it")));
    assert_eq!(got[8].2.as_deref(), Some("differs"));
    assert_eq!(job["score"], json!({"points": 27.0, "max_points": 100.0}));
    assert_verdict(&job, "wrong_answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kattis_checker_in_python_speaks_its_dialect() {
    let app = app();
    let checker =
        json!({"type": "custom", "language": "python", "dialect": "kattis", "source": KATTIS_PY});
    let tests = vec![
        test("ac", None),
        test("wa", None),
        test("crash", None),
        test("garbage", None),
        test("cmp", Some("cmp tail")),
        test("cmp", Some("nope")),
        test("loop", None),
    ];
    let job = app
        .run(json!({"language": "python", "source": ECHO_PY, "tests": tests, "checker": checker}))
        .await;
    let got = by_name(&job);
    assert_eq!(
        verdicts(&job),
        [
            "accepted",
            "wrong_answer",
            "internal_error",
            "internal_error",
            "accepted",
            "wrong_answer",
            "internal_error"
        ],
        "{job:#}"
    );
    assert_eq!(got[1].2.as_deref(), Some("not quite"));
    assert_eq!(got[5].2.as_deref(), Some("differs"));
    assert_eq!(job["score"]["points"], 20.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checker_that_does_not_compile_or_a_failed_solution_never_gives_accepted() {
    let app = app();
    let broken =
        json!({"type": "custom", "language": "cpp", "dialect": "testlib", "source": "int main( {"});
    let job = app
        .run(json!({"language": "python", "source": ECHO_PY, "tests": [test("ac", None)], "checker": broken}))
        .await;
    assert_verdict(&job, "internal_error");
    let message = job["tests"][0]["checker_message"].as_str().unwrap();
    assert!(message.contains("did not compile"), "{message}");

    // The solution's own failure is its verdict; the checker is not asked.
    let checker =
        json!({"type": "custom", "language": "python", "dialect": "kattis", "source": KATTIS_PY});
    let job = app
        .run(
            json!({"language": "python", "source": "raise SystemExit(9)", "stop_on_failure": true,
                    "tests": [test("ac", None), test("ac", None)], "checker": checker}),
        )
        .await;
    assert_verdict(&job, "runtime_error");
    assert_eq!(verdicts(&job), ["runtime_error", "skipped"]);
}

/// The other two pairings: testlib in Python, Kattis in C++.
#[tokio::test(flavor = "multi_thread")]
async fn testlib_in_python_and_kattis_in_cpp() {
    let app = app();
    let testlib_py = "import sys\ninp, out, ans = (open(p).read() for p in sys.argv[1:4])\nmode = inp.split(' ')[0]\nif mode == 'ac': sys.exit(0)\nif mode == 'partial':\n    print('points 0.5')\n    sys.exit(7)\nif mode == 'pe': sys.exit(2)\nif mode == 'loop':\n    while True: pass\nsys.stderr.write('no')\nsys.exit(1)";
    let checker =
        json!({"type": "custom", "language": "python", "dialect": "testlib", "source": testlib_py});
    let tests = vec![
        test("ac", None),
        test("partial", None),
        test("pe", None),
        test("wa", None),
        test("loop", None),
    ];
    let job = app
        .run(json!({"language": "python", "source": ECHO_PY, "tests": tests, "checker": checker}))
        .await;
    assert_eq!(
        verdicts(&job),
        [
            "accepted",
            "wrong_answer",
            "presentation_error",
            "wrong_answer",
            "internal_error"
        ],
        "{job:#}"
    );
    assert_eq!(job["score"]["points"], 15.0);

    let kattis_cpp = r#"
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
int main(int argc, char** argv) {
    std::ifstream in(argv[1]);
    std::string mode; in >> mode;
    std::string out((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    std::ofstream msg(std::string(argv[3]) + "/judgemessage.txt");
    if (mode == "ac") return 42;
    if (mode == "crash") { int* p = nullptr; return *p; }
    if (mode == "garbage") return 1;
    msg << "wrong: " << out.size() << " bytes";
    return 43;
}
"#;
    let checker =
        json!({"type": "custom", "language": "cpp", "dialect": "kattis", "source": kattis_cpp});
    let tests = vec![
        test("ac", None),
        test("wa", None),
        test("crash", None),
        test("garbage", None),
    ];
    let job = app
        .run(json!({"language": "python", "source": ECHO_PY, "tests": tests, "checker": checker}))
        .await;
    let got = by_name(&job);
    assert_eq!(
        verdicts(&job),
        [
            "accepted",
            "wrong_answer",
            "internal_error",
            "internal_error"
        ],
        "{job:#}"
    );
    assert_eq!(got[1].2.as_deref(), Some("wrong: 7 bytes"));
}
