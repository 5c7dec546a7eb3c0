//! From per-test verdicts to the job's verdict and score, as the contract says: `accepted` when
//! every test is, otherwise the verdict of the first test, in order, that was not.

use serde::{Deserialize, Serialize};

/// The verdict of one test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestVerdict {
    Accepted,
    WrongAnswer,
    PresentationError,
    TimeLimitExceeded,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    RuntimeError,
    /// Not run: an earlier test failed under `stop_on_failure`.
    Skipped,
    /// The platform (or a custom checker) failed: never counted as accepted.
    InternalError,
}

impl TestVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::WrongAnswer => "wrong_answer",
            Self::PresentationError => "presentation_error",
            Self::TimeLimitExceeded => "time_limit_exceeded",
            Self::MemoryLimitExceeded => "memory_limit_exceeded",
            Self::OutputLimitExceeded => "output_limit_exceeded",
            Self::RuntimeError => "runtime_error",
            Self::Skipped => "skipped",
            Self::InternalError => "internal_error",
        }
    }
}

/// Points awarded over points possible.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub points: f64,
    pub max_points: f64,
}

/// One test as scoring sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    pub verdict: TestVerdict,
    /// The test's `points`.
    pub worth: f64,
    /// For a custom checker's partial credit: the fraction in [0, 1] it awarded; `None` means
    /// all of `worth` if accepted, nothing otherwise.
    pub fraction: Option<f64>,
}

impl Scored {
    /// The points this test earns: its worth when accepted, its checker's fraction of it for
    /// partial credit, nothing otherwise (an `internal_error` earns nothing, whatever a checker
    /// said).
    pub fn points(&self) -> f64 {
        match (self.verdict, self.fraction) {
            (TestVerdict::InternalError | TestVerdict::Skipped, _) => 0.0,
            (_, Some(f)) if f.is_finite() => self.worth * f.clamp(0.0, 1.0),
            (TestVerdict::Accepted, _) => self.worth,
            _ => 0.0,
        }
    }
}

/// The job's verdict: `None` when every test was accepted (the caller says `accepted`), else the
/// first test's, in order, that was not.
pub fn first_failure(tests: &[Scored]) -> Option<TestVerdict> {
    tests
        .iter()
        .map(|t| t.verdict)
        .find(|v| *v != TestVerdict::Accepted)
}

/// The job's score. Summed in order, so the same tests always give the same float.
pub fn score(tests: &[Scored]) -> Score {
    Score {
        points: tests.iter().map(Scored::points).sum(),
        max_points: tests.iter().map(|t| t.worth).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(verdict: TestVerdict, worth: f64) -> Scored {
        Scored {
            verdict,
            worth,
            fraction: None,
        }
    }

    #[test]
    fn the_first_failure_in_order_is_the_jobs_verdict() {
        use TestVerdict::*;
        let tests = [
            t(Accepted, 1.0),
            t(TimeLimitExceeded, 1.0),
            t(WrongAnswer, 1.0),
        ];
        assert_eq!(first_failure(&tests), Some(TimeLimitExceeded));
        assert_eq!(first_failure(&[t(Accepted, 1.0)]), None);
        assert_eq!(
            first_failure(&[t(Accepted, 0.0), t(Skipped, 1.0)]),
            Some(Skipped)
        );
    }

    #[test]
    fn points_for_accepted_tests_and_partial_credit_only() {
        use TestVerdict::*;
        let mut partial = t(Accepted, 10.0);
        partial.fraction = Some(0.25);
        let mut lying = t(InternalError, 10.0);
        lying.fraction = Some(1.0);
        let mut overclaim = t(WrongAnswer, 4.0);
        overclaim.fraction = Some(7.0);
        let tests = [
            t(Accepted, 0.0),
            t(Accepted, 2.0),
            t(WrongAnswer, 3.0),
            partial,
            lying,
            overclaim,
            t(Skipped, 5.0),
        ];
        let s = score(&tests);
        assert_eq!(s.points, 2.0 + 2.5 + 4.0);
        assert_eq!(s.max_points, 34.0);
    }

    #[test]
    fn verdict_names_are_the_contracts() {
        let json = serde_json::to_string(&TestVerdict::PresentationError).unwrap();
        assert_eq!(json, "\"presentation_error\"");
        for v in [
            TestVerdict::Accepted,
            TestVerdict::Skipped,
            TestVerdict::InternalError,
        ] {
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                format!("\"{}\"", v.as_str())
            );
        }
    }
}
