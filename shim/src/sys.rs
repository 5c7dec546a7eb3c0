//! Every system call the shim makes that Rust's standard library does not wrap, behind small safe
//! functions. This is the only module allowed to use `unsafe`: keeping it in one place makes the
//! audit of the privileged, fork-heavy parts (dropping to the job's uid, exec, kill, cleanup)
//! a read of one file. The shim is single-threaded, which is what makes running ordinary code in
//! a forked child (the kill and cleanup helpers) sound; the exec child still only uses raw,
//! async-signal-safe calls between `fork` and `execve`.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

/// A process id as the kernel hands it out.
pub type Pid = libc::pid_t;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Sets the process umask.
pub fn set_umask(mask: u32) {
    // SAFETY: umask only changes a process attribute and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// Makes writes to a closed pipe fail with EPIPE instead of killing the shim.
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN for SIGPIPE is always valid; no handler code is involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Makes the shim the reaper of every orphaned descendant (double-forked daemons included), so
/// their exit and rusage come back to it instead of to the container's init.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) }).map(drop)
}

/// Makes sure descriptors 0, 1 and 2 are open (on /dev/null if they were closed), so pipes the
/// shim creates never land on them and a `dup2` onto 0/1/2 in the exec child is never a no-op.
pub fn ensure_std_fds() -> io::Result<()> {
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            let null = File::options().read(true).write(true).open("/dev/null")?;
            if null.as_raw_fd() != fd {
                // SAFETY: both descriptors are valid; dup2 replaces the closed slot `fd`.
                cvt(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
            } else {
                // It landed exactly in the hole: keep it open there.
                let _ = null.into_raw_fd();
            }
        }
    }
    Ok(())
}

/// Moves stdin (the runner's control channel) to a new close-on-exec descriptor above 2 and
/// points descriptor 0 at /dev/null, so nothing that inherits or dup2s the standard descriptors
/// can ever reach the channel.
pub fn take_stdin() -> io::Result<OwnedFd> {
    // F_DUPFD_CLOEXEC with a minimum of 3.
    let channel = io::stdin().as_fd().try_clone_to_owned()?;
    let null = File::open("/dev/null")?;
    // SAFETY: both descriptors are valid; dup2 atomically replaces fd 0.
    cvt(unsafe { libc::dup2(null.as_raw_fd(), 0) })?;
    Ok(channel)
}

/// A pipe whose both ends are close-on-exec: `(read end, write end)`.
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Puts a descriptor in non-blocking mode.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on a descriptor we borrow; no memory is involved.
    unsafe {
        let flags = cvt(libc::fcntl(raw, libc::F_GETFL))?;
        cvt(libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// Fills `buf` from the kernel's random source.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a valid writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += n as usize;
    }
    Ok(())
}

/// Waits for readiness on `fds` for at most `timeout_ms`; EINTR counts as "nothing ready".
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed slice of pollfd structs of the given length.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(err);
    }
    Ok(n as usize)
}

/// A non-blocking signalfd that becomes readable when a child exits (SIGCHLD is blocked for
/// the shim so it is delivered there). Lets the step loop notice its process's exit at once
/// instead of at the next tick. The exec child resets its signal mask, so jobs are unaffected.
pub fn sigchld_fd() -> io::Result<OwnedFd> {
    block_signals(&[libc::SIGCHLD])?;
    let set = sigset(&[libc::SIGCHLD]);
    // SAFETY: `set` is an initialised sigset; on success the descriptor is new and ours.
    let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
    // SAFETY: fd was just returned by signalfd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Empties a signalfd (the pending SIGCHLDs carry nothing we need beyond "look now").
pub fn drain_signalfd(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 8 * std::mem::size_of::<libc::signalfd_siginfo>()];
    loop {
        // SAFETY: `buf` is a valid writable buffer of the given length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting for children.

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

/// A reaped child with what the kernel accounted for it (and its waited-for descendants).
#[derive(Clone, Copy, Debug)]
pub struct Reaped {
    pub pid: Pid,
    pub status: ExitStatus,
    /// User + system CPU in milliseconds.
    pub cpu_ms: u64,
}

fn timeval_ms(tv: libc::timeval) -> u64 {
    (tv.tv_sec.max(0) as u64) * 1000 + (tv.tv_usec.max(0) as u64) / 1000
}

fn wait4(pid: Pid, flags: libc::c_int) -> io::Result<Option<Reaped>> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are valid, writable locals.
        let ret = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if ret == 0 {
            return Ok(None);
        }
        let exit = if libc::WIFEXITED(status) {
            ExitStatus::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            ExitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            // Stopped/continued are not requested; treat anything else as "look again".
            continue;
        };
        return Ok(Some(Reaped {
            pid: ret,
            status: exit,
            cpu_ms: timeval_ms(usage.ru_utime) + timeval_ms(usage.ru_stime),
        }));
    }
}

