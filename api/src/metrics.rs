//! The api's Prometheus metrics, served at `/metrics`.
//!
//! Two counters, each incremented exactly once per thing it counts: `rce_api_requests_total` once
//! per HTTP request, at the edge (`routes::edge`), whatever answered it (a handler, an error, the
//! fallback); `rce_api_submissions_total` once per job submission (`POST /v1/jobs` or the
//! submit-and-attach WebSocket), by how admission ended. The series operators alert on exist at
//! zero from the start ([`ApiMetrics::prime`]): an alert on `increase(...)` cannot fire on a
//! series that first appears with the failure it counts.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use rce_protocol::topology::Topology;

/// Submission outcomes of a known language that operators watch (docs/operations.md).
pub const WATCHED_SUBMISSION_OUTCOMES: [&str; 4] = [
    "accepted",
    "queue_full",
    "broker_unavailable",
    "store_unavailable",
];

/// Refusals before a job's language is known, counted under the language `invalid`.
pub const WATCHED_INVALID_OUTCOMES: [&str; 2] = ["malformed_request", "payload_too_large"];

#[derive(Clone)]
pub struct ApiMetrics {
    pub registry: Registry,
    /// Submissions by language and outcome (`accepted` or the error code).
    pub submissions: IntCounterVec,
    /// Every HTTP request by method, route template, status and outcome (`ok` or the error code).
    pub requests: IntCounterVec,
    /// Time to answer `POST /v1/jobs`, by whether it waited.
    pub submit_seconds: HistogramVec,
    /// Clients following a job live, by transport (`sse`, `ws`).
    pub live_clients: IntGaugeVec,
    /// Webhook attempts by outcome: `delivered`, `retry` (a failed attempt that will be tried
    /// again), `given_up` (its retry window ran out), `dropped` (its job expired first).
    pub webhooks: IntCounterVec,
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
        let requests = IntCounterVec::new(
            Opts::new(
                "rce_api_requests_total",
                "HTTP requests by method, route, status and outcome",
            ),
            &["method", "route", "status", "outcome"],
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
        let webhooks = IntCounterVec::new(
            Opts::new("rce_api_webhooks_total", "Webhook attempts by outcome"),
            &["outcome"],
        )
        .expect("valid metric");
        for outcome in ["delivered", "retry", "given_up", "dropped"] {
            webhooks.with_label_values(&[outcome]);
        }
        for metric in [
            Box::new(webhooks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(live_clients.clone()),
            Box::new(submissions.clone()),
            Box::new(requests.clone()),
            Box::new(submit_seconds.clone()),
        ] {
            registry.register(metric).expect("registered once");
        }
        Self {
            registry,
            submissions,
            requests,
            submit_seconds,
            live_clients,
            webhooks,
        }
    }

    /// Creates, at zero, every series operators alert on: the watched submission outcomes of
    /// each language of `topology`, the early refusals, and the 503s of `POST /v1/jobs`.
    pub fn prime(&self, topology: &Topology) {
        for language in topology.languages.keys() {
            for outcome in WATCHED_SUBMISSION_OUTCOMES {
                self.submissions.with_label_values(&[language, outcome]);
            }
        }
        for outcome in WATCHED_INVALID_OUTCOMES {
            self.submissions.with_label_values(&["invalid", outcome]);
        }
        for outcome in &WATCHED_SUBMISSION_OUTCOMES[1..] {
            self.requests
                .with_label_values(&["POST", "/v1/jobs", "503", outcome]);
        }
    }

    /// Counts one submission's end.
    pub fn count_submission(&self, language: &str, outcome: &str) {
        self.submissions
            .with_label_values(&[language, outcome])
            .inc();
    }

    pub fn render(&self) -> String {
        rce_service::metrics::render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_series_exist_at_zero() {
        let metrics = ApiMetrics::new();
        metrics.prime(&Topology::from_source_tree().unwrap());
        let text = metrics.render();
        for line in [
            r#"rce_api_submissions_total{language="python",outcome="store_unavailable"} 0"#,
            r#"rce_api_submissions_total{language="java",outcome="queue_full"} 0"#,
            r#"rce_api_submissions_total{language="invalid",outcome="malformed_request"} 0"#,
            r#"rce_api_requests_total{method="POST",outcome="broker_unavailable",route="/v1/jobs",status="503"} 0"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
