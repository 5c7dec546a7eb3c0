//! `rce-shim agent`: the container's long-lived main process in agent mode (under the
//! container's init). The runner attaches to the container's stdin and stdout once, when it
//! creates the container, and hands it jobs there instead of paying for one `docker exec` each.
//!
//! The conversation on the attached stream, one JSON line at a time:
//! * first the agent prints the container's resting state (`ShimMessage::Baseline`);
//! * the runner writes a job line; the agent forks, and the child runs exactly what
//!   `rce-shim exec` runs (`job::run`: workspace, uid drop, limits, steps, kill, cleanup,
//!   verification), printing its live messages and its record on the same stdout;
//! * while the child runs, every line the runner writes is a control line for it, relayed over a
//!   pipe that is the child's control channel (it never sees the attached stream itself);
//! * when the child has been reaped the agent prints `ShimMessage::Done`, and only then does the
//!   runner write the next job. A control line that arrives after its job ended is dropped.
//!
//! The fork isolates jobs from each other and from the agent as the exec did: the child starts
//! from the agent's idle state (small, no job data but its own line), and nothing it does
//! changes the agent. When the runner goes away (end of stdin), the agent exits once the current
//! job is over, so the container stops rather than lingering.

use crate::baseline;
use crate::control::{LineSplitter, Piece, MAX_JOB_LINE};
use crate::job;
use crate::messages::MessageWriter;
use crate::sys::{self, ExitStatus, Pid};
use rce_protocol::shim::ShimRecord;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

const READ_CHUNK: usize = 64 << 10;

/// The job being run, from the agent's side.
struct Running {
    pid: Pid,
    /// The write end of the child's control channel; `None` once the child stopped reading.
    control: Option<File>,
}

struct Agent {
    stdin: File,
    sigchld: OwnedFd,
    out: MessageWriter,
    lines: LineSplitter,
    /// Complete lines read but not yet acted on.
    pending: VecDeque<Piece>,
    running: Option<Running>,
    stdin_ended: bool,
    /// Reused for every read of stdin.
    chunk: Vec<u8>,
}

/// Serves jobs until the runner closes the stream (then exits 0).
pub fn run() -> ! {
    if let Err(e) = sys::ensure_std_fds() {
        eprintln!("rce-shim agent: standard descriptors: {e}");
    }
    sys::set_umask(0o077);
    sys::ignore_sigpipe();
    let mut agent = match Agent::new() {
        Ok(agent) => agent,
        Err(e) => {
            eprintln!("rce-shim agent: {e}");
            std::process::exit(1);
        }
    };
    agent.out.baseline(baseline::measure());
    agent.serve();
    std::process::exit(0);
}

impl Agent {
    fn new() -> io::Result<Self> {
        let stdin = sys::take_stdin()?;
        sys::set_nonblocking(stdin.as_fd())?;
        Ok(Self {
            stdin: File::from(stdin),
            sigchld: sys::sigchld_fd()?,
            out: MessageWriter::stdout(),
            lines: LineSplitter::with_max(MAX_JOB_LINE),
            pending: VecDeque::new(),
            running: None,
            stdin_ended: false,
            chunk: vec![0u8; READ_CHUNK],
        })
    }

