//! Garbage on a job queue (bodies no runner can read, published straight to the exchange, between
//! real jobs) is dead-lettered and reported as a failed job; the real jobs around it are not held
//! up and all run.

use crate::harness::{ok_with, python, Rig, Tally};
use std::time::Duration;

const TEST: &str = "unparseable_messages";
const REAL_JOBS: usize = 50;
/// Bodies a runner cannot turn into a job: broken JSON, nothing, valid JSON of the wrong shape,
/// bytes that are not UTF-8.
const GARBAGE: [&[u8]; 5] = [
    b"{this is not a job",
    b"",
    b"null",
    br#"{"language":"python"}"#,
    b"\xff\xfe\x00garbage",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unparseable_messages() {
    let rig = Rig::new(TEST).await;
    let api = rig.api(&[]).await;
    let _runner = rig.runner("runner", &[]).await;
    let client = rig.client(&api);
    let mut tally = Tally::new(TEST);

    let connection = rce_broker::connect(&rig.amqp_url, "faults-garbage", Duration::from_secs(10))
        .await
        .expect("rabbitmq reachable");
    let publisher = rce_broker::ConfirmedPublisher::new(&connection)
        .await
        .expect("a confirm channel");

    let mut real = Vec::new();
    let mut garbage = Vec::new();
    for i in 0..REAL_JOBS {
        let marker = format!("marker-{i}");
        let answer = client.submit(&python(&format!("print({marker:?})"))).await;
        tally.answers(std::slice::from_ref(&answer));
        let id = answer
            .id()
            .unwrap_or_else(|| panic!("real job {i} refused: {answer:?}"));
        real.push((id, marker));
        if i % (REAL_JOBS / GARBAGE.len()) == 3 {
            let body = GARBAGE[garbage.len()];
            let id = uuid::Uuid::now_v7().to_string();
            publisher
                .publish_json("rce.jobs", "job.python", &id, body)
                .await
                .expect("the broker takes the garbage");
            tally.published(1);
            garbage.push(id);
        }
    }
    assert_eq!(garbage.len(), GARBAGE.len());
    connection.close(200, "done".into()).await.ok();

    let ids: Vec<String> = real
        .iter()
        .map(|(id, _)| id.clone())
        .chain(garbage.iter().cloned())
        .collect();
    let ends = client.wait_terminal(&ids, Duration::from_secs(180)).await;
    tally.settle(&ends);
    for (id, marker) in &real {
        let job = ends.job(id);
        assert!(
            ok_with(job, marker),
            "real job {id} should print {marker}: {job:#}"
        );
    }
    for id in &garbage {
        let job = ends.job(id);
        assert_eq!(job["status"], "failed", "garbage {id}: {job:#}");
        assert_eq!(job["verdict"], "internal_error", "garbage {id}: {job:#}");
    }
    rig.store().await.assert_one_done_each(&ids).await;
}
