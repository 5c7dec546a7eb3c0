//! One cell of the sweep: N jobs of one path at a fixed concurrency, each timed from the
//! client's side, after unmeasured warm-up jobs.

use crate::proc_stats::CpuMeter;
use crate::results::{CellResult, ProgramCost, ProgramMedians};
use crate::stats::LatencySummary;
use futures_util::future::BoxFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One job of a path: runs it, checks its output, and returns what the service reported about
/// the program (project paths) or `None`.
pub type JobFn =
    Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<Option<ProgramCost>>> + Send + Sync>;

/// How many distinct failure messages a cell keeps.
const KEPT_ERRORS: usize = 5;

/// What a batch of jobs did.
#[derive(Debug, Default)]
pub struct Batch {
    pub latencies_ms: Vec<f64>,
    pub programs: Vec<ProgramCost>,
    pub failures: usize,
    pub errors: Vec<String>,
    pub wall: Duration,
}

/// Runs `jobs` jobs with `concurrency` workers, each taking the next job as soon as its
/// previous one ended (a closed loop: the concurrency is the number of jobs in flight).
pub async fn run_batch(job: JobFn, jobs: usize, concurrency: usize) -> Batch {
    let next = Arc::new(AtomicUsize::new(0));
    let batch = Arc::new(Mutex::new(Batch::default()));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (job, next, batch) = (job.clone(), next.clone(), batch.clone());
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < jobs {
                let t = Instant::now();
                let outcome = job().await;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let mut b = batch.lock().expect("batch lock");
                match outcome {
                    Ok(program) => {
                        b.latencies_ms.push(ms);
                        b.programs.extend(program);
                    }
                    Err(e) => {
                        b.failures += 1;
                        let message = format!("{e:#}");
                        if b.errors.len() < KEPT_ERRORS && !b.errors.contains(&message) {
                            b.errors.push(message);
                        }
                    }
                }
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined {
            let mut b = batch.lock().expect("batch lock");
            b.failures += 1;
            b.errors.push(format!("worker panicked: {e}"));
        }
    }
    let mut batch = std::mem::take(&mut *batch.lock().expect("batch lock"));
    batch.wall = started.elapsed();
    batch
}

/// Where a cell is and how it is run.
pub struct CellSpec {
    pub path: crate::options::PathKind,
    pub language: String,
    pub concurrency: usize,
    pub warmup: usize,
    pub jobs: usize,
}

/// Warm-up, then the measured jobs between two CPU readings.
pub async fn measure(spec: CellSpec, job: JobFn, cpu: &CpuMeter) -> CellResult {
    let warm = run_batch(job.clone(), spec.warmup, spec.concurrency).await;
    if let Some(e) = warm.errors.first() {
        eprintln!(
            "  warm-up of {} {} c={}: {} of {} failed, e.g. {e}",
            spec.path.id(),
            spec.language,
            spec.concurrency,
            warm.failures,
            spec.warmup
        );
    }
    let before = cpu.snapshot();
    let batch = run_batch(job, spec.jobs, spec.concurrency).await;
    let spent = cpu.since(&before);
    let wall_secs = batch.wall.as_secs_f64();
    CellResult {
        path: spec.path,
        language: spec.language,
        concurrency: spec.concurrency,
        jobs: spec.jobs,
        failures: batch.failures,
        errors: batch.errors,
        latency: LatencySummary::of(&batch.latencies_ms),
        jobs_per_sec: spec.jobs as f64 / wall_secs.max(1e-9),
        wall_secs,
        cpu_per_job: spent.per_job(spec.jobs),
        program: ProgramMedians::of(&batch.programs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_runs_every_job_once_and_keeps_failures_apart() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let job: JobFn = Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                if [0, 5, 10, 15].contains(&n) {
                    anyhow::bail!("job {} failed", n % 2)
                }
                Ok(Some(ProgramCost {
                    run_wall_ms: 1.0,
                    ..Default::default()
                }))
            })
        });
        let batch = run_batch(job, 20, 4).await;
        assert_eq!(calls.load(Ordering::SeqCst), 20);
        assert_eq!(batch.failures, 4);
        assert_eq!(batch.latencies_ms.len(), 16);
        assert_eq!(batch.programs.len(), 16);
        assert_eq!(batch.errors.len(), 2, "distinct messages only");
    }
}
