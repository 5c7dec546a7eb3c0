//! Turning what the shim measured into what a client reads: a verdict and per-step reports.

use crate::encoding::Encoding;
use crate::result::{StepReport, Verdict};
use crate::shim::{ShimRecord, StepOutcome, Termination};
use crate::step::StepName;
use base64::Engine as _;

/// SIGXCPU: what RLIMIT_CPU's soft limit sends; a CPU time-out, not a crash.
const SIGXCPU: i32 = 24;

/// What a client reads about a finished job: its verdict and the report of each step it got to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// `None` for an interpreted language, or when no step started.
    pub compile: Option<StepReport>,
    /// `None` when the compile failed, or the job ended before its run step.
    pub run: Option<StepReport>,
}

impl Judgement {
    /// A job that ended without a step to report (cancelled before it ran, or failed under
    /// the platform).
    pub fn without_steps(verdict: Verdict) -> Self {
        Self {
            verdict,
            compile: None,
            run: None,
        }
    }
}

/// The verdict, compile report and run report for a shim record. Exactly as the API documents:
/// a failed compile gives `compile_error` with `run: None`.
pub fn judge(record: &ShimRecord) -> Judgement {
    if record.steps.is_empty() {
        // No step started: either the shim failed (it says why), or the job was cancelled
        // before its first step, the only way a record ends up empty without an error.
        let verdict = if record.error.is_some() {
            Verdict::InternalError
        } else {
            Verdict::Cancelled
        };
        return Judgement::without_steps(verdict);
    }
    let compile = record.steps.iter().find(|s| s.name == StepName::Compile);
    let run = record.steps.iter().find(|s| s.name == StepName::Run);
    let compile_report = compile.map(report);
    let stopped_at_compile = |verdict| Judgement {
        verdict,
        compile: compile_report.clone(),
        run: None,
    };
    if let Some(c) = compile {
        if c.termination == Termination::Cancelled {
            return stopped_at_compile(Verdict::Cancelled);
        }
        if !succeeded(c) {
            return stopped_at_compile(Verdict::CompileError);
        }
    }
    let Some(run) = run else {
        // A compile that succeeded but no run: the shim stopped between the steps because the
        // job was cancelled, unless it says it failed.
        let verdict = if record.error.is_none() && compile.is_some() {
            Verdict::Cancelled
        } else {
            Verdict::InternalError
        };
        return stopped_at_compile(verdict);
    };
    Judgement {
        verdict: step_verdict(run),
        compile: compile_report,
        run: Some(report(run)),
    }
}

fn succeeded(step: &StepOutcome) -> bool {
    step.termination == Termination::Exited && step.exit_code == Some(0)
}

/// The verdict one run step earns on its own.
pub fn step_verdict(step: &StepOutcome) -> Verdict {
    match step.termination {
        Termination::WallTimeout | Termination::CpuTimeout => Verdict::TimeLimitExceeded,
        Termination::MemoryLimit => Verdict::MemoryLimitExceeded,
        Termination::OutputLimit => Verdict::OutputLimitExceeded,
        Termination::Cancelled => Verdict::Cancelled,
        Termination::Signaled if step.signal == Some(SIGXCPU) => Verdict::TimeLimitExceeded,
        Termination::Exited if step.exit_code == Some(0) => Verdict::Ok,
        Termination::Exited | Termination::Signaled | Termination::StartFailed => {
            Verdict::RuntimeError
        }
    }
}

/// Output as the client gets it: text when it is UTF-8, base64 otherwise. When the output was
/// cut at the cap, a character split by the cut is dropped rather than turning everything into
/// base64.
pub fn encode_output(bytes: &[u8], truncated: bool) -> (String, Encoding) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), Encoding::Utf8),
        Err(e) if truncated && e.error_len().is_none() => {
            let text = std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid prefix");
            (text.to_string(), Encoding::Utf8)
        }
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            Encoding::Base64,
        ),
    }
}

/// The client-facing view of one step.
pub fn report(step: &StepOutcome) -> StepReport {
    let (stdout, stdout_encoding) = encode_output(&step.stdout.0, step.truncated);
    let (stderr, stderr_encoding) = encode_output(&step.stderr.0, step.truncated);
    StepReport {
        stdout,
        stdout_encoding,
        stderr,
        stderr_encoding,
        exit_code: step.exit_code,
        signal: step.signal.map(signal_name),
        wall_ms: step.wall_ms,
        cpu_ms: step.cpu_ms,
        memory_kb: step.memory_kb,
        truncated: step.truncated,
    }
}

