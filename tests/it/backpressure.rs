//! A full job queue refuses new jobs with 503 + Retry-After, and keeps every job it accepted:
//! `x-max-length` with `reject-publish` (never `drop-head`). Uses the test topology's language
//! that no runner serves, so the queue fills deterministically.

use crate::helpers::{app, UNSERVED, UNSERVED_QUEUE_LENGTH, VHOST};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::{json, Value};
use std::time::Duration;

/// Ready messages in a job queue, asked of the queue itself (a passive declare), not of the
/// management statistics, which lag by seconds.
async fn queue_depth(queue: &str) -> u32 {
    let url = format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}");
    let connection = rce_broker::connect(&url, "it-backpressure", Duration::from_secs(10))
        .await
        .expect("rabbitmq reachable");
    let channel = connection.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .expect("the queue exists");
    connection.close(200, "done".into()).await.ok();
    declared.message_count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_503_with_retry_after_and_keeps_what_it_accepted() {
    let app = app();
    let job = json!({"language": UNSERVED, "source": "print(1)"}).to_string();
    let total = UNSERVED_QUEUE_LENGTH as usize + 3;
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for _ in 0..total {
        let resp = app
            .http
            .post(format!("{}/v1/jobs", app.base))
            .header("content-type", "application/json")
            .body(job.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").cloned();
        let body: Value = resp.json().await.unwrap();
        match status {
            202 => accepted.push(body["id"].as_str().unwrap().to_string()),
            503 => {
                assert_eq!(body["error"]["code"], "queue_full", "{body}");
                assert!(retry_after.is_some(), "503 without Retry-After: {body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    println!(
        "backpressure: submitted {total} / accepted {} / refused {refused}",
        accepted.len()
    );
    // A quorum queue applies its limit once the publish is in its log, so one publish past the
    // limit may still be taken (RabbitMQ documents the limit as approximate for quorum queues);
    // never more, and never at the cost of a job it already holds.
    let limit = UNSERVED_QUEUE_LENGTH as usize;
    assert!(
        (limit..=limit + 1).contains(&accepted.len()),
        "accepted {} with a limit of {limit}",
        accepted.len()
    );
    assert_eq!(refused, total - accepted.len());

    // Refusing the overflow dropped nothing that was accepted: all still queued, in the broker
    // and in the job records.
    let queue = format!("rce.jobs.{UNSERVED}");
    assert_eq!(queue_depth(&queue).await, accepted.len() as u32);
    for id in &accepted {
        let (status, job) = app.get_job(id).await;
        assert_eq!((status, job["status"].as_str()), (200, Some("queued")));
    }
    // Cancelled while queued, they end for good and never run.
    for id in &accepted {
        let resp = app
            .http
            .delete(format!("{}/v1/jobs/{id}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
}
