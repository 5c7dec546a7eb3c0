//! The host side of metering: every container gets a cgroup directory of its own on the engine's
//! host, made the parent of the container's cgroup (`HostConfig.CgroupParent`) and bind-mounted
//! writable into the container at `rce_protocol::shim::CGROUP_MOUNT`. Inside, the shim creates
//! one cgroup per step below the container's and meters and fences the step there (see the
//! shim's `cgroup` module). Writable only by the container's root (the shim): jobs run under
//! other uids, with no capability.
//!
//! Host layout, with `<root>` = `RCE_CGROUP_ROOT` (default `/sys/fs/cgroup`):
//!
//! ```text
//! v1: <root>/memory/rce/<runner>/<container name>/<container id>/step-<n>   (also cpuacct/)
//! v2: <root>/rce/<runner>/<container name>/<container id>/step-<n>
//! ```
//!
//! The runner therefore runs on the engine's host (or sees its cgroup filesystem) and the engine
//! uses the `cgroupfs` cgroup driver; both are checked at start (`CgroupDelegation::detect`).

use crate::error::PoolError;
use bollard::Docker;
use rce_protocol::shim::CGROUP_MOUNT;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The engine host's cgroup layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// One hierarchy per controller; the shim needs `memory` and `cpuacct`.
    V1,
    /// The unified hierarchy.
    V2,
}

/// What the runner needs to give each container its delegated cgroup directory.
#[derive(Clone, Debug)]
pub struct CgroupDelegation {
    version: CgroupVersion,
    /// Where the engine host's cgroup filesystem is mounted, as the runner sees it.
    root: PathBuf,
    /// Keeps two runners on one engine apart: `rce/<runner id>`.
    runner_id: String,
}

/// The hierarchies a container's directory lives in: (path below the cgroup root, name of the
/// mount inside the container).
fn hierarchies(version: CgroupVersion) -> &'static [(&'static str, &'static str)] {
    match version {
        CgroupVersion::V1 => &[("memory", "memory"), ("cpuacct", "cpuacct")],
        CgroupVersion::V2 => &[("", "unified")],
    }
}

impl CgroupDelegation {
    pub fn new(version: CgroupVersion, root: PathBuf, runner_id: &str) -> Self {
        Self {
            version,
            root,
            runner_id: runner_id.to_string(),
        }
    }

