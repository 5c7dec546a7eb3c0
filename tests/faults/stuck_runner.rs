//! A runner that freezes mid-job (SIGSTOP: its connections stay open, so nothing looks dead) must
//! not leave the job hanging: the api's stuck-job sweeper ends it `internal_error` once its limits
//! plus `RCE_STUCK_MARGIN_SECS` have passed. When the runner thaws and reports, the first result
//! stands.

use crate::harness::{python, Rig, Tally};
use serde_json::json;
use std::time::{Duration, Instant};

const TEST: &str = "stuck_runner";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stuck_runner() {
    let rig = Rig::new(TEST).await;
    let api = rig.api(&[("RCE_STUCK_MARGIN_SECS", "3")]).await;
    let runner = rig.runner("runner", &[]).await;
    let client = rig.client(&api);
    let mut tally = Tally::new(TEST);

    let mut job = python("import time\ntime.sleep(1)\nprint('woke up')");
    job["limits"] = json!({"wall_time_ms": 2000});
    let answer = client.submit(&job).await;
    tally.answers(std::slice::from_ref(&answer));
    let id = answer.id().unwrap_or_else(|| panic!("refused: {answer:?}"));
    let ids = vec![id.clone()];
    client
        .wait_any(&ids, Duration::from_secs(60), |j| j["status"] == "running")
        .await;

    runner.sigstop();
    let stopped = Instant::now();
    // 2 s of limits + 3 s of margin + the sweeper's period, with room for a slow machine.
    let ends = client.wait_terminal(&ids, Duration::from_secs(30)).await;
    tally.ends(&ends);
    println!("{tally}");
    ends.assert_none_lost();
    let ended = ends.job(&id).clone();
    eprintln!(
        "{TEST}: ended {:?} after SIGSTOP: {ended}",
        stopped.elapsed()
    );
    assert_eq!(ended["status"], "failed", "{ended:#}");
    assert_eq!(ended["verdict"], "internal_error", "{ended:#}");

    let mut store = rig.store().await;
    let result = store.result(&id).await;
    runner.sigcont();
    // The thawed runner finishes the job and publishes its (late) result; give it time to land.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = client.job(&id).await.expect("the job is still readable");
    assert_eq!(after, ended, "the late result replaced the first one");
    assert_eq!(store.result(&id).await, result, "the stored result changed");
    assert_eq!(
        store.done_count(&id).await,
        1,
        "one done event, even after the late result"
    );
}
