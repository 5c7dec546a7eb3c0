//! The recorder: consumes `rce.results` (via its queue) and `rce.dead`, and stores the outcome of
//! every job, so no client waits forever. Each delivery is acked only after Redis has it.

use crate::job_store::JobStore;
use chrono::Utc;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::Channel;
use rce_protocol::job::JobMessage;
use rce_protocol::result::{JobStatus, ResultMessage, Verdict};
use rce_protocol::topology::Topology;
use rce_protocol::SCHEMA_VERSION;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Unacked deliveries per recorder consumer: enough to keep Redis busy, small enough to redeliver
/// little if this api instance dies.
const PREFETCH: u16 = 64;

/// Runs both consumers until `stop`; returns an error if the broker drops them.
pub async fn run(
    results: Channel,
    dead: Channel,
    topology: &Topology,
    store: JobStore,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let m = &topology.messaging;
    let results_loop = consume(
        results,
        &m.recorder_queue,
        store.clone(),
        stop.clone(),
        record_result,
    );
    let dead_loop = consume(dead, &m.dead_letter_queue, store, stop, record_dead_letter);
    tokio::try_join!(results_loop, dead_loop)?;
    Ok(())
}

type Interpret = fn(&Delivery) -> Option<ResultMessage>;

async fn consume(
    channel: Channel,
    queue: &str,
    store: JobStore,
    stop: CancellationToken,
    interpret: Interpret,
) -> anyhow::Result<()> {
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        let delivery = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            next = consumer.next() => match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the broker closed the {queue} consumer"),
            },
        };
        let Some(result) = interpret(&delivery) else {
            tracing::error!(%queue, "unreadable message dropped");
            delivery
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await
                .ok();
            continue;
        };
        match store.record(&result).await {
            Ok(kept) => {
                tracing::info!(job_id = %result.id, verdict = result.verdict.as_str(), kept, "result recorded");
                delivery.acker.ack(BasicAckOptions::default()).await?;
            }
            Err(e) => {
                tracing::warn!(job_id = %result.id, error = %e, "redis refused the result; will retry");
                tokio::time::sleep(Duration::from_millis(500)).await;
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                };
                delivery.acker.nack(requeue).await?;
            }
        }
    }
}

fn record_result(delivery: &Delivery) -> Option<ResultMessage> {
    serde_json::from_slice(&delivery.data).ok()
}

/// A dead-lettered job becomes an `internal_error` result. The job id comes from the message
/// properties (set by the api on every publish), so even an unparseable body is accounted for.
fn record_dead_letter(delivery: &Delivery) -> Option<ResultMessage> {
    let job: Option<JobMessage> = serde_json::from_slice(&delivery.data).ok();
    let id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|s| s.to_string())
        .or_else(|| job.as_ref().map(|j| j.id.clone()))?;
    let language = job.as_ref().map(|j| j.language.clone()).unwrap_or_else(|| {
        delivery
            .routing_key
            .as_str()
            .trim_start_matches("job.")
            .to_string()
    });
    let now = Utc::now();
    Some(ResultMessage {
        schema: SCHEMA_VERSION,
        id,
        language,
        status: JobStatus::Failed,
        verdict: Verdict::InternalError,
        compile: None,
        run: None,
        error: Some("the job could not be run and was dead-lettered".into()),
        created_at: job.map_or(now, |j| j.created_at),
        started_at: None,
        finished_at: now,
        queue_ms: None,
        runner: None,
    })
}
