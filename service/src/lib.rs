//! Process plumbing shared by the api and runner binaries, so both log and stop the same way.

pub mod backoff;
pub mod env;
pub mod metrics;
pub mod pubsub;
pub mod redis_conn;
pub mod runtime;
pub mod shutdown;
pub mod telemetry;
