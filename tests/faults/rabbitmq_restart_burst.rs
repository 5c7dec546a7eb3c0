//! A RabbitMQ restart in the middle of a burst of submissions: the api answers every request
//! (accepted, or 503 with Retry-After), reconnects on its own, and no accepted job is lost.

use crate::harness::{accepted, python, restart_rabbitmq, Rig, Tally};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TEST: &str = "rabbitmq_restart_burst";
const JOBS: usize = 500;
const WORKERS: usize = 16;
/// Answers before the restart begins.
const BEFORE_RESTART: usize = 100;
/// Pause of each worker between submissions while RabbitMQ restarts. At full speed the last 400
/// submissions would be answered before `rabbitmqctl` has even stopped the broker; paced, about
/// 40 a second meet the outage.
const PACE_DURING_RESTART: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_restart_burst() {
    let rig = Rig::new(TEST).await;
    let mut api = rig.api(&[]).await;
    let _runner = rig.runner("runner", &[]).await;
    let client = rig.client(&api);
    let mut tally = Tally::new(TEST);

    let jobs = (0..JOBS).map(|_| python("print(1)")).collect();
    let burst = client.burst(jobs, WORKERS);
    burst
        .wait_answered(BEFORE_RESTART, Duration::from_secs(120))
        .await;
    burst.pace(PACE_DURING_RESTART);
    let before = burst.answered();
    let started = Instant::now();
    tokio::task::spawn_blocking(restart_rabbitmq)
        .await
        .expect("restarting rabbitmq");
    let during = burst.answered() - before;
    eprintln!(
        "{TEST}: rabbitmq restarted in {:?}; {during} submissions answered meanwhile",
        started.elapsed()
    );
    burst.pace(Duration::ZERO);
    let ready = Instant::now();
    api.wait_ok("/readyz", Duration::from_secs(60)).await;
    eprintln!("{TEST}: api ready {:?} after the restart", ready.elapsed());
    let answers = burst.finish().await;
    tally.answers(&answers);

    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for answer in &answers {
        match answer.status {
            202 => {}
            503 => {
                assert!(
                    answer.retry_after.is_some(),
                    "a 503 without Retry-After: {answer:?}"
                );
                *codes.entry(answer.code().to_string()).or_default() += 1;
            }
            _ => panic!("every answer must be 202 or 503: {answer:?}"),
        }
    }
    println!("{TEST}: refusals by code {codes:?}");

    let ids = accepted(&answers);
    let ends = client.wait_terminal(&ids, Duration::from_secs(600)).await;
    tally.settle(&ends);
    rig.store().await.assert_one_done_each(&ids).await;

    // Both api and runner are connected again: a new job goes all the way through.
    let job = client.run(&python("print('after the restart')")).await;
    assert_eq!(job["verdict"], "ok", "job after the restart: {job:#}");
}
