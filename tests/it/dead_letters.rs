//! A message a runner cannot read is dead-lettered, never retried forever, and still ends as an
//! `internal_error` job that clients can read; the queue keeps flowing behind it.

use crate::helpers::{app, assert_verdict, stack, VHOST};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn unparseable_job_is_dead_lettered_and_reported() {
    let app = app();
    stack();
    let url = format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}");
    let connection = rce_broker::connect(&url, "it-dead-letters", Duration::from_secs(10))
        .await
        .expect("rabbitmq reachable");
    let publisher = rce_broker::ConfirmedPublisher::new(&connection)
        .await
        .unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    publisher
        .publish_json("rce.jobs", "job.python", &id, b"{this is not a job")
        .await
        .expect("the broker accepts the message");

    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let (status, job) = app.get_job(&id).await;
        if status == 200 && job["status"] == "failed" {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "dead letter never recorded: {status} {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_verdict(&job, "internal_error");
    assert_eq!(job["language"], "python");

    let next = app.run_source("python", "print('still flowing')", "").await;
    assert_verdict(&next, "ok");
    connection.close(200, "done".into()).await.ok();
}
