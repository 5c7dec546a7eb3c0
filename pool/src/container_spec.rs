//! The hardened shape of every warm container, as a pure function of the language and the
//! sandbox settings in `topology.yaml` (design.md, "Sandbox model").

use crate::labels;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use rce_protocol::limits::Limits;
use rce_protocol::shim::{SHIM_PATH, WORKSPACE_ROOT};
use rce_protocol::topology::{ExecMode, Language, Sandbox};
use std::collections::HashMap;

/// The seccomp profile every container runs under (see docs/security.md): the engine's default
/// (Docker 20.10) still allows io_uring, so the project ships its own.
pub const SECCOMP_PROFILE: &str = include_str!("../seccomp/rce.json");

/// Processes the container needs besides the job's: docker-init, the idle shim, the exec'd shim
/// and its kill/cleanup helpers.
pub const PIDS_OVERHEAD: u64 = 16;

/// The cgroup memory a job needs. Compile and run share one container, so the cgroup must admit
/// the larger of the two; the shim holds the run step to its own limit by watching RSS.
pub fn container_memory_mb(language: &Language, run: &Limits) -> u64 {
    if language.is_compiled() {
        run.memory_mb.max(language.compile_limits.memory_mb)
    } else {
        run.memory_mb
    }
}

/// The create request for one warm container.
pub fn container_body(
    language: &Language,
    sandbox: &Sandbox,
    runner_id: &str,
) -> ContainerCreateBody {
    let memory = (container_memory_mb(language, &language.default_limits) as i64) << 20;
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
        assert_eq!(host.memory, Some(256 << 20));
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

    #[test]
    fn seccomp_profile_denies_io_uring_and_namespaces() {
        let profile: serde_json::Value = serde_json::from_str(SECCOMP_PROFILE).unwrap();
        let denied: Vec<&str> = profile["syscalls"][0]["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        for syscall in [
            "io_uring_setup",
            "unshare",
            "setns",
            "bpf",
            "userfaultfd",
            "keyctl",
            "ptrace",
        ] {
            assert!(denied.contains(&syscall), "{syscall} must be denied");
        }
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
    fn compiled_languages_admit_the_compiler() {
        let t = topology();
        let c = t.language("c").unwrap();
        assert_eq!(
            container_memory_mb(&c, &c.default_limits),
            c.compile_limits.memory_mb
        );
        let py = t.language("python").unwrap();
        let mut big = py.default_limits;
        big.memory_mb = 900;
        assert_eq!(container_memory_mb(&py, &big), 900);
    }
}
