//! Capturing a step's stdout and stderr under one shared byte cap. The cap protects the shim's
//! memory and the record's size; the first byte past it stops the step, and what is kept is
//! exactly the first `cap` bytes in the order the shim read them.

/// Which of the step's output streams a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// stdout and stderr of one step, capped together.
#[derive(Debug, Default)]
pub struct Capture {
    cap: usize,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Set once output beyond the cap was seen (and dropped).
    pub truncated: bool,
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
    pub fn push(&mut self, stream: Stream, data: &[u8]) -> bool {
        let room = self.room();
        let keep = data.len().min(room);
        let buf = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        buf.extend_from_slice(&data[..keep]);
        if keep < data.len() {
            self.truncated = true;
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_the_cap_keeps_everything() {
        let mut c = Capture::new(10);
        assert!(c.push(Stream::Stdout, b"hello"));
        assert!(c.push(Stream::Stderr, b"oops"));
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
        assert!(c.push(Stream::Stdout, b"ab"));
        assert!(c.push(Stream::Stderr, b"cd"));
        assert!(!c.truncated);
        assert_eq!(c.room(), 0);
        // An empty read changes nothing.
        assert!(c.push(Stream::Stdout, b""));
        assert!(!c.truncated);
    }

    #[test]
    fn the_cap_is_shared_and_exact() {
        let mut c = Capture::new(5);
        assert!(c.push(Stream::Stderr, b"abc"));
        assert!(!c.push(Stream::Stdout, b"defgh"));
        assert_eq!(c.stderr, b"abc");
        assert_eq!(c.stdout, b"de");
        assert!(c.truncated);
        // Once full, nothing more is kept.
        assert!(!c.push(Stream::Stderr, b"x"));
        assert_eq!(c.stdout.len() + c.stderr.len(), 5);
    }

    #[test]
    fn zero_cap_truncates_any_output() {
        let mut c = Capture::new(0);
        assert!(!c.push(Stream::Stdout, b"x"));
        assert!(c.stdout.is_empty() && c.truncated);
    }
}
