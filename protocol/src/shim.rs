//! The conversation between a runner and the shim inside a container.
//!
//! The runner writes one [`ShimJob`] as a single JSON line to the shim's stdin, then, on the same
//! stdin, newline-delimited [`ShimControl`] lines (input for an interactive job, cancellation) for
//! as long as the job runs. The shim writes newline-delimited JSON [`ShimMessage`]s to its own
//! stdout and nothing else: `step` and `output` lines while the job runs (live output), and last
//! a `record`. The job's processes never hold either descriptor (their stdio are pipes the shim
//! owns), so a program can neither forge a message nor read the control channel.

use crate::bytes::Base64Bytes;
use crate::step::StepName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where the shim binary lives in every image.
pub const SHIM_PATH: &str = "/usr/local/bin/rce-shim";
/// How long the runner waits for the shim beyond the steps' own wall limits (setup, killing
/// what is left, cleanup, the checks) before it gives up on the container and destroys it. The
/// shim keeps its cleanup within a budget that is a part of this (`rce-shim`'s `cleanup.rs`).
pub const SHIM_MARGIN_MS: u64 = 5_000;
/// The longest job line the shim takes (files and judge-mode inputs travel inside it,
/// base64-encoded): room for the api's largest body and a judge job's 96 MiB of inputs.
pub const MAX_JOB_LINE: usize = 192 << 20;
/// The parent of every job workspace: root-owned, mode 0711, on its own tmpfs.
pub const WORKSPACE_ROOT: &str = "/work";
/// Where every container finds the cgroup subtree delegated to it, writable by its root only:
/// the host directory that is the parent of the container's own cgroup, bind-mounted per
/// controller hierarchy (`memory` and `cpuacct` on cgroup v1, `unified` on v2). The shim meters
/// and fences each step in a cgroup of its own below the container's (design.md, "Metering").
pub const CGROUP_MOUNT: &str = "/run/rce/cgroup";

/// Everything the shim needs to run one job, self-contained: the shim reads no other input.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShimJob {
    pub schema: u32,
    pub job_id: String,
    /// The unprivileged uid (and gid) the job's steps run under; unique to this container.
    pub uid: u32,
    pub files: Vec<ShimFile>,
    /// Run in order; a step that does not exit 0 (or hits a limit) stops the rest.
    pub steps: Vec<ShimStep>,
    /// What the container looked like before its first job; after cleanup the shim checks it
    /// is back to exactly this, and reports the job unclean otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    /// Keep the run step's stdin open after `stdin` for [`ShimControl::Stdin`] input, until
    /// [`ShimControl::StdinEof`] or the end of the control channel.
    #[serde(default)]
    pub interactive: bool,
    /// Judge mode: when not empty, the last step (the run step) is run once per test instead of
    /// once, each time from the program as the steps before it left it (frozen read-only) in a
    /// fresh workspace, with the test's input and limits; the whole cleanup and the check that
    /// the container is at rest come between two tests. Each test's outcome is its own
    /// [`ShimMessage::Test`] line, so no line or record grows with the number of tests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<ShimTest>,
    /// Judge mode: no test runs after one whose program did not exit 0 by itself (the runner
    /// stops the tests after a wrong answer with [`ShimControl::StopTests`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_on_failure: bool,
}

/// One test of a judge-mode job, as the shim runs it: input and limits only. What the output
/// should be never enters the container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShimTest {
    pub stdin: Base64Bytes,
    pub limits: StepLimits,
    /// Files of this test alone, in its fresh workspace beside the artifact: a custom checker's
    /// `input`, `output` and `answer` (a solution's tests have none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ShimFile>,
    /// A file the test's program writes in its workspace whose first bytes (at most
    /// [`REPORT_FILE_BYTES`]) become the outcome's `stderr`: a Kattis checker's
    /// `judgemessage.txt`. Read without following links, and only if the test's uid owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_file: Option<String>,
}

/// The most of a [`ShimTest::report_file`] the shim reads back.
pub const REPORT_FILE_BYTES: usize = 4096;

