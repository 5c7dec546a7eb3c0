//! The runner: consumes per-language job queues, runs each job in a warm container, publishes the
//! result with a broker confirm, and only then acks the job.

pub mod app;
pub mod config;
pub mod control;
pub mod custom_checker;
pub mod engine_watch;
pub mod job_consumer;
pub mod judging;
pub mod live_events;
pub mod metrics;
pub mod status_store;
