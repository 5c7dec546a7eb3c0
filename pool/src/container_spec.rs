//! The hardened shape of every warm container, as a pure function of the language and the
//! sandbox settings in `topology.yaml` (design.md, "Sandbox model").

use crate::labels;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use rce_protocol::shim::{SHIM_PATH, WORKSPACE_ROOT};
use rce_protocol::topology::{ExecMode, Language, Sandbox};
use std::collections::HashMap;

/// The seccomp profile every container runs under (see docs/security.md, "Seccomp: our profile
/// against Docker's default"): the engine's default (Docker 20.10) still allows io_uring, every
/// socket family but AF_VSOCK and the whole i386 ABI, so the project ships its own.
pub const SECCOMP_PROFILE: &str = include_str!("../seccomp/rce.json");

/// `HostConfig.MaskedPaths`: files the container sees as empty (bound over with /dev/null) and
/// directories it sees as empty (a read-only tmpfs). Setting the list replaces the engine's, so
/// it starts with the engine's defaults (Docker 20.10's ten, then the two later releases add),
/// and goes on with what the engine leaves readable about the host.
pub const MASKED_PATHS: &[&str] = &[
    // Docker 20.10's defaults.
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    // Added by later Docker releases: per-CPU interrupt counts, RAPL energy counters (a power
    // side channel).
    "/proc/interrupts",
    "/sys/devices/virtual/powercap",
    // The host's keyring users: uids and how many keys each holds (not namespaced).
    "/proc/key-users",
    // Who the host is: its kernel command line (here the VM's init arguments and vsock ports),
    // its boot id, the build notes and the physical address of vmcoreinfo.
    "/proc/cmdline",
    "/proc/sys/kernel/random/boot_id",
    "/sys/kernel/notes",
    "/sys/kernel/vmcoreinfo",
    // What the host is doing, machine-wide: softirq, pressure, disk and memory counters, the
    // allocator's free lists (an exploit's view of the heap), every file lock.
    "/proc/softirqs",
    "/proc/pressure",
    "/proc/diskstats",
    "/proc/vmstat",
    "/proc/zoneinfo",
    "/proc/buddyinfo",
    "/proc/locks",
    // The kernel's symbol table (addresses are zeroed for us, the names are not).
    "/proc/kallsyms",
];

/// Processes the container needs besides the job's: docker-init, the idle shim, the exec'd shim
/// and its kill/cleanup helpers.
pub const PIDS_OVERHEAD: u64 = 16;

/// What the container's own processes (docker-init, the agent, the job's shim and its helpers)
/// may use beside the largest step.
pub const CONTAINER_HEADROOM_MB: u64 = 64;

/// The container's cgroup memory limit: a backstop, never a job's limit. Each step runs in a
/// cgroup of its own below the container's with the step's limit (the shim's `cgroup` module),
/// so the container's limit only has to admit the largest step any job of the language may
/// have plus the container's own processes. It is fixed for the container's life: no engine
/// call per job.
pub fn container_memory_mb(language: &Language) -> u64 {
    let compile = if language.is_compiled() {
        language.compile_limits.memory_mb
    } else {
        0
    };
    language.max_limits.memory_mb.max(compile) + CONTAINER_HEADROOM_MB
}

