//! Running one step: start its main process as the job's uid in the step's own cgroup, feed its
//! stdin, capture its output under the cap while streaming it live, and watch wall time, CPU
//! and OOM kills every [`TICK`] until the main process exits, a limit stops it or the job is
//! cancelled; then end every process of the uid and read what the cgroup measured.
//!
//! The loop sleeps in one `poll` over everything that can need it: the SIGCHLD signalfd (the
//! main process's exit), the control channel (a cancellation is acted on when it arrives, not at
//! the next tick), the program's stdin (only while there is something to write) and its output
//! pipes; the tick bounds the sleep so the limits and the live output's latency are kept.

use crate::cgroup::StepCgroup;
use crate::command;
use crate::control::{Control, InputBuffer};
use crate::messages::MessageWriter;
use crate::output::{Capture, FLUSH_BYTES};
use crate::reaper::{self, MainExit, Reaper};
use crate::sys::{self, ChildStage, ChildStdio, ExitStatus, SpawnError};
use crate::workspace::Workspace;
use rce_protocol::bytes::Base64Bytes;
use rce_protocol::shim::{OutputStream, ShimStep, StepLimits, StepOutcome, Termination};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// How often the shim reaps, checks the deadline, reads the step cgroup's CPU time and OOM
/// count (so a CPU limit is noticed at most this long after it was crossed) and sends pending
/// output.
const TICK: Duration = Duration::from_millis(10);
/// How long to keep reading leftover output once every process of the step is gone.
const DRAIN: Duration = Duration::from_millis(200);
/// How long after its kill the main process may take to disappear before the shim gives up.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// Writes to the program's stdin.
const CHUNK: usize = 64 << 10;
/// Reads from its output pipes: keeps each live message near the flush threshold (pending
/// output below it plus at most one read).
const READ_CHUNK: usize = FLUSH_BYTES;

/// A step's outcome plus what the shim has to say about its own part.
#[derive(Debug)]
pub struct StepReport {
    pub outcome: StepOutcome,
    /// The shim failed (not the program): reported as the record's error.
    pub internal_error: Option<String>,
    /// False when processes of the uid survived the kill after the step.
    pub all_killed: bool,
}

/// How a step ended, from the kill the shim decided on (if any) and the main process's end.
pub fn classify(
    killed_for: Option<Termination>,
    status: ExitStatus,
    cpu_ms: u64,
    cpu_limit_ms: u64,
    oom_rose: bool,
) -> Termination {
    if let Some(reason) = killed_for {
        return reason;
    }
    match status {
        ExitStatus::Signaled(libc::SIGXCPU) => Termination::CpuTimeout,
        ExitStatus::Signaled(libc::SIGKILL) if cpu_ms >= cpu_limit_ms => Termination::CpuTimeout,
        _ if oom_rose => Termination::MemoryLimit,
        ExitStatus::Signaled(_) => Termination::Signaled,
        ExitStatus::Exited(_) => Termination::Exited,
    }
}

/// Whether the job may go on to its next step.
pub fn succeeded(outcome: &StepOutcome) -> bool {
    outcome.termination == Termination::Exited && outcome.exit_code == Some(0)
}

/// The message put on a step's stderr when its program could not be started.
pub fn start_failure_text(program: &str, stage: ChildStage, errno: i32) -> String {
    let err = os_error_text(errno);
    match stage {
        ChildStage::Exec => format!("rce-shim: cannot execute {program:?}: {err}\n"),
        other => format!("rce-shim: cannot start {program:?} ({other:?}): {err}\n"),
    }
}