/// Reaps one exited child, if any; `Ok(None)` when none is ready or there are no children.
pub fn wait_any_nohang() -> io::Result<Option<Reaped>> {
    match wait4(-1, libc::WNOHANG) {
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(None),
        other => other,
    }
}

/// Blocks until child `pid` exits and reaps it.
pub fn wait_pid(pid: Pid) -> io::Result<Reaped> {
    wait4(pid, 0)?.ok_or_else(|| io::Error::other("wait4 returned no child"))
}

// ---------------------------------------------------------------------------------------------
// Dropping privileges (shared by the exec child and the helpers).

/// Drops every group and becomes `uid`/`uid` for real, effective and saved ids. Raw syscalls so
/// the exec child avoids glibc's multi-thread setxid machinery.
///
/// # Safety
/// Only issues syscalls; callable between fork and exec. Returns the errno on failure.
unsafe fn drop_to(uid: u32) -> Result<(), libc::c_int> {
    let id = uid as libc::c_long;
    if libc::syscall(
        libc::SYS_setgroups,
        0 as libc::c_long,
        std::ptr::null::<libc::gid_t>(),
    ) < 0
        || libc::syscall(libc::SYS_setresgid, id, id, id) < 0
        || libc::syscall(libc::SYS_setresuid, id, id, id) < 0
    {
        return Err(*libc::__errno_location());
    }
    let (mut r, mut e, mut s) = (0, 0, 0);
    let (mut gr, mut ge, mut gs) = (0, 0, 0);
    if libc::getresuid(&mut r, &mut e, &mut s) < 0
        || libc::getresgid(&mut gr, &mut ge, &mut gs) < 0
        || [r, e, s, gr, ge, gs].iter().any(|&x| x != uid)
        || libc::getgroups(0, std::ptr::null_mut()) != 0
        // Regaining root must be impossible now.
        || libc::syscall(libc::SYS_setresuid, 0 as libc::c_long, -1 as libc::c_long, -1 as libc::c_long) == 0
    {
        return Err(libc::EPERM);
    }
    Ok(())
}

/// Runs `f` in a forked child that has become `uid` (no groups, parent-death signal set) and
/// returns its exit code (128 + signal when it was killed). Only sound because the shim is
/// single-threaded: the child is a full copy in which ordinary Rust code may run.
pub fn run_as_uid(uid: u32, f: impl FnOnce() -> i32) -> io::Result<i32> {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the process is single-threaded, so the child is a consistent copy of it; the child
    // never returns into the caller's stack frames: it always ends in _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: child side; prctl/drop_to only issue syscalls, and _exit never returns.
        unsafe {
            if drop_to(uid).is_err() {
                libc::_exit(125);
            }
            // After the uid change, which clears the parent-death signal.
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != parent {
                libc::_exit(125);
            }
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            libc::_exit(code);
        }
    }
    let reaped = wait_pid(pid)?;
    Ok(match reaped.status {
        ExitStatus::Exited(c) => c,
        ExitStatus::Signaled(s) => 128 + s,
    })
}

/// `kill(-1, SIGKILL)`: every process the caller may signal, except itself and init. Called as
/// the job's uid, that is exactly every process of the uid.
pub fn kill_every_signalable() -> io::Result<()> {
    // SAFETY: kill takes plain integers.
    cvt(unsafe { libc::kill(-1, libc::SIGKILL) }).map(drop)
}

