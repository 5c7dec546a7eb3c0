//! Custom checkers (`checker.type: custom`): the client's own program judging each test, in any
//! language we run. It is untrusted code like the solution, so it runs as a judge-mode job of
//! its own in a warm container of its language's pool: compiled once, then run once per test in
//! a fresh workspace holding the test's `input`, the solution's `output` and the `answer`,
//! under that container's uid (never the solution's: another container, another uid), with its
//! own limits, after the solution's processes are gone (its container was cleaned up first).
//!
//! What a checker answers is read strictly: anything outside its dialect (another exit code,
//! a signal, a time-out, `points` that do not parse or lie outside [0, 1]) makes the test
//! `internal_error`, never `accepted`.

use rce_pool::{JobChannels, Pools};
use rce_protocol::bytes::Base64Bytes;
use rce_protocol::job::JobMessage;
use rce_protocol::judge::{CustomChecker, Dialect, TestVerdict, TEST_STDERR_BYTES};
use rce_protocol::shim::{ShimFile, ShimTest, StepOutcome, Termination};
use rce_protocol::SCHEMA_VERSION;

/// The most a custom-checked job may hand its checker in all (inputs, outputs and answers):
/// they travel to the checker's container inside one job line.
pub const MAX_CHECKER_DATA_BYTES: usize = 48 << 20;

/// One test for the checker: what it judges.
pub struct CheckerCase {
    pub input: Vec<u8>,
    pub output: Vec<u8>,
    pub answer: Vec<u8>,
}

/// What the checker said of one test.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckerVerdict {
    pub verdict: TestVerdict,
    /// The fraction of the test's points awarded (testlib's partial credit), when not all or
    /// nothing.
    pub fraction: Option<f64>,
    pub message: Option<String>,
}

impl CheckerVerdict {
    fn failed(message: String) -> Self {
        Self {
            verdict: TestVerdict::InternalError,
            fraction: None,
            message: Some(capped(message.as_bytes())),
        }
    }
}

/// Runs `checker` on every case, in order; one verdict per case (all `internal_error`, with the
/// reason, when the checker could not run at all).
pub async fn check_all(
    pools: &Pools,
    job_id: &str,
    checker: &CustomChecker,
    cases: Vec<CheckerCase>,
) -> Vec<CheckerVerdict> {
    let n = cases.len();
    let all = |why: String| vec![CheckerVerdict::failed(why); n];
    if n == 0 {
        return Vec::new();
    }
    let Some(pool) = pools.get(&checker.language) else {
        return all(format!(
            "this runner has no {} pool to run the checker in",
            checker.language
        ));
    };
    let size: usize = cases
        .iter()
        .map(|c| c.input.len() + 2 * c.output.len() + c.answer.len())
        .sum();
    if size > MAX_CHECKER_DATA_BYTES {
        return all(format!(
            "the tests give the checker {size} bytes; a custom checker takes at most {MAX_CHECKER_DATA_BYTES}"
        ));
    }
    let args: Vec<String> = match checker.dialect {
        Dialect::Testlib => ["input", "output", "answer"].map(String::from).to_vec(),
        // Its feedback directory is its own workspace, where the shim reads its message.
        Dialect::Kattis => ["input", "answer", "./"].map(String::from).to_vec(),
    };
    let job = JobMessage {
        schema: SCHEMA_VERSION,
        id: format!("{job_id}.checker"),
        language: checker.language.clone(),
        files: checker.files.clone(),
        entrypoint: checker.entrypoint.clone(),
        stdin: Base64Bytes::default(),
        args,
        limits: checker.limits,
        created_at: chrono::Utc::now(),
        interactive: false,
        judge: None,
        compiler_options: Vec::new(),
        merge_stderr: false,
    };
    let tests: Vec<ShimTest> = cases
        .into_iter()
        .map(|c| {
            let file = |name: &str, bytes: Vec<u8>| ShimFile {
                name: name.into(),
                content: Base64Bytes(bytes),
            };
            let (stdin, report_file) = match checker.dialect {
                Dialect::Testlib => (Vec::new(), None),
                Dialect::Kattis => (c.output.clone(), Some("judgemessage.txt".to_string())),
            };
            let mut test = pool.shim_test(stdin, &checker.limits);
            test.files = vec![
                file("input", c.input),
                file("output", c.output),
                file("answer", c.answer),
            ];
            test.report_file = report_file;
            test
        })
        .collect();
    let record = match pool.run_tests(&job, tests, JobChannels::detached()).await {
        Ok(record) => record,
        Err(e) => return all(format!("the checker could not run: {e}")),
    };
    if let Some(build) = record.steps.first() {
        if !(build.termination == Termination::Exited && build.exit_code == Some(0)) {
            let why = String::from_utf8_lossy(&build.stderr.0[..build.stderr.0.len().min(512)])
                .into_owned();
            return all(format!("the checker did not compile: {why}"));
        }
    }
    let mut verdicts: Vec<CheckerVerdict> = record
        .tests
        .iter()
        .map(|o| read_answer(checker.dialect, o))
        .collect();
    let why = record
        .error
        .unwrap_or_else(|| "the checker stopped before this test".into());
    verdicts.resize(n, CheckerVerdict::failed(why));
    verdicts
}

