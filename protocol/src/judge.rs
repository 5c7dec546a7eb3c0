//! Judge mode on the wire: the tests a job message carries (by file id, never their data) and
//! each test's result as the job and its `test` events show it.

use crate::encoding::Encoding;
use crate::limits::Limits;
pub use rce_judge::checker::Checker;
pub use rce_judge::score::{Score, TestVerdict};
use serde::{Deserialize, Serialize};

/// Most tests one job may carry.
pub const MAX_TESTS: usize = 1000;

/// What a test's result keeps of its stderr, and of a custom checker's message: enough to see
/// why, small enough that 1,000 tests stay a few MiB in Redis, RabbitMQ and a client.
pub const TEST_STDERR_BYTES: usize = 1024;

/// The most of the tests' stdouts one job returns with `return_output` (each is capped by its
/// test's `output_bytes` first); past it, stdouts are cut and the test says `stdout_truncated`.
pub const MAX_RETURNED_OUTPUT_BYTES: usize = 16 << 20;

/// The most test input one job may carry in all (each file is also capped on upload): inputs
/// travel to the container inside the job line.
pub const MAX_TOTAL_INPUT_BYTES: u64 = 96 << 20;

/// What a test may take besides its wall limit: a fresh workspace, the cleanup after it and
/// the check that the container is back at rest (tens of milliseconds; the rest is slack).
pub const PER_TEST_MARGIN_MS: u64 = 1_000;

/// The most expected output one job may make the runner read and compare, counted once per
/// test (a 64 MiB answer named by 1,000 tests is 64 GB of reading and hashing, not 64 MiB).
pub const MAX_TOTAL_EXPECTED_BYTES: u64 = 256 << 20;

/// The judge-mode part of a job message: resolved, validated, data by reference.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JudgeSpec {
    pub tests: Vec<TestSpec>,
    /// The built-in checker; unused when `custom_checker` is given.
    pub checker: Checker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_checker: Option<CustomChecker>,
    pub stop_on_failure: bool,
    pub return_output: bool,
}

/// `checker.type: custom`: a program of the client's, in any language we run, that judges each
/// test's output. It is untrusted code like the solution, and runs sandboxed like it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CustomChecker {
    pub language: String,
    pub files: Vec<crate::job::JobFile>,
    pub entrypoint: String,
    pub dialect: Dialect,
    /// The checker's limits per test: the service's defaults for checkers.
    pub limits: Limits,
}

/// How a custom checker is called and how it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// `checker input output answer`; exit 0 accepted, 1 wrong answer, 2 presentation error,
    /// 3 checker failure, 7 partial credit (stdout starts with `points X`, X in [0, 1]);
    /// stderr is the message.
    Testlib,
    /// `checker input answer feedback_dir < output`; exit 42 accepted, 43 wrong answer; the
    /// message is `feedback_dir/judgemessage.txt`.
    Kattis,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Testlib => "testlib",
            Self::Kattis => "kattis",
        }
    }
}

/// One test of a job message. Inline `stdin`/`expected` of the submission were stored as files
/// by the api, so every test names its data by id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestSpec {
    pub name: String,
    /// File id of the test's input.
    pub stdin: String,
    /// File id of the expected output; `None`: judged by how the program ended alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    pub points: f64,
    /// The job's run limits with the test's own over them, resolved.
    pub limits: Limits,
}

/// A test's default wall-clock limit when neither the test nor the job gives one: twice its CPU
/// limit plus a second (a program blocked on nothing but the clock still ends), within the
/// language's maximum.
pub fn default_wall_ms(cpu_time_ms: u64, max_wall_ms: u64) -> u64 {
    cpu_time_ms
        .saturating_mul(2)
        .saturating_add(1000)
        .min(max_wall_ms)
}

/// One test's result: an element of the job's `tests` and the data of its `test` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// 0-based position in the job's `tests`, so a live client can place it.
    pub index: usize,
    pub name: String,
    pub verdict: TestVerdict,
    /// Points earned.
    pub points: f64,
    pub wall_ms: u64,
    pub cpu_ms: u64,
    pub memory_kb: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    /// Only with `return_output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Encoding::is_utf8")]
    pub stdout_encoding: Encoding,
    /// The stdout shown was cut (by the test's `output_bytes` or the job's share of
    /// [`MAX_RETURNED_OUTPUT_BYTES`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdout_truncated: bool,
    /// At most [`TEST_STDERR_BYTES`].
    pub stderr: String,
    #[serde(default, skip_serializing_if = "Encoding::is_utf8")]
    pub stderr_encoding: Encoding,
    /// Where the output first differs (built-in checkers), or the custom checker's message.
    pub checker_message: Option<String>,
}

impl TestResult {
    /// A test that did not run: an earlier one failed under `stop_on_failure`, or the job ended
    /// before it (then `verdict` says how).
    pub fn not_run(index: usize, name: String, verdict: TestVerdict) -> Self {
        Self {
            index,
            name,
            verdict,
            points: 0.0,
            wall_ms: 0,
            cpu_ms: 0,
            memory_kb: 0,
            exit_code: None,
            signal: None,
            stdout: None,
            stdout_encoding: Encoding::Utf8,
            stdout_truncated: false,
            stderr: String::new(),
            stderr_encoding: Encoding::Utf8,
            checker_message: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_wall_limit_follows_the_cpu_limit() {
        assert_eq!(default_wall_ms(1000, 20_000), 3000);
        assert_eq!(default_wall_ms(15_000, 20_000), 20_000);
        assert_eq!(default_wall_ms(u64::MAX, 20_000), 20_000);
    }

    #[test]
    fn a_test_result_has_the_contracts_fields() {
        let r = TestResult::not_run(2, "3".into(), TestVerdict::Skipped);
        let v = serde_json::to_value(&r).unwrap();
        for field in [
            "name",
            "verdict",
            "points",
            "wall_ms",
            "cpu_ms",
            "memory_kb",
            "exit_code",
            "signal",
            "stderr",
            "checker_message",
        ] {
            assert!(v.get(field).is_some(), "{field} missing in {v}");
        }
        assert_eq!(v["verdict"], "skipped");
        assert!(v.get("stdout").is_none());
    }
}
