//! One language's consumer: deliveries in, results out, ack last.
//!
//! The channel's prefetch equals the language's pool size, so the broker never hands this runner
//! more unacked jobs than it has warm containers; the rest stay in the queue for other runners.

use crate::metrics::RunnerMetrics;
use crate::status_store::StatusStore;
use chrono::Utc;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::Channel;
use rce_broker::ConfirmedPublisher;
use rce_pool::LanguagePool;
use rce_protocol::job::JobMessage;
use rce_protocol::result::{JobStatus, ResultMessage, Verdict};
use rce_protocol::topology::{Messaging, Topology};
use rce_protocol::verdict::judge;
use rce_protocol::SCHEMA_VERSION;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// What every job handler needs, shared across languages.
#[derive(Clone)]
pub struct JobContext {
    pub topology: Arc<Topology>,
    pub publisher: ConfirmedPublisher,
    pub status: StatusStore,
    pub metrics: RunnerMetrics,
    pub runner_id: String,
}

/// Consumes `rce.jobs.<language>` until `shutdown` fires; each delivery runs on `tracker`.
pub async fn consume(
    channel: Channel,
    pool: Arc<LanguagePool>,
    ctx: JobContext,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let language = pool.language().id.clone();
    channel
        .basic_qos(pool.language().pool as u16, BasicQosOptions::default())
        .await?;
    let queue = ctx.topology.messaging.job_queue(&language);
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            format!("{}-{language}", ctx.runner_id).as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(%language, %queue, "consuming");
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = consumer.next() => match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the broker closed the {queue} consumer"),
            },
        };
        let (pool, ctx) = (pool.clone(), ctx.clone());
        tracker.spawn(handle(delivery, pool, ctx));
    }
    // Unacked deliveries still prefetched return to the queue when the channel closes.
    channel.close(200, "runner shutting down".into()).await.ok();
    Ok(())
}

async fn handle(delivery: Delivery, pool: Arc<LanguagePool>, ctx: JobContext) {
    let language = pool.language().id.clone();
    let job: JobMessage = match serde_json::from_slice(&delivery.data) {
        Ok(job) => job,
        Err(e) => {
            tracing::warn!(%language, error = %e, "malformed job message: dead-lettering it");
            return reject(&delivery, &ctx, "malformed").await;
        }
    };
    if job.language != language || job.schema != SCHEMA_VERSION {
        tracing::warn!(%language, job_language = %job.language, schema = job.schema, "job does not belong to this queue: dead-lettering it");
        return reject(&delivery, &ctx, "wrong_queue").await;
    }
    let span = tracing::info_span!("job", job_id = %job.id, %language);
    async move {
        let started = tokio::time::Instant::now();
        let result = execute(&job, &pool, &ctx).await;
        let verdict = result.verdict;
        let payload = serde_json::to_vec(&result).expect("a result always serializes");
        let published = ctx
            .publisher
            .publish_json(
                &ctx.topology.messaging.results_exchange,
                &Messaging::result_routing_key(&language),
                &job.id,
                &payload,
            )
            .await;
        match published {
            // The invariant: the job is acked only after the broker confirmed its result.
            Ok(()) => {
                if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                    tracing::error!(error = %e, "could not ack after publishing the result");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "result not confirmed: returning the job to the queue");
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                };
                delivery.acker.nack(requeue).await.ok();
            }
        }
        ctx.metrics
            .jobs
            .with_label_values(&[language.as_str(), verdict.as_str()])
            .inc();
        ctx.metrics
            .job_seconds
            .with_label_values(&[language.as_str()])
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            verdict = verdict.as_str(),
            ms = started.elapsed().as_millis() as u64,
            "job finished"
        );
    }
    .instrument(span)
    .await
}

/// Runs the job and turns whatever happened into a result; never fails.
async fn execute(job: &JobMessage, pool: &Arc<LanguagePool>, ctx: &JobContext) -> ResultMessage {
    let started_at = Utc::now();
    ctx.status.mark_running(&job.id, started_at).await;
    let outcome = pool.run(job).await;
    let finished_at = Utc::now();
    let queue_ms = (started_at - job.created_at).num_milliseconds().max(0) as u64;
    let (verdict, compile, run, error) = match outcome {
        Ok(record) => {
            let (verdict, compile, run) = judge(&record);
            (verdict, compile, run, record.error)
        }
        Err(e) => (Verdict::InternalError, None, None, Some(e.to_string())),
    };
    ResultMessage {
        schema: SCHEMA_VERSION,
        id: job.id.clone(),
        language: job.language.clone(),
        status: if verdict == Verdict::InternalError {
            JobStatus::Failed
        } else {
            JobStatus::Completed
        },
        verdict,
        compile,
        run,
        error,
        created_at: job.created_at,
        started_at: Some(started_at),
        finished_at,
        queue_ms: Some(queue_ms),
        runner: Some(ctx.runner_id.clone()),
    }
}

async fn reject(delivery: &Delivery, ctx: &JobContext, reason: &str) {
    ctx.metrics.rejected.with_label_values(&[reason]).inc();
    let options = BasicRejectOptions { requeue: false };
    if let Err(e) = delivery.acker.reject(options).await {
        tracing::error!(error = %e, "could not reject the delivery");
    }
}
