//! Finding and measuring the job's processes through /proc. Every process of the job's uid is
//! part of the job, however it was started (background, setsid, double fork), so the shim looks
//! them up by real uid rather than by ancestry: that is what it kills, sums CPU and memory over,
//! and checks is gone before declaring the container clean.

use std::fs;

/// One process of the job's uid at the moment of the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: i32,
    /// utime + stime + cutime + cstime, in clock ticks: the process's own CPU and that of the
    /// children it has already waited for (which are no longer in /proc themselves).
    pub cpu_ticks: u64,
    /// Memory this process holds on its own, in KiB (see [`parse_status`]; 0 for zombies).
    pub rss_kb: u64,
}

/// The fields of /proc/<pid>/status the shim needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub real_uid: u32,
    pub rss_kb: u64,
}

/// Parses /proc/<pid>/status: the real uid (first number of `Uid:`) and the process's own
/// memory, `RssAnon + RssShmem`. Not `VmRSS`: that includes file-backed pages (the interpreter,
/// shared libraries) which every process of a forking program shares, so summing it over the
/// job's processes would count them once per process and stop honest multi-process programs.
/// Kernels without `RssAnon` fall back to `VmRSS`. Absent for zombies and kernel threads: 0.
pub fn parse_status(text: &str) -> Option<Status> {
    let mut real_uid = None;
    let (mut vm_rss, mut anon, mut shmem) = (0, None, 0);
    let kb = |rest: &str| -> Option<u64> { rest.split_whitespace().next()?.parse().ok() };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            if real_uid.is_none() {
                real_uid = rest.split_whitespace().next()?.parse().ok();
            }
        } else if let Some(rest) = line.strip_prefix("VmRSS:") {
            vm_rss = kb(rest)?;
        } else if let Some(rest) = line.strip_prefix("RssAnon:") {
            anon = Some(kb(rest)?);
        } else if let Some(rest) = line.strip_prefix("RssShmem:") {
            shmem = kb(rest)?;
        }
    }
    Some(Status {
        real_uid: real_uid?,
        rss_kb: anon.map_or(vm_rss, |anon| anon + shmem),
    })
}

/// The fields of /proc/<pid>/stat the shim needs, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub utime: u64,
    pub stime: u64,
    pub cutime: u64,
    pub cstime: u64,
}

/// Parses /proc/<pid>/stat. The command name (field 2) may contain spaces and parentheses, so
/// fields are counted after the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    let num = |n: usize| -> Option<u64> {
        let v: i64 = fields.get(n - 3)?.parse().ok()?;
        Some(v.max(0) as u64)
    };
    Some(Stat {
        utime: num(14)?,
        stime: num(15)?,
        cutime: num(16)?,
        cstime: num(17)?,
    })
}

/// Every process (thread-group leader) whose real uid is `uid`.
pub fn scan_uid(uid: u32) -> Vec<ProcInfo> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        // Vanished between readdir and read: not a process any more.
        let Some(status) = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|t| parse_status(&t))
        else {
            continue;
        };
        if status.real_uid != uid {
            continue;
        }
        let cpu_ticks = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
            .map_or(0, |s| s.utime + s.stime + s.cutime + s.cstime);
        found.push(ProcInfo {
            pid,
            cpu_ticks,
            rss_kb: status.rss_kb,
        });
    }
    found
}

/// CPU (ms) and resident memory (KiB) summed over `procs`.
pub fn totals(procs: &[ProcInfo], ticks_per_sec: u64) -> (u64, u64) {
    let ticks: u64 = procs.iter().map(|p| p.cpu_ticks).sum();
    let rss: u64 = procs.iter().map(|p| p.rss_kb).sum();
    (ticks * 1000 / ticks_per_sec.max(1), rss)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tpython3\nUmask:\t0077\nState:\tR (running)\nTgid:\t42\n\
        Pid:\t42\nPPid:\t1\nUid:\t20001\t20001\t20001\t20001\nGid:\t20001\t20001\t20001\t20001\n\
        VmPeak:\t   20000 kB\nVmRSS:\t    9123 kB\nThreads:\t1\n";

    #[test]
    fn status_gives_real_uid_and_rss() {
        assert_eq!(
            parse_status(STATUS),
            Some(Status {
                real_uid: 20001,
                rss_kb: 9123
            })
        );
    }

    #[test]
    fn status_counts_private_memory_only() {
        let text = "Uid:\t20001\t20001\t20001\t20001\nVmRSS:\t 9000 kB\n\
                    RssAnon:\t 2000 kB\nRssFile:\t 6500 kB\nRssShmem:\t 500 kB\n";
        assert_eq!(parse_status(text).unwrap().rss_kb, 2500);
    }

    #[test]
    fn status_of_zombie_has_no_rss() {
        let z = "Name:\tsh\nState:\tZ (zombie)\nUid:\t5\t0\t0\t0\n";
        assert_eq!(
            parse_status(z),
            Some(Status {
                real_uid: 5,
                rss_kb: 0
            })
        );
    }

    #[test]
    fn status_without_uid_is_rejected() {
        assert_eq!(parse_status("Name:\tx\nVmRSS:\t1 kB\n"), None);
    }

    #[test]
    fn status_real_uid_is_first_column() {
        let s = "Uid:\t1000\t0\t0\t0\n";
        assert_eq!(parse_status(s).unwrap().real_uid, 1000);
    }

    #[test]
    fn stat_with_tricky_comm() {
        let line = "1234 (a b) (c)) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 30 7 3 20 0 1 0 \
                    999 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 250,
                stime: 30,
                cutime: 7,
                cstime: 3
            })
        );
    }

    #[test]
    fn stat_truncated_is_rejected() {
        assert_eq!(parse_stat("1 (x) R 0 1 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn totals_convert_ticks() {
        let p = |cpu_ticks, rss_kb| ProcInfo {
            pid: 1,
            cpu_ticks,
            rss_kb,
        };
        assert_eq!(totals(&[p(150, 1000), p(50, 24)], 100), (2000, 1024));
        assert_eq!(totals(&[], 100), (0, 0));
    }
}
