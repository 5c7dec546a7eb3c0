//! Test data, uploaded once and referenced by content (`../shared/api.md`, "Files"): what a file
//! id is, and the store the api writes files to and runners read them from (Redis or an
//! S3-compatible object store, [`StoreConfig`]). Job messages carry ids, never the data, so a
//! 64 MiB input crosses the broker as 71 bytes.

pub mod config;
pub mod disk_cache;
pub mod file_id;
pub mod store;

pub use config::{S3Config, StoreConfig, StoreConfigError};
pub use disk_cache::DiskCache;
pub use file_id::FileId;
pub use store::{FileStore, Put, StoreError};
