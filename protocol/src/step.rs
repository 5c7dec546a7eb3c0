//! The names of a job's steps, as one type for every crate that plans, runs, reports or streams
//! them. On the wire (the shim's job line and records, the live `status`/`truncated` events,
//! the result's `compile`/`run` fields) they stay the plain strings `"compile"` and `"run"`;
//! in code a misspelt step is a compile error instead of a step that silently never matches.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One step of a job. A compiled language has both, in this order; an interpreted one only
/// [`StepName::Run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    /// Builds the program; its failure is the job's `compile_error`. Never sees the job's stdin.
    Compile,
    /// Runs the program with the job's stdin, arguments and limits; the only step fed
    /// interactive input.
    Run,
}

impl StepName {
    /// The name as it appears in JSON, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compile => "compile",
            Self::Run => "run",
        }
    }
}

impl fmt::Display for StepName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_json() {
        for step in [StepName::Compile, StepName::Run] {
            assert_eq!(serde_json::to_value(step).unwrap(), step.as_str());
            let back: StepName = serde_json::from_value(step.as_str().into()).unwrap();
            assert_eq!(back, step);
        }
        assert_eq!(StepName::Compile.as_str(), "compile");
        assert_eq!(StepName::Run.as_str(), "run");
    }

    #[test]
    fn an_unknown_step_is_refused() {
        assert!(serde_json::from_str::<StepName>("\"link\"").is_err());
    }
}
