//! The container's resting state, and the check that a job returned it there. Killing the uid's
//! processes and removing its files are the cleanup; this is the independent proof: counts that
//! do not care how something was left behind (a file under a name the sweep missed, space held
//! by a process of another uid, an extra process of any uid) all show up as a difference.

use rce_protocol::shim::{Baseline, MountUsage, WRITABLE_MOUNTS};
use std::ffi::CString;
use std::fs;

/// Processes in the container, as thread-group leaders in /proc.
pub fn process_count() -> u32 {
    fs::read_dir("/proc").map_or(0, |dir| {
        dir.flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count() as u32
    })
}

/// Unix sockets in a `/proc/net/unix` listing (a header line, then one socket per line).
pub fn count_unix_sockets(listing: &str) -> u32 {
    listing
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count() as u32
}

/// Unix sockets in the container's network namespace; `u32::MAX` when unreadable, so that a
/// listing that cannot be read never passes for one back at rest.
fn unix_sockets() -> u32 {
    fs::read_to_string("/proc/net/unix").map_or(u32::MAX, |t| count_unix_sockets(&t))
}

/// Measures the container now. `processes` counts the caller too.
pub fn measure() -> Baseline {
    let mounts = WRITABLE_MOUNTS
        .iter()
        .filter_map(|path| {
            let c = CString::new(*path).ok()?;
            let (used_blocks, used_inodes) = crate::sys::fs_usage(&c).ok()?;
            Some(MountUsage {
                path: (*path).to_string(),
                used_blocks,
                used_inodes,
            })
        })
        .collect();
    Baseline {
        processes: process_count(),
        mounts,
        unix_sockets: unix_sockets(),
    }
}

/// What differs between the resting state and `now` (measured by a process that is not part of
/// the resting state, hence one more process).
pub fn differences(rest: &Baseline, now: &Baseline) -> Vec<String> {
    let mut problems = Vec::new();
    let processes = now.processes.saturating_sub(1);
    if processes != rest.processes {
        problems.push(format!(
            "{processes} process(es) in the container, {} at rest",
            rest.processes
        ));
    }
    if now.unix_sockets > rest.unix_sockets {
        problems.push(format!(
            "{} unix socket(s) in the container, {} at rest",
            now.unix_sockets, rest.unix_sockets
        ));
    }
    for before in &rest.mounts {
        match now.mounts.iter().find(|m| m.path == before.path) {
            None => problems.push(format!("{} could not be measured", before.path)),
            Some(after) => {
                if after.used_blocks != before.used_blocks {
                    problems.push(format!(
                        "{}: {} blocks used, {} at rest",
                        before.path, after.used_blocks, before.used_blocks
                    ));
                }
                if after.used_inodes != before.used_inodes {
                    problems.push(format!(
                        "{}: {} inodes used, {} at rest",
                        before.path, after.used_inodes, before.used_inodes
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(processes: u32, work: (u64, u64)) -> Baseline {
        Baseline {
            processes,
            mounts: vec![
                MountUsage {
                    path: "/work".into(),
                    used_blocks: work.0,
                    used_inodes: work.1,
                },
                MountUsage {
                    path: "/tmp".into(),
                    used_blocks: 0,
                    used_inodes: 1,
                },
            ],
            unix_sockets: 0,
        }
    }

    #[test]
    fn back_at_rest_when_only_the_measurer_is_extra() {
        assert!(differences(&state(2, (0, 1)), &state(3, (0, 1))).is_empty());
    }

    #[test]
    fn a_leftover_process_is_found() {
        let d = differences(&state(2, (0, 1)), &state(4, (0, 1)));
        assert_eq!(d, vec!["3 process(es) in the container, 2 at rest"]);
    }

    #[test]
    fn held_space_and_inodes_are_found() {
        let d = differences(&state(2, (0, 1)), &state(3, (256, 3)));
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("/work: 256 blocks"));
        assert!(d[1].contains("/work: 3 inodes"));
    }

    #[test]
    fn sockets_that_outlived_their_job_are_found() {
        let mut now = state(3, (0, 1));
        now.unix_sockets = 2;
        assert_eq!(
            differences(&state(2, (0, 1)), &now),
            vec!["2 unix socket(s) in the container, 0 at rest"]
        );
        let listing = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00000000 0001 03 31337 @hidden\n\
            0000000000000000: 00000002 00000000 00000000 0001 03 31338\n";
        assert_eq!(count_unix_sockets(listing), 2);
        assert_eq!(count_unix_sockets("Num RefCount Protocol\n"), 0);
    }

    #[test]
    fn a_mount_that_cannot_be_measured_is_a_problem() {
        let mut now = state(3, (0, 1));
        now.mounts.remove(1);
        assert_eq!(
            differences(&state(2, (0, 1)), &now),
            vec!["/tmp could not be measured"]
        );
    }
}
