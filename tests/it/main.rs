//! Integration tests through the real stack: a real api and runner (in this process, on their
//! own ports), a real RabbitMQ (its own vhost), a real Redis (its own database) and the real
//! Docker Engine with the project's images. Nothing is mocked; missing services fail loudly.
//!
//! Run with `make test`, which starts the services and builds the images first.

mod backpressure;
mod cross_job;
mod dead_letters;
mod errors;
mod files;
mod files_s3;
mod helpers;
mod hostile;
mod ids;
mod input_handling;
mod judge;
mod judge0;
mod judge_checkers;
mod judge_sandbox;
mod languages;
mod leaks;
mod live;
mod metering;
mod piston;
mod pools;
mod request_shapes;
mod runtime_heaps;
mod socket_families;
mod verdicts;
mod webhooks;
mod wide_trees;
