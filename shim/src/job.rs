//! One job (`rce-shim exec`, or the agent's forked child): parse the job, build the workspace,
//! run the steps in order, each in a cgroup of its own (until one fails or the job is
//! cancelled), report the outcome, end every process of the uid, remove what the job left, check
//! that nothing of it is still charged to its cgroups, and produce the record. Every failure
//! becomes part of the record (the runner must always get one); the steps print their live
//! messages as they go.

use crate::baseline;
use crate::cgroup::{self, ContainerCgroup, StepCgroup};
use crate::cleanup;
use crate::control::Control;
use crate::judge_tests;
use crate::messages::MessageWriter;
use crate::reaper;
use crate::step;
use crate::sys;
use crate::workspace;
use rce_protocol::shim::{Baseline, ShimJob, ShimRecord};
use rce_protocol::SCHEMA_VERSION;
use std::os::fd::OwnedFd;

/// Uids below this are system accounts (and 0 is root): a job never runs as one.
pub const MIN_UID: u32 = 1000;

/// Parses the job, or returns the job id (when it can be found) and why it is unusable.
pub fn parse(input: &[u8]) -> Result<ShimJob, (String, String)> {
    match serde_json::from_slice::<ShimJob>(input) {
        Ok(job) if job.schema != SCHEMA_VERSION => Err((
            job.job_id,
            format!(
                "job schema {} is not supported (expected {SCHEMA_VERSION})",
                job.schema
            ),
        )),
        Ok(job) => Ok(job),
        Err(e) => {
            let id = serde_json::from_slice::<serde_json::Value>(input)
                .ok()
                .and_then(|v| v.get("job_id")?.as_str().map(str::to_string))
                .unwrap_or_default();
            Err((id, format!("invalid job: {e}")))
        }
    }
}

/// Why `uid` may not run a job, or Ok.
pub fn check_uid(uid: u32) -> Result<(), String> {
    // (uid_t)-1 means "unchanged" to the set*id calls; > i32::MAX is also refused by some tools.
    if uid < MIN_UID || uid > i32::MAX as u32 {
        return Err(format!("refusing to run a job as uid {uid}"));
    }
    Ok(())
}

fn failed(job_id: String, error: String, clean: bool) -> ShimRecord {
    ShimRecord {
        tests: Vec::new(),
        job_id,
        steps: Vec::new(),
        clean,
        error: Some(error),
    }
}

/// Runs the job in `input` and returns its record. `channel` is the control channel (None when
/// it already ended) and `rest` what it held after the job line.
///
/// Takes the input by value to free it right after parsing: the shim stays small while it forks
/// the steps and runs beside them.
pub fn run(
    input: Vec<u8>,
    channel: Option<OwnedFd>,
    rest: &[u8],
    out: &mut MessageWriter,
) -> ShimRecord {
    let parsed = parse(&input);
    drop(input);
    let mut job = match parsed {
        Ok(job) => job,
        // Nothing ran, so nothing can have been left behind.
        Err((job_id, error)) => return failed(job_id, error, true),
    };
    let mut control = Control::new(channel, rest, job.interactive);
    if let Err(e) = check_uid(job.uid) {
        return failed(job.job_id, e, true);
    }
    let uid = job.uid;
    let container = match ContainerCgroup::find().and_then(|c| c.delegate().map(|()| c)) {
        Ok(c) => c,
        // Without its own cgroup a step could be neither metered nor fenced: run nothing.
        Err(e) => return failed(job.job_id, format!("cgroup: {e}"), true),
    };
    container.remove_stale_steps();
    if let Err(e) = sys::set_child_subreaper() {
        eprintln!("rce-shim: PR_SET_CHILD_SUBREAPER: {e}");
    }

    // A process of this uid from an earlier job would see this job's workspace.
    if !reaper::kill_all_if_any(uid) {
        return failed(
            job.job_id,
            format!("processes of uid {uid} from an earlier job could not be killed"),
            false,
        );
    }

    let ws = match workspace::create(uid, &job.files) {
        Ok(ws) => ws,
        Err(e) => {
            if let Some(p) = &e.partial {
                if let Err(err) = workspace::remove_partial(p) {
                    eprintln!("rce-shim: removing {}: {err}", p.display());
                }
            }
            let clean = cleanup::verify(uid, e.partial.as_deref()).clean()
                && back_at_rest(job.baseline.as_ref());
            return failed(job.job_id, format!("workspace: {}", e.message), clean);
        }
    };
    // The contents are on disk now; keep the forks below small.
    job.files = Vec::new();

    // Judge mode: the last step is the tests' template, run by `judge_tests` after the others.
    let judged = !job.tests.is_empty() && !job.steps.is_empty();
    let own_steps = job.steps.len() - usize::from(judged);
    let mut outcomes = Vec::with_capacity(job.steps.len());
    let mut errors = Vec::new();
    let mut all_killed = true;
    let mut tests_clean = true;
    let mut cgroups: Vec<StepCgroup> = Vec::with_capacity(job.steps.len());
    let mut built = true;
    for (index, s) in job.steps[..own_steps].iter().enumerate() {
        // A cancellation that came in during setup or the previous step's teardown.
        control.check_now();
        if control.cancelled() {
            break;
        }
        let mut cg = match container.create_step(index, &s.limits) {
            Ok(cg) => cg,
            Err(e) => {
                errors.push(e);
                break;
            }
        };
        let report = step::run(&ws, uid, s, &mut cg, &mut control, out);
        cgroups.push(cg);
        all_killed &= report.all_killed;
        let go_on = step::succeeded(&report.outcome) && report.internal_error.is_none();
        errors.extend(report.internal_error);
        outcomes.push(report.outcome);
        if !go_on {
            built = false;
            break;
        }
    }
    control.check_now();
    if judged && built && errors.is_empty() && !control.cancelled() {
        let report = judge_tests::run_tests(
            &ws,
            uid,
            job.steps.last().expect("judged"),
            std::mem::take(&mut job.tests),
            job.stop_on_failure,
            &container,
            own_steps,
            &mut control,
            out,
            job.baseline.as_ref(),
        );
        tests_clean = report.clean;
        errors.extend(report.errors);
    }

    // Every step ended with its processes killed and reaped, so its figures are final: the
    // runner can publish the result while the workspace is cleaned up and checked.
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    out.outcome(ShimRecord {
        tests: Vec::new(),
        job_id: job.job_id.clone(),
        steps: outcomes,
        clean: false,
        error: error.clone(),
    });

    all_killed &= reaper::kill_all_if_any(uid);
    let left = cleanup::cleanup(uid, &ws.path);
    for p in &left.problems {
        eprintln!("rce-shim: not clean: {p}");
    }
    let released = memory_released(cgroups);
    let at_rest = back_at_rest(job.baseline.as_ref());
    ShimRecord {
        tests: Vec::new(),
        job_id: job.job_id,
        steps: Vec::new(),
        clean: all_killed && tests_clean && left.clean() && released && at_rest,
        error,
    }
}

