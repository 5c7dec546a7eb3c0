//! Process plumbing shared by the api and runner binaries, so both log and stop the same way.

pub mod env;
pub mod metrics;
pub mod pubsub;
pub mod shutdown;
pub mod telemetry;