/// `SIGKILL` rather than `9`: names are what people search for.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        other => return format!("SIG{other}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Base64Bytes;

    fn step(
        name: StepName,
        termination: Termination,
        exit: Option<i32>,
        sig: Option<i32>,
    ) -> StepOutcome {
        StepOutcome {
            name,
            termination,
            exit_code: exit,
            signal: sig,
            wall_ms: 1,
            cpu_ms: 1,
            memory_kb: 1,
            stdout: Base64Bytes(b"out".to_vec()),
            stderr: Base64Bytes(vec![0xff]),
            truncated: false,
        }
    }

    fn record(steps: Vec<StepOutcome>) -> ShimRecord {
        ShimRecord {
            tests: Vec::new(),
            job_id: "j".into(),
            steps,
            clean: true,
            error: None,
        }
    }

    #[test]
    fn clean_exit_is_ok() {
        let Judgement {
            verdict: v,
            compile: c,
            run: r,
        } = judge(&record(vec![step(
            StepName::Run,
            Termination::Exited,
            Some(0),
            None,
        )]));
        assert_eq!(v, Verdict::Ok);
        assert!(c.is_none());
        assert_eq!(r.unwrap().stdout, "out");
    }

    #[test]
    fn failed_compile_has_no_run() {
        let Judgement {
            verdict: v,
            compile: c,
            run: r,
        } = judge(&record(vec![step(
            StepName::Compile,
            Termination::Exited,
            Some(1),
            None,
        )]));
        assert_eq!(v, Verdict::CompileError);
        assert_eq!(c.unwrap().exit_code, Some(1));
        assert!(r.is_none());
    }

    #[test]
    fn cancelled_before_a_step_or_between_steps() {
        assert_eq!(judge(&record(vec![])).verdict, Verdict::Cancelled);
        let compiled = step(StepName::Compile, Termination::Exited, Some(0), None);
        let Judgement {
            verdict: v,
            compile: c,
            run: r,
        } = judge(&record(vec![compiled.clone()]));
        assert_eq!(v, Verdict::Cancelled);
        assert!(c.is_some() && r.is_none());
        let cancelled_compile = step(StepName::Compile, Termination::Cancelled, None, Some(9));
        assert_eq!(
            judge(&record(vec![cancelled_compile])).verdict,
            Verdict::Cancelled
        );
        let mut failed = record(vec![compiled]);
        failed.error = Some("the shim broke".into());
        assert_eq!(judge(&failed).verdict, Verdict::InternalError);
        let mut nothing = record(vec![]);
        nothing.error = Some("invalid job".into());
        assert_eq!(judge(&nothing).verdict, Verdict::InternalError);
    }

    #[test]
    fn compile_timeout_is_compile_error() {
        let v = judge(&record(vec![step(
            StepName::Compile,
            Termination::WallTimeout,
            None,
            Some(9),
        )]))
        .verdict;
        assert_eq!(v, Verdict::CompileError);
    }

    #[test]
    fn limits_map_to_their_verdicts() {
        let cases = [
            (
                Termination::WallTimeout,
                None,
                Some(9),
                Verdict::TimeLimitExceeded,
            ),
            (
                Termination::CpuTimeout,
                None,
                Some(9),
                Verdict::TimeLimitExceeded,
            ),
            (
                Termination::Signaled,
                None,
                Some(24),
                Verdict::TimeLimitExceeded,
            ),
            (
                Termination::MemoryLimit,
                None,
                Some(9),
                Verdict::MemoryLimitExceeded,
            ),
            (
                Termination::OutputLimit,
                None,
                Some(9),
                Verdict::OutputLimitExceeded,
            ),
            (Termination::Exited, Some(3), None, Verdict::RuntimeError),
            (Termination::Signaled, None, Some(11), Verdict::RuntimeError),
            (Termination::StartFailed, None, None, Verdict::RuntimeError),
        ];
        for (t, exit, sig, want) in cases {
            let v = judge(&record(vec![
                step(StepName::Compile, Termination::Exited, Some(0), None),
                step(StepName::Run, t, exit, sig),
            ]))
            .verdict;
            assert_eq!(v, want, "{t:?} exit={exit:?} sig={sig:?}");
        }
    }

    #[test]
    fn shim_failure_is_internal_error() {
        let mut rec = record(vec![]);
        rec.error = Some("cannot create workspace".into());
        assert_eq!(judge(&rec).verdict, Verdict::InternalError);
    }

    #[test]
    fn non_utf8_output_is_base64_with_a_marker() {
        let r = report(&step(StepName::Run, Termination::Exited, Some(0), None));
        assert_eq!(
            (r.stderr.as_str(), r.stderr_encoding),
            ("/w==", Encoding::Base64)
        );
        assert_eq!(
            (r.stdout.as_str(), r.stdout_encoding),
            ("out", Encoding::Utf8)
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["stderr_encoding"], "base64");
        assert!(
            json.get("stdout_encoding").is_none(),
            "utf8 is the unmarked default"
        );
    }

    #[test]
    fn a_character_split_by_truncation_is_dropped_not_base64() {
        let bytes = "héé".as_bytes();
        let cut = &bytes[..bytes.len() - 1];
        assert_eq!(encode_output(cut, true), ("hé".to_string(), Encoding::Utf8));
        assert_eq!(encode_output(cut, false).1, Encoding::Base64);
        assert_eq!(encode_output(b"a\xffb", true).1, Encoding::Base64);
    }

    #[test]
    fn signals_have_names() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(40), "SIG40");
    }
}
