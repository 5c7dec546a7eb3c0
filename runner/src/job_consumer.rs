//! One language's consumer: deliveries in, results out, ack last.
//!
//! The channel's prefetch equals the language's pool size, so the broker never hands this runner
//! more unacked jobs than it has warm containers; the rest stay in the queue for other runners.
//! The consumer outlives its connection: when RabbitMQ goes away it waits for the next session
//! and consumes again; while the Docker engine is down it cancels its consumer, so the broker
//! keeps the jobs for runners that can run them.

use crate::control::{self, ControlHub, Registration};
use crate::engine_watch::{Engine, EngineReady};
use crate::judging::{self, Judge, TestData};
use crate::live_events::{LiveEvents, StepCaps, StreamEvent};
use crate::metrics::RunnerMetrics;
use crate::status_store::{Pickup, StatusStore, LEASE};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;
use rce_broker::{BrokerLink, Session};
use rce_pool::{JobChannels, LanguagePool, PoolError};
use rce_protocol::job::JobMessage;
use rce_protocol::result::{JobStatus, ResultMessage, Verdict};
use rce_protocol::shim::{ShimControl, ShimRecord};
use rce_protocol::topology::{Messaging, Topology};
use rce_protocol::verdict::{judge, Judgement};
use rce_protocol::SCHEMA_VERSION;
use rce_service::backoff::Backoff;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// How long a finished job's result may wait for the broker (reconnecting meanwhile) before the
/// job is handed back to run again. Well under the api's stuck-job margin (`RCE_STUCK_MARGIN_SECS`,
/// 60 s by default), so a result held through a broker outage is not beaten by the sweeper.
const RESULT_PATIENCE: Duration = Duration::from_secs(30);

/// How often a redelivered job checks whether the run still holding it has ended.
const BUSY_POLL: Duration = Duration::from_secs(1);

/// How long a job the platform failed under is held before it is handed back (plus jitter).
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What every job handler needs, shared across languages.
#[derive(Clone)]
pub struct JobContext {
    pub topology: Arc<Topology>,
    pub broker: BrokerLink,
    pub status: StatusStore,
    pub metrics: RunnerMetrics,
    pub runner_id: String,
    pub live: LiveEvents,
    pub control: ControlHub,
    /// For the connections interactive jobs hold while they read their input.
    pub redis: redis::Client,
    /// Not ready while the Docker engine is down (or the pools are being rebuilt).
    pub engine: Engine,
    /// Fired at SIGTERM: no new job starts after it.
    pub shutdown: CancellationToken,
    /// Judge mode's test data.
    pub test_data: TestData,
    /// Every pool of this runner: a custom checker runs in its own language's.
    pub pools: rce_pool::Pools,
}

/// Why one consuming session ended without an error.
enum Pause {
    Shutdown,
    EngineDown,
}

/// Consumes `rce.jobs.<language>` until shutdown, across broker reconnections; each delivery
/// runs on `tracker`.
pub async fn consume(pool: Arc<LanguagePool>, ctx: JobContext, tracker: TaskTracker) {
    let language = pool.language().id.clone();
    let mut engine = ctx.engine.subscribe();
    let mut backoff = Backoff::reconnect();
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            ready = engine.wait_for(|up| *up) => if ready.is_err() { return },
        }
        let Some(session) = ctx.broker.next_session(&ctx.shutdown).await else {
            return;
        };
        match consume_session(&session, &pool, &ctx, &tracker, &mut engine).await {
            Ok(Pause::Shutdown) => return,
            Ok(Pause::EngineDown) => {
                tracing::warn!(%language, "docker engine down: consumer paused");
                backoff.reset();
            }
            Err(e) => {
                tracing::warn!(%language, error = %e, "consumer lost; resuming once rabbitmq is back");
                if backoff.wait(&ctx.shutdown).await {
                    return;
                }
            }
        }
    }
}

