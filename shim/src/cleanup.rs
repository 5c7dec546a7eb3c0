//! Removing everything a job left behind, so the next job in the container sees nothing of it:
//! its workspace, its files directly under the shared writable directories (/tmp, /var/tmp,
//! /dev/shm, /dev/mqueue) and its System V IPC objects (the container's IPC namespace outlives
//! the job). The removal runs in a helper that has become the job's uid, so a hostile tree
//! (symlinks, 000 directories, deep nesting) can at worst make it fail, never make it touch
//! anything the job could not; it never follows symlinks and holds one directory open at a time.
//! Root only removes the then-empty workspace directory from /work. Afterwards everything is
//! checked again from the outside.

use crate::proc_scan;
use crate::sys::{self, IpcKind};
use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

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

/// Empties the directory `root` (not removing it). Iterative, one descriptor at a time: it
/// descends into the first non-empty subdirectory, and climbs back through `..` when a
/// directory is empty, so neither depth nor width can exhaust descriptors or stack.
pub fn clear_contents(root: OwnedFd) -> io::Result<()> {
    let mut trail: Vec<CString> = Vec::new();
    let mut cur = root;
    loop {
        let mut descend = None;
        for name in sys::read_names(cur.as_fd())? {
            let meta = match sys::lstat_at(cur.as_fd(), &name) {
                Ok(m) => m,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            if meta.is_dir {
                // A job may have made it unreadable or unwritable (it owns it).
                let _ = sys::chmod_at(cur.as_fd(), &name, 0o700);
                match sys::unlink_at(cur.as_fd(), &name, true) {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST)) => {
                        descend = Some(name);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            } else {
                match sys::unlink_at(cur.as_fd(), &name, false) {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if let Some(name) = descend {
            let sub = sys::open_dir_at(cur.as_fd(), &name)?;
            trail.push(name);
            cur = sub;
            continue;
        }
        let Some(name) = trail.pop() else {
            return Ok(());
        };
        cur = sys::open_dir_at(cur.as_fd(), c"..")?;
        sys::unlink_at(cur.as_fd(), &name, true)?;
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)
}

/// Removes the entries of `uid` directly under `dir` (recursively). Runs as `uid`.
fn sweep_shared_dir(dir: &str, uid: u32) -> io::Result<()> {
    let cdir = CString::new(dir).map_err(io::Error::other)?;
    let fd = match sys::open_dir(&cdir) {
        Ok(fd) => fd,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut first_error = None;
    for name in sys::read_names(fd.as_fd())? {
        let result = remove_owned_entry(&fd, &name, uid);
        if let Err(e) = result {
            first_error.get_or_insert(io::Error::new(
                e.kind(),
                format!("{dir}/{}: {e}", name.to_string_lossy()),
            ));
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn remove_owned_entry(parent: &OwnedFd, name: &CStr, uid: u32) -> io::Result<()> {
    let meta = match sys::lstat_at(parent.as_fd(), name) {
        Ok(m) => m,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.uid != uid {
        return Ok(());
    }
    if meta.is_dir {
        let _ = sys::chmod_at(parent.as_fd(), name, 0o700);
        clear_contents(sys::open_dir_at(parent.as_fd(), name)?)?;
    }
    match sys::unlink_at(parent.as_fd(), name, meta.is_dir) {
        Err(e) if !is_not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// The part that runs as the job's uid. Returns the number of problems (0 = all removed).
fn remove_as_uid(uid: u32, workspace: &Path) -> i32 {
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
                .and_then(clear_contents)
            {
                report("workspace", e);
            }
        }
    }
    for dir in SHARED_DIRS {
        if let Err(e) = sweep_shared_dir(dir, uid) {
            report(dir, e);
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
    match sys::run_as_uid(uid, || remove_as_uid(uid, workspace)) {
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
        clear_contents(fd).unwrap();
        assert_eq!(fs::read_dir(base.join("ws")).unwrap().count(), 0);
        assert!(base.join("outside/keep").exists());
        fs::remove_dir_all(&base).unwrap();
    }
}
