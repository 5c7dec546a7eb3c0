//! `rce-shim`: the only program the runner starts inside a language container.
//!
//! * `rce-shim idle` is the container's main process and just waits to be stopped.
//! * `rce-shim exec` reads one `ShimJob` as JSON on stdin, runs it under the job's uid and
//!   limits, and prints exactly one line, a `ShimMessage::Record`, on stdout; it always exits 0.
//!
//! The protocol lives in `rce_protocol::shim`; the sandbox it implements is described in
//! design.md ("Sandbox model").

mod baseline;
mod cleanup;
mod command;
mod idle;
mod job;
mod oom;
mod output;
mod proc_scan;
mod reaper;
mod step;
mod sys;
mod workspace;

use rce_protocol::shim::{ShimMessage, ShimRecord};
use std::io::{Read, Write};

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("idle") => idle::run(),
        Some("exec") => exec(),
        _ => {
            eprintln!("usage: rce-shim idle | rce-shim exec < job.json");
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
    let mut input = Vec::new();
    let read = std::io::stdin().lock().read_to_end(&mut input);
    let record = match read {
        Ok(_) => {
            if let Err(e) = sys::stdin_to_devnull() {
                eprintln!("rce-shim: stdin: {e}");
            }
            job::run(input)
        }
        Err(e) => ShimRecord {
            clean: true,
            error: Some(format!("reading the job: {e}")),
            ..ShimRecord::default()
        },
    };
    let line = serde_json::to_string(&ShimMessage::Record(record)).unwrap_or_else(|e| {
        format!(
            "{{\"type\":\"record\",\"job_id\":\"\",\"steps\":[],\"clean\":false,\"error\":{}}}",
            serde_json::Value::String(format!("serializing the record: {e}"))
        )
    });
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(line.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    std::process::exit(0);
}
