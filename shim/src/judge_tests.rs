//! Judge mode inside the container: the program the steps before built is frozen
//! ([`Artifact`]), then the run step runs once per test, each time in a fresh workspace holding
//! only the artifact's read-only links, under the job's uid and the test's own cgroup and limits.
//!
//! Between two tests comes everything that comes between two jobs: every process of the uid
//! killed, the workspace and the uid's files in the shared directories removed, its IPC objects
//! removed, the test's memory uncharged, and the container measured back at its rest (with the
//! artifact). Anything left stops the tests there: no process, file, IPC object or socket of one
//! test can reach the next. A test's input reaches it only through its stdin pipe, from the
//! shim's memory; expected outputs never enter the container.

use crate::artifact::Artifact;
use crate::baseline;
use crate::cgroup::{ContainerCgroup, StepCgroup, LEFTOVER_SLACK_BYTES};
use crate::cleanup;
use crate::control::Control;
use crate::job::{back_at_rest, memory_released};
use crate::messages::MessageWriter;
use crate::reaper;
use crate::step;
use crate::workspace::{self, Workspace};
use rce_protocol::bytes::Base64Bytes;
use rce_protocol::shim::{Baseline, ShimStep, ShimTest, REPORT_FILE_BYTES, WORKSPACE_ROOT};
use std::path::Path;

/// How the tests went, apart from their outcomes (sent as they end).
#[derive(Debug, Default)]
pub struct TestsReport {
    /// The platform's failures (setup, leftovers): the job's error.
    pub errors: Vec<String>,
    /// False when something of a test could not be removed: the container must go.
    pub clean: bool,
}