async fn consume_session(
    session: &Session,
    pool: &Arc<LanguagePool>,
    ctx: &JobContext,
    tracker: &TaskTracker,
    engine: &mut EngineReady,
) -> anyhow::Result<Pause> {
    let language = pool.language().id.clone();
    let channel = session.connection.create_channel().await?;
    channel
        .basic_qos(pool.language().pool as u16, BasicQosOptions::default())
        .await?;
    let queue = ctx.topology.messaging.job_queue(&language);
    let tag = format!("{}-{language}", ctx.runner_id);
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(%language, %queue, "consuming");
    let pause = loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => break Pause::Shutdown,
            changed = engine.changed() => if changed.is_err() || !*engine.borrow() {
                break Pause::EngineDown;
            },
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    let (channel, pool, ctx) = (channel.clone(), pool.clone(), ctx.clone());
                    tracker.spawn(handle(delivery, channel, pool, ctx));
                }
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the broker closed the {queue} consumer"),
            },
        }
    };
    // No new deliveries; those already sent but not yet taken go back at once. Jobs in flight
    // hold clones of the channel and ack on it when they finish.
    let cancel = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
    if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(5), cancel).await {
        let drain = async {
            while let Some(Ok(delivery)) = consumer.next().await {
                hand_back(&delivery, ctx, "paused").await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .ok();
    }
    Ok(pause)
}

/// What became of a delivery's job.
enum Outcome {
    /// A result to publish (the job ran, or it was cancelled before it could).
    Finished(Box<ResultMessage>),
    /// The platform failed under the job (run by the given run token): it goes back to the
    /// queue to run again.
    Retry(PoolError, String),
    /// Its result was recorded before: this delivery is a duplicate.
    Duplicate,
    /// The runner began shutting down before the job could start.
    Paused,
}

/// Aborts a background task when the job that needs it is done, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The attempt this delivery is: quorum queues count earlier deliveries in `x-delivery-count`.
fn attempt_of(delivery: &Delivery) -> u32 {
    let count = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned());
    let earlier = match count {
        Some(AMQPValue::LongLongInt(n)) => n.max(0) as u32,
        Some(AMQPValue::LongInt(n)) => n.max(0) as u32,
        Some(AMQPValue::ShortInt(n)) => n.max(0) as u32,
        Some(AMQPValue::LongUInt(n)) => n,
        _ => u32::from(delivery.redelivered),
    };
    earlier + 1
}