/// "No such file or directory" rather than "No such file or directory (os error 2)".
fn os_error_text(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn empty_outcome(step: &ShimStep, termination: Termination) -> StepOutcome {
    StepOutcome {
        name: step.name,
        termination,
        exit_code: None,
        signal: None,
        wall_ms: 0,
        cpu_ms: 0,
        memory_kb: 0,
        stdout: Base64Bytes::default(),
        stderr: Base64Bytes::default(),
        truncated: false,
    }
}

/// The outcome of a step whose program never ran. Its stderr also goes out live, so that the
/// live output of every step is exactly what its record holds.
fn start_failed(
    step: &ShimStep,
    stderr: String,
    error: Option<String>,
    out: &mut MessageWriter,
) -> StepReport {
    out.output(OutputStream::Stderr, stderr.as_bytes());
    let mut outcome = empty_outcome(step, Termination::StartFailed);
    outcome.exit_code = Some(127);
    outcome.stderr = Base64Bytes(stderr.into_bytes());
    StepReport {
        outcome,
        internal_error: error,
        all_killed: true,
    }
}

/// Runs `step` in `ws` as `uid` inside `cgroup`, announcing it and streaming its output on `out`.
pub fn run(
    ws: &Workspace,
    uid: u32,
    step: &ShimStep,
    cgroup: &mut StepCgroup,
    control: &mut Control,
    out: &mut MessageWriter,
) -> StepReport {
    out.step(step.name);
    let mut spec = match command::child_spec(ws.path_str(), uid, step) {
        Ok(spec) => spec,
        Err(msg) => {
            let text = format!("rce-shim: {msg}\n");
            let error = Some(format!("step {:?}: {msg}", step.name));
            return start_failed(step, text, error, out);
        }
    };
    let pipes = (|| -> io::Result<_> {
        Ok((
            sys::pipe_cloexec()?,
            sys::pipe_cloexec()?,
            sys::pipe_cloexec()?,
        ))
    })();
    let ((stdin_r, stdin_w), (stdout_r, stdout_w), (stderr_r, stderr_w)) = match pipes {
        Ok(p) => p,
        Err(e) => {
            let msg = format!("step {:?}: creating pipes: {e}", step.name);
            return start_failed(step, format!("rce-shim: {msg}\n"), Some(msg), out);
        }
    };
    spec.cgroup_procs = cgroup.procs_fds();
    let started = Instant::now();
    // Merged: the child's fd 2 is its stdout pipe too, and the stderr pipe, with no writer
    // left, reads EOF at once.
    let stderr_w = if step.merge_stderr {
        drop(stderr_w);
        match stdout_w.try_clone() {
            Ok(fd) => fd,
            Err(e) => {
                let msg = format!("step {:?}: merging stderr: {e}", step.name);
                return start_failed(step, format!("rce-shim: {msg}\n"), Some(msg), out);
            }
        }
    } else {
        stderr_w
    };
    let stdio = ChildStdio {
        stdin: stdin_r,
        stdout: stdout_w,
        stderr: stderr_w,
    };
    let pid = match sys::spawn(&spec, stdio) {
        Ok(pid) => pid,
        Err(SpawnError::Os(e)) => {
            let msg = format!("step {:?}: starting the process: {e}", step.name);
            return start_failed(step, format!("rce-shim: {msg}\n"), Some(msg), out);
        }
        Err(SpawnError::Child { stage, errno }) => {
            let program = step.argv.first().map(String::as_str).unwrap_or("");
            let text = start_failure_text(program, stage, errno);
            // A program that is missing is the job's business; failing to set up the sandbox
            // around it is the platform's.
            let internal = (stage != ChildStage::Exec)
                .then(|| format!("step {:?}: {}", step.name, text.trim_end()));
            // cpu/memory stay 0: what ran was the shim's own forked copy, not the program.
            let mut report = start_failed(step, text, internal, out);
            report.outcome.wall_ms = started.elapsed().as_millis() as u64;
            return report;
        }
    };
    let feed = StdinFeed::new(stdin_w, &step.stdin.0, control.feeds(step));
    let spawned = Spawned { pid, started };
    Watch::new(step, uid, cgroup, spawned, feed, control, out).run(stdout_r, stderr_r)
}

/// The step's main process, just started.
struct Spawned {
    pid: sys::Pid,
    started: Instant,
}

/// The program's stdin: the step's own input first, then, for the run step of an interactive
/// job, the control channel's input until its end. It is polled only while there is something
/// to write, so an idle interactive pipe stays open without waking the loop.
struct StdinFeed<'a> {
    pipe: Option<File>,
    own: &'a [u8],
    fed: usize,
    interactive: bool,
}