/// Whether the kernel uncharged everything the job's steps held apart from page cache, then
/// removes their cgroups. Memory still charged after the job's processes are dead and its files
/// removed is held by something that outlived it (a memfd or socket in flight in an SCM_RIGHTS
/// cycle, say): the container must not run another job.
pub(crate) fn memory_released(cgroups: Vec<StepCgroup>) -> bool {
    let mut released = true;
    for (index, cg) in cgroups.into_iter().enumerate() {
        match cg.leftover_bytes() {
            Some(b) if b <= cgroup::LEFTOVER_SLACK_BYTES => {}
            Some(b) => {
                eprintln!("rce-shim: not at rest: step {index} still holds {b} bytes of memory");
                released = false;
            }
            None => {
                eprintln!("rce-shim: not at rest: step {index}'s memory cannot be read");
                released = false;
            }
        }
        if let Err(e) = cg.remove() {
            eprintln!("rce-shim: removing step {index}'s cgroup: {e}");
            released = false;
        }
    }
    released
}

/// Whether the container is back to its resting state (true when there is none to compare with:
/// a runner that does not send one relies on the uid checks alone).
pub(crate) fn back_at_rest(rest: Option<&Baseline>) -> bool {
    let Some(rest) = rest else {
        return true;
    };
    let problems = baseline::differences(rest, &baseline::measure());
    for p in &problems {
        eprintln!("rce-shim: not at rest: {p}");
    }
    problems.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_keeps_the_job_id_when_it_can() {
        let (id, e) = parse(br#"{"job_id":"abc","schema":1}"#).unwrap_err();
        assert_eq!(id, "abc");
        assert!(e.starts_with("invalid job"));
        let (id, _) = parse(b"not json").unwrap_err();
        assert_eq!(id, "");
    }

    #[test]
    fn schema_is_checked() {
        let j = r#"{"schema":2,"job_id":"x","uid":20000,"files":[],"steps":[]}"#;
        let (id, e) = parse(j.as_bytes()).unwrap_err();
        assert_eq!(id, "x");
        assert!(e.contains("schema 2"));
        let j = r#"{"schema":1,"job_id":"x","uid":20000,"files":[],"steps":[]}"#;
        assert!(parse(j.as_bytes()).is_ok());
    }

    #[test]
    fn system_uids_are_refused() {
        assert!(check_uid(0).is_err());
        assert!(check_uid(999).is_err());
        assert!(check_uid(u32::MAX).is_err());
        assert!(check_uid(20000).is_ok());
    }
}
