//! Wiring: engine, pools, broker and metrics server, run until the shutdown future resolves.

use crate::config::RunnerConfig;
use crate::control::ControlHub;
use crate::job_consumer::{consume, JobContext};
use crate::live_events::LiveEvents;
use crate::metrics::RunnerMetrics;
use crate::status_store::StatusStore;
use anyhow::Context;
use axum::routing::get;
use bollard::Docker;
use rce_pool::Pools;
use rce_protocol::topology::Topology;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the runner waits for RabbitMQ at start before giving up.
const BROKER_PATIENCE: Duration = Duration::from_secs(60);

pub async fn run(config: RunnerConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let topology = Arc::new(Topology::load(Path::new(&config.topology_path))?);
    let docker = Docker::connect_with_defaults()
        .context("docker engine")?
        .negotiate_version()
        .await
        .context("negotiating the docker API version")?;
    let pools = Pools::new(docker, &topology, &config.runner_id, &config.languages);
    if pools.iter().next().is_none() {
        anyhow::bail!("RCE_RUNNER_LANGUAGES names no language of the topology");
    }
    pools
        .check_runtimes()
        .await
        .context("checking the OCI runtimes topology.yaml asks for")?;
    let orphans = pools
        .remove_all_containers()
        .await
        .context("removing orphaned containers")?;
    if orphans > 0 {
        tracing::info!(orphans, "removed containers a previous runner left behind");
    }
    let warm_started = tokio::time::Instant::now();
    pools
        .warm_all()
        .await
        .context("warming the container pools")?;
    tracing::info!(ms = warm_started.elapsed().as_millis() as u64, "pools warm");

    let metrics = RunnerMetrics::new();
    let connection = rce_broker::connect(
        &config.amqp_url,
        &format!("rce-runner {}", config.runner_id),
        BROKER_PATIENCE,
    )
    .await?;
    let setup = connection.create_channel().await?;
    rce_broker::declare_topology(&setup, &topology)
        .await
        .context("declaring the topology")?;
    let status = StatusStore::connect(&config.redis_url)
        .await
        .context("redis")?;
    let redis = redis::Client::open(config.redis_url.as_str()).context("redis url")?;
    let control = ControlHub::default();
    let ctx = JobContext {
        topology: topology.clone(),
        publisher: rce_broker::ConfirmedPublisher::new(&connection).await?,
        live: LiveEvents::new(status.connection()),
        status,
        metrics: metrics.clone(),
        runner_id: config.runner_id.clone(),
        control: control.clone(),
        redis: redis.clone(),
    };

    let stop = CancellationToken::new();
    // Cancels must reach jobs until the last one has drained, so this follows its own token.
    let control_stop = CancellationToken::new();
    let control_task = tokio::spawn(control.follow(redis, control_stop.clone()));
    let tracker = TaskTracker::new();
    let mut consumers = tokio::task::JoinSet::new();
    for pool in pools.iter() {
        let (pool, ctx, tracker, stop) = (pool.clone(), ctx.clone(), tracker.clone(), stop.clone());
        let channel = connection.create_channel().await?;
        consumers.spawn(consume(channel, pool, ctx, tracker, stop));
    }
    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("binding {}", config.metrics_addr))?;
    tracing::info!(addr = %config.metrics_addr, runner = %config.runner_id, "runner ready");
    let server = axum::serve(listener, metrics_router(metrics.clone(), pools.clone()))
        .with_graceful_shutdown(stop.clone().cancelled_owned());
    let server = tokio::spawn(async move { server.await });

    let outcome = tokio::select! {
        _ = shutdown => { tracing::info!("shutdown requested"); Ok(()) }
        Some(done) = consumers.join_next() => match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.context("a consumer stopped")),
            Err(e) => Err(anyhow::anyhow!("a consumer panicked: {e}")),
        },
    };
    stop.cancel();
    while consumers.join_next().await.is_some() {}
    tracker.close();
    if tokio::time::timeout(config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight jobs did not finish within the grace period; they return to the queue"
        );
    }
    control_stop.cancel();
    control_task.await.ok();
    connection.close(200, "bye".into()).await.ok();
    let removed = pools.remove_all_containers().await.unwrap_or(0);
    tracing::info!(removed, "containers removed; runner stopped");
    server.await.ok();
    outcome
}

fn metrics_router(metrics: RunnerMetrics, pools: Pools) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let (metrics, pools) = (metrics.clone(), pools.clone());
                async move {
                    for pool in pools.iter() {
                        let s = pool.status();
                        let id = pool.language().id.as_str();
                        metrics
                            .containers
                            .with_label_values(&[id, "idle"])
                            .set(s.idle as i64);
                        metrics
                            .containers
                            .with_label_values(&[id, "busy"])
                            .set((s.size - s.idle) as i64);
                        metrics.observe_retirements(id, s.retired);
                    }
                    metrics.render()
                }
            }),
        )
}