/// The resting state of a warm container, measured by `rce-shim idle` as it starts (before any
/// job) and printed as its first line: the container's log, which jobs cannot write to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// Processes in the container, the measuring one included (docker-init and the idle shim).
    /// The exec'd shim compares it with the count excluding itself.
    pub processes: u32,
    /// Usage of every writable filesystem.
    pub mounts: Vec<MountUsage>,
    /// Unix sockets in the container's network namespace (`/proc/net/unix`): a socket kept
    /// alive past its job (an SCM_RIGHTS cycle, say) shows here until the kernel collects it.
    #[serde(default)]
    pub unix_sockets: u32,
}

/// Used space and inodes of one writable filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountUsage {
    pub path: String,
    pub used_blocks: u64,
    pub used_inodes: u64,
}

/// The writable filesystems of a container whose usage must return to the baseline after each
/// job: the workspace tmpfs, /tmp and the shared-memory tmpfs.
pub const WRITABLE_MOUNTS: [&str; 3] = [WORKSPACE_ROOT, "/tmp", "/dev/shm"];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShimFile {
    /// A flat name (no `/`), already validated by the api.
    pub name: String,
    pub content: Base64Bytes,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShimStep {
    /// Echoed back in the step's outcome.
    pub name: StepName,
    /// Executed directly with `execvp` semantics (PATH lookup), never through a shell.
    pub argv: Vec<String>,
    /// Extra environment on top of the shim's fixed allowlist.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub stdin: Base64Bytes,
    pub limits: StepLimits,
    /// The program's stderr goes into its stdout pipe (the Judge0 surface's
    /// `redirect_stderr_to_stdout`): one stream, in the order it was written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merge_stderr: bool,
}

/// Limits of one step. The shim gives every step a cgroup of its own: `memory_kb` is that
/// cgroup's hard limit (memory + swap) and `cpu_time_ms` is checked against its CPU accounting,
/// so both count every process and every page the kernel charges to the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepLimits {
    pub wall_time_ms: u64,
    pub cpu_time_ms: u64,
    pub memory_kb: u64,
    pub processes: u64,
    /// Cap on stdout + stderr together; reaching it stops the step.
    pub output_bytes: u64,
    /// RLIMIT_FSIZE: the largest file a step may write.
    pub file_size_bytes: u64,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
}

/// One line of the shim's stdout.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShimMessage {
    /// The final record of the job. Always the last line of the job (before the agent's `done`).
    /// When an [`ShimMessage::Outcome`] came first, its `steps` are empty: they were in the
    /// outcome, and this record only adds `clean` (and any later `error`).
    Record(ShimRecord),
    /// What the job did, sent as soon as its last step's processes are gone and before the
    /// cleanup of the workspace and the check that the container is back at rest: the result
    /// does not depend on those (they only decide whether the container runs another job), so
    /// the runner publishes it without waiting for them. Its `clean` is always false (not known
    /// yet); the record that follows carries it.
    Outcome(ShimRecord),
    /// The container's resting state, measured before its first job: `rce-shim idle`'s first
    /// line (in the container log) or `rce-shim agent`'s (on the attached stream). Never part
    /// of a job's output.
    Baseline(Baseline),
    /// Agent mode only: the job's shim process has ended (after its record, unless it died),
    /// so the next job line may be written. `failure` says how it ended when that was not a
    /// clean exit.
    Done {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
    },
    /// A step started; the output that follows is its.
    Step { name: StepName },
    /// Output of the current step as the shim read it, within the output cap. Within one stream
    /// the bytes are exactly the program's; across the two streams, chunks come in the order the
    /// shim read them.
    Output {
        stream: OutputStream,
        data: Base64Bytes,
    },
    /// The step reached its output cap: no more output follows for it.
    Truncated { step: StepName },
    /// Judge mode: test `index` (0-based, in the job's order) ended and its processes are gone;
    /// its workspace is cleaned up after this line. Tests report no live `output`: the outcome
    /// carries the test's output.
    Test { index: usize, outcome: StepOutcome },
}

/// Which of a step's output pipes a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// One line the runner writes to the shim's stdin after the job line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShimControl {
    /// More input for an interactive job's run step (buffered if the run step has not started).
    Stdin { data: Base64Bytes },
    /// The interactive input is complete: the program reads end-of-file after what it was given.
    StdinEof,
    /// Stop the job now: the current step is killed and ends `cancelled`; no further step runs.
    Cancel,
    /// Judge mode: run no further test (the test running now finishes); the job is not
    /// cancelled. Sent when a test's answer was judged wrong under `stop_on_failure`.
    StopTests,
}

