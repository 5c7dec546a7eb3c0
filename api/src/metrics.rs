//! The api's Prometheus metrics, served at `/metrics`.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct ApiMetrics {
    pub registry: Registry,
    /// Submissions by language and outcome (`accepted` or the error code).
    pub submissions: IntCounterVec,
    /// Time to answer `POST /v1/jobs`, by whether it waited.
    pub submit_seconds: HistogramVec,
    /// Clients following a job live, by transport (`sse`, `ws`).
    pub live_clients: IntGaugeVec,
}

impl ApiMetrics {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let registry = Registry::new();
        let submissions = IntCounterVec::new(
            Opts::new("rce_api_submissions_total", "Job submissions by outcome"),
            &["language", "outcome"],
        )
        .expect("valid metric");
        let submit_seconds = HistogramVec::new(
            HistogramOpts::new(
                "rce_api_submit_duration_seconds",
                "Time to answer POST /v1/jobs",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["wait"],
        )
        .expect("valid metric");
        let live_clients = IntGaugeVec::new(
            Opts::new("rce_api_live_clients", "Clients following a job live"),
            &["transport"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(live_clients.clone()))
            .expect("registered once");
        registry
            .register(Box::new(submissions.clone()))
            .expect("registered once");
        registry
            .register(Box::new(submit_seconds.clone()))
            .expect("registered once");
        Self {
            registry,
            submissions,
            submit_seconds,
            live_clients,
        }
    }

    pub fn render(&self) -> String {
        rce_service::metrics::render(&self.registry)
    }
}
