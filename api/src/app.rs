//! Wiring: broker, Redis, recorder, done-channel follower and HTTP server, until shutdown.

use crate::completions::Completions;
use crate::config::ApiConfig;
use crate::job_store::JobStore;
use crate::metrics::ApiMetrics;
use crate::routes::{router, AppState};
use anyhow::Context;
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
    let broker = Arc::new(rce_broker::connect(&config.amqp_url, "rce-api", BROKER_PATIENCE).await?);
    let setup = broker.create_channel().await?;
    rce_broker::declare_topology(&setup, &topology)
        .await
        .context("declaring the topology")?;
    let publisher = rce_broker::ConfirmedPublisher::new(&broker).await?;

    let redis = redis::Client::open(config.redis_url.as_str()).context("RCE_REDIS_URL")?;
    let conn = redis
        .get_connection_manager()
        .await
        .context("connecting to redis")?;
    let store = JobStore::new(conn, config.job_ttl);
    let completions = Completions::default();
    let stop = CancellationToken::new();

    let follower = tokio::spawn(completions.clone().follow(redis.clone(), stop.clone()));
    let recorder = {
        let (results, dead) = (
            broker.create_channel().await?,
            broker.create_channel().await?,
        );
        let (topology, store, stop) = (topology.clone(), store.clone(), stop.clone());
        tokio::spawn(
            async move { crate::recorder::run(results, dead, &topology, store, stop).await },
        )
    };

    let closing = CancellationToken::new();
    let state = AppState {
        redis: redis.clone(),
        closing: closing.clone(),
        heartbeat: config.heartbeat,
        topology,
        store,
        publisher,
        broker: broker.clone(),
        completions,
        metrics: ApiMetrics::new(),
        max_body_bytes: config.max_body_bytes,
        wait_margin: config.wait_margin,
    };
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    tracing::info!(addr = %config.addr, "api ready");
    let server_stop = stop.clone();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        tokio::select! {
            _ = shutdown => tracing::info!("shutdown requested"),
            _ = server_stop.cancelled() => {},
        }
        // Live streams would hold the graceful shutdown open forever: end them now.
        closing.cancel();
    });
    let outcome = tokio::select! {
        served = server => served.context("http server"),
        recorded = recorder => match recorded {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.context("the recorder stopped")),
            Err(e) => Err(anyhow::anyhow!("the recorder panicked: {e}")),
        },
    };
    stop.cancel();
    follower.await.ok();
    broker.close(200, "bye".into()).await.ok();
    outcome
}
