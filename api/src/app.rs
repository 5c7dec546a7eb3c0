//! Wiring: broker, Redis, recorder, done-channel follower and HTTP server, until shutdown.

use crate::completions::Completions;
use crate::config::ApiConfig;
use crate::job_store::JobStore;
use crate::metrics::ApiMetrics;
use crate::routes::{router, AppState};
use anyhow::Context;
use rce_broker::BrokerLink;
use rce_protocol::topology::Topology;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const BROKER_PATIENCE: Duration = Duration::from_secs(60);

pub async fn run(
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let topology = Arc::new(Topology::load(Path::new(&config.topology_path))?);
    // Background tasks (broker supervision, recorder, sweeper, done follower) stop with this.
    let stop = CancellationToken::new();
    let broker = BrokerLink::start(
        &config.amqp_url,
        "rce-api",
        topology.clone(),
        BROKER_PATIENCE,
        stop.clone(),
    )
    .await
    .context("rabbitmq")?;
    let redis = redis::Client::open(config.redis_url.as_str()).context("RCE_REDIS_URL")?;
    let conn = rce_service::redis_conn::manager(&redis).context("redis")?;
    let store = JobStore::new(conn.clone(), config.job_ttl);
    let files =
        rce_files::FileStore::from_config(&config.file_store, conn.clone(), config.file_ttl)
            .context("the file store")?;
    let completions = Completions::default();

    let follower = tokio::spawn(completions.clone().follow(redis.clone(), stop.clone()));
    let recorder = {
        let (broker, topology, store, stop) = (
            broker.clone(),
            topology.clone(),
            store.clone(),
            stop.clone(),
        );
        tokio::spawn(async move { crate::recorder::run(broker, &topology, store, stop).await })
    };
    let sweeper = tokio::spawn(crate::stuck_jobs::sweep(
        store.clone(),
        config.stuck_margin,
        stop.clone(),
    ));

    let closing = CancellationToken::new();
    let metrics = ApiMetrics::new();
    metrics.prime(&topology);
    let state = AppState {
        redis: redis.clone(),
        closing: closing.clone(),
        heartbeat: config.heartbeat,
        topology,
        store,
        broker: broker.clone(),
        completions,
        metrics,
        max_body_bytes: config.max_body_bytes,
        files,
        max_file_bytes: config.max_file_bytes,
        wait_margin: config.wait_margin,
        judge0: crate::judge0::store::Judge0Store::new(conn.clone(), config.job_ttl),
        webhooks: Arc::new(config.webhooks.clone()),
        judge0_authz: Arc::new(config.judge0_authz_tokens.clone()),
        judge0_authn: Arc::new(config.judge0_authn_tokens.clone()),
    };
    let webhooks = tokio::spawn(
        crate::webhooks::Sender {
            conn: conn.clone(),
            config: state.webhooks.clone(),
            store: state.store.clone(),
            judge0: state.judge0.clone(),
            topology: state.topology.clone(),
            metrics: state.metrics.clone(),
            hosts: Default::default(),
        }
        .run(stop.clone()),
    );
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    tracing::info!(addr = %config.addr, "api ready");
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutdown requested");
        // Live streams would hold the graceful shutdown open forever: end them now.
        closing.cancel();
    });
    let served = server.await.context("http server");
    stop.cancel();
    for task in [follower, recorder, sweeper, webhooks] {
        task.await.ok();
    }
    broker.close().await;
    served
}
