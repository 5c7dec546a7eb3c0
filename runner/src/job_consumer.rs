//! One language's consumer: deliveries in, results out, ack last.
//!
//! The channel's prefetch equals the language's pool size, so the broker never hands this runner
//! more unacked jobs than it has warm containers; the rest stay in the queue for other runners.

use crate::control::{self, ControlHub};
use crate::live_events::{LiveEvents, StepCaps};
use crate::metrics::RunnerMetrics;
use crate::status_store::{Pickup, StatusStore};
use chrono::Utc;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::Channel;
use rce_broker::ConfirmedPublisher;
use rce_pool::{JobChannels, LanguagePool};
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
    pub live: LiveEvents,
    pub control: ControlHub,
    /// For the connections interactive jobs hold while they read their input.
    pub redis: redis::Client,
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

/// Runs the job and turns whatever happened into a result; never fails. Live output goes to the
/// job's event stream and is all written before this returns, so the result (and the `done`
/// event the recorder appends) always comes after the last output.
async fn execute(job: &JobMessage, pool: &Arc<LanguagePool>, ctx: &JobContext) -> ResultMessage {
    let started_at = Utc::now();
    // Registered before it is marked running: a cancel announced once it runs must find it.
    let (_registration, control_tx, control_rx) = ctx.control.register(&job.id);
    if ctx.status.mark_running(&job.id, started_at).await == Pickup::Cancelled {
        tracing::info!("cancelled before it started: not running it");
        return result_of(job, ctx, started_at, None, cancelled());
    }
    let (live_tx, live_rx) = tokio::sync::mpsc::channel(256);
    let writer = {
        let caps = StepCaps {
            compile: pool.language().compile_limits.output_bytes,
            run: job.limits.output_bytes,
        };
        let (live, id) = (ctx.live.clone(), job.id.clone());
        tokio::spawn(async move { live.forward(&id, caps, live_rx).await })
    };
    let stdin = job.interactive.then(|| {
        let (redis, id) = (ctx.redis.clone(), job.id.clone());
        tokio::spawn(control::forward_stdin(redis, id, control_tx.clone()))
    });
    drop(control_tx);
    let channels = JobChannels {
        control: control_rx,
        live: live_tx,
    };
    let outcome = pool.run(job, channels).await;
    if let Some(task) = stdin {
        task.abort();
    }
    let writes = writer.await.unwrap_or(0);
    tracing::debug!(writes, "live events written");
    let judged = match outcome {
        Ok(record) => {
            let (verdict, compile, run) = judge(&record);
            (verdict, compile, run, record.error)
        }
        Err(e) => (Verdict::InternalError, None, None, Some(e.to_string())),
    };
    result_of(job, ctx, started_at, Some(started_at), judged)
}

type Judged = (
    Verdict,
    Option<rce_protocol::result::StepReport>,
    Option<rce_protocol::result::StepReport>,
    Option<String>,
);

fn cancelled() -> Judged {
    (Verdict::Cancelled, None, None, None)
}

fn result_of(
    job: &JobMessage,
    ctx: &JobContext,
    picked_up: chrono::DateTime<Utc>,
    started_at: Option<chrono::DateTime<Utc>>,
    (verdict, compile, run, error): Judged,
) -> ResultMessage {
    let queue_ms = (picked_up - job.created_at).num_milliseconds().max(0) as u64;
    ResultMessage {
        schema: SCHEMA_VERSION,
        id: job.id.clone(),
        language: job.language.clone(),
        status: match verdict {
            Verdict::InternalError => JobStatus::Failed,
            Verdict::Cancelled => JobStatus::Cancelled,
            _ => JobStatus::Completed,
        },
        verdict,
        compile,
        run,
        error,
        created_at: job.created_at,
        started_at,
        finished_at: Utc::now(),
        queue_ms: started_at.map(|_| queue_ms),
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
