//! Wiring: engine, pools, broker and metrics server, run until the shutdown future resolves.

use crate::config::RunnerConfig;
use crate::control::ControlHub;
use crate::engine_watch::{self, Engine};
use crate::job_consumer::{consume, JobContext};
use crate::judging::TestData;
use crate::live_events::LiveEvents;
use crate::metrics::RunnerMetrics;
use crate::status_store::StatusStore;
use anyhow::Context;
use axum::routing::get;
use bollard::Docker;
use rce_broker::BrokerLink;
use rce_pool::cgroup_delegation::{CgroupDelegation, CgroupVersion};
use rce_pool::{container_spec, Pools};
use rce_protocol::topology::{ExecMode, Topology};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The lifetime of what a runner would write to the file store (it writes nothing; the api's
/// uploads and checks set and renew lifetimes).
const FILE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long the runner waits for RabbitMQ (and the Docker engine) at start before giving up.
const BROKER_PATIENCE: Duration = Duration::from_secs(60);

/// Adds the topology's optional capabilities this host can grant (the runner runs on the
/// engine's host: its own bounding set is the engine's), and says which it cannot.
fn grant_optional_capabilities(topology: &mut Topology) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bounding = container_spec::bounding_set(&status).unwrap_or(0);
    let (granted, missing) = container_spec::grantable_capabilities(&topology.sandbox, bounding);
    if !missing.is_empty() {
        tracing::warn!(
            ?missing,
            "this host cannot grant these optional capabilities to containers (docs/security.md, \"Metering\")"
        );
    }
    topology.sandbox.capabilities.extend(granted);
}

pub async fn run(config: RunnerConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut topology = Topology::load(Path::new(&config.topology_path))?;
    grant_optional_capabilities(&mut topology);
    let topology = Arc::new(topology);
    let docker = connect_docker().await?;
    let cgroups = CgroupDelegation::detect(&docker, &config.cgroup_root, &config.runner_id)
        .await
        .context("checking that jobs can be metered by their own cgroups")?;
    let cgroups_v2 = cgroups.version() == CgroupVersion::V2;
    let uids = config.uid_range(&topology.sandbox)?;
    let pools = Pools::new(
        docker.clone(),
        &topology,
        &config.runner_id,
        &config.languages,
        cgroups,
        uids,
    )
    .context("RCE_RUNNER_UID_BLOCKS")?;
    let (first_uid, last_uid) = uids.uids();
    tracing::info!(
        index = config.runner_index,
        first_uid,
        last_uid,
        "job uids of this runner"
    );
    if cgroups_v2 {
        if let Some(exec) = pools
            .iter()
            .find(|p| p.language().exec_mode == ExecMode::Exec)
        {
            // The engine would exec the shim into the container's cgroup, which on v2 may not
            // hold processes once the step cgroups below it have controllers.
            anyhow::bail!(
                "language {:?} uses exec_mode: exec, which cgroup v2 hosts do not support; use agent mode",
                exec.language().id
            );
        }
    }
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

    // Lives until the very end: in-flight jobs publish their results through it.
    let link_stop = CancellationToken::new();
    let broker = BrokerLink::start(
        &config.amqp_url,
        &format!("rce-runner {}", config.runner_id),
        topology.clone(),
        BROKER_PATIENCE,
        link_stop.clone(),
    )
    .await
    .context("rabbitmq")?;
    let redis = redis::Client::open(config.redis_url.as_str()).context("RCE_REDIS_URL")?;
    let conn = rce_service::redis_conn::manager(&redis).context("redis")?;
    let status = StatusStore::new(conn.clone());
    let metrics = RunnerMetrics::new();
    let control = ControlHub::default();
    let stop = CancellationToken::new();
    let engine = engine_watch::spawn(docker, pools.clone(), link_stop.clone());
    let cache = rce_files::DiskCache::open(&config.file_cache_dir, config.file_cache_bytes)
        .with_context(|| format!("RCE_FILE_CACHE_DIR {}", config.file_cache_dir.display()))?;
    let test_data = TestData {
        // Runners only read: the lifetime is the api's to renew.
        store: rce_files::FileStore::from_config(&config.file_store, conn.clone(), FILE_TTL)
            .context("the file store")?,
        cache: Arc::new(cache),
    };
    let ctx = JobContext {
        test_data,
        pools: pools.clone(),
        topology: topology.clone(),
        broker: broker.clone(),
        live: LiveEvents::new(conn.clone()),
        status,
        metrics: metrics.clone(),
        runner_id: config.runner_id.clone(),
        control: control.clone(),
        redis: redis.clone(),
        engine: engine.clone(),
        shutdown: stop.clone(),
    };

    // Cancels must reach jobs until the last one has drained, so this follows its own token.
    let control_stop = CancellationToken::new();
    let control_task = tokio::spawn(control.follow(redis, control_stop.clone()));
    let tracker = TaskTracker::new();
    let mut consumers = tokio::task::JoinSet::new();
    for pool in pools.iter() {
        consumers.spawn(consume(pool.clone(), ctx.clone(), tracker.clone()));
    }
    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("binding {}", config.metrics_addr))?;
    tracing::info!(addr = %config.metrics_addr, runner = %config.runner_id, "runner ready");
    let probes = Probes {
        draining: stop.clone(),
        broker: broker.clone(),
        engine,
        redis: conn,
        pools: pools.clone(),
    };
    let server = axum::serve(listener, metrics_router(metrics.clone(), probes))
        .with_graceful_shutdown(link_stop.clone().cancelled_owned());
    let server = tokio::spawn(async move { server.await });

    shutdown.await;
    tracing::info!("shutdown requested: no new jobs; in-flight jobs may finish");
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
    // Supervision first, or it would reconnect the link we are closing.
    link_stop.cancel();
    broker.close().await;
    let removed = pools.remove_all_containers().await.unwrap_or(0);
    tracing::info!(removed, "containers removed; runner stopped");
    server.await.ok();
    Ok(())
}

