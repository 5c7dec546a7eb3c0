//! Capturing a step's stdout and stderr under one shared byte cap, and batching what is kept for
//! the live `output` messages. The cap protects the shim's memory and the record's size; the
//! first byte past it stops the step, and what is kept is exactly the first `cap` bytes in the
//! order the shim read them.
//!
//! Live output is not a second copy: it is a list of not-yet-sent segments of the very buffers
//! the record is built from, so what a client streams is by construction what the record holds,
//! and the cap bounds both at once.

use rce_protocol::shim::OutputStream;

/// Pending live output that is sent at once instead of waiting for the next tick: large enough
/// that a chatty program produces few messages, small enough to keep latency and line sizes low.
pub const FLUSH_BYTES: usize = 16 << 10;

/// stdout and stderr of one step, capped together.
#[derive(Debug, Default)]
pub struct Capture {
    cap: usize,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Set once output beyond the cap was seen (and dropped).
    pub truncated: bool,
    live: Pending,
}

/// Kept bytes not yet handed out as live output, in read order, consecutive reads of the same
/// stream merged into one segment.
#[derive(Debug, Default)]
struct Pending {
    segments: Vec<(OutputStream, usize)>,
    bytes: usize,
    /// How much of `stdout`/`stderr` was already handed out.
    sent_stdout: usize,
    sent_stderr: usize,
}

impl Capture {
    pub fn new(cap: u64) -> Self {
        Self {
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            ..Self::default()
        }
    }

    /// Bytes that may still be kept.
    pub fn room(&self) -> usize {
        self.cap
            .saturating_sub(self.stdout.len() + self.stderr.len())
    }

    /// Keeps as much of `data` as fits; returns false when some of it did not (the cap is
    /// exceeded and the step must stop).
    pub fn push(&mut self, stream: OutputStream, data: &[u8]) -> bool {
        let room = self.room();
        let keep = data.len().min(room);
        let buf = match stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        };
        buf.extend_from_slice(&data[..keep]);
        if keep > 0 {
            self.live.add(stream, keep);
        }
        if keep < data.len() {
            self.truncated = true;
            return false;
        }
        true
    }

    /// Whether enough live output is pending to send it now rather than at the next tick.
    pub fn flush_due(&self) -> bool {
        self.live.bytes >= FLUSH_BYTES
    }

    #[cfg(test)]
    pub fn has_pending(&self) -> bool {
        self.live.bytes > 0
    }

    /// Hands out every pending segment, in read order, and forgets them.
    pub fn take_pending(&mut self) -> Vec<(OutputStream, &[u8])> {
        let segments = std::mem::take(&mut self.live.segments);
        self.live.bytes = 0;
        let mut ranges = Vec::with_capacity(segments.len());
        for (stream, len) in segments {
            let sent = match stream {
                OutputStream::Stdout => &mut self.live.sent_stdout,
                OutputStream::Stderr => &mut self.live.sent_stderr,
            };
            ranges.push((stream, *sent..*sent + len));
            *sent += len;
        }
        ranges
            .into_iter()
            .map(|(stream, range)| {
                let buf = match stream {
                    OutputStream::Stdout => &self.stdout,
                    OutputStream::Stderr => &self.stderr,
                };
                (stream, &buf[range])
            })
            .collect()
    }
}

