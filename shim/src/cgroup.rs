//! The step's meter and fence: a cgroup of its own, below the container's, in the subtree the
//! runner delegated to the container (`rce_protocol::shim::CGROUP_MOUNT`, writable by the
//! container's root only). One job per container makes the container's cgroup the job's; one
//! cgroup per step makes every figure the step's alone:
//!
//! * memory: the step cgroup's hard limit is the step's `memory_kb` (memory + swap), so every
//!   page the kernel charges counts — anonymous memory, memfd/tmpfs/shm files, pipe and socket
//!   buffers, kernel objects — and the kernel's OOM killer picks its victim among the step's
//!   processes only, never the shim or the agent outside it; `memory_kb` is the cgroup's peak;
//! * CPU: the cgroup's accounting counts every process that ever ran in it, children that were
//!   never waited for included; the shim compares it with the limit at every tick.
//!
//! cgroup v1 (one hierarchy per controller: `memory` and `cpuacct` are bind-mounted) and v2 (one
//! `unified` hierarchy; the container's own processes move to a leaf first, since v2 allows
//! processes only in leaves once controllers are enabled for children).

use rce_protocol::shim::{StepLimits, CGROUP_MOUNT};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};

/// The leaf the container's own processes (docker-init, the agent) live in on cgroup v2.
const V2_REST: &str = "rce-rest";
/// Step cgroups are named `step-<n>`; anything of that name found before a job is stale.
const STEP_PREFIX: &str = "step-";
/// What a job may leave charged to its step cgroups after cleanup (anonymous + shared memory)
/// and still count as gone: the kernel flushes memory statistics in per-CPU batches, so a
/// reading may lag by a few hundred KiB per CPU. A leak that matters is far larger.
pub const LEFTOVER_SLACK_BYTES: u64 = 4 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The container's own cgroup, seen through the delegated mount.
#[derive(Debug)]
pub struct ContainerCgroup {
    version: Version,
    /// The container's cgroup in the memory hierarchy (v2: the unified one).
    memory: PathBuf,
    /// The container's cgroup in the CPU accounting hierarchy (v2: the same as `memory`).
    cpu: PathBuf,
}

/// `true` when `procs` (the text of a `cgroup.procs`) lists `pid`.
pub fn lists_pid(procs: &str, pid: u32) -> bool {
    procs.split_whitespace().any(|p| p.parse() == Ok(pid))
}

/// The value of `key` in a flat-keyed cgroup file (`memory.stat`, `cpu.stat`, `memory.events`,
/// `memory.oom_control`): one `key value` pair per line.
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(key))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

/// CPU time in ms from `cpuacct.usage` (v1: nanoseconds) or `cpu.stat` (v2: `usage_usec`).
pub fn parse_cpu_ms(version: Version, text: &str) -> Option<u64> {
    match version {
        Version::V1 => text.trim().parse::<u64>().ok().map(|ns| ns / 1_000_000),
        Version::V2 => keyed(text, "usage_usec").map(|us| us / 1000),
    }
}

/// Anonymous + shared (tmpfs, shm, memfd) memory in a `memory.stat`: what must be gone once a
/// job's processes are dead and its files removed. Page cache is not counted: it is reclaimable
/// and is charged to whichever job first read a file of the image.
pub fn parse_leftover_bytes(version: Version, stat: &str) -> Option<u64> {
    let anon = match version {
        Version::V1 => keyed(stat, "rss")?.saturating_add(keyed(stat, "rss_huge").unwrap_or(0)),
        Version::V2 => keyed(stat, "anon")?,
    };
    Some(anon.saturating_add(keyed(stat, "shmem")?))
}