async fn handle(delivery: Delivery, channel: Channel, pool: Arc<LanguagePool>, ctx: JobContext) {
    // Held until the ack: the channel closes when its last handle goes.
    let _channel = channel;
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
    let attempt = attempt_of(&delivery);
    let span = tracing::info_span!("job", job_id = %job.id, %language, attempt);
    async move {
        if ctx.shutdown.is_cancelled() || !ctx.engine.is_ready() {
            return hand_back(&delivery, &ctx, "paused").await;
        }
        let started = tokio::time::Instant::now();
        let result = match execute(&job, attempt, &pool, &ctx).await {
            Outcome::Finished(result) => result,
            Outcome::Duplicate => {
                tracing::info!("already finished: acking the duplicate delivery unrun");
                ctx.metrics.duplicates.inc();
                return ack(&delivery).await;
            }
            Outcome::Paused => return hand_back(&delivery, &ctx, "paused").await,
            Outcome::Retry(e, run) => {
                tracing::warn!(error = %e, "the platform failed under the job: handing it back");
                ctx.engine.suspect();
                ctx.status.mark_requeued(&job.id, &run).await;
                // Not at once: if the engine is going down, the consumer pauses meanwhile and
                // the job waits in the queue instead of failing its remaining deliveries here.
                tokio::time::sleep(RETRY_PAUSE + RETRY_PAUSE.mul_f64(fastrand::f64())).await;
                return hand_back(&delivery, &ctx, "platform_fault").await;
            }
        };
        let verdict = result.verdict;
        let payload = serde_json::to_vec(&result).expect("a result always serializes");
        // The invariant: the job is acked only after the broker confirmed its result.
        if publish_result(&ctx, &language, &job.id, &payload).await {
            ack(&delivery).await;
        } else {
            tracing::error!("result not confirmed in time: handing the job back");
            hand_back(&delivery, &ctx, "unpublished").await;
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

/// Publishes a result, retrying through broker reconnections for up to [`RESULT_PATIENCE`].
/// If the job's own delivery died with the old connection, the broker redelivers it, and the
/// next pickup sees the recorded result and acks the duplicate unrun.
async fn publish_result(ctx: &JobContext, language: &str, id: &str, payload: &[u8]) -> bool {
    let exchange = &ctx.topology.messaging.results_exchange;
    let key = Messaging::result_routing_key(language);
    let deadline = tokio::time::Instant::now() + RESULT_PATIENCE;
    let mut backoff = Backoff::reconnect();
    loop {
        match ctx.broker.publish_json(exchange, &key, id, payload).await {
            Ok(()) => return true,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "result not published yet; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "giving up publishing the result");
                return false;
            }
        }
    }
}

async fn ack(delivery: &Delivery) {
    if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
        // Its channel died with a connection: the broker will redeliver, and the pickup of the
        // redelivery finds the result recorded.
        tracing::warn!(error = %e, "could not ack; the redelivery will be recognised as done");
    }
}

/// Returns the delivery to its queue for any runner to take.
async fn hand_back(delivery: &Delivery, ctx: &JobContext, reason: &str) {
    ctx.metrics.handed_back.with_label_values(&[reason]).inc();
    let requeue = BasicNackOptions {
        requeue: true,
        ..Default::default()
    };
    if let Err(e) = delivery.acker.nack(requeue).await {
        tracing::warn!(error = %e, "could not hand the job back; the broker will requeue it");
    }
}

/// Runs the job and turns whatever happened into a result; never fails. Live output goes to the
/// job's event stream and is all written before this returns, so the result (and the `done`
/// event the recorder appends) always comes after the last output.
///
/// A job's life here: claim it (register for control, take the lease), keep the lease alive,
/// run it in a warm container with its live channels, judge what the shim measured.
async fn execute(
    job: &JobMessage,
    attempt: u32,
    pool: &Arc<LanguagePool>,
    ctx: &JobContext,
) -> Outcome {
    // Identifies this execution: its lease on the job, and its right to hand the job back.
    let run = format!("{}-{:016x}", ctx.runner_id, fastrand::u64(..));
    let claim = match claim(job, attempt, ctx, &run).await {
        Ok(claim) => claim,
        Err(outcome) => return outcome,
    };
    let _lease = keep_lease(ctx, &job.id, &run);
    let end = match &job.judge {
        None => match run_with_live_channels(job, pool, ctx, claim.control).await {
            Ok(record) => JobEnd {
                judgement: judge(&record),
                error: record.error,
                judged: None,
            },
            Err(e) if e.is_retryable() => return Outcome::Retry(e, run),
            Err(e) => JobEnd {
                judgement: Judgement::without_steps(Verdict::InternalError),
                error: Some(e.to_string()),
                judged: None,
            },
        },
        Some(spec) => match run_judged(job, spec, pool, ctx, claim.control).await {
            Ok(end) => end,
            Err(e) => return Outcome::Retry(e, run),
        },
    };
    let started_at = claim.started_at;
    Outcome::Finished(Box::new(result_of(
        job,
        ctx,
        started_at,
        Some(started_at),
        end,
    )))
}

/// This run's hold on a job it may now start.
struct Claim {
    started_at: DateTime<Utc>,
    /// Keeps the job registered for cancellation until the run ends.
    _registration: Registration,
    control: ControlLines,
}

/// The job's control channel: the sender feeds its interactive input, the receiver goes to
/// the shim conversation; the hub holds another sender for cancellation.
struct ControlLines {
    sender: mpsc::UnboundedSender<ShimControl>,
    receiver: mpsc::UnboundedReceiver<ShimControl>,
}

/// Registers the job for control and marks it running under `run`, waiting while another run
/// of it is still live. `Err` carries what becomes of the delivery instead (a duplicate, a job
/// cancelled before it started, or a pause at shutdown).
async fn claim(
    job: &JobMessage,
    attempt: u32,
    ctx: &JobContext,
    run: &str,
) -> Result<Claim, Outcome> {
    let limits_ms = job.time_budget_ms(&ctx.topology);
    let mut waited = false;
    loop {
        let started_at = Utc::now();
        let limits_end = started_at
            .checked_add_signed(chrono::Duration::milliseconds(
                limits_ms.min(i64::MAX as u64) as i64,
            ))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        // Registered before it is marked running: a cancel announced once it runs must find it.
        if let Some((registration, sender, receiver)) = ctx.control.try_register(&job.id) {
            let pickup = ctx
                .status
                .mark_running(&job.id, run, started_at, attempt, limits_end)
                .await;
            match pickup {
                Pickup::Run => {
                    return Ok(Claim {
                        started_at,
                        _registration: registration,
                        control: ControlLines { sender, receiver },
                    })
                }
                Pickup::Finished => return Err(Outcome::Duplicate),
                Pickup::Cancelled => {
                    tracing::info!("cancelled before it started: not running it");
                    let end = JobEnd {
                        judgement: Judgement::without_steps(Verdict::Cancelled),
                        error: None,
                        judged: None,
                    };
                    let result = result_of(job, ctx, started_at, None, end);
                    return Err(Outcome::Finished(Box::new(result)));
                }
                Pickup::Busy => {}
            }
        }
        if !waited {
            tracing::info!("another run of this job is still live: waiting for it to end");
            waited = true;
        }
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return Err(Outcome::Paused),
            _ = tokio::time::sleep(BUSY_POLL) => {}
        }
    }
}