impl<'a> StdinFeed<'a> {
    fn new(pipe: OwnedFd, own: &'a [u8], interactive: bool) -> Self {
        Self {
            pipe: Some(nonblocking(pipe)),
            own,
            fed: 0,
            interactive,
        }
    }

    /// Gives the program its end-of-file once everything it will get was written.
    fn close_when_done(&mut self, input: &InputBuffer) {
        if self.fed >= self.own.len() && (!self.interactive || input.finished()) {
            self.pipe = None;
        }
    }

    /// The descriptor to poll for POLLOUT, when there is something to write.
    fn wants_write(&self, input: &InputBuffer) -> Option<RawFd> {
        let pending = self.fed < self.own.len() || (self.interactive && !input.is_empty());
        self.pipe
            .as_ref()
            .filter(|_| pending)
            .map(AsRawFd::as_raw_fd)
    }

    /// Writes as much as the pipe takes. A program that closed its stdin (EPIPE) just loses the
    /// input, interactive input to come included.
    fn write(&mut self, input: &mut InputBuffer) {
        let Some(pipe) = &mut self.pipe else { return };
        loop {
            let own = self.fed < self.own.len();
            let data = if own {
                &self.own[self.fed..]
            } else if self.interactive && !input.is_empty() {
                input.pending()
            } else {
                return;
            };
            match pipe.write(&data[..data.len().min(CHUNK)]) {
                Ok(n) if n > 0 && own => self.fed += n,
                Ok(n) if n > 0 => input.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => {
                    self.pipe = None;
                    self.fed = self.own.len();
                    if self.interactive {
                        input.close();
                    }
                    return;
                }
            }
        }
    }
}

/// The descriptors of one `poll`, and which of them are ready.
#[derive(Default)]
struct PollSet(Vec<libc::pollfd>);

impl PollSet {
    fn add(&mut self, fd: RawFd, events: libc::c_short) -> usize {
        self.0.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        self.0.len() - 1
    }

    fn ready(&self, slot: Option<usize>) -> bool {
        slot.is_some_and(|i| self.0[i].revents != 0)
    }
}

/// The step's output pipes, each until its EOF (or the cap).
type Outputs = [Option<(File, OutputStream)>; 2];

/// The parent's side of a running step.
struct Watch<'a> {
    step: &'a ShimStep,
    limits: StepLimits,
    uid: u32,
    started: Instant,
    deadline: Instant,
    cgroup: &'a mut StepCgroup,
    reaper: Reaper,
    feed: StdinFeed<'a>,
    control: &'a mut Control,
    out: &'a mut MessageWriter,
    capture: Capture,
    truncation_sent: bool,
    buf: Vec<u8>,
    killed_for: Option<Termination>,
    killed_at: Option<Instant>,
    /// The cgroup's CPU time and OOM kills at the last sample.
    cpu_ms: u64,
    oom_kills: u64,
    all_killed: bool,
}

enum ReadState {
    Open,
    Eof,
    OverCap,
}

impl<'a> Watch<'a> {
    fn new(
        step: &'a ShimStep,
        uid: u32,
        cgroup: &'a mut StepCgroup,
        spawned: Spawned,
        feed: StdinFeed<'a>,
        control: &'a mut Control,
        out: &'a mut MessageWriter,
    ) -> Self {
        let limits = step.limits;
        Self {
            step,
            limits,
            uid,
            started: spawned.started,
            deadline: spawned.started + Duration::from_millis(limits.wall_time_ms),
            cgroup,
            reaper: Reaper::new(Some(spawned.pid)),
            feed,
            control,
            out,
            capture: Capture::new(limits.output_bytes),
            truncation_sent: false,
            buf: vec![0u8; READ_CHUNK],
            killed_for: None,
            killed_at: None,
            cpu_ms: 0,
            oom_kills: 0,
            all_killed: true,
        }
    }

