//! `rce-shim`: the only program the runner starts inside a language container.
//!
//! * `rce-shim idle` is the container's main process in exec mode and just waits to be stopped.
//! * `rce-shim agent` is the container's main process in agent mode: it reads job lines on its
//!   stdin and forks each one into exactly what `rce-shim exec` runs (see `agent`).
//! * `rce-shim exec` reads one `ShimJob` as a JSON line on stdin, then `ShimControl` lines for as
//!   long as the job runs; it runs the job under its uid and limits, prints live `ShimMessage`s
//!   (step, output, truncated) on stdout and last exactly one `ShimMessage::Record`; it always
//!   exits 0.
//!
//! The protocol lives in `rce_protocol::shim`; the sandbox it implements is described in
//! design.md ("Sandbox model").

mod agent;
mod artifact;
mod baseline;
mod cgroup;
mod cleanup;
mod command;
mod control;
mod idle;
mod job;
mod judge_tests;
mod messages;
mod output;
mod proc_scan;
mod reaper;
mod step;
mod sys;
mod workspace;

use messages::MessageWriter;
use rce_protocol::shim::ShimRecord;

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("idle") => idle::run(),
        Some("exec") => exec(),
        Some("agent") => agent::run(),
        _ => {
            eprintln!("usage: rce-shim idle | rce-shim agent | rce-shim exec < job-line-then-control-lines");
            std::process::exit(2);
        }
    }
}

fn exec() -> ! {
    if let Err(e) = sys::ensure_std_fds() {
        eprintln!("rce-shim: standard descriptors: {e}");
    }
    sys::set_umask(0o077);
    sys::ignore_sigpipe();
    let mut out = MessageWriter::stdout();
    let record = match control::open_stdin() {
        Ok((line, channel)) => {
            let channel = (!line.eof).then_some(channel);
            job::run(line.job, channel, &line.rest, &mut out)
        }
        Err(error) => ShimRecord {
            tests: Vec::new(),
            clean: true,
            error: Some(error),
            ..ShimRecord::default()
        },
    };
    out.record(record);
    std::process::exit(0);
}
