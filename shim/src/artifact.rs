//! Judge mode's compiled program, frozen: what the steps before the tests left in the workspace
//! (the binary, the classes, the sources of an interpreted language), copied into a root-owned
//! directory as read-only files, and linked into each test's fresh workspace.
//!
//! Copied, not moved: the job's uid owned the originals and could have kept a way to change
//! them (a descriptor passed to a process that is dead now, but the principle stands); the
//! copies are root's, mode 0444 or 0555, so a test can run and read them but neither write,
//! chmod nor replace them for the next test. A test may unlink its own links (its workspace is
//! its own): that removes nothing from the artifact. Only regular files at the top level are
//! kept, the shape the file-name rule gives every job; the reserved `.tmp` and `.cache` (a
//! compiler's scratch and caches) are left behind with anything else.

use crate::workspace::{self, RESERVED};
#[cfg(doc)]
use rce_protocol::shim::WORKSPACE_ROOT;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The most an artifact may hold, so that freezing cannot fill the workspace filesystem (a
/// compile that wrote more than this is refused as the platform's limit, not copied).
pub const MAX_BYTES: u64 = 64 << 20;

/// A frozen program: a directory under [`WORKSPACE_ROOT`] only root can list.
#[derive(Debug)]
pub struct Artifact {
    dir: PathBuf,
    names: Vec<String>,
}

impl Artifact {
    /// Copies the top-level regular files of `workspace` (the job's, owned by `uid`, whose
    /// processes are all gone) into a new artifact under `root` ([`WORKSPACE_ROOT`] in a
    /// container).
    ///
    /// The shim holds no `CAP_DAC_OVERRIDE`, so it cannot read what the job owns: it takes the
    /// workspace and each file to be frozen over first (`CAP_CHOWN`), reads them as their
    /// owner, and hands the directory back to the uid so that the cleanup, which runs as the
    /// uid, can remove it as usual. A file with more than one link is left out: taking it over
    /// would take over whatever else it is.
    pub fn freeze(workspace: &Path, root: &Path, uid: u32) -> Result<Self, String> {
        take_over(workspace, 0o700)?;
        // Root's, 0711: its files can be opened by name, never listed.
        let dir = workspace::unique_dir(root, "a-", 0o711, "the artifact")?;
        let artifact = Self {
            dir: dir.clone(),
            names: Vec::new(),
        };
        let frozen = artifact.fill(workspace).inspect_err(|_| {
            // Nothing half-frozen stays behind to count against the container's rest.
            let _ = fs::remove_dir_all(&dir);
        });
        std::os::unix::fs::chown(workspace, Some(uid), Some(uid))
            .map_err(|e| format!("handing the workspace back: {e}"))?;
        frozen
    }

    fn fill(mut self, workspace: &Path) -> Result<Self, String> {
        let entries = fs::read_dir(workspace).map_err(|e| format!("reading the workspace: {e}"))?;
        let mut total = 0u64;
        for entry in entries {
            let entry = entry.map_err(|e| format!("reading the workspace: {e}"))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if RESERVED.contains(&name.as_str()) || workspace::validate_name(&name).is_err() {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() || meta.nlink() != 1 {
                continue;
            }
            take_over(&path, 0o400 | (meta.mode() & 0o111))?;
            // Never follows a link: a symlink left by the compile is not copied, whatever it
            // points at.
            let mut source = match OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(entry.path())
            {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => continue,
                Err(e) => return Err(format!("opening {name:?}: {e}")),
            };
            let meta = source
                .metadata()
                .map_err(|e| format!("reading {name:?}: {e}"))?;
            if !meta.is_file() {
                continue;
            }
            total = total.saturating_add(meta.len());
            if total > MAX_BYTES {
                return Err(format!(
                    "the compiled program is over {} MiB",
                    MAX_BYTES >> 20
                ));
            }
            let executable = meta.mode() & 0o111 != 0;
            let target = self.dir.join(&name);
            let mut copy = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&target)
                .map_err(|e| format!("copying {name:?}: {e}"))?;
            io::copy(&mut source, &mut copy).map_err(|e| format!("copying {name:?}: {e}"))?;
            let mode = if executable { 0o555 } else { 0o444 };
            copy.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| format!("sealing {name:?}: {e}"))?;
            self.names.push(name);
        }
        self.names.sort();
        Ok(self)
    }

    /// The names it holds, sorted.
    #[cfg(test)]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Links every file of the artifact into `workspace` (a fresh, empty test workspace).
    pub fn link_into(&self, workspace: &Path) -> Result<(), String> {
        for name in &self.names {
            fs::hard_link(self.dir.join(name), workspace.join(name))
                .map_err(|e| format!("linking {name:?} into the test's workspace: {e}"))?;
        }
        Ok(())
    }

    /// Removes the artifact (the job is over).
    pub fn remove(self) -> Result<(), String> {
        fs::remove_dir_all(&self.dir).map_err(|e| format!("removing the artifact: {e}"))
    }
}

/// Makes `path` (a directory, or a regular file just checked to be one) root's with `mode`,
/// without following a symlink.
fn take_over(path: &Path, mode: u32) -> Result<(), String> {
    std::os::unix::fs::lchown(path, Some(0), Some(0))
        .map_err(|e| format!("taking over {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("taking over {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn only_regular_top_level_files_are_frozen_read_only() {
        let base = std::env::temp_dir().join(format!("rce-shim-artifact-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let ws = base.join("ws");
        fs::create_dir_all(ws.join(".cache")).unwrap();
        fs::write(ws.join("main"), b"\x7fELF").unwrap();
        fs::set_permissions(ws.join("main"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(ws.join("main.cpp"), b"int main(){}").unwrap();
        fs::write(ws.join(".cache").join("junk"), b"x").unwrap();
        fs::create_dir(ws.join("sub")).unwrap();
        symlink("/etc/passwd", ws.join("link")).unwrap();
        let artifact = Artifact::freeze(&ws, &base, 0).unwrap();
        assert_eq!(artifact.names(), ["main", "main.cpp"]);
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&artifact.dir.join("main")), 0o555);
        assert_eq!(mode(&artifact.dir.join("main.cpp")), 0o444);
        assert_eq!(mode(&artifact.dir), 0o711);
        let test_ws = base.join("test");
        fs::create_dir(&test_ws).unwrap();
        artifact.link_into(&test_ws).unwrap();
        assert_eq!(fs::read(test_ws.join("main")).unwrap(), b"\x7fELF");
        assert_eq!(
            mode(&test_ws.join("main.cpp")),
            0o444,
            "a link is the sealed file"
        );
        let dir = artifact.dir.clone();
        artifact.remove().unwrap();
        assert!(!dir.exists());
        assert_eq!(fs::read(test_ws.join("main.cpp")).unwrap(), b"int main(){}");
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn an_oversized_compile_is_refused() {
        let base =
            std::env::temp_dir().join(format!("rce-shim-artifact-big-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let ws = base.join("ws");
        fs::create_dir_all(&ws).unwrap();
        let f = fs::File::create(ws.join("huge")).unwrap();
        f.set_len(MAX_BYTES + 1).unwrap();
        let e = Artifact::freeze(&ws, &base, 0).unwrap_err();
        assert!(e.contains("over 64 MiB"), "{e}");
        let left: Vec<_> = fs::read_dir(&base)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["ws"], "the partial artifact was removed");
        fs::remove_dir_all(&base).unwrap();
    }
}