/// Connects to the Docker engine, waiting for it as for RabbitMQ: a runner started alongside a
/// Docker-in-Docker sidecar comes up before its engine does.
async fn connect_docker() -> anyhow::Result<Docker> {
    let docker = Docker::connect_with_defaults().context("docker engine")?;
    let started = tokio::time::Instant::now();
    let mut backoff = rce_service::backoff::Backoff::reconnect();
    loop {
        match docker.clone().negotiate_version().await {
            Ok(docker) => return Ok(docker),
            Err(e) if started.elapsed() < BROKER_PATIENCE => {
                tracing::warn!(error = %e, "docker engine not reachable yet");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => return Err(e).context("negotiating the docker API version"),
        }
    }
}

/// What `/readyz` looks at.
#[derive(Clone)]
struct Probes {
    /// Cancelled at SIGTERM: a draining runner takes no jobs.
    draining: CancellationToken,
    broker: BrokerLink,
    engine: Engine,
    redis: redis::aio::ConnectionManager,
    pools: Pools,
}

/// Ready when the runner can take jobs: connected to RabbitMQ, engine up and pools warm. Redis
/// is reported but not required: without it jobs still run and report through RabbitMQ (only
/// their live output is lost).
async fn readyz(probes: Probes) -> axum::response::Response {
    use axum::response::IntoResponse;
    let broker = probes.broker.connected();
    let docker = probes.engine.is_ready();
    // Redis is optional here: a slow one must not make the probe slow.
    let mut conn = probes.redis.clone();
    let ping = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let pools: serde_json::Map<String, serde_json::Value> = probes
        .pools
        .iter()
        .map(|p| {
            let s = p.status();
            let id = p.language().id.clone();
            (id, serde_json::json!({"size": s.size, "idle": s.idle}))
        })
        .collect();
    let draining = probes.draining.is_cancelled();
    let ready = broker && docker && !draining;
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "ready": ready, "broker": broker, "docker": docker, "redis": ping,
        "draining": draining, "pools": pools,
    });
    (status, axum::Json(body)).into_response()
}

fn metrics_router(metrics: RunnerMetrics, probes: Probes) -> axum::Router {
    let pools = probes.pools.clone();
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(move || readyz(probes.clone())))
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
                        metrics
                            .pool_size
                            .with_label_values(&[id])
                            .set(s.size as i64);
                        metrics
                            .pool_configured_size
                            .with_label_values(&[id])
                            .set(s.max as i64);
                        metrics.observe_retirements(id, s.retired);
                    }
                    metrics.render()
                }
            }),
        )
}