/// Fallback when no helper can be forked (pids cgroup full): take the uid as real and effective
/// uid for the duration of one `kill(-1)`, keeping 0 as saved uid (and thus the capabilities) to
/// come back. Aborts the shim if it cannot return to root.
pub fn kill_all_in_place(uid: u32) -> io::Result<()> {
    let id = uid as libc::uid_t;
    // SAFETY: setresuid/kill take plain integers; every path restores root or aborts.
    unsafe {
        cvt(libc::setresuid(id, id, 0))?;
        let ret = libc::kill(-1, libc::SIGKILL);
        let err = io::Error::last_os_error();
        if libc::setresuid(0, 0, 0) != 0 {
            libc::abort();
        }
        if ret < 0 && err.raw_os_error() != Some(libc::ESRCH) {
            return Err(err);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Starting a step's main process.

/// Resource limits set in the exec child, after it dropped to the job's uid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    FileSize,
    OpenFiles,
    Core,
    Processes,
    Stack,
}

impl Resource {
    fn raw(self) -> libc::__rlimit_resource_t {
        match self {
            Resource::Cpu => libc::RLIMIT_CPU,
            Resource::FileSize => libc::RLIMIT_FSIZE,
            Resource::OpenFiles => libc::RLIMIT_NOFILE,
            Resource::Core => libc::RLIMIT_CORE,
            Resource::Processes => libc::RLIMIT_NPROC,
            Resource::Stack => libc::RLIMIT_STACK,
        }
    }
}

/// The shim's own hard limit for `res` (an unprivileged child cannot go above it).
pub fn hard_limit(res: Resource) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(res.raw(), &mut lim) } < 0 {
        return u64::MAX;
    }
    lim.rlim_max
}

/// What the exec child must become and run. Everything is owned C data prepared before fork.
pub struct ChildSpec {
    /// Paths tried in order with execve (execvp semantics against the fixed PATH).
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub workdir: CString,
    pub uid: u32,
    /// (resource, soft, hard)
    pub limits: Vec<(Resource, u64, u64)>,
    pub umask: u32,
    /// `cgroup.procs` of the step's cgroup (one per hierarchy): the child moves itself there
    /// first, so the program and everything it starts is metered and fenced from its start.
    pub cgroup_procs: Vec<RawFd>,
}

/// Where the exec child stopped when it could not exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStage {
    Session,
    Stdio,
    Privileges,
    Workdir,
    Limits,
    Exec,
    Cgroup,
}

impl ChildStage {
    fn code(self) -> u32 {
        match self {
            ChildStage::Session => 1,
            ChildStage::Stdio => 2,
            ChildStage::Privileges => 3,
            ChildStage::Workdir => 4,
            ChildStage::Limits => 5,
            ChildStage::Exec => 6,
            ChildStage::Cgroup => 7,
        }
    }
    fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => ChildStage::Session,
            2 => ChildStage::Stdio,
            3 => ChildStage::Privileges,
            4 => ChildStage::Workdir,
            5 => ChildStage::Limits,
            6 => ChildStage::Exec,
            7 => ChildStage::Cgroup,
            _ => return None,
        })
    }
}

/// Why a step's process is not running.
#[derive(Debug)]
pub enum SpawnError {
    /// The shim itself failed (pipe, fork).
    Os(io::Error),
    /// The child failed before or at exec; it has been reaped.
    Child { stage: ChildStage, errno: i32 },
}

/// The child's ends of its three standard pipes.
pub struct ChildStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Pointers into a `ChildSpec`, built before fork so the child allocates nothing.
struct RawPlan {
    candidates: Vec<*const libc::c_char>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    workdir: *const libc::c_char,
    oom_adj: *const libc::c_char,
    uid: u32,
    limits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    umask: libc::mode_t,
    parent: Pid,
    stdio: [RawFd; 3],
    status: RawFd,
    cgroup_procs: Vec<RawFd>,
}

