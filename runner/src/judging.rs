//! Judge mode on the runner: the tests' data fetched (through the on-disk cache, verified),
//! every test run in one warm container after one compile, each test's output checked as soon
//! as its outcome arrives (the checkers are trusted code and run here, never in the sandbox,
//! so no expected output ever enters a container), its `test` event written, and the job's
//! verdict and score made from the tests in order.

use crate::live_events::StreamEvent;
use rce_files::{DiskCache, FileId, FileStore, StoreError};
use rce_judge::score::{first_failure, Scored};
use rce_pool::LiveEvent;
use rce_protocol::encoding::Encoding;
use rce_protocol::judge::{
    JudgeSpec, Score, TestResult, TestVerdict, MAX_RETURNED_OUTPUT_BYTES, TEST_STDERR_BYTES,
};
use rce_protocol::result::Verdict;
use rce_protocol::shim::{ShimControl, ShimRecord, StepOutcome, Termination};
use rce_protocol::topology::OutOfMemorySign;
use rce_protocol::verdict::{encode_output, signal_name, step_verdict};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Test data files fetched at once per job.
const FETCH_CONCURRENCY: usize = 32;

/// Where the runner gets test data: the shared store, through this runner's disk cache.
#[derive(Clone)]
pub struct TestData {
    pub store: FileStore,
    pub cache: Arc<DiskCache>,
}

impl TestData {
    /// File `id`, verified. Missing (expired since admission) or not matching its hash: the
    /// platform's failure, never the program's.
    pub async fn fetch(&self, id: &str) -> Result<Vec<u8>, String> {
        let parsed = FileId::parse(id).map_err(|e| format!("test data {id:?}: {e}"))?;
        match self.cache.get(&self.store, &parsed).await {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(format!("test data {id} is no longer stored")),
            Err(StoreError::Corrupt { id }) => {
                tracing::error!(file = %id, "stored test data does not match its hash");
                Err(format!("test data {id} does not match its hash"))
            }
            Err(e) => Err(format!("test data {id}: {e}")),
        }
    }

    /// Every test's input, in order (each distinct file fetched once, several at a time: a
    /// cold cache means a store round trip per file).
    pub async fn inputs(&self, spec: &JudgeSpec) -> Result<Vec<Vec<u8>>, String> {
        use futures_util::{StreamExt, TryStreamExt};
        let mut distinct: Vec<String> = spec.tests.iter().map(|t| t.stdin.clone()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        // Owned futures: a stream of futures that borrow would not be `Send` for every lifetime
        // the runner's spawned handlers need.
        let fetches = distinct.into_iter().map(|id| {
            let data = self.clone();
            async move { data.fetch(&id).await.map(|b| (id, b)) }
        });
        let fetched: std::collections::HashMap<String, Vec<u8>> =
            futures_util::stream::iter(fetches)
                .buffer_unordered(FETCH_CONCURRENCY)
                .try_collect()
                .await?;
        Ok(spec
            .tests
            .iter()
            .map(|t| fetched[t.stdin.as_str()].clone())
            .collect())
    }
}

/// Judges each test's outcome as the conversation hands it over.
pub struct Judge {
    pub spec: Arc<JudgeSpec>,
    pub data: TestData,
    pub out_of_memory: Option<OutOfMemorySign>,
    /// To stop the tests after a wrong answer under `stop_on_failure`.
    pub control: mpsc::UnboundedSender<ShimControl>,
}

/// What judging the live events produced: the results of the tests that ran, in order.
#[derive(Debug, Default)]
pub struct Judged {
    pub results: Vec<TestResult>,
    /// A test failed under `stop_on_failure`: the tests after it are `skipped`.
    pub stopped: bool,
    /// With a custom checker: the tests whose program exited 0, with their output, for the
    /// checker to judge (their results are provisional until then, and not streamed yet).
    pub pending: Vec<(usize, Vec<u8>)>,
}

impl Judge {
    /// Passes the pool's live events on to the stream, turning each test's outcome into its
    /// result (and `test` event) on the way; returns once the pool's sender is gone.
    pub async fn follow(
        self,
        mut from_pool: mpsc::Receiver<LiveEvent>,
        to_stream: mpsc::Sender<StreamEvent>,
    ) -> Judged {
        let mut judged = Judged::default();
        let mut returned_bytes = 0usize;
        while let Some(event) = from_pool.recv().await {
            let (index, mut outcome) = match event {
                LiveEvent::Test { index, outcome } => (index, outcome),
                other => {
                    let _ = to_stream.send(StreamEvent::Shim(other)).await;
                    continue;
                }
            };
            if judged.stopped || index != judged.results.len() || index >= self.spec.tests.len() {
                // Started before the stop reached the shim, or out of place: not a result.
                continue;
            }
            if let Some(sign) = &self.out_of_memory {
                if sign.shown_by(&outcome) {
                    outcome.termination = Termination::MemoryLimit;
                }
            }
            let custom = self.spec.custom_checker.is_some();
            let result = self.judge(index, &outcome, &mut returned_bytes).await;
            if self.spec.stop_on_failure && result.verdict != TestVerdict::Accepted {
                judged.stopped = true;
                let _ = self.control.send(ShimControl::StopTests);
            }
            if custom {
                // Streamed once the checker has judged every test, in order.
                if test_verdict(&outcome).is_none() {
                    judged.pending.push((index, outcome.stdout.0));
                }
            } else {
                let json = serde_json::to_string(&result).expect("a test result serializes");
                let _ = to_stream.send(StreamEvent::Test(json)).await;
            }
            judged.results.push(result);
        }
        judged
    }

