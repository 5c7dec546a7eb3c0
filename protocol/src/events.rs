//! A job's live events as they are stored in its Redis stream (`redis_keys::events`) and served
//! over SSE and WebSocket: each stream entry has a `kind` and a `data` field, and its stream id
//! is the event id clients resume from.

use serde::{Deserialize, Serialize};

/// Field names of a stream entry.
pub const FIELD_KIND: &str = "kind";
pub const FIELD_DATA: &str = "data";

/// Entries kept per job stream (approximate trim): bounded even for a program that prints one
/// byte at a time for its whole wall limit.
pub const STREAM_MAX_LEN: usize = 20_000;

/// What an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `data` is JSON: `{"status": "queued" | "running", "step"?: "compile" | "run"}`.
    Status,
    /// `data` is a chunk of the program's stdout, as text.
    Stdout,
    /// `data` is a chunk of the program's stderr, as text.
    Stderr,
    /// The step hit its output cap; `data` is JSON `{"step": ..., "output_bytes": cap}`.
    Truncated,
    /// Judge mode: a test ended; `data` is its result JSON (`judge::TestResult`), in order.
    Test,
    /// The last event; `data` is the full job JSON as `GET /v1/jobs/{id}` returns it.
    Done,
}

impl EventKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Truncated => "truncated",
            Self::Test => "test",
            Self::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Status,
            Self::Stdout,
            Self::Stderr,
            Self::Truncated,
            Self::Test,
            Self::Done,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A request to the runner holding a job, on `redis_keys::CONTROL_CHANNEL`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlMessage {
    pub job_id: String,
    pub action: ControlAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlAction {
    /// Kill the job now; it ends `cancelled`.
    Cancel,
}

/// Field values of an entry in a job's stdin stream (`redis_keys::stdin`): `kind` is
/// [`STDIN_DATA`] (with the bytes in `data`) or [`STDIN_EOF`].
pub const STDIN_DATA: &str = "data";
pub const STDIN_EOF: &str = "eof";

/// Turns a byte stream into text chunks without splitting a character across two events: an
/// incomplete sequence at the end of one chunk is held back for the next. Bytes that are not
/// UTF-8 become U+FFFD in the live events; the final job (the `done` event) carries them
/// faithfully.
#[derive(Debug, Default)]
pub struct Utf8Chunker {
    held: Vec<u8>,
}

impl Utf8Chunker {
    /// The text of `bytes` (plus what was held back) that can be emitted now.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.held.extend_from_slice(bytes);
        let cut = incomplete_tail_start(&self.held);
        let rest = self.held.split_off(cut);
        let text = String::from_utf8_lossy(&self.held).into_owned();
        self.held = rest;
        text
    }

    /// Whatever is still held back (an incomplete character at the very end), replaced.
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.held).into_owned();
        self.held.clear();
        text
    }
}

/// Where a UTF-8 sequence that the end of `bytes` cuts short begins (`bytes.len()` if none).
fn incomplete_tail_start(bytes: &[u8]) -> usize {
    // A sequence is at most 4 bytes: look at most 3 back for its lead byte.
    for back in 1..=bytes.len().min(3) {
        let i = bytes.len() - back;
        let b = bytes[i];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // continuation byte: keep looking for the lead
        }
        let needed = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return bytes.len(), // ASCII or invalid: nothing to hold back
        };
        return if back < needed { i } else { bytes.len() };
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in ["status", "stdout", "stderr", "truncated", "test", "done"] {
            assert_eq!(EventKind::parse(k).unwrap().as_str(), k);
            assert_eq!(
                serde_json::to_value(EventKind::parse(k).unwrap()).unwrap(),
                k
            );
        }
        assert_eq!(EventKind::parse("other"), None);
    }

    #[test]
    fn a_character_split_across_chunks_is_emitted_whole() {
        let euro = "€".as_bytes(); // 3 bytes
        let mut c = Utf8Chunker::default();
        assert_eq!(c.push(&[b'a', euro[0]]), "a");
        assert_eq!(c.push(&euro[1..2]), "");
        assert_eq!(c.push(&[euro[2], b'b']), "€b");
        assert_eq!(c.finish(), "");
    }

    #[test]
    fn four_byte_characters_and_plain_ascii() {
        let crab = "🦀".as_bytes();
        let mut c = Utf8Chunker::default();
        assert_eq!(c.push(&crab[..3]), "");
        assert_eq!(c.push(&crab[3..]), "🦀");
        assert_eq!(c.push(b"plain\n"), "plain\n");
    }

    #[test]
    fn invalid_bytes_are_replaced_not_held() {
        let mut c = Utf8Chunker::default();
        assert_eq!(c.push(&[b'x', 0xFF, b'y']), "x\u{FFFD}y");
        assert_eq!(c.push(&[0xFF]), "\u{FFFD}");
    }

    #[test]
    fn a_cut_character_at_the_end_is_replaced_on_finish() {
        let mut c = Utf8Chunker::default();
        assert_eq!(c.push(&"é".as_bytes()[..1]), "");
        assert_eq!(c.finish(), "\u{FFFD}");
    }
}
