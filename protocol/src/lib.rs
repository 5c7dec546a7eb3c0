//! The contracts every part of the service agrees on: the job and result messages that travel
//! through RabbitMQ, the record the shim hands back from inside a container, and `topology.yaml`.
//!
//! Pure data and pure logic only (no I/O beyond reading `topology.yaml`), so every rule here —
//! limit resolution, verdict mapping, record parsing — is unit-tested without a broker or engine.

pub mod argv_template;
pub mod bytes;
pub mod encoding;
pub mod events;
pub mod file_names;
pub mod job;
pub mod job_record;
pub mod judge;
pub mod limits;
pub mod redis_keys;
pub mod result;
pub mod shim;
pub mod step;
pub mod topology;
pub mod verdict;

/// Version stamped on every message so a runner and an api of different releases can tell
/// whether they understand each other instead of misreading a field.
pub const SCHEMA_VERSION: u32 = 1;