    /// Stops the step for `reason` (the first reason wins).
    fn kill(&mut self, reason: Termination) {
        if self.killed_for.is_none() {
            self.killed_for = Some(reason);
            self.killed_at = Some(Instant::now());
        }
        self.all_killed = reaper::kill_all(self.uid, &mut self.reaper);
    }

    /// Reads the step cgroup's CPU time and OOM kills; stops the step over its CPU limit or
    /// at its first OOM kill (the kernel already enforces the memory limit itself: an OOM kill
    /// means the step reached it, whichever of its processes the kernel picked).
    fn sample(&mut self) {
        self.read_cgroup();
        if self.killed_for.is_some() {
            return;
        }
        if self.oom_kills > 0 {
            self.kill(Termination::MemoryLimit);
        } else if self.cpu_ms > self.limits.cpu_time_ms {
            self.kill(Termination::CpuTimeout);
        }
    }

    /// Takes in the step cgroup's CPU time and OOM kills (counters: they only grow).
    fn read_cgroup(&mut self) {
        let now = self.cgroup.sample();
        self.cpu_ms = self.cpu_ms.max(now.cpu_ms);
        self.oom_kills = self.oom_kills.max(now.oom_kills);
    }

    fn run(mut self, stdout_r: OwnedFd, stderr_r: OwnedFd) -> StepReport {
        let mut outs: Outputs = [
            Some((nonblocking(stdout_r), OutputStream::Stdout)),
            Some((nonblocking(stderr_r), OutputStream::Stderr)),
        ];
        let mut last_tick = self.started;
        let mut internal_error = None;
        // Without it the exit is still seen, at the next tick.
        let sigchld = sys::sigchld_fd().ok();

        loop {
            self.feed.close_when_done(self.control.input());
            let mut set = PollSet::default();
            let sig = sigchld
                .as_ref()
                .map(|fd| set.add(fd.as_raw_fd(), libc::POLLIN));
            let ctl = self.control.pollfd().map(|p| set.add(p.fd, p.events));
            let stdin = self
                .feed
                .wants_write(self.control.input())
                .map(|fd| set.add(fd, libc::POLLOUT));
            let readers = outs.each_ref().map(|o| {
                o.as_ref()
                    .map(|(f, _)| set.add(f.as_raw_fd(), libc::POLLIN))
            });
            let wait = TICK.saturating_sub(last_tick.elapsed()).as_millis() as i32;
            if let Err(e) = sys::poll(&mut set.0, wait.max(1)) {
                // Never expected (EINVAL/ENOMEM); keep ticking so limits still apply.
                eprintln!("rce-shim: poll: {e}");
                std::thread::sleep(TICK);
                continue;
            }
            if let (true, Some(fd)) = (set.ready(sig), &sigchld) {
                sys::drain_signalfd(fd.as_fd());
                self.reaper.reap();
            }
            if set.ready(ctl) {
                self.control.read_ready();
            }
            // A program that already exited by itself keeps its own ending; the job still stops
            // before its next step.
            if self.control.cancelled()
                && self.killed_for.is_none()
                && self.reaper.main_exit.is_none()
            {
                self.kill(Termination::Cancelled);
            }
            if set.ready(stdin) {
                self.feed.write(self.control.input());
            }
            let mut over_cap = false;
            for (slot, reader) in outs.iter_mut().zip(readers) {
                let Some((f, stream)) = slot else { continue };
                if !set.ready(reader) {
                    continue;
                }
                match self.read_once(f, *stream) {
                    ReadState::Open => {}
                    ReadState::Eof => *slot = None,
                    ReadState::OverCap => over_cap = true,
                }
            }
            if over_cap {
                outs = [None, None];
                if self.killed_for.is_none() {
                    self.kill(Termination::OutputLimit);
                }
            }
            self.publish(false);

            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.publish(true);
                self.reaper.reap();
                if self.reaper.main_exit.is_some() {
                    break;
                }
                if self.killed_for.is_none() && last_tick >= self.deadline {
                    self.kill(Termination::WallTimeout);
                } else {
                    self.sample();
                }
                if let Some(at) = self.killed_at {
                    if self.reaper.main_exit.is_none() {
                        if at.elapsed() > KILL_GRACE {
                            internal_error =
                                Some("the step's processes could not be killed".into());
                            self.all_killed = false;
                            break;
                        }
                        self.all_killed = reaper::kill_all(self.uid, &mut self.reaper);
                    }
                }
            }
            if self.reaper.main_exit.is_some() {
                break;
            }
        }
        self.feed.pipe = None;

