//! Where a job gets its container: per-language pools of pre-warmed, hardened containers, and the
//! one operation the runner needs from them, [`LanguagePool::run`].
//!
//! A container runs one job at a time, so its cgroup limits are that job's limits. A container
//! that misbehaves (the shim could not verify cleanup, a job's shim failed or timed out) is destroyed
//! and a replacement is warmed in the background; the job that saw it fail gets `internal_error`.

pub mod agent;
pub mod cgroup_delegation;
pub mod container_spec;
pub mod conversation;
pub mod error;
pub mod exec;
pub mod job_plan;
pub mod language_pool;
pub mod warm_container;

pub use conversation::{JobChannels, LiveEvent};
pub use error::PoolError;
pub use language_pool::{LanguagePool, PoolStatus, Pools, Retirements};
pub use warm_container::WarmContainer;

/// Label keys every managed container carries, so a restarted runner can find what it orphaned.
pub mod labels {
    pub const MANAGED: &str = "rce.managed";
    pub const RUNNER: &str = "rce.runner";
    pub const LANGUAGE: &str = "rce.language";
}
