//! SIGTERM is a graceful stop: the runner takes no new job, lets the ones it runs finish (within
//! `RCE_SHUTDOWN_GRACE_SECS`), removes its containers and exits 0. The jobs it never started stay
//! queued for the next runner.

use crate::harness::{accepted, ok_with, runner_containers, sleeper, Rig, Tally};
use std::time::{Duration, Instant};

const TEST: &str = "runner_sigterm";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runner_sigterm() {
    let rig = Rig::new(TEST).await;
    let api = rig.api(&[]).await;
    let mut runner_a = rig
        .runner("runner-a", &[("RCE_SHUTDOWN_GRACE_SECS", "20")])
        .await;
    let client = rig.client(&api);
    let mut tally = Tally::new(TEST);

    // One at a time, so the two long jobs are first in the queue and fill the pool of two.
    let markers: Vec<String> = (0..10).map(|i| format!("marker-{i}")).collect();
    let mut answers = Vec::new();
    for (i, marker) in markers.iter().enumerate() {
        let secs = if i < 2 { 2.0 } else { 0.1 };
        answers.push(client.submit(&sleeper(secs, marker)).await);
    }
    tally.answers(&answers);
    let ids = accepted(&answers);
    assert_eq!(
        ids.len(),
        markers.len(),
        "every submission is accepted: {answers:?}"
    );
    let (in_flight, waiting) = ids.split_at(2);

    let (_, not_running) = client
        .wait_all(in_flight, Duration::from_secs(60), |j| {
            j["status"] == "running"
        })
        .await;
    assert!(
        not_running.is_empty(),
        "the two long jobs never ran together: {not_running:?}"
    );
    runner_a.sigterm();
    let termed = Instant::now();
    let status = runner_a
        .wait_exit(Duration::from_secs(25))
        .await
        .expect("the runner did not exit within 25 s of SIGTERM");
    eprintln!(
        "{TEST}: runner exited {status} {:?} after SIGTERM",
        termed.elapsed()
    );
    assert!(status.success(), "runner exit status: {status}");

    // The recorder (in the api) may lag the runner's exit by a moment.
    let finished = client
        .wait_terminal(in_flight, Duration::from_secs(15))
        .await;
    finished.assert_none_lost();
    for (id, marker) in in_flight.iter().zip(&markers) {
        let job = finished.job(id);
        assert!(
            ok_with(job, marker),
            "in-flight job {id} should have finished ok: {job:#}"
        );
    }
    let left = tokio::task::spawn_blocking(|| runner_containers(false))
        .await
        .unwrap();
    assert!(
        left.is_empty(),
        "containers left after a graceful stop: {left:?}"
    );
    for id in waiting {
        let job = client.job(id).await.expect("readable");
        assert_eq!(
            job["status"], "queued",
            "a job the runner never started: {job:#}"
        );
    }

    let _runner_b = rig.runner("runner-b", &[]).await;
    let ends = client.wait_terminal(&ids, Duration::from_secs(180)).await;
    tally.settle(&ends);
    ends.assert_ok_with(&ids, &markers);
    rig.store().await.assert_one_done_each(&ids).await;
}
