//! Names of the Redis keys and channels api and runner share (design.md, "Redis").

/// Hash holding a job's state and, once recorded, its final result.
pub fn job(id: &str) -> String {
    format!("rce:job:{id}")
}

/// Stream of a job's live events.
pub fn events(id: &str) -> String {
    format!("rce:job:{id}:events")
}

/// Pub/sub channel on which the recorder announces every job that reached a terminal state; the
/// message is the job id. Api instances wake their `wait=true` requests from it.
pub const DONE_CHANNEL: &str = "rce:done";
