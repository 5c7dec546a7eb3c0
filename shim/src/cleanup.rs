//! Removing everything a job left behind, so the next job in the container sees nothing of it:
//! its workspace, its files directly under the shared writable directories (/tmp, /var/tmp,
//! /dev/shm, /dev/mqueue) and its System V IPC objects (the container's IPC namespace outlives
//! the job). The removal runs in a helper that has become the job's uid, so a hostile tree
//! (symlinks, 000 directories, deep nesting) can at worst make it fail, never make it touch
//! anything the job could not; it never follows symlinks and holds one directory open at a time.
//! Its cost is linear in what the job made (each directory is read once), and it is bounded by
//! [`CLEANUP_BUDGET_MS`], a part of the runner's margin: a job that made more than the budget can
//! remove leaves the container unclean (retired by the pool), never overdue (destroyed by the
//! runner's deadline). Root only removes the then-empty workspace directory from /work.
//! Afterwards everything is checked again from the outside.

use crate::proc_scan;
use crate::sys::{self, IpcKind};
use rce_protocol::shim::SHIM_MARGIN_MS;
use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// World-writable places a job can leave files in besides its workspace.
pub const SHARED_DIRS: [&str; 4] = ["/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue"];

const IPC_TABLES: [(&str, IpcKind); 3] = [
    ("/proc/sysvipc/shm", IpcKind::SharedMemory),
    ("/proc/sysvipc/msg", IpcKind::MessageQueue),
    ("/proc/sysvipc/sem", IpcKind::Semaphore),
];

/// One System V IPC object as listed in /proc/sysvipc/*.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcObject {
    pub id: i32,
    pub uid: u32,
    pub cuid: u32,
}

/// Parses a /proc/sysvipc table: a header naming the columns, then one object per line. The
/// id is the second column; owner and creator are found by their header names.
pub fn parse_sysvipc(text: &str) -> Vec<IpcObject> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split_whitespace().collect();
    let (Some(uid_col), Some(cuid_col)) = (
        cols.iter().position(|c| *c == "uid"),
        cols.iter().position(|c| *c == "cuid"),
    ) else {
        return Vec::new();
    };
    lines
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(IpcObject {
                id: f.get(1)?.parse().ok()?,
                uid: f.get(uid_col)?.parse().ok()?,
                cuid: f.get(cuid_col)?.parse().ok()?,
            })
        })
        .collect()
}

fn ipc_objects_of(uid: u32) -> Vec<(IpcKind, i32)> {
    IPC_TABLES
        .iter()
        .flat_map(|(path, kind)| {
            let text = fs::read_to_string(path).unwrap_or_default();
            parse_sysvipc(&text)
                .into_iter()
                .filter(|o| o.uid == uid || o.cuid == uid)
                .map(|o| (*kind, o.id))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// How long removing what a job left (workspace, shared directories, IPC objects) may take,
/// counted from the start of the cleanup. It is a part of [`SHIM_MARGIN_MS`], the time the
/// runner grants beyond the steps' wall limits, which must also pay for setting the job up,
/// killing its last processes and the checks after the cleanup; a budget of at most half the
/// margin leaves the rest for those. The removal is linear in what the job made (8,100
/// non-empty directories in about 0.13 s on a tmpfs, see `tests::cleanup_benchmark`), so only
/// a job that made far more than the tmpfs inode caps allow could need it all. When it runs
/// out, the cleanup stops where it is and the record says not clean, so the pool destroys and
/// replaces the container; the runner's deadline is never what ends it.
pub const CLEANUP_BUDGET_MS: u64 = 2_000;

const _: () = assert!(2 * CLEANUP_BUDGET_MS <= SHIM_MARGIN_MS);

/// The moment the cleanup gives up. Checked before every entry, so no directory, however wide
/// or deep, can keep the cleanup past it by more than one system call.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    fn check(self) -> io::Result<()> {
        if Instant::now() < self.0 {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the cleanup budget of {CLEANUP_BUDGET_MS} ms ran out"),
            ))
        }
    }
}

/// One directory being emptied by [`clear_contents`].
struct Level {
    /// Its name in its parent, to remove it once empty; `None` for the root, which stays.
    name: Option<CString>,
    /// Its entries not yet removed, read once when the walk entered it.
    pending: Vec<CString>,
}

/// What [`remove_entry`] did with one name.
#[derive(PartialEq, Eq)]
enum Removal {
    /// Removed, or already gone.
    Done,
    /// A directory that still has entries: the walk must enter it.
    NotEmpty,
}