/// Linux capability numbers (`linux/capability.h`), by Docker's names.
const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The `CapBnd:` mask of a /proc/<pid>/status.
pub fn bounding_set(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Splits the sandbox's optional capabilities into those `bounding` (the host's bounding set:
/// what the engine, on the same host, can hand a container) holds and those it lacks.
pub fn grantable_capabilities(sandbox: &Sandbox, bounding: u64) -> (Vec<String>, Vec<String>) {
    sandbox
        .optional_capabilities
        .iter()
        .cloned()
        .partition(|name| {
            CAPABILITIES
                .iter()
                .position(|c| c == name)
                .is_some_and(|bit| bounding >> bit & 1 == 1)
        })
}

/// Where a warm container's cgroup goes and how its delegated part reaches it (see
/// `cgroup_delegation`).
#[derive(Clone, Debug)]
pub struct CgroupPlacement {
    /// `HostConfig.CgroupParent`.
    pub parent: String,
    /// The bind mounts of the delegated directories.
    pub binds: Vec<String>,
}

/// Places the container's cgroup below its delegated directory.
pub fn place_cgroup(body: &mut ContainerCreateBody, placement: CgroupPlacement) {
    let host = body.host_config.get_or_insert_with(Default::default);
    host.cgroup_parent = Some(placement.parent);
    host.binds = Some(placement.binds);
}

/// The create request for one warm container.
pub fn container_body(
    language: &Language,
    sandbox: &Sandbox,
    runner_id: &str,
) -> ContainerCreateBody {
    let memory = (container_memory_mb(language) as i64) << 20;
    let pids = language
        .max_limits
        .processes
        .max(language.compile_limits.processes)
        + PIDS_OVERHEAD;
    let tmpfs = HashMap::from([
        (
            WORKSPACE_ROOT.to_string(),
            // `exec`: Docker mounts tmpfs noexec by default, and compiled programs run from here.
            format!(
                "rw,exec,nosuid,nodev,size={}m,nr_inodes={},mode=0711",
                sandbox.workspace_tmpfs_mb, sandbox.tmpfs_inodes
            ),
        ),
        (
            "/tmp".to_string(),
            format!(
                "rw,nosuid,nodev,size={}m,nr_inodes={},mode=1777",
                sandbox.tmp_tmpfs_mb, sandbox.tmpfs_inodes
            ),
        ),
    ]);
    let labels = HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (labels::RUNNER.to_string(), runner_id.to_string()),
        (labels::LANGUAGE.to_string(), language.id.clone()),
    ]);
    let agent = language.exec_mode == ExecMode::Agent;
    let log_config = if agent {
        // Every job's output crosses the agent's stdout: nothing of it belongs on the host's
        // disk, and the engine would spend time writing it there.
        HostConfigLogConfig {
            typ: Some("none".to_string()),
            config: None,
        }
    } else {
        // The idle shim's baseline line is read from the log.
        HostConfigLogConfig {
            typ: Some("json-file".to_string()),
            config: Some(HashMap::from([
                ("max-size".to_string(), "1m".to_string()),
                ("max-file".to_string(), "1".to_string()),
            ])),
        }
    };
    let main_process = if agent { "agent" } else { "idle" };
    ContainerCreateBody {
        image: Some(language.image_ref()),
        cmd: Some(vec![SHIM_PATH.to_string(), main_process.to_string()]),
        // The engine-API switch, not `--network none`: no network namespace setup work at all.
        network_disabled: Some(true),
        tty: Some(false),
        // Agent mode: the runner's attached stream is the agent's stdin, closed for good when
        // the runner detaches (so an orphaned container stops by itself).
        open_stdin: Some(agent),
        stdin_once: Some(agent),
        attach_stdin: Some(agent),
        attach_stdout: Some(agent),
        attach_stderr: Some(agent),
        labels: Some(labels),
        host_config: Some(HostConfig {
            readonly_rootfs: Some(true),
            tmpfs: Some(tmpfs),
            memory: Some(memory),
            memory_swap: Some(memory),
            pids_limit: Some(pids as i64),
            nano_cpus: Some((sandbox.cpus * 1e9) as i64),
            cap_drop: Some(vec!["ALL".to_string()]),
            cap_add: Some(sandbox.capabilities.clone()),
            security_opt: Some(vec![
                "no-new-privileges".to_string(),
                format!("seccomp={SECCOMP_PROFILE}"),
            ]),
            // ReadonlyPaths stays unset: the engine's defaults (/proc/sys, /proc/bus, ...) apply.
            masked_paths: Some(MASKED_PATHS.iter().map(|p| p.to_string()).collect()),
            init: Some(true),
            ipc_mode: Some("private".to_string()),
            shm_size: Some(16 << 20),
            log_config: Some(log_config),
            runtime: Some(language.runtime.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_protocol::topology::Topology;

    fn topology() -> Topology {
        Topology::from_source_tree().unwrap()
    }

    #[test]
    fn containers_are_hardened() {
        let t = topology();
        let body = container_body(&t.language("python").unwrap(), &t.sandbox, "r1");
        let host = body.host_config.unwrap();
        assert_eq!(body.network_disabled, Some(true));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(
            host.memory, host.memory_swap,
            "no swap beyond the memory limit"
        );
        let largest = t.language("python").unwrap().max_limits.memory_mb;
        assert_eq!(
            host.memory,
            Some(((largest + CONTAINER_HEADROOM_MB) as i64) << 20)
        );
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        let security = host.security_opt.unwrap();
        assert!(security.contains(&"no-new-privileges".to_string()));
        assert!(security.iter().any(|o| o.starts_with("seccomp={")));
        assert_eq!(host.init, Some(true));
        let tmpfs = host.tmpfs.unwrap();
        assert!(tmpfs["/work"].contains("nosuid") && tmpfs["/work"].contains("size=128m"));
        assert!(tmpfs["/work"].contains("nr_inodes=16384"));
        assert!(tmpfs["/tmp"].contains("nodev"));
        assert!(
            tmpfs["/tmp"].contains("nr_inodes=16384"),
            "inode fill ends in ENOSPC, not OOM"
        );
        assert_eq!(body.labels.unwrap()["rce.language"], "python");
    }

    fn profile() -> serde_json::Value {
        serde_json::from_str(SECCOMP_PROFILE).unwrap()
    }

    fn rules() -> Vec<serde_json::Value> {
        profile()["syscalls"].as_array().unwrap().clone()
    }

    fn names(rule: &serde_json::Value) -> Vec<&str> {
        rule["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect()
    }

    /// What the profile answers `syscall` with a first argument of `arg0`, evaluated the way
    /// libseccomp does (the comparisons of one rule must all hold; any matching rule applies):
    /// `None` for the default action (allow), `Some(errno)` for a denial.
    fn answer(syscall: &str, arg0: u64) -> Option<u64> {
        let matching: Vec<u64> = rules()
            .iter()
            .filter(|r| names(r).contains(&syscall))
            .filter(|r| {
                r["args"].as_array().into_iter().flatten().all(|c| {
                    assert_eq!(c["index"], 0, "only arg0 is compared: {c}");
                    let (v, v2) = (c["value"].as_u64().unwrap(), c["valueTwo"].as_u64());
                    match c["op"].as_str().unwrap() {
                        "SCMP_CMP_EQ" => arg0 == v,
                        "SCMP_CMP_NE" => arg0 != v,
                        "SCMP_CMP_GT" => arg0 > v,
                        "SCMP_CMP_GE" => arg0 >= v,
                        "SCMP_CMP_LT" => arg0 < v,
                        "SCMP_CMP_LE" => arg0 <= v,
                        "SCMP_CMP_MASKED_EQ" => arg0 & v == v2.unwrap(),
                        op => panic!("unknown comparison {op}"),
                    }
                })
            })
            .map(|r| {
                assert_eq!(r["action"], "SCMP_ACT_ERRNO", "{r}");
                r["errnoRet"].as_u64().unwrap()
            })
            .collect();
        assert!(
            matching.windows(2).all(|w| w[0] == w[1]),
            "{syscall}({arg0:#x}) matches rules with different answers: {matching:?}"
        );
        matching.first().copied()
    }

    #[test]
    fn seccomp_profile_denies_io_uring_and_namespaces() {
        let rules = rules();
        let denied = names(&rules[0]);
        for syscall in [
            "io_uring_setup",
            "unshare",
            "setns",
            "bpf",
            "userfaultfd",
            "keyctl",
            "ptrace",
            "socketcall",
        ] {
            assert!(denied.contains(&syscall), "{syscall} must be denied");
        }
        assert!(rules[0]["args"].is_null(), "denied whatever the arguments");
        // CLONE_NEWUSER, with and without other flags; a plain fork's flags pass.
        assert_eq!(answer("clone", 0x1000_0000), Some(1));
        assert_eq!(answer("clone", 0x1000_0000 | 0x0120_0011), Some(1));
        assert_eq!(answer("clone", 0x0120_0011), None);
        assert_eq!(
            answer("clone3", 0),
            Some(38),
            "ENOSYS: libc falls back to clone"
        );
    }

    #[test]
    fn the_socket_families_a_job_can_open_are_an_allow_list() {
        const EAFNOSUPPORT: u64 = 97;
        let allowed = [1, 2, 10]; // AF_UNIX, AF_INET, AF_INET6
        let high = [
            1 << 32 | 40, // AF_VSOCK with a bit the kernel's `int family` drops
            1 << 32 | 1,
            0x8000_0000,
            u32::MAX as u64,
            u64::MAX,
        ];
        for syscall in ["socket", "socketpair"] {
            for family in (0..=64).chain(high) {
                let expected = (!allowed.contains(&family)).then_some(EAFNOSUPPORT);
                assert_eq!(
                    answer(syscall, family),
                    expected,
                    "{syscall} with family {family:#x}"
                );
            }
        }
    }

    #[test]
    fn the_profile_knows_only_the_x86_64_abi() {
        let profile = profile();
        assert_eq!(
            profile["defaultAction"], "SCMP_ACT_ALLOW",
            "a deny list (docs/security.md)"
        );
        assert_eq!(
            profile["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64"]),
            "an i386 (int $0x80) or x32 system call must hit the bad-architecture action"
        );
        assert!(profile.get("archMap").is_none());
        for rule in rules() {
            let args = rule["args"].as_array().cloned().unwrap_or_default();
            let mut indexes: Vec<u64> = args.iter().map(|c| c["index"].as_u64().unwrap()).collect();
            indexes.dedup();
            assert_eq!(
                indexes.len(),
                args.len(),
                "libseccomp refuses two comparisons of one argument in a rule: {rule}"
            );
        }
    }

    #[test]
    fn masked_paths_keep_the_engines_defaults_and_hide_the_hosts_keyrings() {
        let t = topology();
        let host = container_body(&t.language("python").unwrap(), &t.sandbox, "r1")
            .host_config
            .unwrap();
        let masked = host.masked_paths.unwrap();
        // Setting MaskedPaths replaces the engine's list: every default must still be there.
        for default in [
            "/proc/asound",
            "/proc/acpi",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
        ] {
            assert!(masked.iter().any(|p| p == default), "{default} unmasked");
        }
        assert!(masked.iter().any(|p| p == "/proc/key-users"));
        assert!(
            host.readonly_paths.is_none(),
            "the engine's read-only defaults stay"
        );
    }

    #[test]
    fn the_main_process_follows_the_exec_mode() {
        let t = topology();
        let mut lang = t.language("python").unwrap();
        lang.exec_mode = ExecMode::Agent;
        let agent = container_body(&lang, &t.sandbox, "r1");
        assert_eq!(agent.cmd.as_ref().unwrap()[1], "agent");
        assert_eq!(agent.open_stdin, Some(true));
        assert_eq!(
            agent.stdin_once,
            Some(true),
            "a lost runner stops the agent"
        );
        let log = agent.host_config.unwrap().log_config.unwrap();
        assert_eq!(
            log.typ.as_deref(),
            Some("none"),
            "job output never hits the disk"
        );

        lang.exec_mode = ExecMode::Exec;
        let exec = container_body(&lang, &t.sandbox, "r1");
        assert_eq!(exec.cmd.as_ref().unwrap()[1], "idle");
        assert_eq!(exec.open_stdin, Some(false));
        // The isolation is the same in both modes.
        let (a, e) = (
            container_body(&t.language("python").unwrap(), &t.sandbox, "r1"),
            exec,
        );
        let (a, e) = (a.host_config.unwrap(), e.host_config.unwrap());
        assert_eq!(a.cap_add, e.cap_add);
        assert_eq!(a.security_opt, e.security_opt);
        assert_eq!(a.readonly_rootfs, e.readonly_rootfs);
        assert_eq!(a.pids_limit, e.pids_limit);
        assert_eq!(a.memory, e.memory);
        assert_eq!(a.init, e.init);
    }

    #[test]
    fn the_container_admits_the_largest_step_of_its_language() {
        let t = topology();
        let mut c = t.language("c").unwrap();
        c.compile_limits.memory_mb = 2000;
        assert_eq!(container_memory_mb(&c), 2000 + CONTAINER_HEADROOM_MB);
        let mut py = t.language("python").unwrap();
        py.max_limits.memory_mb = 900;
        py.compile_limits.memory_mb = 5000;
        assert_eq!(
            container_memory_mb(&py),
            900 + CONTAINER_HEADROOM_MB,
            "an interpreted language has no compile step"
        );
    }

    #[test]
    fn optional_capabilities_follow_the_hosts_bounding_set() {
        let mut sandbox = topology().sandbox;
        sandbox.optional_capabilities = vec!["SYS_RESOURCE".into(), "NO_SUCH_CAP".into()];
        // This machine's root: everything but SYS_RESOURCE (bit 24).
        let status = "CapInh:\t0000000000000000\nCapBnd:\t000001fffeffffff\n";
        let bounding = bounding_set(status).unwrap();
        let (granted, missing) = grantable_capabilities(&sandbox, bounding);
        assert!(granted.is_empty());
        assert_eq!(missing, vec!["SYS_RESOURCE", "NO_SUCH_CAP"]);
        let (granted, _) = grantable_capabilities(&sandbox, u64::MAX >> 23);
        assert_eq!(granted, vec!["SYS_RESOURCE"]);
        assert_eq!(CAPABILITIES[24], "SYS_RESOURCE");
        assert_eq!(CAPABILITIES[40], "CHECKPOINT_RESTORE");
    }

    #[test]
    fn the_cgroup_goes_below_its_delegated_directory() {
        let t = topology();
        let mut body = container_body(&t.language("python").unwrap(), &t.sandbox, "r1");
        place_cgroup(
            &mut body,
            CgroupPlacement {
                parent: "/rce/r1/x".into(),
                binds: vec!["/sys/fs/cgroup/memory/rce/r1/x:/run/rce/cgroup/memory:rw".into()],
            },
        );
        let host = body.host_config.unwrap();
        assert_eq!(host.cgroup_parent.as_deref(), Some("/rce/r1/x"));
        assert_eq!(host.binds.unwrap().len(), 1);
    }
}