/// Runs `run` once per test after the steps before it left their program in `built` (which is
/// cleaned up here, before the first test). `first_cgroup` numbers the tests' cgroups after the
/// steps'. `rest` is the container's resting state, if the runner sent it.
#[allow(clippy::too_many_arguments)]
pub fn run_tests(
    built: &Workspace,
    uid: u32,
    run: &ShimStep,
    tests: Vec<ShimTest>,
    stop_on_failure: bool,
    container: &ContainerCgroup,
    first_cgroup: usize,
    control: &mut Control,
    out: &mut MessageWriter,
    rest: Option<&Baseline>,
) -> TestsReport {
    let mut report = TestsReport {
        errors: Vec::new(),
        clean: true,
    };
    // The build's processes go first; then its files are frozen, and its workspace is cleaned
    // up as a job's would be: the tests start from the artifact alone.
    report.clean &= reaper::kill_all_if_any(uid);
    let artifact = Artifact::freeze(&built.path, Path::new(WORKSPACE_ROOT), uid);
    let left = cleanup::cleanup(uid, &built.path);
    report.clean &= left.clean();
    report.errors.extend(
        left.problems
            .iter()
            .map(|p| format!("after the build: {p}")),
    );
    let artifact = match artifact {
        Ok(a) => a,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    // At rest with the artifact: what the container must look like between two tests.
    match report.clean.then(|| rest_with_artifact(rest)).flatten() {
        None => {
            report.clean = false;
            report
                .errors
                .push("the container was not at rest after the build".into());
        }
        Some(between) => {
            // The step cgroup a test leaves, clean, for the next one (`StepCgroup::reuse_for`).
            let mut meter: Option<StepCgroup> = None;
            for (index, test) in tests.into_iter().enumerate() {
                control.check_now();
                if control.cancelled() || control.tests_stopped() {
                    break;
                }
                match run_one(
                    index,
                    test,
                    &artifact,
                    uid,
                    run,
                    container,
                    first_cgroup + index,
                    &mut meter,
                    control,
                    out,
                    &between,
                ) {
                    Ok(passed) if passed || !stop_on_failure => {}
                    Ok(_) => break,
                    Err(e) => {
                        report.clean = false;
                        report.errors.push(format!("test {}: {e}", index + 1));
                        break;
                    }
                }
            }
            if let Some(cg) = meter {
                if !memory_released(vec![cg]) {
                    report.clean = false;
                    report
                        .errors
                        .push("the tests' cgroup kept memory charged".into());
                }
            }
        }
    }
    if let Err(e) = artifact.remove() {
        report.clean = false;
        report.errors.push(e);
    }
    report
}

/// The resting state with the artifact in place, or `None` when the container is not at rest
/// apart from it (then no test runs in it): the workspace filesystem's usage is taken as it is
/// now (the artifact's blocks and inodes); everything else must equal the resting state.
fn rest_with_artifact(rest: Option<&Baseline>) -> Option<Baseline> {
    let measured = baseline::measure();
    if let Some(rest) = rest {
        let mut expected = rest.clone();
        for mount in &mut expected.mounts {
            if let Some(now) = measured
                .mounts
                .iter()
                .find(|m| m.path == WORKSPACE_ROOT && m.path == mount.path)
            {
                *mount = now.clone();
            }
        }
        let problems = baseline::differences(&expected, &measured);
        for p in &problems {
            eprintln!("rce-shim: not at rest before the tests: {p}");
        }
        if !problems.is_empty() {
            return None;
        }
    }
    // A resting state counts no measuring process; this one was counted.
    let mut between = measured;
    between.processes = between.processes.saturating_sub(1);
    Some(between)
}

/// Runs test `index` and leaves the container as it was before it: `Ok(true)` when its
/// program exited 0 by itself, `Err` when the container could not be brought back.
#[allow(clippy::too_many_arguments)]
fn run_one(
    index: usize,
    mut test: ShimTest,
    artifact: &Artifact,
    uid: u32,
    run: &ShimStep,
    container: &ContainerCgroup,
    cgroup_index: usize,
    meter: &mut Option<StepCgroup>,
    control: &mut Control,
    out: &mut MessageWriter,
    between: &Baseline,
) -> Result<bool, String> {
    let ws =
        workspace::create_then(uid, &test.files, |dir| artifact.link_into(dir)).map_err(|e| {
            if let Some(p) = &e.partial {
                let _ = workspace::remove_partial(p);
            }
            format!("workspace: {}", e.message)
        })?;
    let mut cgroups = Vec::new();
    let mut outcome = None;
    let mut passed = false;
    let ran: Result<(), String> = (|| {
        // The previous test's cgroup when it can be reset for this one, else a new one (the
        // old one, already checked clean, goes).
        let reused = match meter.take() {
            Some(mut cg) => {
                if cg.reuse_for(&test.limits) {
                    Some(cg)
                } else {
                    cg.remove().map_err(|e| format!("cgroup: {e}"))?;
                    None
                }
            }
            None => None,
        };
        let mut cg = match reused {
            Some(cg) => cg,
            None => container
                .create_step(cgroup_index, &test.limits)
                .map_err(|e| format!("cgroup: {e}"))?,
        };
        let step = ShimStep {
            name: run.name,
            argv: run.argv.clone(),
            env: run.env.clone(),
            stdin: std::mem::take(&mut test.stdin),
            limits: test.limits,
            merge_stderr: run.merge_stderr,
        };
        // Tests stream no live output: their outcome carries it.
        let report = step::run(
            &ws,
            uid,
            &step,
            &mut cg,
            control,
            &mut MessageWriter::silent(),
        );
        cgroups.push(cg);
        passed = step::succeeded(&report.outcome);
        let mut finished = report.outcome;
        if let Some(name) = &test.report_file {
            finished.stderr = Base64Bytes(read_report(&ws.path, name, uid));
        }
        outcome = Some(finished);
        match report.internal_error {
            Some(e) => Err(e),
            None if !report.all_killed => Err("processes survived the kill".into()),
            None => Ok(()),
        }
    })();
    // A step that ended normally has just proven that nothing of the uid is left
    // (`reaper::kill_remaining`); only after a failure is it looked for again.
    let step_left_nothing = ran.is_ok();
    let internal = ran.err();
    if let Some(outcome) = outcome {
        out.test(index, outcome);
    }
    let killed = step_left_nothing || reaper::kill_all_if_any(uid);
    let flat = killed
        .then(|| cleanup::cleanup_flat(uid, &ws.path))
        .flatten();
    let left = flat.unwrap_or_else(|| cleanup::cleanup(uid, &ws.path));
    // A cgroup that gave its memory back meters the next test; one that did not is removed
    // (and the tests stop).
    let released = match cgroups.pop() {
        Some(cg)
            if cg
                .leftover_bytes()
                .is_some_and(|b| b <= LEFTOVER_SLACK_BYTES) =>
        {
            *meter = Some(cg);
            true
        }
        Some(cg) => memory_released(vec![cg]),
        None => true,
    };
    let at_rest = back_at_rest(Some(between));
    if let Some(e) = internal {
        return Err(e);
    }
    if !(killed && left.clean() && released && at_rest) {
        let mut why = left.problems;
        if !killed {
            why.push("processes of the uid could not be killed".into());
        }
        if !released {
            why.push("memory stayed charged".into());
        }
        if !at_rest {
            why.push("the container is not back at rest".into());
        }
        return Err(format!("not clean after the test: {}", why.join("; ")));
    }
    Ok(passed)
}

/// The first [`REPORT_FILE_BYTES`] of file `name` in the test's workspace `dir`, which its
/// program (running as `uid`, all of whose processes are gone) may have written. Only a regular
/// file of one link that `uid` owns is read, without following a link: a program cannot make
/// the shim read anything but its own report. The shim holds no CAP_DAC_OVERRIDE, so it takes
/// the workspace and the file over (CAP_CHOWN) to read it, as it does the build's files, and
/// hands the workspace back for its cleanup. Empty when there is none.
fn read_report(dir: &Path, name: &str, uid: u32) -> Vec<u8> {
    if workspace::validate_name(name).is_err()
        || std::os::unix::fs::lchown(dir, Some(0), Some(0)).is_err()
    {
        return Vec::new();
    }
    let report = read_own_file(&dir.join(name), uid);
    if let Err(e) = std::os::unix::fs::chown(dir, Some(uid), Some(uid)) {
        eprintln!("rce-shim: handing the workspace back after its report: {e}");
    }
    report
}

fn read_own_file(path: &Path, uid: u32) -> Vec<u8> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.uid() == uid && m.nlink() == 1 => {}
        _ => return Vec::new(),
    }
    if std::os::unix::fs::lchown(path, Some(0), Some(0)).is_err() {
        return Vec::new();
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let Ok(file) = opened else {
        return Vec::new();
    };
    let mut bytes = Vec::new();
    let _ = file.take(REPORT_FILE_BYTES as u64).read_to_end(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_read_only_from_a_file_the_uid_owns() {
        let dir = std::env::temp_dir().join(format!("rce-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("judgemessage.txt"), "hello").unwrap();
        let me = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(dir.join("judgemessage.txt")).unwrap(),
        );
        assert!(read_report(&dir, "judgemessage.txt", me + 1).is_empty());
        assert_eq!(read_report(&dir, "judgemessage.txt", me), b"hello");
        std::os::unix::fs::symlink(dir.join("judgemessage.txt"), dir.join("link")).unwrap();
        assert!(read_report(&dir, "link", me).is_empty());
        assert!(read_report(&dir, "../etc", me).is_empty());
        // A hard link to someone's file (here, one outside the workspace) is not a report.
        let outside = dir.with_extension("outside");
        std::fs::write(&outside, "secret").unwrap();
        std::fs::hard_link(&outside, dir.join("hard")).unwrap();
        assert!(read_report(&dir, "hard", me).is_empty());
        std::fs::remove_file(&outside).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