fn read(path: &Path) -> io::Result<String> {
    fs::read_to_string(path)
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn mkdir(path: &Path) -> io::Result<()> {
    // Readable by the job (a JVM reads its own limit there), writable by root only.
    match fs::DirBuilder::new().mode(0o755).create(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

impl ContainerCgroup {
    /// Finds the container's cgroup below the delegated mount: the directory whose processes
    /// include the container's init (pid 1), or (v2) whose `rce-rest` leaf does.
    pub fn find() -> Result<Self, String> {
        Self::find_under(Path::new(CGROUP_MOUNT))
    }

    fn find_under(mount: &Path) -> Result<Self, String> {
        let (version, memory_root, cpu_root) = if mount.join("unified").is_dir() {
            let u = mount.join("unified");
            (Version::V2, u.clone(), u)
        } else {
            (Version::V1, mount.join("memory"), mount.join("cpuacct"))
        };
        let own = |root: &Path| -> Result<PathBuf, String> {
            let entries = fs::read_dir(root).map_err(|e| {
                format!(
                    "no delegated cgroup at {} ({e}): the runner must create the container with it",
                    root.display()
                )
            })?;
            for entry in entries.flatten() {
                let dir = entry.path();
                if !dir.is_dir() {
                    continue;
                }
                let holds_init = |d: &Path| {
                    read(&d.join("cgroup.procs")).is_ok_and(|procs| lists_pid(&procs, 1))
                };
                if holds_init(&dir) || holds_init(&dir.join(V2_REST)) {
                    return Ok(dir);
                }
            }
            Err(format!(
                "the container's own cgroup is not below {}",
                root.display()
            ))
        };
        Ok(Self {
            version,
            memory: own(&memory_root)?,
            cpu: own(&cpu_root)?,
        })
    }

    /// cgroup v2: moves the container's processes into a leaf and enables the controllers for
    /// the step cgroups. Idempotent; a no-op on v1, which has no such rule.
    pub fn delegate(&self) -> Result<(), String> {
        if self.version == Version::V1 {
            return Ok(());
        }
        let rest = self.memory.join(V2_REST);
        mkdir(&rest).map_err(|e| format!("{}: {e}", rest.display()))?;
        let procs = read(&self.memory.join("cgroup.procs")).map_err(|e| e.to_string())?;
        for pid in procs.split_whitespace() {
            // A process that exited meanwhile is fine.
            let _ = write(&rest.join("cgroup.procs"), pid);
        }
        write(
            &self.memory.join("cgroup.subtree_control"),
            "+memory +cpu +pids",
        )
        .map_err(|e| format!("enabling the step controllers: {e}"))
    }

    /// Removes step cgroups a job that ended abnormally left behind (their processes are dead:
    /// each job starts after the previous one's kill).
    pub fn remove_stale_steps(&self) {
        for root in self.roots() {
            let Ok(entries) = fs::read_dir(root) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(STEP_PREFIX) {
                    let _ = fs::remove_dir(entry.path());
                }
            }
        }
    }

    fn roots(&self) -> Vec<&Path> {
        if self.memory == self.cpu {
            vec![&self.memory]
        } else {
            vec![&self.memory, &self.cpu]
        }
    }

    /// Creates the cgroup of step `index` with the step's memory limit.
    pub fn create_step(&self, index: usize, limits: &StepLimits) -> Result<StepCgroup, String> {
        let name = format!("{STEP_PREFIX}{index}");
        let memory = self.memory.join(&name);
        let cpu = self.cpu.join(&name);
        let created = (|| -> io::Result<StepCgroup> {
            for dir in [&memory, &cpu] {
                mkdir(dir)?;
            }
            let bytes = limits.memory_kb.saturating_mul(1024).to_string();
            match self.version {
                Version::V1 => {
                    write(&memory.join("memory.limit_in_bytes"), &bytes)?;
                    let memsw = memory.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write(&memsw, &bytes)?;
                    }
                }
                Version::V2 => {
                    write(&memory.join("memory.max"), &bytes)?;
                    let swap = memory.join("memory.swap.max");
                    if swap.exists() {
                        write(&swap, "0")?;
                    }
                    // One OOM kill ends the whole step, as the verdict does.
                    let group = memory.join("memory.oom.group");
                    if group.exists() {
                        write(&group, "1")?;
                    }
                }
            }
            let open = |p: PathBuf| {
                File::open(&p)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
            };
            // CPU time, memory now, peak memory, OOM kills, in each version's files.
            let [cpu_name, usage_name, peak_name, events_name] = match self.version {
                Version::V1 => [
                    "cpuacct.usage",
                    "memory.usage_in_bytes",
                    "memory.max_usage_in_bytes",
                    "memory.oom_control",
                ],
                Version::V2 => ["cpu.stat", "memory.current", "memory.peak", "memory.events"],
            };
            let cpu_file = open(cpu.join(cpu_name))?;
            let usage = open(memory.join(usage_name))?;
            let peak = open(memory.join(peak_name)).ok();
            let events = open(memory.join(events_name))?;
            let stat = open(memory.join("memory.stat"))?;
            let mut procs = Vec::new();
            let mut dirs = vec![memory.clone()];
            if cpu != memory {
                dirs.push(cpu.clone());
            }
            for dir in &dirs {
                procs.push(
                    OpenOptions::new()
                        .write(true)
                        .open(dir.join("cgroup.procs"))?,
                );
            }
            Ok(StepCgroup {
                version: self.version,
                dirs,
                procs,
                cpu: cpu_file,
                usage,
                peak,
                events,
                stat,
                sampled_peak: 0,
                memory_kb: limits.memory_kb,
                oom_base: 0,
            })
        })();
        created.map_err(|e| {
            let _ = fs::remove_dir(&memory);
            let _ = fs::remove_dir(&cpu);
            format!("step cgroup {name}: {e}")
        })
    }
}

/// One step's cgroup, its accounting files kept open: the shim reads them every tick.
#[derive(Debug)]
pub struct StepCgroup {
    version: Version,
    /// Its directory in each hierarchy (one on v2).
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each, written by the step's child before it becomes the job.
    procs: Vec<File>,
    cpu: File,
    usage: File,
    /// The kernel's high-water mark (absent on v2 kernels before 5.19).
    peak: Option<File>,
    events: File,
    stat: File,
    /// The highest usage seen by [`StepCgroup::sample`], for kernels without a peak file.
    sampled_peak: u64,
    /// The memory limit it was made with: it is reused only for a step with the same one.
    memory_kb: u64,
    /// OOM kills before its current step (the counter cannot be reset).
    oom_base: u64,
}

fn read_open(f: &File) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        match f.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len == buf.len() {
                    buf.resize(buf.len() * 2, 0);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// A cgroup file holding one number (`memory.current`, `memory.peak` and their v1 twins).
fn read_number(f: &File) -> Option<u64> {
    read_open(f)?.trim().parse().ok()
}

/// What one look at a step's cgroup says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub cpu_ms: u64,
    pub memory_bytes: u64,
    pub oom_kills: u64,
}

impl StepCgroup {
    /// The descriptors the child writes `0` to (itself) before it drops to the job's uid.
    pub fn procs_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// CPU so far, memory now, and OOM kills so far; zeros where a file cannot be read.
    pub fn sample(&mut self) -> Sample {
        let cpu_ms = read_open(&self.cpu)
            .and_then(|t| parse_cpu_ms(self.version, &t))
            .unwrap_or(0);
        let memory_bytes = read_number(&self.usage).unwrap_or(0);
        self.sampled_peak = self.sampled_peak.max(memory_bytes);
        let oom_kills = read_open(&self.events)
            .and_then(|t| keyed(&t, "oom_kill"))
            .unwrap_or(0)
            .saturating_sub(self.oom_base);
        Sample {
            cpu_ms,
            memory_bytes,
            oom_kills,
        }
    }

    /// The step's peak memory: the kernel's high-water mark, or the highest sample without one.
    pub fn peak_bytes(&self) -> u64 {
        let kernel = self.peak.as_ref().and_then(read_number).unwrap_or(0);
        kernel.max(self.sampled_peak)
    }

    /// Anonymous + shared memory still charged to the step (see [`parse_leftover_bytes`]).
    pub fn leftover_bytes(&self) -> Option<u64> {
        read_open(&self.stat).and_then(|t| parse_leftover_bytes(self.version, &t))
    }

    /// Makes this cgroup the meter of a next step with the same memory limit, instead of a new
    /// cgroup (a `mkdir` and an `rmdir` of a cgroup per judge-mode test, about 0.2 ms): only
    /// when no process is in it; its CPU time and peak start again from zero (the peak from
    /// what is still charged, page cache the previous step brought in), and its OOM kills are
    /// counted from here. Only on cgroup
    /// v1, where both counters can be reset; on v2 (`cpu.stat` cannot be reset, and `memory.peak`
    /// only per open file on recent kernels) every step keeps a cgroup of its own. False when
    /// it cannot be reused: the caller makes a new one. Its processes must all be gone.
    pub fn reuse_for(&mut self, limits: &StepLimits) -> bool {
        if self.version != Version::V1 || limits.memory_kb != self.memory_kb {
            return false;
        }
        let (memory, cpu) = (&self.dirs[0], self.dirs.last().unwrap_or(&self.dirs[0]));
        // No process may be left in it, whatever its uid: the kernel's own list, besides the
        // /proc scans. (`memory.force_empty` would also give back the page cache the previous
        // step left charged, but costs about 0.6 ms a test: measured, and not taken. That cache,
        // a few pages of the program's own files, stays in the next step's peak.)
        let empty = |dir: &Path| read(&dir.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty());
        if !self.dirs.iter().all(|d| empty(d)) {
            return false;
        }
        let reset = write(&cpu.join("cpuacct.usage"), "0")
            .and_then(|()| write(&memory.join("memory.max_usage_in_bytes"), "0"));
        if reset.is_err() {
            return false;
        }
        self.oom_base = read_open(&self.events)
            .and_then(|t| keyed(&t, "oom_kill"))
            .unwrap_or(0);
        self.sampled_peak = 0;
        true
    }

    /// Removes the cgroup (its processes must be gone). Charges still held move to the
    /// container's cgroup, where the post-job check has already looked.
    pub fn remove(self) -> io::Result<()> {
        let dirs = self.dirs.clone();
        drop(self);
        let mut result = Ok(());
        for dir in dirs.iter().rev() {
            if let Err(e) = fs::remove_dir(dir) {
                result = Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display())));
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_STAT: &str = "cache 1052672\nrss 2162688\nrss_huge 2097152\nshmem 4096\nmapped_file 0\n\
        dirty 0\nwriteback 0\nswap 0\npgpgin 1090\npgpgout 300\nhierarchical_memory_limit 67108864\n\
        total_cache 1052672\ntotal_rss 2162688\ntotal_shmem 4096\n";
    const V2_STAT: &str = "anon 1310720\nfile 4096\nkernel 282624\nkernel_stack 32768\n\
        pagetables 49152\nsec_pagetables 0\npercpu 0\nsock 0\nvmalloc 0\nshmem 629145600\n\
        zswap 0\nfile_mapped 0\n";

    #[test]
    fn v1_cpuacct_usage_is_nanoseconds() {
        assert_eq!(parse_cpu_ms(Version::V1, "6012345678\n"), Some(6012));
        assert_eq!(parse_cpu_ms(Version::V1, "garbage"), None);
    }

    #[test]
    fn v2_cpu_stat_usage_usec() {
        let t = "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 0\n\
                 nr_throttled 0\nthrottled_usec 0\n";
        assert_eq!(parse_cpu_ms(Version::V2, t), Some(1234));
        assert_eq!(parse_cpu_ms(Version::V2, "user_usec 5\n"), None);
    }

    #[test]
    fn leftovers_are_anonymous_plus_shared_memory_not_cache() {
        assert_eq!(
            parse_leftover_bytes(Version::V1, V1_STAT),
            Some(2162688 + 2097152 + 4096)
        );
        assert_eq!(
            parse_leftover_bytes(Version::V2, V2_STAT),
            Some(1310720 + 629145600)
        );
        assert_eq!(parse_leftover_bytes(Version::V2, "file 5\n"), None);
    }

    #[test]
    fn oom_kill_counters_of_both_versions() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n";
        let v2 = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 1\n";
        assert_eq!(keyed(v1, "oom_kill"), Some(7));
        assert_eq!(keyed(v2, "oom_kill"), Some(2));
        assert_eq!(keyed("oom_kill x\n", "oom_kill"), None);
        assert_eq!(keyed("", "oom_kill"), None);
    }

    #[test]
    fn cgroup_procs_listing() {
        assert!(lists_pid("1\n7\n12\n", 1));
        assert!(!lists_pid("11\n17\n", 1));
        assert!(!lists_pid("", 1));
    }

    #[test]
    fn finds_the_container_cgroup_of_either_version() {
        let base = std::env::temp_dir().join(format!("rce-cgroup-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        // v1: a sibling without init, and the container's own directory with it.
        for ctl in ["memory", "cpuacct"] {
            fs::create_dir_all(base.join("v1").join(ctl).join("other")).unwrap();
            fs::write(base.join("v1").join(ctl).join("other/cgroup.procs"), "5\n").unwrap();
            fs::create_dir_all(base.join("v1").join(ctl).join("abc")).unwrap();
            fs::write(base.join("v1").join(ctl).join("abc/cgroup.procs"), "1\n9\n").unwrap();
        }
        let v1 = ContainerCgroup::find_under(&base.join("v1")).unwrap();
        assert_eq!(v1.version, Version::V1);
        assert!(v1.memory.ends_with("memory/abc") && v1.cpu.ends_with("cpuacct/abc"));
        // v2 after delegation: init lives in the rest leaf.
        fs::create_dir_all(base.join("v2/unified/abc").join(V2_REST)).unwrap();
        fs::write(base.join("v2/unified/abc/cgroup.procs"), "").unwrap();
        fs::write(
            base.join("v2/unified/abc")
                .join(V2_REST)
                .join("cgroup.procs"),
            "1\n",
        )
        .unwrap();
        let v2 = ContainerCgroup::find_under(&base.join("v2")).unwrap();
        assert_eq!(v2.version, Version::V2);
        assert_eq!(v2.memory, v2.cpu);
        assert!(ContainerCgroup::find_under(&base.join("none")).is_err());
        fs::remove_dir_all(&base).unwrap();
    }
}