fn null_terminated(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

const OOM_ADJ_PATH: &CStr = c"/proc/self/oom_score_adj";
const OOM_ADJ_VALUE: &[u8] = b"1000";

/// Forks and execs the step's main process as described by `spec`. Returns its pid once exec
/// succeeded (the CLOEXEC status pipe reached EOF), or where and why it failed.
pub fn spawn(spec: &ChildSpec, stdio: ChildStdio) -> Result<Pid, SpawnError> {
    let (status_r, status_w) = pipe_cloexec().map_err(SpawnError::Os)?;
    let plan = RawPlan {
        candidates: spec.candidates.iter().map(|c| c.as_ptr()).collect(),
        argv: null_terminated(&spec.argv),
        envp: null_terminated(&spec.envp),
        workdir: spec.workdir.as_ptr(),
        oom_adj: OOM_ADJ_PATH.as_ptr(),
        uid: spec.uid,
        limits: spec
            .limits
            .iter()
            .map(|&(r, soft, hard)| {
                (
                    r.raw(),
                    libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    },
                )
            })
            .collect(),
        umask: spec.umask as libc::mode_t,
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
        stdio: [
            stdio.stdin.as_raw_fd(),
            stdio.stdout.as_raw_fd(),
            stdio.stderr.as_raw_fd(),
        ],
        status: status_w.as_raw_fd(),
        cgroup_procs: spec.cgroup_procs.clone(),
    };
    // SAFETY: the shim is single-threaded; the child only runs `exec_child`, which uses raw
    // async-signal-safe calls on data prepared above and ends in execve or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SpawnError::Os(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked child; see `exec_child`.
        unsafe { exec_child(&plan) }
    }
    drop(stdio);
    drop(status_w);
    let mut buf = [0u8; 8];
    let mut got = 0;
    let mut status_file = File::from(status_r);
    while got < buf.len() {
        match io::Read::read(&mut status_file, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if got == 0 {
        return Ok(pid);
    }
    let stage = u32::from_ne_bytes(buf[0..4].try_into().unwrap_or([0; 4]));
    let errno = i32::from_ne_bytes(buf[4..8].try_into().unwrap_or([0; 4]));
    // It has exited (or is about to): reap it so it never counts as a process of the uid.
    let _ = wait_pid(pid);
    Err(SpawnError::Child {
        stage: ChildStage::from_code(stage).unwrap_or(ChildStage::Exec),
        errno,
    })
}

/// Reports `stage`/`errno` on the status pipe and exits 127.
///
/// # Safety
/// Child side of fork only: uses write and _exit.
unsafe fn child_fail(plan: &RawPlan, stage: ChildStage, errno: libc::c_int) -> ! {
    let mut msg = [0u8; 8];
    msg[0..4].copy_from_slice(&stage.code().to_ne_bytes());
    msg[4..8].copy_from_slice(&errno.to_ne_bytes());
    libc::write(plan.status, msg.as_ptr().cast(), msg.len());
    libc::_exit(127);
}

unsafe fn errno() -> libc::c_int {
    *libc::__errno_location()
}

/// The exec child. Only async-signal-safe calls (raw syscalls) on pre-built data.
///
/// # Safety
/// Must only be called in the child right after fork; never returns.
unsafe fn exec_child(plan: &RawPlan) -> ! {
    // Default dispositions and an empty mask: ignored signals (SIGPIPE) survive exec otherwise.
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    let mut dfl: libc::sigaction = std::mem::zeroed();
    dfl.sa_sigaction = libc::SIG_DFL;
    for sig in 1..32 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }

    // Into the step's cgroup before anything else ("0" is the writer itself): nothing the
    // program does from here on escapes its meter. The descriptors are CLOEXEC and closed below.
    for &fd in &plan.cgroup_procs {
        if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            child_fail(plan, ChildStage::Cgroup, errno());
        }
    }

    if libc::setsid() < 0 {
        child_fail(plan, ChildStage::Session, errno());
    }

    for (target, &fd) in plan.stdio.iter().enumerate() {
        let target = target as libc::c_int;
        if fd == target {
            // dup2 would be a no-op and leave CLOEXEC set.
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                child_fail(plan, ChildStage::Stdio, errno());
            }
        } else if libc::dup2(fd, target) < 0 {
            child_fail(plan, ChildStage::Stdio, errno());
        }
    }
    // Close everything else but the (CLOEXEC) status pipe, which is > 2.
    let status = plan.status as libc::c_uint;
    let ok_low =
        status <= 3 || libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, status - 1, 0) == 0;
    let ok_high = libc::syscall(libc::SYS_close_range, status + 1, libc::c_uint::MAX, 0) == 0;
    if !(ok_low && ok_high) {
        // Old kernel without close_range: close one by one up to the descriptor limit.
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur.min(1 << 20) as libc::c_int
        } else {
            1 << 16
        };
        for fd in 3..max {
            if fd != plan.status {
                libc::close(fd);
            }
        }
    }

    // Make the job, not the shim, the OOM killer's first choice. Where the container has
    // CAP_SYS_RESOURCE (topology.yaml `optional_capabilities`), the kernel also makes 1000 the
    // floor (oom_score_adj_min) for the job and everything it starts: it cannot lower its score
    // again. The step's own cgroup is the first defense (its OOM killer only sees the step's
    // processes); this one covers an OOM of the whole container.
    let adj = libc::open(plan.oom_adj, libc::O_WRONLY | libc::O_CLOEXEC);
    if adj >= 0 {
        libc::write(adj, OOM_ADJ_VALUE.as_ptr().cast(), OOM_ADJ_VALUE.len());
        libc::close(adj);
    }

    if let Err(e) = drop_to(plan.uid) {
        child_fail(plan, ChildStage::Privileges, e);
    }
    // Only now: the kernel clears the parent-death signal whenever the euid changes.
    if libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    ) < 0
    {
        child_fail(plan, ChildStage::Privileges, errno());
    }
    if libc::getppid() != plan.parent {
        // The shim died before we could tie our life to it.
        libc::_exit(127);
    }
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) < 0 {
        child_fail(plan, ChildStage::Privileges, errno());
    }
    if libc::chdir(plan.workdir) < 0 {
        child_fail(plan, ChildStage::Workdir, errno());
    }
    for (res, lim) in &plan.limits {
        if libc::setrlimit(*res, lim) < 0 {
            child_fail(plan, ChildStage::Limits, errno());
        }
    }
    libc::umask(plan.umask);

    let mut err = libc::ENOENT;
    let mut saw_eacces = false;
    for &path in &plan.candidates {
        libc::execve(path, plan.argv.as_ptr(), plan.envp.as_ptr());
        err = errno();
        match err {
            libc::EACCES => saw_eacces = true,
            libc::ENOENT | libc::ENOTDIR => {}
            _ => break,
        }
    }
    if saw_eacces && (err == libc::ENOENT || err == libc::ENOTDIR) {
        err = libc::EACCES;
    }
    child_fail(plan, ChildStage::Exec, err);
}

