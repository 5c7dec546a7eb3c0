//! Whether this runner can run jobs right now, as far as the Docker engine goes. A runner whose
//! engine is down must stop taking jobs (each one it took would fail and burn one of the job's
//! deliveries), and when the engine comes back its pools are husks: every container died with
//! the engine. This watch pings the engine, flips the runner to paused when it stops answering,
//! and to ready again only once the pools are rebuilt.

use bollard::Docker;
use rce_pool::Pools;
use rce_service::backoff::Backoff;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
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

/// The runner's view of its engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    ready: EngineReady,
    suspect: Arc<Notify>,
}

impl Engine {
    /// Whether jobs may start now.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// A receiver to wait on readiness changes.
    pub fn subscribe(&self) -> EngineReady {
        self.ready.clone()
    }

    /// Reports that a job just failed in a way the engine may be behind: the watch pings at
    /// once, and one failed ping is then enough to pause. Without this, jobs already handed to
    /// the runner would fail one after another (each burning a delivery) until the next
    /// periodic pings noticed.
    pub fn suspect(&self) {
        self.suspect.notify_one();
    }
}

/// Starts watching; the pools must be warm already (the runner warms them before serving).
pub fn spawn(docker: Docker, pools: Pools, stop: CancellationToken) -> Engine {
    let (tx, rx) = watch::channel(true);
    let suspect = Arc::new(Notify::new());
    let notified = suspect.clone();
    tokio::spawn(async move { watch_engine(docker, pools, tx, notified, stop).await });
    Engine { ready: rx, suspect }
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
    suspect: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut failures = 0;
    loop {
        let suspected = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PING_EVERY) => false,
            _ = suspect.notified() => true,
        };
        if ping(&docker).await {
            failures = 0;
            continue;
        }
        failures += 1;
        if failures < FAILURES_TO_PAUSE && !suspected {
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