/// Removes the file, symlink or empty directory `name` in `dir`, never following a link.
fn remove_entry(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Removal> {
    let meta = match sys::lstat_at(dir, name) {
        Ok(m) => m,
        Err(e) if is_not_found(&e) => return Ok(Removal::Done),
        Err(e) => return Err(e),
    };
    // An empty directory goes whatever its own mode (000 included): removing it needs only
    // write access to `dir`, which the walk gave itself before entering `dir`.
    match sys::unlink_at(dir, name, meta.is_dir) {
        Ok(()) => Ok(Removal::Done),
        Err(e) if is_not_found(&e) => Ok(Removal::Done),
        Err(e)
            if meta.is_dir && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST)) =>
        {
            Ok(Removal::NotEmpty)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
thread_local! {
    /// How many directories [`clear_contents`] has read on this thread: what the tests count to
    /// prove the walk linear (a count, unlike a duration, does not depend on the machine).
    static DIRECTORY_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The names in `dir`, as the walk reads them (once per directory).
fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    #[cfg(test)]
    DIRECTORY_READS.with(|n| n.set(n.get() + 1));
    sys::read_names(dir)
}

/// Empties the directory `root` (not removing it) before `deadline`, in time linear in what it
/// holds: every directory is read once, when the walk enters it, and its remaining names wait on
/// an explicit stack (one [`Level`] per depth) while the walk is below it, so neither width nor
/// depth costs a rereading. Only one directory is open at a time (plus a moment's duplicate
/// while reading it): the walk descends with `openat` of a name it just saw as a directory
/// (`O_NOFOLLOW`, so never through a symlink) and climbs back through `..`, so a chain deeper
/// than PATH_MAX costs neither descriptors nor path lengths, and the stack holds names only.
/// It never climbs above `root`. The job's processes are all dead, so nothing moves meanwhile.
pub fn clear_contents(root: OwnedFd, deadline: Deadline) -> io::Result<()> {
    let mut cur = root;
    let mut levels = vec![Level {
        name: None,
        pending: read_dir(cur.as_fd())?,
    }];
    while let Some(level) = levels.last_mut() {
        deadline.check()?;
        if let Some(name) = level.pending.pop() {
            if remove_entry(cur.as_fd(), &name)? == Removal::NotEmpty {
                // The job owns it and may have made it unreadable or unwritable.
                let _ = sys::chmod_at(cur.as_fd(), &name, 0o700);
                let sub = sys::open_dir_at(cur.as_fd(), &name)?;
                let pending = read_dir(sub.as_fd())?;
                cur = sub;
                levels.push(Level {
                    name: Some(name),
                    pending,
                });
            }
            continue;
        }
        // `cur` is empty now.
        let Some(name) = levels.pop().and_then(|done| done.name) else {
            return Ok(());
        };
        cur = sys::open_dir_at(cur.as_fd(), c"..")?;
        match sys::unlink_at(cur.as_fd(), &name, true) {
            Err(e) if !is_not_found(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)
}

/// Removes the entries of `uid` directly under `dir` (recursively) before `deadline`: `dir` is
/// read once, and each entry of the uid is emptied by [`clear_contents`]. Runs as `uid`. An
/// entry that cannot be removed is reported and the others are still tried; a budget that ran
/// out ends the sweep at once.
fn sweep_shared_dir(dir: &str, uid: u32, deadline: Deadline) -> io::Result<()> {
    let cdir = CString::new(dir).map_err(io::Error::other)?;
    let fd = match sys::open_dir(&cdir) {
        Ok(fd) => fd,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut first_error = None;
    for name in sys::read_names(fd.as_fd())? {
        let result = deadline
            .check()
            .and_then(|()| remove_owned_entry(fd.as_fd(), &name, uid, deadline));
        if let Err(e) = result {
            let timed_out = e.kind() == io::ErrorKind::TimedOut;
            first_error.get_or_insert(io::Error::new(
                e.kind(),
                format!("{dir}/{}: {e}", name.to_string_lossy()),
            ));
            if timed_out {
                break;
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn remove_owned_entry(
    parent: BorrowedFd<'_>,
    name: &CStr,
    uid: u32,
    deadline: Deadline,
) -> io::Result<()> {
    let meta = match sys::lstat_at(parent, name) {
        Ok(m) => m,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.uid != uid {
        return Ok(());
    }
    if meta.is_dir {
        let _ = sys::chmod_at(parent, name, 0o700);
        clear_contents(sys::open_dir_at(parent, name)?, deadline)?;
    }
    match sys::unlink_at(parent, name, meta.is_dir) {
        Err(e) if !is_not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// The part that runs as the job's uid. Returns the number of problems (0 = all removed).
fn remove_as_uid(uid: u32, workspace: &Path, deadline: Deadline) -> i32 {
    let mut problems = 0;
    let mut report = |what: &str, e: io::Error| {
        eprintln!("rce-shim: cleanup: {what}: {e}");
        problems += 1;
    };
    match fs::symlink_metadata(workspace) {
        Err(e) if is_not_found(&e) => {}
        _ => {
            // The job owns its workspace and may have chmod'ed it 000.
            let _ = fs::set_permissions(workspace, fs::Permissions::from_mode(0o700));
            if let Err(e) = cpath(workspace)
                .and_then(|p| sys::open_dir(&p))
                .and_then(|fd| clear_contents(fd, deadline))
            {
                report("workspace", e);
            }
        }
    }
    for dir in SHARED_DIRS {
        if let Err(e) = deadline
            .check()
            .and_then(|()| sweep_shared_dir(dir, uid, deadline))
        {
            let timed_out = e.kind() == io::ErrorKind::TimedOut;
            report(dir, e);
            if timed_out {
                // What is left is found by the check from the outside; the container goes.
                return problems.min(100);
            }
        }
    }
    for (kind, id) in ipc_objects_of(uid) {
        if let Err(e) = sys::ipc_remove(kind, id) {
            if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::EIDRM) {
                report(&format!("{kind:?} {id}"), e);
            }
        }
    }
    problems.min(100)
}

/// What the final check found.
#[derive(Debug, Default)]
pub struct Leftovers {
    pub problems: Vec<String>,
}

impl Leftovers {
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Removes what the job left and reports what could not be removed. Call after every process
/// of the uid was killed.
pub fn cleanup(uid: u32, workspace: &Path) -> Leftovers {
    let deadline = Deadline::after(Duration::from_millis(CLEANUP_BUDGET_MS));
    match sys::run_as_uid(uid, || remove_as_uid(uid, workspace, deadline)) {
        Ok(0) => {}
        Ok(n) => eprintln!("rce-shim: cleanup helper reported {n} problem(s)"),
        Err(e) => eprintln!("rce-shim: cleanup helper: {e}"),
    }
    match fs::remove_dir(workspace) {
        Err(e) if !is_not_found(&e) => eprintln!("rce-shim: removing the workspace: {e}"),
        _ => {}
    }
    verify(uid, Some(workspace))
}

/// Judge mode's cleanup between two tests in the common case, without the helper process the
/// general [`cleanup`] forks: when the test left nothing in the shared directories and no IPC
/// object, and its workspace holds no directory that is not empty, the shim takes the workspace
/// over (CAP_CHOWN; every process of the uid is gone, so nothing races it)
/// and unlinks its entries itself, links and all, without following any. `None` when the case is
/// not that simple (the workspace is handed back): the caller runs [`cleanup`].
pub fn cleanup_flat(uid: u32, workspace: &Path) -> Option<Leftovers> {
    if !shared_and_ipc_clear(uid) {
        return None;
    }
    let path = cpath(workspace).ok()?;
    std::os::unix::fs::lchown(workspace, Some(0), Some(0)).ok()?;
    let hand_back = || {
        let _ = std::os::unix::fs::chown(workspace, Some(uid), Some(uid));
    };
    // The test may have chmod'ed its workspace 000; root owns it now, so it may set it back.
    let opened = fs::set_permissions(workspace, fs::Permissions::from_mode(0o700))
        .and_then(|()| sys::open_dir(&path));
    let Ok(dir) = opened else {
        hand_back();
        return None;
    };
    let names = match read_dir(dir.as_fd()) {
        Ok(names) => names,
        Err(_) => {
            hand_back();
            return None;
        }
    };
    // Plain entries go, and empty directories (the workspace's own `.tmp` and `.cache`, unless
    // the test filled them): removing either needs only the workspace's write permission.
    for name in &names {
        let is_dir = match sys::lstat_at(dir.as_fd(), name) {
            Ok(m) => m.is_dir,
            Err(e) if is_not_found(&e) => continue,
            Err(_) => {
                hand_back();
                return None;
            }
        };
        match sys::unlink_at(dir.as_fd(), name, is_dir) {
            Err(e) if !is_not_found(&e) => {
                // A directory with something in it: the helper's walk (as the uid) takes it.
                hand_back();
                return None;
            }
            _ => {}
        }
    }
    drop(dir);
    match fs::remove_dir(workspace) {
        Err(e) if !is_not_found(&e) => {
            hand_back();
            return None;
        }
        _ => {}
    }
    // No process of the uid is alive (the caller's condition), and the shared directories and
    // IPC held nothing of it a moment ago: only a process of the uid could have put something
    // there since, so they need no second look. What is left to prove is the workspace's end.
    // (The rest check that follows counts processes, files and sockets again, uid or not.)
    let mut problems = Vec::new();
    if !matches!(fs::symlink_metadata(workspace), Err(e) if is_not_found(&e)) {
        problems.push(format!("workspace {} remains", workspace.display()));
    }
    Some(Leftovers { problems })
}

/// Nothing of `uid` directly under the shared directories, and no IPC object of it.
fn shared_and_ipc_clear(uid: u32) -> bool {
    let clear = |dir: &str| {
        fs::read_dir(dir).map_or(true, |entries| {
            // An entry that cannot be looked at counts as the uid's (the helper's cleanup then
            // runs), unless it is gone: one removed between the listing and the look is nobody's.
            !entries.flatten().any(|e| match e.metadata() {
                Ok(m) => m.uid() == uid,
                Err(err) => err.kind() != std::io::ErrorKind::NotFound,
            })
        })
    };
    SHARED_DIRS.iter().all(|d| clear(d)) && ipc_objects_of(uid).is_empty()
}

/// Checks from the outside that nothing of `uid` remains: no process, no workspace, no entry
/// directly under the shared directories, no IPC object.
pub fn verify(uid: u32, workspace: Option<&Path>) -> Leftovers {
    let mut problems = Vec::new();
    let procs = proc_scan::scan_uid(uid);
    if !procs.is_empty() {
        problems.push(format!("{} process(es) of uid {uid} remain", procs.len()));
    }
    if let Some(ws) = workspace {
        match fs::symlink_metadata(ws) {
            Err(e) if is_not_found(&e) => {}
            _ => problems.push(format!("workspace {} remains", ws.display())),
        }
    }
    for dir in SHARED_DIRS {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let left = entries
            .flatten()
            .filter(|e| e.metadata().is_ok_and(|m| m.uid() == uid))
            .count();
        if left > 0 {
            problems.push(format!("{left} entr(ies) of uid {uid} remain in {dir}"));
        }
    }
    let ipc = ipc_objects_of(uid).len();
    if ipc > 0 {
        problems.push(format!("{ipc} System V IPC object(s) of uid {uid} remain"));
    }
    Leftovers { problems }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysvipc_shm_table() {
        let t = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                 0          32769   666                  4096    10    10      0 20001 20001 20001 20001          0          0 1700000000                     0                     0\n\
                 1234       5     600                  4096    10    10      0     0     0 20002     0          0          0 1700000000                     0                     0\n";
        assert_eq!(
            parse_sysvipc(t),
            vec![
                IpcObject {
                    id: 32769,
                    uid: 20001,
                    cuid: 20001
                },
                IpcObject {
                    id: 5,
                    uid: 0,
                    cuid: 20002
                }
            ]
        );
    }

    #[test]
    fn sysvipc_sem_table_has_other_columns() {
        let t = "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n\
                 0              3   600          1 20005 20005 20005 20005          0 1700000000\n";
        assert_eq!(
            parse_sysvipc(t),
            vec![IpcObject {
                id: 3,
                uid: 20005,
                cuid: 20005
            }]
        );
    }

    #[test]
    fn sysvipc_empty_or_odd() {
        assert!(parse_sysvipc("").is_empty());
        assert!(parse_sysvipc("key id perms\n1 2 3\n").is_empty());
    }

    fn unlimited() -> Deadline {
        Deadline::after(Duration::from_secs(3600))
    }

    #[test]
    fn the_cleanup_budget_leaves_most_of_the_runners_margin() {
        // The same rule as the `const` assertion beside the budget, which stops any build.
        let (budget, margin) = (
            Duration::from_millis(CLEANUP_BUDGET_MS),
            Duration::from_millis(SHIM_MARGIN_MS),
        );
        assert!(!budget.is_zero());
        assert!(
            margin - budget >= budget,
            "the margin must keep as much for setup, the last kills and the checks ({:?}) as \
             the cleanup may take ({budget:?})",
            margin - budget
        );
        assert!(Deadline::after(budget).check().is_ok());
    }

    #[test]
    fn a_flat_workspace_is_emptied_in_place_and_anything_else_is_left_to_the_helper() {
        use std::os::unix::fs::{chown, symlink};
        let uid = 3_999_999; // owns nothing else on the machine
        let base = std::env::temp_dir().join(format!("rce-shim-flat-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("ws")).unwrap();
        fs::write(base.join("outside"), b"x").unwrap();
        fs::write(base.join("ws/out"), b"x").unwrap();
        fs::create_dir(base.join("ws/.tmp")).unwrap();
        symlink(base.join("outside"), base.join("ws/link")).unwrap();
        for p in ["ws", "ws/out", "ws/.tmp"] {
            chown(base.join(p), Some(uid), Some(uid)).unwrap();
        }
        fs::set_permissions(base.join("ws"), fs::Permissions::from_mode(0o000)).unwrap();
        let left = cleanup_flat(uid, &base.join("ws")).expect("flat");
        assert!(left.clean(), "{:?}", left.problems);
        assert!(!base.join("ws").exists());
        assert!(
            base.join("outside").exists(),
            "a link is removed, never followed"
        );

        fs::create_dir_all(base.join("ws2/sub/deeper")).unwrap();
        chown(base.join("ws2"), Some(uid), Some(uid)).unwrap();
        assert!(cleanup_flat(uid, &base.join("ws2")).is_none());
        assert_eq!(
            fs::metadata(base.join("ws2")).unwrap().uid(),
            uid,
            "handed back"
        );
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn clear_contents_removes_a_hostile_tree() {
        let base = std::env::temp_dir().join(format!("rce-shim-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("ws/a/b/c")).unwrap();
        fs::create_dir_all(base.join("outside")).unwrap();
        fs::write(base.join("outside/keep"), b"x").unwrap();
        fs::write(base.join("ws/a/b/c/f"), b"x").unwrap();
        fs::write(base.join("ws/top"), b"x").unwrap();
        std::os::unix::fs::symlink(base.join("outside"), base.join("ws/link")).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), base.join("ws/a/link")).unwrap();
        // Make one level deep and 60 levels to exercise the climb back up.
        let mut deep = base.join("ws/deep");
        for _ in 0..60 {
            deep = deep.join("d");
        }
        fs::create_dir_all(&deep).unwrap();
        fs::set_permissions(base.join("ws/a/b"), fs::Permissions::from_mode(0o000)).unwrap();
        let fd = sys::open_dir(&cpath(&base.join("ws")).unwrap()).unwrap();
        clear_contents(fd, unlimited()).unwrap();
        assert_eq!(fs::read_dir(base.join("ws")).unwrap().count(), 0);
        assert!(base.join("outside/keep").exists());
        fs::remove_dir_all(&base).unwrap();
    }

    /// A fresh directory for one test, on a tmpfs when the host has one at /dev/shm (the
    /// containers' /work and /tmp are tmpfs), owned by [`test_uid`].
    fn scratch(test: &str) -> std::path::PathBuf {
        let parent = if Path::new("/dev/shm").is_dir() {
            Path::new("/dev/shm").to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = parent.join(format!("rce-shim-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(test_uid()), Some(test_uid())).unwrap();
        dir
    }

    fn running_as_root() -> bool {
        fs::metadata("/proc/self").unwrap().uid() == 0
    }

    /// The uid the removal runs as in these tests: `nobody` when they run as root, so that a
    /// 000 directory or another owner's entry is really closed to it (as to a job's uid in a
    /// container), else the tests' own.
    fn test_uid() -> u32 {
        if running_as_root() {
            65534
        } else {
            fs::metadata("/proc/self").unwrap().uid()
        }
    }

    /// Runs `f` as [`test_uid`] (in a forked helper when root, exactly as the cleanup runs) and
    /// asserts it returned 0; a failed assertion in it comes back as 101.
    fn as_test_uid(f: impl FnOnce() -> i32) {
        let code = if running_as_root() {
            sys::run_as_uid(test_uid(), f).unwrap()
        } else {
            f()
        };
        assert_eq!(
            code, 0,
            "the unprivileged part failed (its panic is printed above)"
        );
    }

    /// `width` directories, each holding `width` empty ones.
    fn square_tree(root: &Path, width: usize) {
        for i in 0..width {
            for j in 0..width {
                fs::create_dir_all(root.join(format!("d{i}/e{j}"))).unwrap();
            }
        }
    }

    /// `n` directories side by side, each empty or holding one file.
    fn flat(root: &Path, n: usize, with_file: bool) {
        for i in 0..n {
            let d = root.join(format!("d{i}"));
            fs::create_dir(&d).unwrap();
            if with_file {
                fs::write(d.join("f"), b"x").unwrap();
            }
        }
    }

    /// A directory holding a file and a symlink to `outside`, made mode 000.
    fn closed_dir(at: &Path, outside: &Path) {
        fs::create_dir(at).unwrap();
        fs::write(at.join("f"), b"x").unwrap();
        std::os::unix::fs::symlink(outside, at.join("link")).unwrap();
        fs::set_permissions(at, fs::Permissions::from_mode(0o000)).unwrap();
    }

    /// A chain of `depth` nested directories `root/chain/d/d/...`, deeper than PATH_MAX allows
    /// to name: built bottom-up from chains of 1,000 moved into one another. With `outside`,
    /// every 1,000 levels also hold a [`closed_dir`] beside the next level.
    fn deep_chain(root: &Path, depth: usize, outside: Option<&Path>) {
        const CHUNK: usize = 1000;
        let chunk_path = |top: &Path, n: usize| (0..n).fold(top.to_path_buf(), |p, _| p.join("d"));
        let mut made = 0;
        let mut below: Option<std::path::PathBuf> = None;
        let mut k = 0;
        while made < depth {
            let n = CHUNK.min(depth - made);
            let top = root.join(format!("t{k}"));
            fs::create_dir(&top).unwrap();
            let bottom = chunk_path(&top, n - 1);
            fs::create_dir_all(&bottom).unwrap();
            if let Some(outside) = outside {
                closed_dir(&bottom.join("closed"), outside);
            }
            if let Some(prev) = below.take() {
                fs::rename(&prev, bottom.join("d")).unwrap();
            }
            below = Some(top);
            made += n;
            k += 1;
        }
        fs::rename(below.unwrap(), root.join("chain")).unwrap();
    }

    fn clear(dir: &Path, deadline: Deadline) -> io::Result<()> {
        clear_contents(sys::open_dir(&cpath(dir).unwrap()).unwrap(), deadline)
    }

    fn time_clear(dir: &Path) -> Duration {
        let started = Instant::now();
        clear(dir, unlimited()).unwrap();
        let took = started.elapsed();
        assert_eq!(fs::read_dir(dir).unwrap().count(), 0, "{}", dir.display());
        took
    }

    #[test]
    fn wide_deep_and_closed_trees_are_removed_without_privileges() {
        let base = scratch("shapes");
        let (ws, outside) = (base.join("ws"), base.join("outside"));
        as_test_uid(|| {
            fs::create_dir(&ws).unwrap();
            fs::create_dir(&outside).unwrap();
            fs::write(outside.join("keep"), b"x").unwrap();
            // Wide: 40 x 40, every middle directory closed (000) with entries inside.
            for i in 0..40 {
                let mid = ws.join(format!("w{i}"));
                fs::create_dir(&mid).unwrap();
                for j in 0..40 {
                    fs::create_dir(mid.join(format!("e{j}"))).unwrap();
                }
                closed_dir(&mid.join("closed"), &outside);
                fs::set_permissions(&mid, fs::Permissions::from_mode(0o000)).unwrap();
            }
            // One flat level of non-empty directories, and empty 000 ones.
            flat(&new_dir(ws.join("flat")), 2000, true);
            for i in 0..100 {
                let d = ws.join(format!("empty-closed{i}"));
                fs::create_dir(&d).unwrap();
                fs::set_permissions(&d, fs::Permissions::from_mode(0o000)).unwrap();
            }
            // Deep: 5,000 levels with a closed directory every 1,000.
            deep_chain(&ws, 5000, Some(&outside));
            std::os::unix::fs::symlink(&outside, ws.join("link")).unwrap();
            clear(&ws, unlimited()).unwrap();
            assert_eq!(fs::read_dir(&ws).unwrap().count(), 0);
            assert!(outside.join("keep").exists(), "a symlink was followed");
            0
        });
        fs::remove_dir_all(&base).unwrap();
    }

    /// Makes the directory `path` and returns it.
    fn new_dir(path: std::path::PathBuf) -> std::path::PathBuf {
        fs::create_dir(&path).unwrap();
        path
    }

    #[test]
    fn a_spent_budget_stops_the_walk_and_says_so() {
        let base = scratch("budget");
        flat(&base, 100, true);
        let e = clear(&base, Deadline::after(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("budget"), "{e}");
        assert!(fs::read_dir(&base).unwrap().count() > 0);
        let shared = base.to_str().unwrap();
        let e = sweep_shared_dir(shared, test_uid(), Deadline::after(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        fs::remove_dir_all(&base).unwrap();
    }

    /// The case that took seconds when each non-empty child made the walk reread its parent:
    /// one level of 8,100 non-empty directories. A linear walk reads each directory exactly once
    /// (8,100 plus the root); the quadratic one read the root again after every child. Counted,
    /// not timed, so a slow CI machine cannot fail it (its speed is `cleanup_benchmark`'s job).
    #[test]
    fn eight_thousand_non_empty_siblings_are_each_read_once() {
        let base = scratch("siblings");
        flat(&base, 8100, true);
        let before = DIRECTORY_READS.with(|n| n.get());
        time_clear(&base);
        let reads = DIRECTORY_READS.with(|n| n.get()) - before;
        assert_eq!(
            reads, 8101,
            "clearing 8,100 non-empty directories read {reads} directories"
        );
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_shared_dirs_sweep_removes_the_uids_entries_only() {
        let shared = scratch("shared");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        let foreign = shared.join("not-the-jobs");
        if running_as_root() {
            // Root's: the sweep, running as the job's uid, must leave it.
            fs::create_dir(&foreign).unwrap();
            fs::write(foreign.join("f"), b"x").unwrap();
        }
        let dir = shared.to_str().unwrap();
        as_test_uid(|| {
            flat(&new_dir(shared.join("many")), 3000, true);
            deep_chain(&new_dir(shared.join("deep")), 2500, None);
            fs::write(shared.join("file"), b"x").unwrap();
            std::os::unix::fs::symlink("/", shared.join("link")).unwrap();
            closed_dir(&shared.join("closed"), Path::new("/"));
            sweep_shared_dir(dir, test_uid(), unlimited()).unwrap();
            0
        });
        let left: Vec<_> = fs::read_dir(&shared)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        if running_as_root() {
            assert_eq!(left, std::slice::from_ref(&foreign));
            assert!(foreign.join("f").exists());
        } else {
            assert!(left.is_empty(), "{left:?}");
        }
        fs::remove_dir_all(&shared).unwrap();
    }

    /// The figures in the report: `cargo test --release -p rce-shim -- --ignored --nocapture
    /// cleanup_benchmark` (on the host, against directories this test makes itself).
    #[test]
    #[ignore = "a micro-benchmark; run it by name"]
    fn cleanup_benchmark() {
        type Build = Box<dyn Fn(&Path)>;
        let shapes: [(&str, Build); 6] = [
            (
                "90 x 90 tree (8,190 dirs)",
                Box::new(|p| square_tree(p, 90)),
            ),
            (
                "90 x 90 tree, a file in each leaf",
                Box::new(|p| {
                    square_tree(p, 90);
                    for i in 0..90 {
                        for j in 0..90 {
                            fs::write(p.join(format!("d{i}/e{j}/f")), b"x").unwrap();
                        }
                    }
                }),
            ),
            ("flat 8,100 empty dirs", Box::new(|p| flat(p, 8100, false))),
            (
                "flat 8,100 dirs, a file in each",
                Box::new(|p| flat(p, 8100, true)),
            ),
            ("chain 5,000 deep", Box::new(|p| deep_chain(p, 5000, None))),
            (
                "3 chains 5,000 deep",
                Box::new(|p| {
                    for i in 0..3 {
                        deep_chain(&new_dir(p.join(format!("c{i}"))), 5000, None);
                    }
                }),
            ),
        ];
        for (name, build) in shapes {
            let dir = scratch("bench");
            let started = Instant::now();
            build(&dir);
            let made = started.elapsed();
            let took = time_clear(&dir);
            println!("{name:36} made in {made:>9.1?}, cleared in {took:>9.1?}");
            fs::remove_dir_all(&dir).unwrap();
        }
    }
}
