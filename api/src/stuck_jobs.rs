//! The backstop behind "every admitted job reaches a terminal state". A job whose runner
//! vanished is normally redelivered by RabbitMQ the moment the runner's connection drops; but a
//! runner can also freeze (SIGSTOP, a hung kernel, a network partition that keeps its TCP
//! connection half-open), and then nothing would ever end the job. Each runner writes, at
//! pickup, when the job's limits run out; this sweeper ends every job still running past that
//! point plus a margin as `internal_error`. The result is recorded first-wins, so a late result
//! from the frozen runner changes nothing, and several api instances sweeping at once are
//! harmless.

use crate::job_store::JobStore;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the set of running jobs is checked.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Jobs ended per sweep, at most; the rest wait for the next one.
const BATCH: usize = 100;

/// Sweeps until `stop`.
pub async fn sweep(store: JobStore, margin: Duration, stop: CancellationToken) {
    let margin_chrono = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
    let why = format!(
        "no result arrived within the job's limits plus {} s: its runner was lost",
        margin.as_secs()
    );
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        let now = chrono::Utc::now();
        // An absurd margin clamps the cutoff to now rather than panicking.
        let cutoff = now.checked_sub_signed(margin_chrono).unwrap_or(now);
        let overdue = match store.overdue(cutoff, BATCH).await {
            Ok(ids) => {
                failing = false;
                ids
            }
            Err(e) => {
                // Once per outage, not once a second.
                if !failing {
                    tracing::warn!(error = %e, "stuck-job sweep paused: redis unavailable");
                }
                failing = true;
                continue;
            }
        };
        for id in overdue {
            match store.end_overdue(&id, &why).await {
                Ok(true) => {
                    tracing::warn!(job_id = %id, "job stuck past its limits: ended as internal_error")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(job_id = %id, error = %e, "could not end a stuck job"),
            }
        }
    }
}
