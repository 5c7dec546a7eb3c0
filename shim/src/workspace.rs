//! The job's private directory: `/work/j-<32 random hex>`, mode 0700, owned by the job's uid,
//! with the job's files and its `.tmp`/`.cache`. The name is unpredictable so nothing can be
//! prepared for it in advance, and /work itself (root, 0711) cannot be listed by jobs. Names are
//! re-validated here although the api already did: the shim trusts nothing it is handed.

use crate::sys;
use rce_protocol::shim::{ShimFile, WORKSPACE_ROOT};
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{chown, fchown, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Directories the shim creates inside every workspace (TMPDIR and XDG_CACHE_HOME): the names
/// the shared rule reserves, so no job file can collide with them.
pub use rce_protocol::file_names::RESERVED;

/// Why a file name is refused, or Ok: the same rule the api applied (`rce_protocol::file_names`),
/// checked again because the shim trusts nothing it is handed.
pub fn validate_name(name: &str) -> Result<(), String> {
    rce_protocol::file_names::check(name)
        .map_err(|why| format!("invalid file name {name:?}: {why}"))
}

/// `prefix` followed by 32 hex digits of `random`.
pub fn dir_name(prefix: &str, random: &[u8; 16]) -> String {
    let mut s = String::with_capacity(prefix.len() + 32);
    s.push_str(prefix);
    for b in random {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A created workspace.
#[derive(Debug)]
pub struct Workspace {
    pub path: PathBuf,
}

impl Workspace {
    pub fn path_str(&self) -> &str {
        self.path.to_str().unwrap_or(WORKSPACE_ROOT)
    }
}

/// A failed setup; `partial` is a directory that was created and must still be removed.
#[derive(Debug)]
pub struct SetupError {
    pub partial: Option<PathBuf>,
    pub message: String,
}

/// Creates the workspace for `uid` with `files` in it. Everything is written as root into a
/// root-owned 0700 directory and handed to the uid last, so the job never sees a half-made
/// workspace and root never has to reach into a directory the job owns.
pub fn create(uid: u32, files: &[ShimFile]) -> Result<Workspace, SetupError> {
    create_then(uid, files, |_| Ok(()))
}

/// [`create`], with `fill` called on the directory while it is still root's (judge mode links
/// its artifact in there: once the uid owns it, root without `CAP_DAC_OVERRIDE` cannot write it).
pub fn create_then(
    uid: u32,
    files: &[ShimFile],
    fill: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<Workspace, SetupError> {
    let fail = |partial: Option<&Path>, message: String| SetupError {
        partial: partial.map(Path::to_path_buf),
        message,
    };
    for f in files {
        validate_name(&f.name).map_err(|m| fail(None, m))?;
    }
    let root = Path::new(WORKSPACE_ROOT);
    if !root.exists() {
        // Production containers mount a tmpfs here; this only happens in tests.
        DirBuilder::new()
            .mode(0o711)
            .create(root)
            .map_err(|e| fail(None, format!("creating {WORKSPACE_ROOT}: {e}")))?;
    }
    let path = unique_dir(root, "j-", 0o700, "the workspace").map_err(|m| fail(None, m))?;
    let p = Some(path.as_path());
    for f in files {
        let file_path = path.join(&f.name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&file_path)
            .map_err(|e| fail(p, format!("creating file {:?}: {e}", f.name)))?;
        file.write_all(&f.content.0)
            .map_err(|e| fail(p, format!("writing file {:?}: {e}", f.name)))?;
        fchown(&file, Some(uid), Some(uid))
            .map_err(|e| fail(p, format!("chown of file {:?}: {e}", f.name)))?;
    }
    for name in RESERVED {
        let dir = path.join(name);
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| fail(p, format!("creating {name}: {e}")))?;
        chown(&dir, Some(uid), Some(uid)).map_err(|e| fail(p, format!("chown of {name}: {e}")))?;
    }
    fill(&path).map_err(|m| fail(p, m))?;
    chown(&path, Some(uid), Some(uid))
        .map_err(|e| fail(p, format!("chown of the workspace: {e}")))?;
    Ok(Workspace { path })
}

/// A new directory `<prefix><32 random hex digits>` under `root` with exactly `mode` (whatever
/// the umask), for a job's workspace or judge mode's artifact; `what` names it in errors.
pub(crate) fn unique_dir(
    root: &Path,
    prefix: &str,
    mode: u32,
    what: &str,
) -> Result<PathBuf, String> {
    for _ in 0..8 {
        let mut random = [0u8; 16];
        sys::random_bytes(&mut random).map_err(|e| format!("reading random bytes: {e}"))?;
        let path = root.join(dir_name(prefix, &random));
        match DirBuilder::new().mode(mode).create(&path) {
            Ok(()) => {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("creating {what}: {e}"))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("creating {what}: {e}")),
        }
    }
    Err(format!("could not find a free name for {what}"))
}

/// Removes a workspace whose setup failed, before any job process ran (so nothing in it is the
/// job's doing and root may remove it directly).
pub fn remove_partial(path: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for n in [
            "main.py",
            "Main.java",
            ".hidden",
            "a b",
            "ü.txt",
            "x-",
            &"a".repeat(128),
        ] {
            assert!(validate_name(n).is_ok(), "{n:?}");
        }
    }

    #[test]
    fn bad_names() {
        for n in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc",
            "a\0b",
            "-rf",
            ".tmp",
            ".cache",
            "a\\b",
            "a\nb",
            &"a".repeat(129),
        ] {
            assert!(validate_name(n).is_err(), "{n:?}");
        }
    }

    #[test]
    fn length_is_counted_in_bytes() {
        // 65 two-byte characters = 130 bytes.
        assert!(validate_name(&"é".repeat(65)).is_err());
        assert!(validate_name(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn dir_names_are_hex() {
        let n = dir_name("j-", &[0xab; 16]);
        assert_eq!(n.len(), 34);
        assert!(n.starts_with("j-abab"));
        assert!(n[2..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
