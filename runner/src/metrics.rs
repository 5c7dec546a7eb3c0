//! The runner's Prometheus metrics, served on `RCE_RUNNER_METRICS_ADDR`.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct RunnerMetrics {
    pub registry: Registry,
    /// Jobs finished, by language and verdict.
    pub jobs: IntCounterVec,
    /// Time from pickup to confirmed result, by language.
    pub job_seconds: HistogramVec,
    /// Warm containers by language and state (`idle`, `busy`).
    pub containers: IntGaugeVec,
    /// Warm containers per language (idle or busy): below `pool_configured_size` only while
    /// retired containers are being replaced; staying below it means replacements fail.
    pub pool_size: IntGaugeVec,
    /// The pool size topology.yaml asks for, per language.
    pub pool_configured_size: IntGaugeVec,
    /// Deliveries rejected to the dead-letter exchange, by reason.
    pub rejected: IntCounterVec,
    /// Deliveries returned to the queue unrun or to be run again, by reason (`paused`: the
    /// runner was stopping or its engine down; `platform_fault`: the engine or container failed
    /// under the job; `unpublished`: its result could not be published).
    pub handed_back: IntCounterVec,
    /// Deliveries of jobs whose result was already recorded, acked without running them.
    pub duplicates: prometheus::IntCounter,
    /// Containers destroyed, by language and reason (`unclean`, `failed`, `recycled`): a rising
    /// `unclean` means jobs leave something the cleanup cannot remove.
    pub retired: IntCounterVec,
}

impl RunnerMetrics {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let registry = Registry::new();
        let jobs = IntCounterVec::new(
            Opts::new("rce_runner_jobs_total", "Jobs finished by this runner"),
            &["language", "verdict"],
        )
        .expect("valid metric");
        let job_seconds = HistogramVec::new(
            HistogramOpts::new(
                "rce_runner_job_duration_seconds",
                "Pickup to confirmed result",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["language"],
        )
        .expect("valid metric");
        let containers = IntGaugeVec::new(
            Opts::new("rce_pool_containers", "Warm containers by state"),
            &["language", "state"],
        )
        .expect("valid metric");
        let pool_size = IntGaugeVec::new(
            Opts::new(
                "rce_pool_size",
                "Warm containers of a pool, idle or busy (retired ones being replaced are not)",
            ),
            &["language"],
        )
        .expect("valid metric");
        let pool_configured_size = IntGaugeVec::new(
            Opts::new(
                "rce_pool_configured_size",
                "The pool size topology.yaml asks for",
            ),
            &["language"],
        )
        .expect("valid metric");
        let rejected = IntCounterVec::new(
            Opts::new("rce_runner_rejected_total", "Deliveries dead-lettered"),
            &["reason"],
        )
        .expect("valid metric");
        let retired = IntCounterVec::new(
            Opts::new(
                "rce_pool_containers_retired_total",
                "Containers destroyed and replaced",
            ),
            &["language", "reason"],
        )
        .expect("valid metric");
        let handed_back = IntCounterVec::new(
            Opts::new(
                "rce_runner_handed_back_total",
                "Deliveries returned to the queue",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let duplicates = prometheus::IntCounter::new(
            "rce_runner_duplicates_total",
            "Deliveries of already finished jobs, acked unrun",
        )
        .expect("valid metric");
        for m in [
            Box::new(jobs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(job_seconds.clone()),
            Box::new(containers.clone()),
            Box::new(pool_size.clone()),
            Box::new(pool_configured_size.clone()),
            Box::new(rejected.clone()),
            Box::new(retired.clone()),
            Box::new(handed_back.clone()),
            Box::new(duplicates.clone()),
        ] {
            registry.register(m).expect("metric registered once");
        }
        Self {
            registry,
            jobs,
            job_seconds,
            containers,
            pool_size,
            pool_configured_size,
            rejected,
            retired,
            handed_back,
            duplicates,
        }
    }

    /// Brings the retirement counters up to the pool's own totals.
    pub fn observe_retirements(&self, language: &str, totals: rce_pool::Retirements) {
        for (reason, total) in [
            ("unclean", totals.unclean),
            ("failed", totals.failed),
            ("recycled", totals.recycled),
        ] {
            let counter = self.retired.with_label_values(&[language, reason]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    pub fn render(&self) -> String {
        rce_service::metrics::render(&self.registry)
    }
}