    async fn judge(
        &self,
        index: usize,
        outcome: &StepOutcome,
        returned_bytes: &mut usize,
    ) -> TestResult {
        let test = &self.spec.tests[index];
        let (verdict, checker_message) = match test_verdict(outcome) {
            Some(v) => (v, None),
            // Provisional: the custom checker decides (`apply_checker`).
            None if self.spec.custom_checker.is_some() => (TestVerdict::Accepted, None),
            None => match &test.expected {
                None => (TestVerdict::Accepted, None),
                Some(id) => match self.data.fetch(id).await {
                    Err(e) => (TestVerdict::InternalError, Some(e)),
                    Ok(expected) => {
                        let checked = self.spec.checker.check(&outcome.stdout.0, &expected);
                        let verdict = if checked.accepted {
                            TestVerdict::Accepted
                        } else {
                            TestVerdict::WrongAnswer
                        };
                        (
                            verdict,
                            (!checked.message.is_empty()).then_some(checked.message),
                        )
                    }
                },
            },
        };
        let scored = Scored {
            verdict,
            worth: test.points,
            fraction: None,
        };
        let (stdout, stdout_encoding, stdout_truncated) = if self.spec.return_output {
            let room = MAX_RETURNED_OUTPUT_BYTES.saturating_sub(*returned_bytes);
            let shown = &outcome.stdout.0[..outcome.stdout.0.len().min(room)];
            *returned_bytes += shown.len();
            let cut = shown.len() < outcome.stdout.0.len() || outcome.truncated;
            let (text, encoding) = encode_output(shown, cut);
            (Some(text), encoding, cut)
        } else {
            (None, Encoding::Utf8, false)
        };
        let stderr_bytes = &outcome.stderr.0[..outcome.stderr.0.len().min(TEST_STDERR_BYTES)];
        let (stderr, stderr_encoding) =
            encode_output(stderr_bytes, stderr_bytes.len() < outcome.stderr.0.len());
        TestResult {
            index,
            name: test.name.clone(),
            verdict,
            points: scored.points(),
            wall_ms: outcome.wall_ms,
            cpu_ms: outcome.cpu_ms,
            memory_kb: outcome.memory_kb,
            exit_code: outcome.exit_code,
            signal: outcome.signal.map(signal_name),
            stdout,
            stdout_encoding,
            stdout_truncated,
            stderr,
            stderr_encoding,
            checker_message,
        }
    }
}

/// Puts the custom checker's verdicts (one per [`Judged::pending`] test, in that order) into
/// the results; under `stop_on_failure` the tests after the first failure become `skipped`.
pub fn apply_checker(
    spec: &JudgeSpec,
    judged: &mut Judged,
    verdicts: Vec<crate::custom_checker::CheckerVerdict>,
) {
    for ((index, _), v) in judged.pending.drain(..).zip(verdicts) {
        let worth = spec.tests[index].points;
        let r = &mut judged.results[index];
        r.verdict = v.verdict;
        r.points = Scored {
            verdict: v.verdict,
            worth,
            fraction: v.fraction,
        }
        .points();
        r.checker_message = v.message;
    }
    if spec.stop_on_failure {
        if let Some(first) = judged
            .results
            .iter()
            .position(|r| r.verdict != TestVerdict::Accepted)
        {
            judged.results.truncate(first + 1);
            judged.stopped = true;
        }
    }
}

/// The verdict a test's outcome earns before its output is checked: `None` when the program
/// exited 0 by itself (its output decides).
pub fn test_verdict(outcome: &StepOutcome) -> Option<TestVerdict> {
    match step_verdict(outcome) {
        Verdict::Ok => None,
        Verdict::TimeLimitExceeded => Some(TestVerdict::TimeLimitExceeded),
        Verdict::MemoryLimitExceeded => Some(TestVerdict::MemoryLimitExceeded),
        Verdict::OutputLimitExceeded => Some(TestVerdict::OutputLimitExceeded),
        Verdict::Cancelled => Some(TestVerdict::Skipped),
        Verdict::RuntimeError => Some(TestVerdict::RuntimeError),
        Verdict::InternalError
        | Verdict::CompileError
        | Verdict::Accepted
        | Verdict::WrongAnswer
        | Verdict::PresentationError => Some(TestVerdict::InternalError),
    }
}

/// The job's verdict, every test's result (the ones that did not run filled in) and its score.
/// `compiled`: the build succeeded (or there was none); `cancelled`: the job was cancelled;
/// `failed`: the platform failed under the job.
pub fn conclude(
    spec: &JudgeSpec,
    judged: Judged,
    compiled: bool,
    cancelled: bool,
    failed: bool,
) -> (Verdict, Vec<TestResult>, Score) {
    let Judged {
        mut results,
        stopped,
        ..
    } = judged;
    let ran = results.len();
    let unrun = if failed && compiled {
        TestVerdict::InternalError
    } else {
        TestVerdict::Skipped
    };
    for (index, test) in spec.tests.iter().enumerate().skip(ran) {
        results.push(TestResult::not_run(index, test.name.clone(), unrun));
    }
    // Each result's points were earned when it was judged (partial credit included).
    let total = Score {
        points: results.iter().map(|r| r.points).sum(),
        max_points: spec.tests.iter().map(|t| t.points).sum(),
    };
    let verdict = if !compiled {
        Verdict::CompileError
    } else if failed {
        Verdict::InternalError
    } else if cancelled {
        Verdict::Cancelled
    } else if ran < spec.tests.len() && !stopped {
        // The shim ran fewer tests than it was given without a failure to stop at and without
        // saying why: the platform's fault, never an accepted job.
        Verdict::InternalError
    } else {
        let in_order: Vec<Scored> = results[..ran]
            .iter()
            .map(|r| Scored {
                verdict: r.verdict,
                worth: 0.0,
                fraction: None,
            })
            .collect();
        match first_failure(&in_order) {
            None => Verdict::Accepted,
            Some(v) => job_verdict(v),
        }
    };
    (verdict, results, total)
}

fn job_verdict(v: TestVerdict) -> Verdict {
    match v {
        TestVerdict::Accepted => Verdict::Accepted,
        TestVerdict::WrongAnswer => Verdict::WrongAnswer,
        TestVerdict::PresentationError => Verdict::PresentationError,
        TestVerdict::TimeLimitExceeded => Verdict::TimeLimitExceeded,
        TestVerdict::MemoryLimitExceeded => Verdict::MemoryLimitExceeded,
        TestVerdict::OutputLimitExceeded => Verdict::OutputLimitExceeded,
        TestVerdict::RuntimeError => Verdict::RuntimeError,
        TestVerdict::Skipped => Verdict::Cancelled,
        TestVerdict::InternalError => Verdict::InternalError,
    }
}

/// Whether the record's build step (if any) succeeded, and whether its job was cancelled
/// during it.
pub fn build_state(record: &ShimRecord) -> (bool, bool) {
    match record.steps.first() {
        None => (true, false),
        Some(s) if s.termination == Termination::Cancelled => (true, true),
        Some(s) => (
            s.termination == Termination::Exited && s.exit_code == Some(0),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_protocol::judge::{Checker, TestSpec};
    use rce_protocol::limits::Limits;

    fn spec(n: usize, stop: bool) -> JudgeSpec {
        JudgeSpec {
            tests: (0..n)
                .map(|i| TestSpec {
                    name: (i + 1).to_string(),
                    stdin: String::new(),
                    expected: None,
                    points: 2.0,
                    limits: Limits {
                        wall_time_ms: 1000,
                        cpu_time_ms: 1000,
                        memory_mb: 64,
                        processes: 4,
                        output_bytes: 100,
                    },
                })
                .collect(),
            checker: Checker::default(),
            custom_checker: None,
            stop_on_failure: stop,
            return_output: false,
        }
    }

    fn ran(verdicts: &[TestVerdict]) -> Vec<TestResult> {
        verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut r = TestResult::not_run(i, (i + 1).to_string(), *v);
                r.points = if *v == TestVerdict::Accepted {
                    2.0
                } else {
                    0.0
                };
                r
            })
            .collect()
    }

    #[test]
    fn the_first_failure_is_the_jobs_verdict_and_the_rest_are_skipped_after_a_stop() {
        use TestVerdict::*;
        let judged = Judged {
            results: ran(&[Accepted, WrongAnswer]),
            stopped: true,
            ..Default::default()
        };
        let (verdict, results, score) = conclude(&spec(4, true), judged, true, false, false);
        assert_eq!(verdict, Verdict::WrongAnswer);
        let verdicts: Vec<_> = results.iter().map(|r| r.verdict).collect();
        assert_eq!(verdicts, [Accepted, WrongAnswer, Skipped, Skipped]);
        assert_eq!((score.points, score.max_points), (2.0, 8.0));
    }

    #[test]
    fn missing_tests_without_a_reason_are_never_accepted() {
        let judged = Judged {
            results: ran(&[TestVerdict::Accepted]),
            ..Default::default()
        };
        let (verdict, ..) = conclude(&spec(3, false), judged, true, false, false);
        assert_eq!(verdict, Verdict::InternalError);
        let all = Judged {
            results: ran(&[TestVerdict::Accepted; 3]),
            ..Default::default()
        };
        assert_eq!(
            conclude(&spec(3, false), all, true, false, false).0,
            Verdict::Accepted
        );
    }

    #[test]
    fn a_failed_compile_skips_every_test() {
        let (verdict, results, score) =
            conclude(&spec(2, false), Judged::default(), false, false, false);
        assert_eq!(verdict, Verdict::CompileError);
        assert!(results.iter().all(|r| r.verdict == TestVerdict::Skipped));
        assert_eq!(score.points, 0.0);
    }

    #[test]
    fn a_platform_failure_fails_the_unrun_tests() {
        let judged = Judged {
            results: ran(&[TestVerdict::Accepted]),
            ..Default::default()
        };
        let (verdict, results, _) = conclude(&spec(2, false), judged, true, false, true);
        assert_eq!(verdict, Verdict::InternalError);
        assert_eq!(results[1].verdict, TestVerdict::InternalError);
    }
}