        // The main process is gone: end what is left, then read the final figures (every
        // process of the step is dead, so the cgroup's CPU time is complete).
        let killed = reaper::kill_remaining(self.uid, &mut self.reaper);
        self.all_killed &= killed;
        if self.drain(&mut outs) && self.killed_for.is_none() {
            self.killed_for = Some(Termination::OutputLimit);
        }
        // Everything the step printed goes out before anything that follows it.
        self.publish(true);
        self.read_cgroup();
        let oom = self.oom_kills > 0;
        self.finish(oom, internal_error)
    }

    /// Sends pending live output (all of it, or only once enough is pending), then, once the
    /// cap was hit, everything kept and the one truncation notice.
    fn publish(&mut self, all: bool) {
        if all || self.capture.truncated || self.capture.flush_due() {
            for (stream, data) in self.capture.take_pending() {
                self.out.output(stream, data);
            }
        }
        if self.capture.truncated && !self.truncation_sent {
            self.truncation_sent = true;
            self.out.truncated(self.step.name);
        }
    }

    /// Reads what is left in the pipes, up to EOF, the cap, or [`DRAIN`]. True if over the cap.
    fn drain(&mut self, outs: &mut Outputs) -> bool {
        let until = Instant::now() + DRAIN;
        let mut last_flush = Instant::now();
        while outs.iter().any(Option::is_some) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut set = PollSet::default();
            let readers = outs.each_ref().map(|o| {
                o.as_ref()
                    .map(|(f, _)| set.add(f.as_raw_fd(), libc::POLLIN))
            });
            let wait = left.min(TICK).as_millis().max(1) as i32;
            if sys::poll(&mut set.0, wait).is_err() {
                break;
            }
            for (slot, reader) in outs.iter_mut().zip(readers) {
                let Some((f, stream)) = slot else { continue };
                if !set.ready(reader) {
                    continue;
                }
                match self.read_once(f, *stream) {
                    ReadState::Open => {}
                    ReadState::Eof => *slot = None,
                    ReadState::OverCap => return true,
                }
            }
            let tick = last_flush.elapsed() >= TICK;
            if tick {
                last_flush = Instant::now();
            }
            self.publish(tick);
        }
        false
    }

    /// One read from an output pipe into the capture: one per wake-up, so that the loop gets
    /// back to its limits, its control channel and sending output between reads.
    fn read_once(&mut self, f: &mut File, stream: OutputStream) -> ReadState {
        loop {
            return match f.read(&mut self.buf) {
                Ok(0) => ReadState::Eof,
                Ok(n) if self.capture.push(stream, &self.buf[..n]) => ReadState::Open,
                Ok(_) => ReadState::OverCap,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadState::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => ReadState::Eof,
            };
        }
    }

    fn finish(self, oom_rose: bool, internal_error: Option<String>) -> StepReport {
        let exit: Option<MainExit> = self.reaper.main_exit;
        let (status, main_cpu, ended) = match exit {
            Some(e) => (Some(e.status), e.cpu_ms, e.at),
            None => (None, 0, Instant::now()),
        };
        // The main process's own rusage is part of the cgroup's figure; it only matters if
        // the cgroup could not be read.
        let cpu_ms = main_cpu.max(self.cpu_ms);
        let termination = match status {
            Some(s) => classify(
                self.killed_for,
                s,
                cpu_ms,
                self.limits.cpu_time_ms,
                oom_rose,
            ),
            None => self.killed_for.unwrap_or(Termination::WallTimeout),
        };
        let (exit_code, signal) = match status {
            Some(ExitStatus::Exited(c)) => (Some(c), None),
            Some(ExitStatus::Signaled(s)) => (None, Some(s)),
            None => (None, None),
        };
        StepReport {
            outcome: StepOutcome {
                name: self.step.name,
                termination,
                exit_code,
                signal,
                wall_ms: ended.saturating_duration_since(self.started).as_millis() as u64,
                cpu_ms,
                memory_kb: self.cgroup.peak_bytes() / 1024,
                stdout: Base64Bytes(self.capture.stdout),
                stderr: Base64Bytes(self.capture.stderr),
                truncated: self.capture.truncated,
            },
            internal_error: internal_error.map(|e| format!("step {:?}: {e}", self.step.name)),
            all_killed: self.all_killed,
        }
    }
}

