//! The machine a run measured, for the report: figures mean little without it.

use serde::{Deserialize, Serialize};
use std::process::Command;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub os: String,
    pub docker_server: String,
}

/// Reads /proc, `uname` and `docker version`; what cannot be read is left `unknown`.
pub fn describe() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    Machine {
        cores: cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count(),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map_or("unknown".into(), |(_, m)| m.trim().to_string()),
        memory_gib: crate::proc_stats::parse_status_kb(&meminfo, "MemTotal").unwrap_or(0) as f64
            / (1024.0 * 1024.0),
        kernel: output("uname", &["-sr"]),
        os: os_release
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map_or("unknown".into(), |v| v.trim_matches('"').to_string()),
        docker_server: output("docker", &["version", "--format", "{{.Server.Version}}"]),
    }
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

impl Machine {
    /// One line: "2 cores (model), 23.5 GiB, Linux 6.1, Debian 12, Docker Engine 20.10.24".
    pub fn summary(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB RAM, {}, {}, Docker Engine {}",
            self.cores, self.cpu_model, self.memory_gib, self.kernel, self.os, self.docker_server
        )
    }
}
