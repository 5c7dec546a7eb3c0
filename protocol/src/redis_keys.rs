//! Names of the Redis keys and channels api and runner share (design.md, "Redis").

/// Hash holding a job's state and, once recorded, its final result: the job record, whose fields,
/// states and scripts are [`crate::job_record`]'s.
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

/// Stream of an interactive job's input, written by the api from its WebSocket and read by the
/// runner holding the job (from the start, so input sent before the job runs is not lost).
pub fn stdin(id: &str) -> String {
    format!("rce:job:{id}:stdin")
}

/// Pub/sub channel of [`crate::events::ControlMessage`]s: every runner listens, the one holding
/// the job acts.
pub const CONTROL_CHANNEL: &str = "rce:control";

/// Sorted set of running jobs, scored by when their limits run out (Unix ms): written at pickup,
/// cleared when the result is recorded. The api's stuck-job sweeper ends a job still in it past
/// its score plus a margin, so a job whose runner froze or vanished for good never hangs.
pub const DEADLINES: &str = "rce:deadlines";

/// The webhook queue: ids of ended jobs with a callback to send, scored by when their next
/// attempt is due (Unix ms; 0 = at once). A delivery under way holds its job with a lease (the
/// score pushed ahead); the job leaves the set once delivered or given up.
pub const WEBHOOKS_DUE: &str = "rce:webhooks:due";

/// Attempts made per webhook (a hash of job id to count).
pub const WEBHOOK_ATTEMPTS: &str = "rce:webhooks:attempts";