    fn serve(&mut self) {
        loop {
            self.act_on_pending();
            if self.stdin_ended && self.running.is_none() {
                return;
            }
            let mut fds = [
                libc::pollfd {
                    fd: self.stdin.as_raw_fd(),
                    events: if self.stdin_ended { 0 } else { libc::POLLIN },
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.sigchld.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if let Err(e) = sys::poll(&mut fds, -1) {
                eprintln!("rce-shim agent: poll: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
            if fds[1].revents != 0 {
                sys::drain_signalfd(self.sigchld.as_fd());
                self.reap();
            }
            if fds[0].revents != 0 {
                self.read_stdin();
            }
        }
    }

    /// Reads what the runner wrote (up to one chunk per wake-up, so a finished child is noticed
    /// promptly) into complete lines.
    fn read_stdin(&mut self) {
        let mut pieces = Vec::new();
        match self.stdin.read(&mut self.chunk) {
            Ok(0) => {
                self.lines.finish(&mut pieces);
                self.stdin_ended = true;
            }
            Ok(n) => self.lines.push(&self.chunk[..n], &mut pieces),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                eprintln!("rce-shim agent: reading stdin: {e}");
                self.stdin_ended = true;
            }
        }
        self.pending.extend(pieces);
    }

    /// Relays lines to the running job, or starts the next job when none runs.
    fn act_on_pending(&mut self) {
        while let Some(piece) = self.pending.pop_front() {
            match (&mut self.running, piece) {
                (Some(job), Piece::Line(line)) => relay(job, &line),
                (Some(_), Piece::TooLong) => {
                    eprintln!("rce-shim agent: dropped a control line over {MAX_JOB_LINE} bytes")
                }
                (None, Piece::Line(line)) if is_stale_control(&line) || is_blank(&line) => {}
                (None, Piece::Line(line)) => self.start(line),
                (None, Piece::TooLong) => {
                    self.out.record(ShimRecord {
                        tests: Vec::new(),
                        clean: true,
                        error: Some(format!("the job line is longer than {MAX_JOB_LINE} bytes")),
                        ..ShimRecord::default()
                    });
                    self.out.done(None);
                }
            }
        }
    }

    /// Forks the job's shim process. Its control channel is a new pipe; it keeps the agent's
    /// stdout (whole-line writes, and the agent is silent until it is reaped).
    fn start(&mut self, line: Vec<u8>) {
        let (read_end, write_end) = match sys::pipe_cloexec() {
            Ok(pipe) => pipe,
            Err(e) => return self.refuse(&line, format!("control pipe: {e}")),
        };
        match sys::fork_process() {
            Ok(None) => {
                sys::close_inherited(self.stdin.as_raw_fd());
                sys::close_inherited(self.sigchld.as_raw_fd());
                drop(write_end);
                run_job_child(line, read_end)
            }
            Ok(Some(pid)) => {
                drop(read_end);
                self.running = Some(Running {
                    pid,
                    control: Some(File::from(write_end)),
                });
            }
            Err(e) => self.refuse(&line, format!("fork: {e}")),
        }
    }

    /// Answers a job that could not be started, as the exec would have: a record, then done.
    fn refuse(&mut self, line: &[u8], why: String) {
        let job_id = job::parse(line).map_or_else(|(id, _)| id, |j| j.job_id);
        self.out.record(ShimRecord {
            tests: Vec::new(),
            job_id,
            clean: true,
            error: Some(why),
            ..ShimRecord::default()
        });
        self.out.done(None);
    }

    /// Reaps the job's process if it ended, and tells the runner.
    fn reap(&mut self) {
        let Some(job) = &self.running else {
            // Not ours to wait for (the agent has no other children); reap anything anyway.
            while let Ok(Some(_)) = sys::wait_any_nohang() {}
            return;
        };
        match sys::wait_pid_nohang(job.pid) {
            Ok(None) => {}
            Ok(Some(reaped)) => {
                self.running = None;
                let failure = match reaped.status {
                    ExitStatus::Exited(0) => None,
                    ExitStatus::Exited(code) => Some(format!("the job's shim exited {code}")),
                    ExitStatus::Signaled(sig) => {
                        Some(format!("the job's shim was killed by signal {sig}"))
                    }
                };
                self.out.done(failure);
            }
            Err(e) => {
                eprintln!("rce-shim agent: waiting for the job: {e}");
                self.running = None;
                self.out
                    .done(Some(format!("waiting for the job's shim: {e}")));
            }
        }
    }
}

/// The forked child: exactly `rce-shim exec`'s job, on the relayed control channel.
fn run_job_child(line: Vec<u8>, control: OwnedFd) -> ! {
    if let Err(e) = sys::unblock_all_signals() {
        eprintln!("rce-shim agent: unblocking signals: {e}");
    }
    if let Err(e) = sys::set_nonblocking(control.as_fd()) {
        eprintln!("rce-shim agent: control channel O_NONBLOCK: {e}");
    }
    let mut out = MessageWriter::stdout();
    let record = job::run(line, Some(control), &[], &mut out);
    out.record(record);
    sys::exit_now(0)
}

/// Writes one control line to the job; a job that stopped reading (it ended) drops the rest.
fn relay(job: &mut Running, line: &[u8]) {
    let Some(control) = &mut job.control else {
        return;
    };
    let written = control
        .write_all(line)
        .and_then(|()| control.write_all(b"\n"));
    if written.is_err() {
        job.control = None;
    }
}

/// Control lines are serialized with their `type` tag first; a job line has none. The runner
/// never writes a job line while a job runs, so between jobs a control line can only be a late
/// one for the job that just ended.
fn is_stale_control(line: &[u8]) -> bool {
    line.trim_ascii_start().starts_with(b"{\"type\":")
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_protocol::shim::ShimControl;

    #[test]
    fn control_lines_are_told_from_job_lines() {
        for control in [ShimControl::Cancel, ShimControl::StdinEof] {
            let line = serde_json::to_vec(&control).unwrap();
            assert!(
                is_stale_control(&line),
                "{}",
                String::from_utf8_lossy(&line)
            );
        }
        let job = br#"{"schema":1,"job_id":"x","uid":20000,"files":[],"steps":[]}"#;
        assert!(!is_stale_control(job));
        assert!(is_blank(b"  \r"));
    }
}