/// Renews the run's lease on the job until the returned guard is dropped.
fn keep_lease(ctx: &JobContext, id: &str, run: &str) -> AbortOnDrop {
    let (status, id, run) = (ctx.status.clone(), id.to_string(), run.to_string());
    AbortOnDrop(tokio::spawn(async move {
        loop {
            tokio::time::sleep(LEASE / 3).await;
            status.renew_lease(&id, &run).await;
        }
    }))
}

/// Writes what `events` carries to the job's stream until its senders are gone; the task ends
/// once everything is written.
fn spawn_stream_writer<E: Into<StreamEvent> + Send + 'static>(
    job: &JobMessage,
    pool: &Arc<LanguagePool>,
    ctx: &JobContext,
    events: mpsc::Receiver<E>,
) -> tokio::task::JoinHandle<u64> {
    let caps = StepCaps {
        compile: pool.language().compile_limits.output_bytes,
        run: job.limits.output_bytes,
    };
    let (live, id) = (ctx.live.clone(), job.id.clone());
    tokio::spawn(async move { live.forward(&id, caps, events).await })
}

/// Runs the job in a warm container while its live events are written to its stream and, for
/// an interactive job, its input is forwarded; returns once every live event is written.
async fn run_with_live_channels(
    job: &JobMessage,
    pool: &Arc<LanguagePool>,
    ctx: &JobContext,
    control: ControlLines,
) -> Result<ShimRecord, PoolError> {
    let (live_tx, live_rx) = mpsc::channel(256);
    let writer = spawn_stream_writer(job, pool, ctx, live_rx);
    let ControlLines { sender, receiver } = control;
    let stdin = job.interactive.then(|| {
        let (redis, id) = (ctx.redis.clone(), job.id.clone());
        AbortOnDrop(tokio::spawn(control::forward_stdin(redis, id, sender)))
    });
    let channels = JobChannels {
        control: receiver,
        live: live_tx,
    };
    let outcome = pool.run(job, channels).await;
    drop(stdin);
    let writes = writer.await.unwrap_or(0);
    tracing::debug!(writes, "live events written");
    outcome
}