    /// Reads the engine's cgroup version and driver and checks this process can create the
    /// directories, so a runner that cannot meter jobs fails at start with the reason.
    pub async fn detect(docker: &Docker, root: &Path, runner_id: &str) -> Result<Self, PoolError> {
        let info = docker.info().await?;
        let version = match info.cgroup_version.map(|v| v.to_string()).as_deref() {
            Some("2") => CgroupVersion::V2,
            _ => CgroupVersion::V1,
        };
        let driver = info
            .cgroup_driver
            .map(|d| d.to_string())
            .unwrap_or_default();
        if driver != "cgroupfs" {
            return Err(PoolError::Metering(format!(
                "the docker engine uses the {driver:?} cgroup driver; job metering needs \
                 \"cgroupfs\" (dockerd --exec-opt native.cgroupdriver=cgroupfs), see docs/operations.md"
            )));
        }
        let this = Self::new(version, root.to_path_buf(), runner_id);
        for (hierarchy, _) in hierarchies(version) {
            let dir = root.join(hierarchy);
            let probe = dir.join(match *hierarchy {
                "memory" => "memory.limit_in_bytes",
                "cpuacct" => "cpuacct.usage",
                _ => "cgroup.controllers",
            });
            if !probe.exists() {
                return Err(PoolError::Metering(format!(
                    "no cgroup {version:?} hierarchy at {} (set RCE_CGROUP_ROOT to where the \
                     engine host's cgroup filesystem is mounted)",
                    dir.display()
                )));
            }
        }
        Ok(this)
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The `CgroupParent` of the container named `name`.
    pub fn parent(&self, name: &str) -> String {
        format!("/rce/{}/{name}", self.runner_id)
    }

    fn runner_dirs(&self) -> Vec<PathBuf> {
        hierarchies(self.version)
            .iter()
            .map(|(h, _)| self.root.join(h).join("rce").join(&self.runner_id))
            .collect()
    }

    /// Creates the container's directories (mode 0700: only root may even look) and returns
    /// the bind mounts that hand them to it.
    pub fn prepare(&self, name: &str) -> Result<Vec<String>, PoolError> {
        let mut binds = Vec::new();
        for ((_, mount), runner_dir) in hierarchies(self.version).iter().zip(self.runner_dirs()) {
            let dir = runner_dir.join(name);
            let made = fs::create_dir_all(&dir)
                .and_then(|()| fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)));
            if let Err(e) = made {
                return Err(PoolError::Metering(format!(
                    "creating cgroup {}: {e}",
                    dir.display()
                )));
            }
            binds.push(format!("{}:{CGROUP_MOUNT}/{mount}:rw", dir.display()));
        }
        Ok(binds)
    }

    /// Removes the directories of the container named `name` once the engine removed the
    /// container (its own cgroup below them). Best effort: what is still busy stays, and the
    /// next [`CgroupDelegation::sweep`] tries again.
    pub fn release(&self, name: &str) {
        for runner_dir in self.runner_dirs() {
            remove_tree(&runner_dir.join(name));
        }
    }

    /// Removes every directory of this runner whose container is gone (the engine removes a
    /// container's own cgroup, steps included, with the container): at start, what a
    /// predecessor left, and after the engine restarted. Directories that still hold a
    /// container's cgroup are not touched.
    pub fn sweep(&self) {
        for runner_dir in self.runner_dirs() {
            let Ok(entries) = fs::read_dir(&runner_dir) else {
                continue;
            };
            for entry in entries.flatten() {
                // rmdir refuses a cgroup that has cgroups below it.
                let _ = fs::remove_dir(entry.path());
            }
            let _ = fs::remove_dir(&runner_dir);
        }
    }
}

/// Removes a cgroup directory and the cgroups below it, deepest first. A cgroup with live
/// processes refuses (EBUSY) and stays.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "cgroup not removed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_delegates_memory_and_cpu_accounting() {
        let base = std::env::temp_dir().join(format!("rce-deleg-v1-{}", std::process::id()));
        let d = CgroupDelegation::new(CgroupVersion::V1, base.clone(), "r1");
        assert_eq!(d.parent("rce-r1-c-0"), "/rce/r1/rce-r1-c-0");
        let binds = d.prepare("rce-r1-c-0").unwrap();
        assert_eq!(
            binds,
            vec![
                format!(
                    "{}/memory/rce/r1/rce-r1-c-0:/run/rce/cgroup/memory:rw",
                    base.display()
                ),
                format!(
                    "{}/cpuacct/rce/r1/rce-r1-c-0:/run/rce/cgroup/cpuacct:rw",
                    base.display()
                ),
            ]
        );
        let dir = base.join("memory/rce/r1/rce-r1-c-0");
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::create_dir_all(dir.join("abc/step-0")).unwrap();
        d.release("rce-r1-c-0");
        assert!(!dir.exists());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn v2_delegates_one_directory() {
        let base = std::env::temp_dir().join(format!("rce-deleg-v2-{}", std::process::id()));
        let d = CgroupDelegation::new(CgroupVersion::V2, base.clone(), "r1");
        let binds = d.prepare("x").unwrap();
        assert_eq!(
            binds,
            vec![format!(
                "{}/rce/r1/x:/run/rce/cgroup/unified:rw",
                base.display()
            )]
        );
        d.prepare("y").unwrap();
        fs::create_dir_all(base.join("rce/r1/y/live")).unwrap();
        d.sweep();
        let left: Vec<_> = fs::read_dir(base.join("rce/r1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec!["y"],
            "a directory holding a container's cgroup stays"
        );
        fs::remove_dir_all(&base).unwrap();
    }
}