impl Pending {
    fn add(&mut self, stream: OutputStream, len: usize) {
        match self.segments.last_mut() {
            Some((last, n)) if *last == stream => *n += len,
            _ => self.segments.push((stream, len)),
        }
        self.bytes += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OutputStream::{Stderr, Stdout};

    fn pending(c: &mut Capture) -> Vec<(OutputStream, Vec<u8>)> {
        c.take_pending()
            .into_iter()
            .map(|(s, b)| (s, b.to_vec()))
            .collect()
    }

    #[test]
    fn under_the_cap_keeps_everything() {
        let mut c = Capture::new(10);
        assert!(c.push(Stdout, b"hello"));
        assert!(c.push(Stderr, b"oops"));
        assert_eq!(
            (c.stdout.as_slice(), c.stderr.as_slice()),
            (&b"hello"[..], &b"oops"[..])
        );
        assert!(!c.truncated);
        assert_eq!(c.room(), 1);
    }

    #[test]
    fn exactly_the_cap_is_not_truncation() {
        let mut c = Capture::new(4);
        assert!(c.push(Stdout, b"ab"));
        assert!(c.push(Stderr, b"cd"));
        assert!(!c.truncated);
        assert_eq!(c.room(), 0);
        // An empty read changes nothing.
        assert!(c.push(Stdout, b""));
        assert!(!c.truncated);
    }

    #[test]
    fn the_cap_is_shared_and_exact() {
        let mut c = Capture::new(5);
        assert!(c.push(Stderr, b"abc"));
        assert!(!c.push(Stdout, b"defgh"));
        assert_eq!(c.stderr, b"abc");
        assert_eq!(c.stdout, b"de");
        assert!(c.truncated);
        // Once full, nothing more is kept.
        assert!(!c.push(Stderr, b"x"));
        assert_eq!(c.stdout.len() + c.stderr.len(), 5);
    }

    #[test]
    fn zero_cap_truncates_any_output() {
        let mut c = Capture::new(0);
        assert!(!c.push(Stdout, b"x"));
        assert!(c.stdout.is_empty() && c.truncated);
        assert!(!c.has_pending());
        assert!(pending(&mut c).is_empty());
    }

    #[test]
    fn consecutive_reads_of_one_stream_merge() {
        let mut c = Capture::new(100);
        c.push(Stdout, b"a");
        c.push(Stdout, b"b");
        c.push(Stderr, b"c");
        c.push(Stderr, b"d");
        c.push(Stdout, b"e");
        assert_eq!(
            pending(&mut c),
            vec![
                (Stdout, b"ab".to_vec()),
                (Stderr, b"cd".to_vec()),
                (Stdout, b"e".to_vec())
            ]
        );
        assert!(!c.has_pending());
        assert!(pending(&mut c).is_empty());
    }

    #[test]
    fn live_output_resumes_where_it_left_off_and_equals_the_record() {
        let mut c = Capture::new(100);
        let mut live = (Vec::new(), Vec::new());
        let mut collect = |c: &mut Capture| {
            for (s, b) in pending(c) {
                match s {
                    Stdout => live.0.extend(b),
                    Stderr => live.1.extend(b),
                }
            }
        };
        c.push(Stdout, b"one ");
        c.push(Stderr, b"err1 ");
        collect(&mut c);
        c.push(Stdout, b"two ");
        c.push(Stdout, b"three");
        c.push(Stderr, b"err2");
        collect(&mut c);
        assert_eq!(pending(&mut c), vec![]);
        assert_eq!(live.0, c.stdout);
        assert_eq!(live.1, c.stderr);
        assert_eq!(c.stdout, b"one two three");
    }

    #[test]
    fn flush_is_due_at_the_threshold() {
        let mut c = Capture::new(u64::MAX);
        c.push(Stdout, &vec![b'x'; FLUSH_BYTES - 1]);
        assert!(c.has_pending() && !c.flush_due());
        c.push(Stderr, b"y");
        assert!(c.flush_due());
        assert_eq!(pending(&mut c).len(), 2);
        assert!(!c.flush_due() && !c.has_pending());
    }

    #[test]
    fn many_small_lines_become_few_messages() {
        // 1 MB in 10,000 lines, flushed whenever due: a few dozen messages, not 10,000.
        let mut c = Capture::new(2 << 20);
        let line = vec![b'z'; 99];
        let mut messages = 0;
        let mut total = 0;
        for _ in 0..10_000 {
            c.push(Stdout, &line);
            c.push(Stdout, b"\n");
            if c.flush_due() {
                let p = c.take_pending();
                messages += p.len();
                total += p.iter().map(|(_, b)| b.len()).sum::<usize>();
            }
        }
        let p = c.take_pending();
        messages += p.len();
        total += p.iter().map(|(_, b)| b.len()).sum::<usize>();
        assert_eq!(total, 1_000_000);
        assert!(
            messages <= 1_000_000 / FLUSH_BYTES + 1,
            "{messages} messages"
        );
    }

    #[test]
    fn only_kept_bytes_go_live_when_the_cap_is_hit() {
        let mut c = Capture::new(6);
        c.push(Stdout, b"abcd");
        assert_eq!(pending(&mut c), vec![(Stdout, b"abcd".to_vec())]);
        assert!(!c.push(Stderr, b"efgh"));
        assert!(c.truncated);
        // The kept part of the read that crossed the cap is still pending; the rest never is.
        assert_eq!(pending(&mut c), vec![(Stderr, b"ef".to_vec())]);
        assert!(!c.push(Stdout, b"more"));
        assert!(!c.has_pending());
        assert_eq!(
            (c.stdout.as_slice(), c.stderr.as_slice()),
            (&b"abcd"[..], &b"ef"[..])
        );
    }
}
