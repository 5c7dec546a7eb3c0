//! `rce-shim idle`: the container's long-lived main process. It only has to exist (so the
//! container stays up between jobs) and stop promptly and with status 0 when the container is
//! stopped. Should it ever run as PID 1 (no init), it also reaps orphans. Its first act is to
//! print the container's resting state (see `baseline`) to the container log, where the pool
//! reads it before the container takes its first job.

use crate::{baseline, sys};
use rce_protocol::shim::ShimMessage;
use std::io::Write;

const STOP: [i32; 2] = [libc::SIGTERM, libc::SIGINT];

/// Waits for SIGTERM or SIGINT, then exits 0.
pub fn run() -> ! {
    if let Ok(line) = serde_json::to_string(&ShimMessage::Baseline(baseline::measure())) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
    let sigs = [STOP[0], STOP[1], libc::SIGCHLD];
    if let Err(e) = sys::block_signals(&sigs) {
        eprintln!("rce-shim idle: blocking signals: {e}");
    }
    loop {
        match sys::wait_signal(&sigs) {
            Ok(sig) if STOP.contains(&sig) => std::process::exit(0),
            Ok(_) => while let Ok(Some(_)) = sys::wait_any_nohang() {},
            Err(e) => {
                eprintln!("rce-shim idle: sigwait: {e}");
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}
