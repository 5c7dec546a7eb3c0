//! A Docker daemon restart under a runner: its warm containers die with the daemon, the runner
//! reports itself not ready, rebuilds its pool once the engine is back, and every accepted job
//! runs: the ones the restart killed mid-run are handed back to the queue and run again, the
//! queued ones wait for the engine instead of burning their deliveries on a dead one.

use crate::harness::{
    accepted, python, restart_docker, runner_containers, sleeper, Rig, Tally, POOL_SIZE,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TEST: &str = "docker_restart";
const JOBS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_restart() {
    let rig = Rig::new(TEST).await;
    let api = rig.api(&[]).await;
    let mut runner = rig.runner("runner", &[]).await;
    let client = rig.client(&api);
    let mut tally = Tally::new(TEST);

    let jobs = (0..JOBS)
        .map(|i| sleeper(0.5, &format!("marker-{i}")))
        .collect();
    let answers = client.submit_all(jobs, 4).await;
    tally.answers(&answers);
    let ids = accepted(&answers);
    assert_eq!(ids.len(), JOBS, "every submission is accepted: {answers:?}");

    // Watch the runner's readiness through the restart.
    let saw_unready = Arc::new(AtomicBool::new(false));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (probe, saw_unready, watching) = (
            runner.probe("/readyz"),
            saw_unready.clone(),
            watching.clone(),
        );
        tokio::spawn(async move {
            while watching.load(Ordering::SeqCst) {
                if probe.status().await != Some(200) {
                    saw_unready.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let started = Instant::now();
    tokio::task::spawn_blocking(restart_docker)
        .await
        .expect("restarting docker");
    eprintln!("{TEST}: docker restarted in {:?}", started.elapsed());
    runner.wait_ok("/readyz", Duration::from_secs(120)).await;
    eprintln!(
        "{TEST}: runner ready {:?} after the restart began",
        started.elapsed()
    );
    watching.store(false, Ordering::SeqCst);
    watcher.await.unwrap();
    eprintln!(
        "{TEST}: runner /readyz went non-200 during the restart: {} (best effort, not asserted)",
        saw_unready.load(Ordering::SeqCst)
    );

    let ends = client.wait_terminal(&ids, Duration::from_secs(300)).await;
    tally.settle(&ends);
    for id in &ids {
        let job = ends.job(id);
        assert!(
            job["status"] == "completed" && job["verdict"] == "ok",
            "job {id} did not resume after the engine came back: {job:#}"
        );
    }
    rig.store().await.assert_one_done_each(&ids).await;

    let job = client.run(&python("print('pool rebuilt')")).await;
    assert_eq!(job["verdict"], "ok", "job after the restart: {job:#}");
    // Replacements may still be starting in the background: poll.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = tokio::task::spawn_blocking(|| runner_containers(true))
            .await
            .unwrap();
        if running.len() >= POOL_SIZE {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} pool containers running after the restart: {running:?}",
            running.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
