//! The async runtime both binaries run on.
//!
//! The services' own work per job is small (well under a millisecond of CPU) and almost all of
//! it is waiting on sockets, so extra worker threads mostly add cross-thread wake-ups: on the
//! 2-core development machine, one worker thread instead of tokio's default (one per core) cut
//! api + runner CPU per job by about 15% and the latency of a job too (docs/benchmarks.md). Both
//! services scale out by adding instances, so one worker thread is the default.
//! `RCE_WORKER_THREADS` sets another number.

use std::io;

/// Default of `RCE_WORKER_THREADS`.
pub const DEFAULT_WORKER_THREADS: usize = 1;

/// Builds a multi-thread runtime with `RCE_WORKER_THREADS` workers (a multi-thread runtime even
/// with one worker: blocking work such as DNS still goes to its blocking pool).
pub fn build() -> io::Result<tokio::runtime::Runtime> {
    let threads = worker_threads(std::env::var("RCE_WORKER_THREADS").ok().as_deref())?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
}

fn worker_threads(value: Option<&str>) -> io::Result<usize> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_WORKER_THREADS),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("RCE_WORKER_THREADS must be a whole number above 0, not {v:?}"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_default_and_validation() {
        assert_eq!(worker_threads(None).unwrap(), DEFAULT_WORKER_THREADS);
        assert_eq!(worker_threads(Some("")).unwrap(), DEFAULT_WORKER_THREADS);
        assert_eq!(worker_threads(Some("4")).unwrap(), 4);
        assert!(worker_threads(Some("0")).is_err());
        assert!(worker_threads(Some("many")).is_err());
    }
}
