//! The job message the api publishes to `rce.jobs` and a runner consumes.

use crate::bytes::Base64Bytes;
use crate::limits::Limits;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One admitted job, already validated and with its limits resolved, so a runner never has to
/// second-guess the api.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobMessage {
    pub schema: u32,
    pub id: String,
    pub language: String,
    pub files: Vec<JobFile>,
    /// The file the compile and run commands are pointed at.
    pub entrypoint: String,
    pub stdin: Base64Bytes,
    pub args: Vec<String>,
    pub limits: Limits,
    pub created_at: DateTime<Utc>,
    /// The client sends more input while the program runs (WebSocket), so its stdin stays open
    /// after `stdin` until the client closes it.
    #[serde(default)]
    pub interactive: bool,
    /// Judge mode: compile once, run every test, check and score. `None`: a plain job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<crate::judge::JudgeSpec>,
    /// Arguments appended to the compile step's argv (the Judge0 surface's `compiler_options`,
    /// each one on the language's allow-list, `compat.compiler_options`). Appended, so that a
    /// `-O0` or `-std=` given here overrides the language's own (the last one wins in gcc).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compiler_options: Vec<String>,
    /// The run step's stderr goes into its stdout (the Judge0 surface's
    /// `redirect_stderr_to_stdout`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merge_stderr: bool,
}

impl JobMessage {
    /// How long the job may take once it starts, by its own limits: its compile, then its run,
    /// or in judge mode each test's wall limit with its margin, and a custom checker's compile
    /// and its run per test. What `wait=true` waits for (plus a margin) and when the stuck-job
    /// sweeper may give up on it (plus its own).
    pub fn time_budget_ms(&self, topology: &crate::topology::Topology) -> u64 {
        let compile_ms = |language: &str| {
            topology
                .language(language)
                .filter(|l| l.is_compiled())
                .map_or(0, |l| l.compile_limits.wall_time_ms)
        };
        let run_ms = match &self.judge {
            None => self.limits.wall_time_ms,
            Some(judge) => {
                let checker = judge.custom_checker.as_ref();
                let per_test = crate::judge::PER_TEST_MARGIN_MS
                    + checker.map_or(0, |c| {
                        c.limits.wall_time_ms + crate::judge::PER_TEST_MARGIN_MS
                    });
                let tests: u64 = judge
                    .tests
                    .iter()
                    .map(|t| t.limits.wall_time_ms.saturating_add(per_test))
                    .fold(0, u64::saturating_add);
                tests.saturating_add(checker.map_or(0, |c| compile_ms(&c.language)))
            }
        };
        compile_ms(&self.language).saturating_add(run_ms)
    }
}

/// A source file as the program will see it in its workspace.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobFile {
    pub name: String,
    pub content: Base64Bytes,
}
