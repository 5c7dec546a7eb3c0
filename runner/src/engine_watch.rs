//! Whether this runner can run jobs right now, as far as the Docker engine goes. A runner whose
//! engine is down must stop taking jobs (each one it took would fail and burn one of the job's
//! deliveries), and when the engine comes back its pools are husks: every container died with
//! the engine. This watch pings the engine, flips the runner to paused when it stops answering,
//! and to ready again only once the pools are rebuilt.

use bollard::Docker;
use rce_pool::Pools;
use rce_service::backoff::Backoff;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the engine is pinged while it answers.
const PING_EVERY: Duration = Duration::from_secs(1);
/// A ping slower than this counts as a failure.
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// Consecutive failed pings before the runner pauses: one slow answer on a loaded machine is
/// not an outage.
const FAILURES_TO_PAUSE: u32 = 2;

/// True while the engine answers and the pools are warm.
pub type EngineReady = watch::Receiver<bool>;

/// Starts watching; the pools must be warm already (the runner warms them before serving).
pub fn spawn(docker: Docker, pools: Pools, stop: CancellationToken) -> EngineReady {
    let (tx, rx) = watch::channel(true);
    tokio::spawn(async move { watch_engine(docker, pools, tx, stop).await });
    rx
}

async fn ping(docker: &Docker) -> bool {
    matches!(
        tokio::time::timeout(PING_TIMEOUT, docker.ping()).await,
        Ok(Ok(_))
    )
}

async fn watch_engine(
    docker: Docker,
    pools: Pools,
    ready: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let mut failures = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PING_EVERY) => {}
        }
        if ping(&docker).await {
            failures = 0;
            continue;
        }
        failures += 1;
        if failures < FAILURES_TO_PAUSE {
            continue;
        }
        tracing::error!("the docker engine does not answer: no new jobs until it is back");
        ready.send_replace(false);
        if !recover(&docker, &pools, &stop).await {
            return;
        }
        failures = 0;
        tracing::info!("docker engine back and pools rebuilt: taking jobs again");
        ready.send_replace(true);
    }
}

/// Waits for the engine, then rebuilds the pools; retries both with backoff. False if stopped.
async fn recover(docker: &Docker, pools: &Pools, stop: &CancellationToken) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        if backoff.wait(stop).await {
            return false;
        }
        if !ping(docker).await {
            continue;
        }
        match pools.rebuild().await {
            Ok(()) => return true,
            Err(e) => tracing::warn!(error = %e, "could not rebuild the pools yet"),
        }
    }
}
