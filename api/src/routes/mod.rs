//! The HTTP surface (`../shared/api.md`), as a `Router` tests can drive without a socket.

pub mod health;
pub mod jobs;
pub mod languages;
pub mod live;

use crate::completions::Completions;
use crate::job_store::JobStore;
use crate::metrics::ApiMetrics;
use axum::routing::{get, post};
use axum::Router;
use rce_broker::BrokerLink;
use rce_protocol::topology::Topology;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Everything a request handler may touch.
#[derive(Clone)]
pub struct AppState {
    pub topology: Arc<Topology>,
    pub store: JobStore,
    /// RabbitMQ, reconnecting on its own; publishes fail fast (503) while it is down.
    pub broker: BrokerLink,
    pub completions: Completions,
    pub metrics: ApiMetrics,
    pub max_body_bytes: usize,
    pub wait_margin: Duration,
    /// For connections of their own: live subscribers hold theirs in blocking reads.
    pub redis: redis::Client,
    /// Cancelled when the api starts shutting down: live streams end so the server can drain.
    pub closing: CancellationToken,
    pub heartbeat: Duration,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/jobs", post(jobs::submit))
        .route("/v1/jobs/ws", get(live::submit_and_attach))
        .route("/v1/jobs/{id}", get(jobs::get_job).delete(jobs::cancel_job))
        .route("/v1/jobs/{id}/events", get(live::events))
        .route("/v1/jobs/{id}/ws", get(live::attach))
        .route("/v1/languages", get(languages::list))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .fallback(health::no_route)
        .method_not_allowed_fallback(health::method_not_allowed)
        .with_state(state)
}
