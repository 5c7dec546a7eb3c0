//! Judge0's fourteen statuses, and how a job of ours maps onto them.
//!
//! Judge0 has no `memory_limit_exceeded` and no `output_limit_exceeded`: under isolate, a program
//! over its memory is killed (or its allocation fails) and one over its file size limit gets
//! SIGXFSZ. So memory becomes 12 "Runtime Error (Other)" with signal 9 and the message "Memory
//! limit exceeded", and output becomes 8 "Runtime Error (SIGXFSZ)" (docs/compatibility.md).

use rce_protocol::judge::TestVerdict;
use rce_protocol::result::{JobStatus, Verdict};

/// `(id, description)` for ids 1 to 14, Judge0's `GET /statuses`.
pub const STATUSES: [(u32, &str); 14] = [
    (1, "In Queue"),
    (2, "Processing"),
    (3, "Accepted"),
    (4, "Wrong Answer"),
    (5, "Time Limit Exceeded"),
    (6, "Compilation Error"),
    (7, "Runtime Error (SIGSEGV)"),
    (8, "Runtime Error (SIGXFSZ)"),
    (9, "Runtime Error (SIGFPE)"),
    (10, "Runtime Error (SIGABRT)"),
    (11, "Runtime Error (NZEC)"),
    (12, "Runtime Error (Other)"),
    (13, "Internal Error"),
    (14, "Exec Format Error"),
];

pub const IN_QUEUE: u32 = 1;
pub const PROCESSING: u32 = 2;
pub const ACCEPTED: u32 = 3;
pub const WRONG_ANSWER: u32 = 4;
pub const TIME_LIMIT: u32 = 5;
pub const COMPILATION_ERROR: u32 = 6;
pub const SIGXFSZ_ERROR: u32 = 8;
pub const NZEC: u32 = 11;
pub const OTHER_RUNTIME_ERROR: u32 = 12;
pub const INTERNAL_ERROR: u32 = 13;

pub fn description(id: u32) -> &'static str {
    STATUSES
        .iter()
        .find(|(i, _)| *i == id)
        .map_or("Internal Error", |(_, d)| d)
}

/// Linux signal numbers by name (x86-64), for `exit_signal`.
pub fn signal_number(name: &str) -> Option<i32> {
    let n = match name.trim_start_matches("SIG") {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" => 29,
        "PWR" => 30,
        "SYS" => 31,
        other => return other.strip_prefix("RT").and_then(|n| n.parse().ok()),
    };
    Some(n)
}

/// A runtime error's status from how the program ended, as isolate's `SG`/`RE` are mapped by
/// Judge0: by signal (SIGSEGV 7, SIGXFSZ 8, SIGFPE 9, SIGABRT 10, any other 12), else a non-zero
/// exit code (11, NZEC).
pub fn runtime_error(signal: Option<i32>) -> u32 {
    match signal {
        Some(11) => 7,
        Some(25) => SIGXFSZ_ERROR,
        Some(8) => 9,
        Some(6) => 10,
        Some(_) => OTHER_RUNTIME_ERROR,
        None => NZEC,
    }
}

/// The status of a job still on its way.
pub fn of_unfinished(status: JobStatus) -> Option<u32> {
    match status {
        JobStatus::Queued => Some(IN_QUEUE),
        JobStatus::Running => Some(PROCESSING),
        _ => None,
    }
}

/// The status of a finished plain job. `signal` is how its run ended; `over_cpu` that its CPU
/// time passed the client's `cpu_time_limit` (within `cpu_extra_time`: isolate calls that a
/// time limit exceeded too, it only lets the program run on to report its real time).
pub fn of_verdict(verdict: Verdict, signal: Option<i32>, over_cpu: bool) -> u32 {
    match verdict {
        Verdict::Ok | Verdict::Accepted if over_cpu => TIME_LIMIT,
        Verdict::Ok | Verdict::Accepted => ACCEPTED,
        Verdict::WrongAnswer | Verdict::PresentationError => WRONG_ANSWER,
        Verdict::CompileError => COMPILATION_ERROR,
        Verdict::RuntimeError => runtime_error(signal),
        Verdict::TimeLimitExceeded => TIME_LIMIT,
        Verdict::MemoryLimitExceeded => OTHER_RUNTIME_ERROR,
        Verdict::OutputLimitExceeded => SIGXFSZ_ERROR,
        Verdict::Cancelled | Verdict::InternalError => INTERNAL_ERROR,
    }
}

/// The status of one judged run (a test of the judge-mode job behind `expected_output` or
/// `number_of_runs`).
pub fn of_test(verdict: TestVerdict, signal: Option<i32>, over_cpu: bool) -> u32 {
    match verdict {
        TestVerdict::Accepted if over_cpu => TIME_LIMIT,
        TestVerdict::Accepted => ACCEPTED,
        TestVerdict::WrongAnswer | TestVerdict::PresentationError => WRONG_ANSWER,
        TestVerdict::TimeLimitExceeded => TIME_LIMIT,
        TestVerdict::MemoryLimitExceeded => OTHER_RUNTIME_ERROR,
        TestVerdict::OutputLimitExceeded => SIGXFSZ_ERROR,
        TestVerdict::RuntimeError => runtime_error(signal),
        TestVerdict::Skipped | TestVerdict::InternalError => INTERNAL_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_to_fourteen_in_order() {
        for (i, (id, _)) in STATUSES.iter().enumerate() {
            assert_eq!(*id as usize, i + 1);
        }
        assert_eq!(description(6), "Compilation Error");
    }

    #[test]
    fn runtime_errors_follow_the_signal() {
        assert_eq!(runtime_error(signal_number("SIGSEGV")), 7);
        assert_eq!(runtime_error(signal_number("SIGXFSZ")), 8);
        assert_eq!(runtime_error(signal_number("SIGFPE")), 9);
        assert_eq!(runtime_error(signal_number("SIGABRT")), 10);
        assert_eq!(runtime_error(signal_number("SIGKILL")), 12);
        assert_eq!(runtime_error(None), 11);
        assert_eq!(signal_number("SIGRT3"), Some(3));
        assert_eq!(signal_number("nonsense"), None);
    }

    #[test]
    fn extra_time_is_still_a_time_limit() {
        assert_eq!(of_verdict(Verdict::Ok, None, true), TIME_LIMIT);
        assert_eq!(of_verdict(Verdict::Ok, None, false), ACCEPTED);
        assert_eq!(of_test(TestVerdict::Accepted, None, true), TIME_LIMIT);
        assert_eq!(of_verdict(Verdict::MemoryLimitExceeded, None, false), 12);
        assert_eq!(of_verdict(Verdict::OutputLimitExceeded, None, false), 8);
    }
}