/// What happened to the job, measured by the shim.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ShimRecord {
    pub job_id: String,
    /// One entry per step that was started, in order.
    pub steps: Vec<StepOutcome>,
    /// True when, after the job, no process of its uid remained and its workspace was removed.
    /// False means the container must not run another job.
    pub clean: bool,
    /// Set when the shim itself could not do its work (bad job, setup failure): the platform's
    /// fault, reported as `internal_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Judge mode: each test's outcome, in order, for the tests that ran. The shim sends them
    /// as [`ShimMessage::Test`] lines (never in its record, whose size must not grow with the
    /// tests); the runner's side of the conversation gathers them here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<StepOutcome>,
}

/// How a step ended, from the shim's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// The main process exited by itself (any exit code).
    Exited,
    /// The main process was killed by a signal the shim did not send.
    Signaled,
    /// The shim killed the step at its wall-clock limit.
    WallTimeout,
    /// The step used up its CPU time (the shim's watch or RLIMIT_CPU's SIGXCPU/SIGKILL).
    CpuTimeout,
    /// The step exceeded its memory: the cgroup OOM killer fired, or the shim's watch did.
    MemoryLimit,
    /// The step wrote more than its output cap.
    OutputLimit,
    /// The program could not be started (e.g. the command does not exist).
    StartFailed,
    /// The shim killed the step because the job was cancelled.
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOutcome {
    pub name: StepName,
    pub termination: Termination,
    pub exit_code: Option<i32>,
    /// Signal number that ended the main process, if any.
    pub signal: Option<i32>,
    pub wall_ms: u64,
    /// User + system CPU of every process of the step, from the step cgroup's accounting
    /// (children that were never waited for included).
    pub cpu_ms: u64,
    /// Peak of the step cgroup's memory usage: everything the kernel charged to the step
    /// (docs/security.md, "Metering" says exactly what that includes).
    pub memory_kb: u64,
    pub stdout: Base64Bytes,
    pub stderr: Base64Bytes,
    /// True when output was cut at `output_bytes`.
    pub truncated: bool,
}

/// Why the runner could not read a record from the shim's stdout.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the shim printed no record (stdout was {0} bytes)")]
    Missing(usize),
    #[error("the shim's record is not valid JSON: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// Finds the record in everything the shim printed: the last non-empty line must be a record
/// (live `output` lines before it are ignored here).
pub fn parse_record(stdout: &[u8]) -> Result<ShimRecord, RecordError> {
    let last = stdout
        .split(|b| *b == b'\n')
        .rev()
        .find(|line| !line.iter().all(u8::is_ascii_whitespace))
        .ok_or(RecordError::Missing(stdout.len()))?;
    match serde_json::from_slice::<ShimMessage>(last)? {
        ShimMessage::Record(record) => Ok(record),
        _ => Err(RecordError::Missing(stdout.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_json() -> String {
        let rec = ShimRecord {
            tests: Vec::new(),
            job_id: "j1".into(),
            steps: vec![StepOutcome {
                name: StepName::Run,
                termination: Termination::Exited,
                exit_code: Some(0),
                signal: None,
                wall_ms: 12,
                cpu_ms: 8,
                memory_kb: 9000,
                stdout: Base64Bytes(b"hi\n".to_vec()),
                stderr: Base64Bytes::default(),
                truncated: false,
            }],
            clean: true,
            error: None,
        };
        serde_json::to_string(&ShimMessage::Record(rec)).unwrap()
    }

    #[test]
    fn parses_last_line_record() {
        let out = format!("{}\n", record_json());
        let rec = parse_record(out.as_bytes()).unwrap();
        assert_eq!(rec.job_id, "j1");
        assert_eq!(rec.steps[0].stdout.0, b"hi\n");
        assert!(rec.clean);
    }

    #[test]
    fn empty_output_is_missing() {
        assert!(matches!(
            parse_record(b"\n \n"),
            Err(RecordError::Missing(3))
        ));
    }

    #[test]
    fn garbage_is_invalid() {
        assert!(matches!(
            parse_record(b"{\"type\":\"record\",\"oops\n"),
            Err(RecordError::Invalid(_))
        ));
    }

    #[test]
    fn message_is_tagged() {
        assert!(record_json().starts_with("{\"type\":\"record\""));
    }
}
