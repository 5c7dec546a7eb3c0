//! Finding the job's processes through /proc. Every process of the job's uid is part of the job,
//! however it was started (background, setsid, double fork), so the shim looks them up by real
//! uid rather than by ancestry: that is what it kills and checks is gone before declaring the
//! container clean. (What they cost is measured by the step's cgroup, not here: see `cgroup`.)

use std::fs;

/// The real uid in a /proc/<pid>/status (first number of `Uid:`). Absent for garbage.
pub fn real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Pids of every process (thread-group leader) whose real uid is `uid`.
pub fn scan_uid(uid: u32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            // Vanished between readdir and read: not a process any more.
            fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|t| real_uid(&t))
                == Some(uid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_uid_is_the_first_column() {
        let status = "Name:\tpython3\nUmask:\t0077\nState:\tR (running)\nTgid:\t42\n\
            Pid:\t42\nPPid:\t1\nUid:\t20001\t0\t0\t0\nGid:\t20001\t20001\t20001\t20001\n";
        assert_eq!(real_uid(status), Some(20001));
        let zombie = "Name:\tsh\nState:\tZ (zombie)\nUid:\t5\t0\t0\t0\n";
        assert_eq!(real_uid(zombie), Some(5));
    }

    #[test]
    fn status_without_uid_is_rejected() {
        assert_eq!(real_uid("Name:\tx\nVmRSS:\t1 kB\n"), None);
        assert_eq!(real_uid("Uid:\tx\n"), None);
    }
}
