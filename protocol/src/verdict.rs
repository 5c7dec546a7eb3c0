//! Turning what the shim measured into what a client reads: a verdict and per-step reports.

use crate::result::{StepReport, Verdict};
use crate::shim::{ShimRecord, StepOutcome, Termination};

/// SIGXCPU: what RLIMIT_CPU's soft limit sends; a CPU time-out, not a crash.
const SIGXCPU: i32 = 24;

/// The verdict, compile report and run report for a shim record. Exactly as the API documents:
/// a failed compile gives `compile_error` with `run: None`.
pub fn judge(record: &ShimRecord) -> (Verdict, Option<StepReport>, Option<StepReport>) {
    if record.error.is_some() && record.steps.is_empty() {
        return (Verdict::InternalError, None, None);
    }
    let compile = record.steps.iter().find(|s| s.name == "compile");
    let run = record.steps.iter().find(|s| s.name == "run");
    let compile_report = compile.map(report);
    if let Some(c) = compile {
        if !succeeded(c) {
            return (Verdict::CompileError, compile_report, None);
        }
    }
    let Some(run) = run else {
        return (Verdict::InternalError, compile_report, None);
    };
    (step_verdict(run), compile_report, Some(report(run)))
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
        Termination::Signaled if step.signal == Some(SIGXCPU) => Verdict::TimeLimitExceeded,
        Termination::Exited if step.exit_code == Some(0) => Verdict::Ok,
        Termination::Exited | Termination::Signaled | Termination::StartFailed => {
            Verdict::RuntimeError
        }
    }
}

/// The client-facing view of one step.
pub fn report(step: &StepOutcome) -> StepReport {
    StepReport {
        stdout: String::from_utf8_lossy(&step.stdout.0).into_owned(),
        stderr: String::from_utf8_lossy(&step.stderr.0).into_owned(),
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
        name: &str,
        termination: Termination,
        exit: Option<i32>,
        sig: Option<i32>,
    ) -> StepOutcome {
        StepOutcome {
            name: name.into(),
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
            job_id: "j".into(),
            steps,
            clean: true,
            error: None,
        }
    }

    #[test]
    fn clean_exit_is_ok() {
        let (v, c, r) = judge(&record(vec![step(
            "run",
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
        let (v, c, r) = judge(&record(vec![step(
            "compile",
            Termination::Exited,
            Some(1),
            None,
        )]));
        assert_eq!(v, Verdict::CompileError);
        assert_eq!(c.unwrap().exit_code, Some(1));
        assert!(r.is_none());
    }

    #[test]
    fn compile_timeout_is_compile_error() {
        let (v, _, _) = judge(&record(vec![step(
            "compile",
            Termination::WallTimeout,
            None,
            Some(9),
        )]));
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
            let (v, _, _) = judge(&record(vec![
                step("compile", Termination::Exited, Some(0), None),
                step("run", t, exit, sig),
            ]));
            assert_eq!(v, want, "{t:?} exit={exit:?} sig={sig:?}");
        }
    }

    #[test]
    fn shim_failure_is_internal_error() {
        let mut rec = record(vec![]);
        rec.error = Some("cannot create workspace".into());
        assert_eq!(judge(&rec).0, Verdict::InternalError);
    }

    #[test]
    fn non_utf8_output_is_replaced_in_report() {
        let r = report(&step("run", Termination::Exited, Some(0), None));
        assert_eq!(r.stderr, "\u{fffd}");
    }

    #[test]
    fn signals_have_names() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(40), "SIG40");
    }
}
