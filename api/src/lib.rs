//! The api: validates and admits jobs, publishes them with publisher confirms, serves job state,
//! languages and health; and hosts the recorder, which turns results and dead letters into the
//! job records clients read.

pub mod admission;
pub mod app;
pub mod completions;
pub mod config;
pub mod error;
pub mod event_feed;
pub mod job_id;
pub mod job_store;
pub mod job_view;
pub mod judge0;
pub mod judge_submission;
pub mod metrics;
pub mod piston;
pub mod recorder;
pub mod routes;
pub mod strict_json;
pub mod stuck_jobs;
pub mod submission;
pub mod webhooks;
