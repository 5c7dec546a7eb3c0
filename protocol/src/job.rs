//! The job message the api publishes to `rce.jobs` and a runner consumes.

use crate::bytes::Base64Bytes;
use crate::limits::Limits;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One admitted job, already validated and with its limits resolved, so a runner never has to
/// second-guess the api.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobMessage {
    pub schema: u32,
    pub id: String,
    pub language: String,
    pub files: Vec<JobFile>,
    /// The file the compile and run commands are pointed at.
    pub entrypoint: String,
    pub stdin: Base64Bytes,
    pub args: Vec<String>,
    pub limits: Limits,
    pub created_at: DateTime<Utc>,
    /// The client sends more input while the program runs (WebSocket), so its stdin stays open
    /// after `stdin` until the client closes it.
    #[serde(default)]
    pub interactive: bool,
    /// Judge mode: compile once, run every test, check and score. `None`: a plain job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<crate::judge::JudgeSpec>,
}

/// A source file as the program will see it in its workspace.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobFile {
    pub name: String,
    pub content: Base64Bytes,
}
