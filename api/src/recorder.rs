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
use rce_broker::{BrokerLink, Session};
use rce_protocol::job::JobMessage;
use rce_protocol::result::ResultMessage;
use rce_protocol::topology::Topology;
use rce_service::backoff::Backoff;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Unacked deliveries per recorder consumer: enough to keep Redis busy, small enough to redeliver
/// little if this api instance dies.
const PREFETCH: u16 = 64;

/// Runs both consumers until `stop`, each across broker reconnections.
pub async fn run(
    broker: BrokerLink,
    topology: &Topology,
    store: JobStore,
    stop: CancellationToken,
) {
    let m = &topology.messaging;
    let results_loop = consume(
        &broker,
        &m.recorder_queue,
        store.clone(),
        &stop,
        record_result,
    );
    let dead_loop = consume(
        &broker,
        &m.dead_letter_queue,
        store,
        &stop,
        record_dead_letter,
    );
    tokio::join!(results_loop, dead_loop);
}

type Interpret = fn(&Delivery) -> Option<ResultMessage>;

/// Consumes `queue` on whatever session the link has, coming back after every disconnection.
async fn consume(
    broker: &BrokerLink,
    queue: &str,
    store: JobStore,
    stop: &CancellationToken,
    interpret: Interpret,
) {
    let mut backoff = Backoff::reconnect();
    while let Some(session) = broker.next_session(stop).await {
        match consume_session(&session, queue, &store, stop, interpret).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(%queue, error = %e, "recorder consumer lost; resuming once rabbitmq is back");
                if backoff.wait(stop).await {
                    return;
                }
            }
        }
    }
}

/// Records deliveries until `stop` (Ok) or until the session fails (Err).
async fn consume_session(
    session: &Session,
    queue: &str,
    store: &JobStore,
    stop: &CancellationToken,
    interpret: Interpret,
) -> anyhow::Result<()> {
    let channel = session.connection.create_channel().await?;
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
    tracing::info!(%queue, "recording");
    let mut redis_backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
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
                redis_backoff.reset();
                tracing::info!(job_id = %result.id, verdict = result.verdict.as_str(), kept, "result recorded");
                delivery.acker.ack(BasicAckOptions::default()).await?;
            }
            Err(e) => {
                // Redis is down: hold the delivery a while (backing off, so an outage is not a
                // busy loop), then give it back to be recorded later; nothing is lost.
                let delay = redis_backoff.next_delay();
                tracing::warn!(job_id = %result.id, error = %e, retry_in_ms = delay.as_millis() as u64, "redis refused the result; will retry");
                tokio::time::sleep(delay).await;
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
    Some(ResultMessage::platform_failure(
        id,
        language,
        job.map_or_else(Utc::now, |j| j.created_at),
        "the job could not be run and was dead-lettered".into(),
    ))
}
