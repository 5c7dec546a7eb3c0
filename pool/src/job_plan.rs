//! Turning a job message into what the shim runs: the steps, their argv and limits, the uid.

use rce_protocol::job::JobMessage;
use rce_protocol::limits::Limits;
use rce_protocol::shim::{ShimFile, ShimJob, ShimStep, StepLimits};
use rce_protocol::topology::{Language, Sandbox};
use rce_protocol::SCHEMA_VERSION;

/// Time the shim may take beyond the steps' own wall limits (setup, kill, cleanup, checks)
/// before the runner gives up on the container.
pub const SHIM_MARGIN_MS: u64 = 5_000;

/// The uid a job runs under: unique per container slot (so RLIMIT_NPROC, which counts per uid
/// across the whole kernel, never mixes two containers) and rotating per job inside it.
pub fn job_uid(sandbox: &Sandbox, slot: u32, jobs_run: u64) -> u32 {
    let slots = (i32::MAX as u32 - sandbox.uid_base) / sandbox.uid_span;
    sandbox.uid_base
        + (slot % slots) * sandbox.uid_span
        + (jobs_run % sandbox.uid_span as u64) as u32
}

fn step_limits(limits: &Limits, sandbox: &Sandbox) -> StepLimits {
    StepLimits {
        wall_time_ms: limits.wall_time_ms,
        cpu_time_ms: limits.cpu_time_ms,
        memory_kb: limits.memory_mb * 1024,
        processes: limits.processes,
        output_bytes: limits.output_bytes,
        file_size_bytes: sandbox.file_size_mb << 20,
        open_files: sandbox.open_files,
    }
}

/// The shim's job for `job` in `language`, to run as `uid`.
pub fn shim_job(job: &JobMessage, language: &Language, sandbox: &Sandbox, uid: u32) -> ShimJob {
    let mut steps = Vec::with_capacity(2);
    if let Some(argv) = language.compile_argv(&job.entrypoint) {
        steps.push(ShimStep {
            name: "compile".into(),
            argv,
            env: language.env.clone(),
            stdin: Default::default(),
            limits: step_limits(&language.compile_limits, sandbox),
        });
    }
    steps.push(ShimStep {
        name: "run".into(),
        argv: language.run_argv(&job.entrypoint, &job.args),
        env: language.env.clone(),
        stdin: job.stdin.clone(),
        limits: step_limits(&job.limits, sandbox),
    });
    ShimJob {
        schema: SCHEMA_VERSION,
        job_id: job.id.clone(),
        uid,
        files: job
            .files
            .iter()
            .map(|f| ShimFile {
                name: f.name.clone(),
                content: f.content.clone(),
            })
            .collect(),
        steps,
        baseline: None,
        interactive: job.interactive,
    }
}

/// How long the runner waits for the shim before declaring the container broken.
pub fn deadline_ms(job: &ShimJob) -> u64 {
    job.steps.iter().map(|s| s.limits.wall_time_ms).sum::<u64>() + SHIM_MARGIN_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_protocol::job::JobFile;
    use rce_protocol::topology::Topology;

    fn topology() -> Topology {
        Topology::from_source_tree().unwrap()
    }

    fn job(lang: &Language) -> JobMessage {
        JobMessage {
            schema: 1,
            id: "j1".into(),
            language: lang.id.clone(),
            files: vec![JobFile {
                name: lang.file.clone(),
                content: "x".into(),
            }],
            entrypoint: lang.file.clone(),
            stdin: "in".into(),
            args: vec!["--a".into()],
            limits: lang.default_limits,
            created_at: chrono::Utc::now(),
            interactive: false,
        }
    }

    #[test]
    fn compiled_language_has_compile_then_run() {
        let t = topology();
        let c = t.language("c").unwrap();
        let sj = shim_job(&job(&c), &c, &t.sandbox, 20001);
        let names: Vec<_> = sj.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["compile", "run"]);
        assert!(
            sj.steps[0].stdin.0.is_empty(),
            "the compiler never sees the job's stdin"
        );
        assert_eq!(sj.steps[1].stdin.0, b"in");
        assert_eq!(sj.steps[1].argv.last().unwrap(), "--a");
        assert_eq!(
            sj.steps[0].limits.memory_kb,
            c.compile_limits.memory_mb * 1024
        );
        assert_eq!(
            deadline_ms(&sj),
            c.compile_limits.wall_time_ms + c.default_limits.wall_time_ms + SHIM_MARGIN_MS
        );
    }

    #[test]
    fn interpreted_language_only_runs() {
        let t = topology();
        let py = t.language("python").unwrap();
        let sj = shim_job(&job(&py), &py, &t.sandbox, 20001);
        assert_eq!(sj.steps.len(), 1);
        assert_eq!(sj.steps[0].argv, ["python3", "main.py", "--a"]);
    }

    #[test]
    fn uids_differ_between_slots_and_rotate_within_one() {
        let t = topology();
        let s = &t.sandbox;
        assert_eq!(job_uid(s, 0, 0), s.uid_base);
        assert_ne!(job_uid(s, 0, 1), job_uid(s, 0, 0));
        assert_ne!(job_uid(s, 1, 0), job_uid(s, 0, 0));
        assert_eq!(job_uid(s, 0, s.uid_span as u64), job_uid(s, 0, 0));
        assert!(job_uid(s, u32::MAX, u64::MAX) < i32::MAX as u32);
    }
}
