//! What the kernel says processes cost: CPU from `/proc/<pid>/stat` and `/proc/stat`, memory
//! from `/proc/<pid>/status`. Read before and after a cell, the differences are its CPU cost.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::process::Command;

/// Clock ticks per second of the CPU times in /proc (`sysconf(_SC_CLK_TCK)`), asked of `getconf`
/// so the bench needs no unsafe FFI; 100 is what Linux reports everywhere in practice.
pub fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A process's own CPU time so far in clock ticks (not its reaped children's), `None` once gone.
pub fn process_cpu_ticks(pid: u32) -> Option<u64> {
    parse_stat_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

pub fn process_status_kb(pid: u32, key: &str) -> Option<u64> {
    parse_status_kb(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}

/// Busy clock ticks of the whole machine from the `cpu` line of `/proc/stat`: user, nice,
/// system, irq, softirq and steal (guest time is already inside user).
pub fn parse_host_busy_ticks(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

pub fn host_busy_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| parse_host_busy_ticks(&s))
        .unwrap_or(0)
}

/// Whether a process name (`/proc/<pid>/comm`, at most 15 bytes) is part of the Docker engine:
/// the daemon, containerd, and the per-container shims (`containerd-shim-runc-v2` shows as
/// `containerd-shim`).
pub fn is_docker_daemon(comm: &str) -> bool {
    matches!(comm, "dockerd" | "containerd") || comm.starts_with("containerd-shim")
}

/// Own CPU ticks of every Docker engine process alive now, by pid.
pub fn docker_daemon_ticks() -> HashMap<u32, u64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| is_docker_daemon(c.trim_end()))
        })
        .filter_map(|pid| Some((pid, process_cpu_ticks(pid)?)))
        .collect()
}

/// The CPU counters of one moment.
#[derive(Clone, Debug)]
pub struct CpuSnapshot {
    /// api + runner, own time.
    service: u64,
    docker: HashMap<u32, u64>,
    host: u64,
}

/// CPU spent between two snapshots, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSpent {
    /// api + runner processes.
    pub service_ms: f64,
    /// dockerd, containerd and the containerd shims (own time; short-lived shims that exited
    /// in between, as in the naive paths, are missed: the host figure has them).
    pub docker_ms: f64,
    /// The whole machine: services, engine, runc, the programs, the bench itself.
    pub host_ms: f64,
}

impl CpuSpent {
    pub fn per_job(&self, jobs: usize) -> CpuSpent {
        let n = jobs.max(1) as f64;
        CpuSpent {
            service_ms: self.service_ms / n,
            docker_ms: self.docker_ms / n,
            host_ms: self.host_ms / n,
        }
    }
}

/// Takes snapshots of the api's and runner's CPU, the engine's and the machine's.
#[derive(Clone, Debug)]
pub struct CpuMeter {
    pids: Vec<u32>,
    ms_per_tick: f64,
}

impl CpuMeter {
    pub fn new(service_pids: Vec<u32>) -> Self {
        Self {
            pids: service_pids,
            ms_per_tick: 1000.0 / clock_ticks_per_sec() as f64,
        }
    }

    pub fn snapshot(&self) -> CpuSnapshot {
        CpuSnapshot {
            service: self.pids.iter().filter_map(|&p| process_cpu_ticks(p)).sum(),
            docker: docker_daemon_ticks(),
            host: host_busy_ticks(),
        }
    }

    /// From `before` to now. An engine process that appeared in between counts whole.
    pub fn since(&self, before: &CpuSnapshot) -> CpuSpent {
        let now = self.snapshot();
        let docker: u64 = now
            .docker
            .iter()
            .map(|(pid, t)| t.saturating_sub(before.docker.get(pid).copied().unwrap_or(0)))
            .sum();
        CpuSpent {
            service_ms: now.service.saturating_sub(before.service) as f64 * self.ms_per_tick,
            docker_ms: docker as f64 * self.ms_per_tick,
            host_ms: now.host.saturating_sub(before.host) as f64 * self.ms_per_tick,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_a_tricky_command_name() {
        let line = "4242 (rce (api) x) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    1234 567 0 0 20 0 12 0 100 123456789 2048 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(line), Some(1234 + 567));
        assert_eq!(parse_stat_cpu_ticks("4242 (short) S 1"), None);
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn own_stat_is_readable() {
        assert!(process_cpu_ticks(std::process::id()).is_some());
        assert!(process_status_kb(std::process::id(), "VmRSS").unwrap() > 0);
    }

    #[test]
    fn status_fields_in_kib() {
        let status =
            "Name:\trce-api\nVmPeak:\t  900 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(51234));
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(40000));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn host_busy_skips_idle_and_iowait() {
        let stat = "cpu  100 5 50 9000 40 3 2 1 0 0\ncpu0 50 2 25 4500 20 1 1 0 0 0\n";
        assert_eq!(parse_host_busy_ticks(stat), Some(100 + 5 + 50 + 3 + 2 + 1));
    }

    #[test]
    fn engine_process_names() {
        assert!(is_docker_daemon("dockerd"));
        assert!(is_docker_daemon("containerd"));
        assert!(is_docker_daemon("containerd-shim"));
        assert!(
            !is_docker_daemon("docker"),
            "the CLI is the client, not the engine"
        );
        assert!(!is_docker_daemon("rce-runner"));
    }
}