/// What one run of the checker means in its dialect.
pub fn read_answer(dialect: Dialect, o: &StepOutcome) -> CheckerVerdict {
    let exited = o.termination == Termination::Exited;
    let message = |bytes: &[u8]| {
        let m = capped(bytes);
        (!m.is_empty()).then_some(m)
    };
    let judged = |verdict, fraction| CheckerVerdict {
        verdict,
        fraction,
        message: message(&o.stderr.0),
    };
    if !exited {
        return CheckerVerdict::failed(format!(
            "the checker did not exit by itself ({:?}, signal {:?})",
            o.termination, o.signal
        ));
    }
    match (dialect, o.exit_code) {
        (Dialect::Testlib, Some(0)) => judged(TestVerdict::Accepted, None),
        (Dialect::Testlib, Some(1)) => judged(TestVerdict::WrongAnswer, None),
        (Dialect::Testlib, Some(2)) => judged(TestVerdict::PresentationError, None),
        (Dialect::Testlib, Some(7)) => match partial_points(&o.stdout.0) {
            Some(f) if f >= 1.0 => judged(TestVerdict::Accepted, None),
            Some(f) => judged(TestVerdict::WrongAnswer, Some(f)),
            None => CheckerVerdict::failed(
                "the checker exited 7 (partial credit) without `points X`, X in [0, 1], on stdout"
                    .into(),
            ),
        },
        (Dialect::Kattis, Some(42)) => judged(TestVerdict::Accepted, None),
        (Dialect::Kattis, Some(43)) => judged(TestVerdict::WrongAnswer, None),
        (_, code) => {
            let mut failed = CheckerVerdict::failed(format!(
                "the checker failed (exit code {code:?}, outside the {} dialect)",
                dialect.as_str()
            ));
            if let Some(m) = message(&o.stderr.0) {
                failed.message = Some(capped(
                    format!("{}: {m}", failed.message.unwrap_or_default()).as_bytes(),
                ));
            }
            failed
        }
    }
}

/// testlib's partial credit: stdout starting with `points X`, X a number in [0, 1].
fn partial_points(stdout: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(&stdout[..stdout.len().min(256)]).ok()?;
    let rest = text.trim_start().strip_prefix("points")?;
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let x: f64 = rest.split_ascii_whitespace().next()?.parse().ok()?;
    (x.is_finite() && (0.0..=1.0).contains(&x)).then_some(x)
}

/// A checker's message as a result shows it: text, at most [`TEST_STDERR_BYTES`], never a
/// cut character.
fn capped(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut end = text.len().min(TEST_STDERR_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_protocol::step::StepName;

    fn ended(code: i32, stdout: &str, stderr: &str) -> StepOutcome {
        StepOutcome {
            name: StepName::Run,
            termination: Termination::Exited,
            exit_code: Some(code),
            signal: None,
            wall_ms: 1,
            cpu_ms: 1,
            memory_kb: 1,
            stdout: Base64Bytes(stdout.as_bytes().to_vec()),
            stderr: Base64Bytes(stderr.as_bytes().to_vec()),
            truncated: false,
        }
    }

    #[test]
    fn testlib_exit_codes() {
        let v = |code, out| read_answer(Dialect::Testlib, &ended(code, out, "why")).verdict;
        assert_eq!(v(0, ""), TestVerdict::Accepted);
        assert_eq!(v(1, ""), TestVerdict::WrongAnswer);
        assert_eq!(v(2, ""), TestVerdict::PresentationError);
        assert_eq!(v(3, ""), TestVerdict::InternalError);
        assert_eq!(v(4, ""), TestVerdict::InternalError);
        assert_eq!(v(7, "points 1.5"), TestVerdict::InternalError);
        assert_eq!(v(7, "points nan"), TestVerdict::InternalError);
        assert_eq!(v(7, "pointsy 0.5"), TestVerdict::InternalError);
        assert_eq!(v(7, "nothing"), TestVerdict::InternalError);
        let partial = read_answer(Dialect::Testlib, &ended(7, "points 0.25\n", "close"));
        assert_eq!(
            (
                partial.verdict,
                partial.fraction,
                partial.message.as_deref()
            ),
            (TestVerdict::WrongAnswer, Some(0.25), Some("close"))
        );
    }

    #[test]
    fn kattis_exit_codes_and_anything_else_is_never_accepted() {
        let v = |code| read_answer(Dialect::Kattis, &ended(code, "", "")).verdict;
        assert_eq!(v(42), TestVerdict::Accepted);
        assert_eq!(v(43), TestVerdict::WrongAnswer);
        assert_eq!(v(0), TestVerdict::InternalError);
        let mut killed = ended(42, "", "");
        killed.termination = Termination::CpuTimeout;
        assert_eq!(
            read_answer(Dialect::Kattis, &killed).verdict,
            TestVerdict::InternalError
        );
    }

    #[test]
    fn messages_are_capped() {
        let long = "é".repeat(2000);
        let m = read_answer(Dialect::Testlib, &ended(1, "", &long))
            .message
            .unwrap();
        assert!(m.len() <= TEST_STDERR_BYTES);
    }
}
