//! Ending every process of the job's uid, and collecting the exits of the shim's own children.
//!
//! Killing goes through a tiny helper forked and dropped to the uid that calls `kill(-1,
//! SIGKILL)`: the kernel then signals every process of that uid in one sweep (no fork bomb can
//! outrun it, setsid/double-forked processes included) without the shim needing CAP_KILL. The
//! shim is a child subreaper, so orphaned job processes are re-parented to it and reaped here.

use crate::proc_scan;
use crate::sys::{self, ExitStatus, Pid};
use std::time::{Duration, Instant};

/// How long [`kill_all`] keeps trying before reporting that processes remain.
const KILL_PATIENCE: Duration = Duration::from_millis(1000);

/// The end of a step's main process.
#[derive(Clone, Copy, Debug)]
pub struct MainExit {
    pub status: ExitStatus,
    pub cpu_ms: u64,
    pub at: Instant,
}

/// Reaps the shim's children, remembering the main process's exit and the CPU of the rest.
#[derive(Debug, Default)]
pub struct Reaper {
    main: Option<Pid>,
    pub main_exit: Option<MainExit>,
}

impl Reaper {
    pub fn new(main: Option<Pid>) -> Self {
        Self {
            main,
            ..Self::default()
        }
    }

    /// Reaps every child that has exited.
    pub fn reap(&mut self) {
        while let Ok(Some(r)) = sys::wait_any_nohang() {
            if Some(r.pid) == self.main {
                self.main_exit = Some(MainExit {
                    status: r.status,
                    cpu_ms: r.cpu_ms,
                    at: Instant::now(),
                });
            }
        }
    }
}

/// One `kill(-1, SIGKILL)` as `uid`: through a helper, or in place when no helper can be forked.
fn signal_uid(uid: u32) {
    let mut last = None;
    for _ in 0..3 {
        match sys::run_as_uid(uid, || match sys::kill_every_signalable() {
            Ok(()) => 0,
            // ESRCH: nothing to kill.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => 0,
            Err(_) => 1,
        }) {
            Ok(0) => return,
            Ok(code) => last = Some(format!("kill helper exited {code}")),
            Err(e) => last = Some(format!("fork: {e}")),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if let Some(why) = last {
        eprintln!("rce-shim: kill helper failed ({why}); killing in place");
    }
    if let Err(e) = sys::kill_all_in_place(uid) {
        eprintln!("rce-shim: in-place kill failed: {e}");
    }
}

/// Kills every process of `uid` and waits (up to about a second) until none is left in /proc,
/// reaping the shim's own children meanwhile. True when none remains.
pub fn kill_all(uid: u32, reaper: &mut Reaper) -> bool {
    let start = Instant::now();
    loop {
        signal_uid(uid);
        // Killed processes need a moment to exit and be reaped (by us or by init).
        for _ in 0..5 {
            reaper.reap();
            if proc_scan::scan_uid(uid).is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if start.elapsed() > KILL_PATIENCE {
            reaper.reap();
            return proc_scan::scan_uid(uid).is_empty();
        }
    }
}

/// [`kill_all`], but only when /proc shows a process of `uid`: for the moments when the uid
/// cannot have any unless a kill already failed. A uid's processes can only be created by
/// processes of that uid (or by the shim), so once none exists none can appear; and `kill(-1)`
/// is atomic against `fork`, so after one [`kill_all`] that succeeded no process escaped by
/// forking during the scan. Used before a job (the uid's previous job ended with a
/// [`kill_all`]) and after the last step (each step ends with one). Saves the kill helper's fork.
pub fn kill_all_if_any(uid: u32) -> bool {
    kill_remaining(uid, &mut Reaper::new(None))
}

/// [`kill_all`] with the caller's reaper, but only when something of `uid` is still alive once
/// the exited children are reaped. At the end of a step whose main process exited by itself and
/// left nothing running, this is one scan of /proc instead of the kill helper's fork and wait
/// (a few hundred microseconds per judge-mode test). The same reasoning as
/// [`kill_all_if_any`]: with no process of the uid left, none can appear.
pub fn kill_remaining(uid: u32, reaper: &mut Reaper) -> bool {
    reaper.reap();
    proc_scan::scan_uid(uid).is_empty() || kill_all(uid, reaper)
}
