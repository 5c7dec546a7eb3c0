//! A runner killed with SIGKILL mid-job (no ack, no cleanup) loses nothing: the broker hands its
//! unacked jobs to the next runner, which runs them again, and each job still ends with exactly
//! one result.

use crate::harness::{accepted, sleeper, Rig, Tally};
use std::time::Duration;

const TEST: &str = "runner_kill9";
const JOBS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runner_kill9() {
    let rig = Rig::new(TEST).await;
    let api = rig.api(&[]).await;
    let mut runner_a = rig.runner("runner-a", &[]).await;
    let client = rig.client(&api);
    let mut tally = Tally::new(TEST);

    let markers: Vec<String> = (0..JOBS).map(|i| format!("marker-{i}")).collect();
    let jobs = markers.iter().map(|m| sleeper(1.0, m)).collect();
    let answers = client.submit_all(jobs, 4).await;
    tally.answers(&answers);
    let ids = accepted(&answers);
    assert_eq!(ids.len(), JOBS, "every submission is accepted: {answers:?}");

    let running = client
        .wait_any(&ids, Duration::from_secs(60), |j| j["status"] == "running")
        .await;
    runner_a.kill9();
    eprintln!(
        "{TEST}: killed runner A while {} was running",
        running["id"]
    );

    // Same runner id: at start it removes the containers runner A left behind.
    let _runner_b = rig.runner("runner-b", &[]).await;
    let ends = client.wait_terminal(&ids, Duration::from_secs(300)).await;
    tally.settle(&ends);
    ends.assert_ok_with(&ids, &markers);
    let mut store = rig.store().await;
    store.assert_one_done_each(&ids).await;
    let mut max_attempt = 0;
    for id in &ids {
        max_attempt = max_attempt.max(store.max_attempt(id).await);
    }
    assert!(
        max_attempt >= 2,
        "no job shows a `running` status with attempt >= 2: none was redelivered after the kill"
    );
}
