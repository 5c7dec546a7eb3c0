//! A Redis restart while jobs run and wait: submissions are refused with 503 while it is down,
//! and once it is back every accepted job ends (its record survives in the RDB snapshot).

use crate::harness::{accepted, python, redis_up, sleeper, start_services, stop_redis, Rig, Tally};
use std::time::Duration;

const TEST: &str = "redis_restart";
const JOBS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart() {
    let rig = Rig::new(TEST).await;
    let mut api = rig.api(&[]).await;
    let _runner = rig.runner("runner", &[]).await;
    let client = rig.client(&api);
    let mut tally = Tally::new(TEST);

    let jobs = (0..JOBS)
        .map(|i| sleeper(0.5, &format!("marker-{i}")))
        .collect();
    let answers = client.submit_all(jobs, 4).await;
    tally.answers(&answers);
    let ids = accepted(&answers);
    assert_eq!(ids.len(), JOBS, "every submission is accepted: {answers:?}");
    client
        .wait_any(&ids, Duration::from_secs(60), |j| j["status"] == "running")
        .await;

    tokio::task::spawn_blocking(stop_redis)
        .await
        .expect("stopping redis");
    // Best effort: only what was observed while Redis was really down counts.
    let down = !tokio::task::spawn_blocking(redis_up).await.unwrap();
    let answer = client.submit(&python("print('while redis is down')")).await;
    let still_down = !tokio::task::spawn_blocking(redis_up).await.unwrap();
    tally.answers(std::slice::from_ref(&answer));
    if down && still_down {
        assert_eq!(
            answer.status, 503,
            "submission while Redis is down: {answer:?}"
        );
        assert!(
            answer.retry_after.is_some(),
            "503 without Retry-After: {answer:?}"
        );
        eprintln!("{TEST}: refused while Redis was down: {}", answer.code());
    } else {
        eprintln!("{TEST}: Redis was not observed down; submission answered {answer:?}");
    }
    // If it was accepted anyway (Redis back already), it must end like the others.
    let mut ids = ids;
    ids.extend(answer.id());

    tokio::task::spawn_blocking(start_services)
        .await
        .expect("starting redis");
    api.wait_ok("/readyz", Duration::from_secs(60)).await;

    let ends = client.wait_terminal(&ids, Duration::from_secs(300)).await;
    tally.settle(&ends);
    rig.store().await.assert_one_done_each(&ids).await;

    let job = client.run(&python("print('after the restart')")).await;
    assert_eq!(job["verdict"], "ok", "job after the restart: {job:#}");
}
