//! The container's hard memory limit is its cgroup: when a step goes over it the kernel's OOM
//! killer fires inside the container and the only trace is the cgroup's `oom_kill` counter. The
//! shim reads it before and after each step; a rise means the step hit its memory limit.

use std::fs;

/// cgroup v2 (private cgroup namespace: the container's own cgroup is the root of the mount).
const V2_EVENTS: &str = "/sys/fs/cgroup/memory.events";
/// cgroup v1 (the container's memory cgroup is mounted here).
const V1_OOM_CONTROL: &str = "/sys/fs/cgroup/memory/memory.oom_control";

/// The value of the `oom_kill N` line of `memory.events` (v2) or `memory.oom_control` (v1).
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("oom_kill"), Some(n)) => n.parse().ok(),
            _ => None,
        }
    })
}

/// The container's OOM-kill count so far; 0 when no cgroup file is readable.
pub fn oom_kills() -> u64 {
    [V2_EVENTS, V1_OOM_CONTROL]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok().and_then(|t| parse_oom_kill(&t)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_memory_events() {
        let t = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(t), Some(2));
    }

    #[test]
    fn v1_oom_control() {
        let t = "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n";
        assert_eq!(parse_oom_kill(t), Some(7));
    }

    #[test]
    fn missing_or_garbled() {
        assert_eq!(parse_oom_kill("oom_kill_disable 0\nunder_oom 0\n"), None);
        assert_eq!(parse_oom_kill("oom_kill x\n"), None);
        assert_eq!(parse_oom_kill(""), None);
    }
}