/// The shim's ends of the pipes are non-blocking so that one busy or stuck stream never stalls
/// the loop that enforces the limits.
fn nonblocking(fd: OwnedFd) -> File {
    if let Err(e) = sys::set_nonblocking(fd.as_fd()) {
        eprintln!("rce-shim: O_NONBLOCK: {e}");
    }
    File::from(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_protocol::step::StepName;

    #[test]
    fn the_shims_kill_reason_wins() {
        let t = classify(
            Some(Termination::OutputLimit),
            ExitStatus::Signaled(libc::SIGKILL),
            9999,
            100,
            true,
        );
        assert_eq!(t, Termination::OutputLimit);
    }

    #[test]
    fn cpu_rlimit_signals_are_cpu_timeouts() {
        let t = classify(None, ExitStatus::Signaled(libc::SIGXCPU), 10, 1000, false);
        assert_eq!(t, Termination::CpuTimeout);
        let t = classify(None, ExitStatus::Signaled(libc::SIGKILL), 1000, 1000, false);
        assert_eq!(t, Termination::CpuTimeout);
    }

    #[test]
    fn sigkill_below_the_cpu_limit_is_oom_or_signal() {
        let t = classify(None, ExitStatus::Signaled(libc::SIGKILL), 10, 1000, true);
        assert_eq!(t, Termination::MemoryLimit);
        let t = classify(None, ExitStatus::Signaled(libc::SIGKILL), 10, 1000, false);
        assert_eq!(t, Termination::Signaled);
    }

    #[test]
    fn an_oom_in_a_child_makes_the_step_a_memory_limit() {
        let t = classify(None, ExitStatus::Exited(137), 10, 1000, true);
        assert_eq!(t, Termination::MemoryLimit);
    }

    #[test]
    fn plain_exits_and_signals() {
        assert_eq!(
            classify(None, ExitStatus::Exited(3), 1, 1000, false),
            Termination::Exited
        );
        assert_eq!(
            classify(None, ExitStatus::Signaled(libc::SIGSEGV), 1, 1000, false),
            Termination::Signaled
        );
    }

    #[test]
    fn start_failure_message() {
        assert_eq!(
            start_failure_text("foo", ChildStage::Exec, libc::ENOENT),
            "rce-shim: cannot execute \"foo\": No such file or directory\n"
        );
        assert!(
            start_failure_text("foo", ChildStage::Privileges, libc::EPERM)
                .contains("Operation not permitted")
        );
    }

    #[test]
    fn only_a_clean_exit_continues() {
        let step = ShimStep {
            name: StepName::Compile,
            argv: vec!["x".into()],
            env: Default::default(),
            stdin: Default::default(),
            limits: StepLimits {
                wall_time_ms: 1,
                cpu_time_ms: 1,
                memory_kb: 1,
                processes: 1,
                output_bytes: 1,
                file_size_bytes: 1,
                open_files: 1,
            },
            merge_stderr: false,
        };
        let mut o = empty_outcome(&step, Termination::Exited);
        o.exit_code = Some(0);
        assert!(succeeded(&o));
        o.exit_code = Some(1);
        assert!(!succeeded(&o));
        o.exit_code = Some(0);
        o.termination = Termination::OutputLimit;
        assert!(!succeeded(&o));
    }
}