// ---------------------------------------------------------------------------------------------
// Directory walking without following links (cleanup).

/// What `lstat` says about a directory entry.
#[derive(Clone, Copy, Debug)]
pub struct EntryMeta {
    pub is_dir: bool,
    pub uid: u32,
}

const DIR_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// Opens a directory by absolute path, refusing a symlink as the last component.
pub fn open_dir(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `path` is a valid C string; on success the descriptor is new and ours.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), DIR_FLAGS) })?;
    // SAFETY: fd was just returned by open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the subdirectory `name` of `dir`, refusing symlinks.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: valid descriptor and C string; the new descriptor is ours.
    let fd = cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), DIR_FLAGS) })?;
    // SAFETY: fd was just returned by openat.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The names in a directory, without `.` and `..`.
pub fn read_names(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let dup = dir.try_clone_to_owned()?;
    // SAFETY: fdopendir takes ownership of the duplicated descriptor on success.
    let dirp = unsafe { libc::fdopendir(dup.as_raw_fd()) };
    if dirp.is_null() {
        return Err(io::Error::last_os_error());
    }
    let _ = dup.into_raw_fd(); // now owned by `dirp`
    let mut names = Vec::new();
    // SAFETY: `dirp` is a valid DIR* until closedir; each dirent is valid until the next readdir,
    // and we copy the name out before that. The duplicate shares the offset, so rewind first.
    let result = unsafe {
        libc::rewinddir(dirp);
        loop {
            *libc::__errno_location() = 0;
            let ent = libc::readdir(dirp);
            if ent.is_null() {
                let e = errno();
                break if e == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(e))
                };
            }
            let name = CStr::from_ptr((*ent).d_name.as_ptr());
            let bytes = name.to_bytes();
            if bytes != b"." && bytes != b".." {
                names.push(name.to_owned());
            }
        }
    };
    // SAFETY: `dirp` came from fdopendir and is closed exactly once.
    unsafe { libc::closedir(dirp) };
    result.map(|()| names)
}