/// Judge mode: runs every test of `job` after fetching their inputs, judging each as it ends;
/// `Err` only for a platform fault worth a retry on another container.
async fn run_judged(
    job: &JobMessage,
    spec: &rce_protocol::judge::JudgeSpec,
    pool: &Arc<LanguagePool>,
    ctx: &JobContext,
    control: ControlLines,
) -> Result<JobEnd, PoolError> {
    let spec = Arc::new(spec.clone());
    let failed = |error: String, judged: judging::Judged| {
        let (verdict, tests, score) = judging::conclude(&spec, judged, true, false, true);
        JobEnd {
            judgement: Judgement::without_steps(verdict),
            error: Some(error),
            judged: Some((tests, score)),
        }
    };
    let inputs = match ctx.test_data.inputs(&spec).await {
        Ok(inputs) => inputs,
        Err(e) => return Ok(failed(e, judging::Judged::default())),
    };
    let tests = inputs
        .into_iter()
        .zip(&spec.tests)
        .map(|(stdin, t)| pool.shim_test(stdin, &t.limits))
        .collect();
    let (pool_tx, pool_rx) = mpsc::channel(256);
    let (stream_tx, stream_rx) = mpsc::channel::<StreamEvent>(256);
    let writer = spawn_stream_writer(job, pool, ctx, stream_rx);
    let judging = Judge {
        spec: Arc::clone(&spec),
        data: ctx.test_data.clone(),
        out_of_memory: pool.language().out_of_memory.clone(),
        control: control.sender,
    };
    let checker_stream = stream_tx.clone();
    let judging = tokio::spawn(judging.follow(pool_rx, stream_tx));
    let channels = JobChannels {
        control: control.receiver,
        live: pool_tx,
    };
    let outcome = pool.run_tests(job, tests, channels).await;
    // The pool's sender is gone with the run: judging ends with the last test.
    let mut judged = judging.await.unwrap_or_default();
    let record = match outcome {
        Ok(record) => record,
        Err(e) if e.is_retryable() && judged.results.is_empty() => return Err(e),
        Err(e) => return Ok(failed(e.to_string(), judged)),
    };
    let (compiled, cancelled_in_build) = judging::build_state(&record);
    if let Some(checker) = &spec.custom_checker {
        if compiled && record.error.is_none() {
            let cases = match checker_cases(ctx, &spec, &judged).await {
                Ok(cases) => cases,
                Err(e) => return Ok(failed(e, judged)),
            };
            let verdicts =
                crate::custom_checker::check_all(&ctx.pools, &job.id, checker, cases).await;
            judging::apply_checker(&spec, &mut judged, verdicts);
        }
        for result in &judged.results {
            let json = serde_json::to_string(result).expect("a test result serializes");
            let _ = checker_stream.send(StreamEvent::Test(json)).await;
        }
    }
    drop(checker_stream);
    let _ = writer.await;
    let cancelled = cancelled_in_build
        || judged
            .results
            .last()
            .is_some_and(|r| r.verdict == rce_protocol::judge::TestVerdict::Skipped)
        || (record.error.is_none()
            && !judged.stopped
            && judged.results.len() < spec.tests.len()
            && ctx.status.cancel_requested(&job.id).await);
    let failed_under = record.error.is_some();
    let (verdict, tests, score) =
        judging::conclude(&spec, judged, compiled, cancelled, failed_under);
    let compile = judge(&record).compile;
    // A failed job says why: the platform's error, or the first test the platform failed.
    let error = record.error.or_else(|| {
        let failed = tests
            .iter()
            .find(|t| t.verdict == rce_protocol::judge::TestVerdict::InternalError)?;
        let why = failed.checker_message.as_deref().unwrap_or("not run");
        Some(format!("test {:?}: {why}", failed.name))
    });
    Ok(JobEnd {
        judgement: Judgement {
            verdict,
            compile,
            run: None,
        },
        error,
        judged: Some((tests, score)),
    })
}

/// What the custom checker judges: each pending test's input, output and answer (empty when
/// the test has no expected output).
async fn checker_cases(
    ctx: &JobContext,
    spec: &rce_protocol::judge::JudgeSpec,
    judged: &judging::Judged,
) -> Result<Vec<crate::custom_checker::CheckerCase>, String> {
    let mut cases = Vec::with_capacity(judged.pending.len());
    for (index, output) in &judged.pending {
        let test = &spec.tests[*index];
        let answer = match &test.expected {
            Some(id) => ctx.test_data.fetch(id).await?,
            None => Vec::new(),
        };
        cases.push(crate::custom_checker::CheckerCase {
            input: ctx.test_data.fetch(&test.stdin).await?,
            output: output.clone(),
            answer,
        });
    }
    Ok(cases)
}

/// How a job ended, as its result tells it.
struct JobEnd {
    judgement: Judgement,
    /// Why the platform failed, when it did.
    error: Option<String>,
    /// Judge mode: every test's result and the score.
    judged: Option<(
        Vec<rce_protocol::judge::TestResult>,
        rce_protocol::judge::Score,
    )>,
}

fn result_of(
    job: &JobMessage,
    ctx: &JobContext,
    picked_up: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    JobEnd {
        judgement,
        error,
        judged,
    }: JobEnd,
) -> ResultMessage {
    let Judgement {
        verdict,
        compile,
        run,
    } = judgement;
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
        score: judged.as_ref().map(|(_, score)| *score),
        tests: judged.map(|(tests, _)| tests),
    }
}

async fn reject(delivery: &Delivery, ctx: &JobContext, reason: &str) {
    ctx.metrics.rejected.with_label_values(&[reason]).inc();
    let options = BasicRejectOptions { requeue: false };
    if let Err(e) = delivery.acker.reject(options).await {
        tracing::error!(error = %e, "could not reject the delivery");
    }
}