/// `lstat` of `name` inside `dir`.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<EntryMeta> {
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and writable stat buffer.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(EntryMeta {
        is_dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
        uid: st.st_uid,
    })
}

/// Removes the file (or, with `dir`, the empty directory) `name` inside `dir`.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &CStr, is_dir: bool) -> io::Result<()> {
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid descriptor and C string.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// chmod of `name` inside `dir` (only called on entries just seen as directories).
pub fn chmod_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid descriptor and C string.
    cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, 0) })
        .map(drop)
}

// ---------------------------------------------------------------------------------------------
// System V IPC (survives in the container's IPC namespace from one job to the next).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpcKind {
    SharedMemory,
    MessageQueue,
    Semaphore,
}

/// IPC_RMID of one object.
pub fn ipc_remove(kind: IpcKind, id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument; null is allowed.
    let ret = unsafe {
        match kind {
            IpcKind::SharedMemory => libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()),
            IpcKind::MessageQueue => libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()),
            IpcKind::Semaphore => libc::semctl(id, 0, libc::IPC_RMID),
        }
    };
    cvt(ret).map(drop)
}

// ---------------------------------------------------------------------------------------------
// Signals for the idle process.

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset with valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `sigs` so they can be collected with [`wait_signal`].
pub fn block_signals(sigs: &[i32]) -> io::Result<()> {
    let set = sigset(sigs);
    // SAFETY: `set` is an initialised sigset.
    let ret = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    cvt(ret).map(drop)
}

/// Waits for one of the (blocked) `sigs` and returns it.
pub fn wait_signal(sigs: &[i32]) -> io::Result<i32> {
    let set = sigset(sigs);
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is initialised and `sig` is writable.
    let ret = unsafe { libc::sigwait(&set, &mut sig) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(sig)
}

/// Used blocks and used inodes of the filesystem holding `path`.
pub fn fs_usage(path: &CStr) -> io::Result<(u64, u64)> {
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs only writes into `st`, which we own; `path` is a valid C string.
    cvt(unsafe { libc::statvfs(path.as_ptr(), &mut st) })?;
    Ok((
        st.f_blocks.saturating_sub(st.f_bfree),
        st.f_files.saturating_sub(st.f_ffree),
    ))
}

// ---------------------------------------------------------------------------------------------
// The agent's fork per job.

/// Forks the (single-threaded) shim: `Ok(None)` in the child, `Ok(Some(pid))` in the parent.
/// The child is a full copy that may run ordinary code (the shim has no other threads whose
/// locks it could inherit held); it must end with [`exit_now`].
pub fn fork_process() -> io::Result<Option<Pid>> {
    // SAFETY: the shim is single-threaded, so the child's copy of the heap and of every lock
    // is consistent; the caller's child branch never returns into the parent's loop.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Ends the process at once, without running destructors or flushing Rust's stdio (a forked
/// child must not flush or close what its parent still owns).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Closes `fd` in this process only (after fork, the child's copy of a descriptor its parent's
/// code still owns). The caller must not use `fd` again.
pub fn close_inherited(fd: RawFd) {
    // SAFETY: closing a descriptor number touches no memory; the caller guarantees nothing in
    // this process uses it afterwards.
    unsafe { libc::close(fd) };
}

/// Unblocks every signal: a forked job starts with the mask an exec'd shim would have.
pub fn unblock_all_signals() -> io::Result<()> {
    let set = sigset(&[]);
    // SAFETY: `set` is an initialised (empty) sigset.
    cvt(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) }).map(drop)
}

/// Reaps child `pid` if it has exited; `Ok(None)` while it runs.
pub fn wait_pid_nohang(pid: Pid) -> io::Result<Option<Reaped>> {
    wait4(pid, libc::WNOHANG)
}
