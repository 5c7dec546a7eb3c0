//! The job's control channel: everything the runner writes on the shim's stdin after the job
//! line, as newline-delimited `ShimControl`s, for as long as the job runs.
//!
//! The channel is the runner's, never the job's: it lives on a close-on-exec descriptor (fd 0
//! is /dev/null) and a step's process only ever gets its own three pipes. It is read
//! non-blocking from the step's poll loop, so a cancellation is acted on as soon as it arrives
//! rather than at the next tick, and from nowhere else but between steps.
//!
//! Interactive input may arrive before the program that will read it exists (during a compile
//! step, or between the job line and the first step), and faster than the program reads it:
//! it waits in a capped buffer, so a client can never make the shim grow without bound, and the
//! runner never has to know when the run step starts.

use crate::sys;
use rce_protocol::shim::{ShimControl, ShimStep};
use rce_protocol::step::StepName;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

pub use rce_protocol::shim::MAX_JOB_LINE;
/// The largest control line: room for an input chunk as large as the whole input buffer.
pub const MAX_CONTROL_LINE: usize = 16 << 20;
/// Interactive input waiting for the program to read it.
pub const MAX_BUFFERED_INPUT: usize = 8 << 20;
/// The only step that reads interactive input; compile steps never see it.
pub const RUN_STEP: StepName = StepName::Run;

const READ_CHUNK: usize = 64 << 10;
/// Read at most this much per wake-up, so a runner flooding the channel cannot keep the step's
/// loop from its limits.
const MAX_READ_PER_WAKE: usize = 1 << 20;

/// The job line and what the channel already held after it.
#[derive(Debug)]
pub struct JobLine {
    pub job: Vec<u8>,
    pub rest: Vec<u8>,
    /// The channel ended with (or before the end of) the job line.
    pub eof: bool,
}

/// Reads up to the first newline (or EOF). `wait` is called when the reader has nothing yet.
pub fn read_job_line(r: &mut impl Read, mut wait: impl FnMut()) -> Result<JobLine, String> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        match r.read(&mut chunk) {
            Ok(0) => {
                if buf.len() > MAX_JOB_LINE {
                    return Err(too_long());
                }
                return Ok(JobLine {
                    job: buf,
                    rest: Vec::new(),
                    eof: true,
                });
            }
            Ok(n) => {
                let new = &chunk[..n];
                if let Some(i) = new.iter().position(|b| *b == b'\n') {
                    buf.extend_from_slice(&new[..i]);
                    if buf.len() > MAX_JOB_LINE {
                        return Err(too_long());
                    }
                    return Ok(JobLine {
                        job: buf,
                        rest: new[i + 1..].to_vec(),
                        eof: false,
                    });
                }
                buf.extend_from_slice(new);
                if buf.len() > MAX_JOB_LINE {
                    return Err(too_long());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(),
            Err(e) => return Err(format!("reading the job: {e}")),
        }
    }
}

fn too_long() -> String {
    format!("the job line is longer than {MAX_JOB_LINE} bytes")
}

/// Takes the shim's stdin for the control channel and reads the job line from it.
pub fn open_stdin() -> Result<(JobLine, OwnedFd), String> {
    let fd = sys::take_stdin().map_err(|e| format!("stdin: {e}"))?;
    if let Err(e) = sys::set_nonblocking(fd.as_fd()) {
        eprintln!("rce-shim: control channel O_NONBLOCK: {e}");
    }
    let raw = fd.as_raw_fd();
    let mut file = File::from(fd);
    let line = read_job_line(&mut file, || {
        let mut pfd = [libc::pollfd {
            fd: raw,
            events: libc::POLLIN,
            revents: 0,
        }];
        let _ = sys::poll(&mut pfd, -1);
    })?;
    Ok((line, file.into()))
}

/// Splits a byte stream into lines, bounding how much an unfinished line may hold.
#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// The current line went over the bound: skip to its end.
    skipping: bool,
    max: usize,
}

impl Default for LineSplitter {
    /// Bounded for control lines ([`MAX_CONTROL_LINE`]).
    fn default() -> Self {
        Self::with_max(MAX_CONTROL_LINE)
    }
}

/// One piece of the channel, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Line(Vec<u8>),
    /// A line longer than the splitter's bound, dropped.
    TooLong,
}

impl LineSplitter {
    /// A splitter dropping lines longer than `max` bytes.
    pub fn with_max(max: usize) -> Self {
        Self {
            partial: Vec::new(),
            skipping: false,
            max,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Piece>) {
        while let Some(i) = bytes.iter().position(|b| *b == b'\n') {
            if self.skipping {
                self.skipping = false;
            } else {
                self.partial.extend_from_slice(&bytes[..i]);
                if self.partial.len() > self.max {
                    self.partial = Vec::new();
                    out.push(Piece::TooLong);
                } else {
                    out.push(Piece::Line(std::mem::take(&mut self.partial)));
                }
            }
            bytes = &bytes[i + 1..];
        }
        if self.skipping {
            return;
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() > self.max {
            self.partial = Vec::new();
            self.skipping = true;
            out.push(Piece::TooLong);
        }
    }

    /// At the end of the stream: a last line without its newline still counts.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        if !self.skipping && !self.partial.is_empty() {
            out.push(Piece::Line(std::mem::take(&mut self.partial)));
        }
        self.skipping = false;
    }
}

/// One control line; `Ok(None)` for a blank one.
pub fn parse_line(line: &[u8]) -> Result<Option<ShimControl>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(line)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Interactive input not yet written to the program, in arrival order.
#[derive(Debug)]
pub struct InputBuffer {
    chunks: VecDeque<Vec<u8>>,
    /// Already written of the front chunk.
    offset: usize,
    len: usize,
    cap: usize,
    /// No more input will come (StdinEof, or the channel ended).
    ended: bool,
    /// The program closed its stdin: input is dropped from now on.
    closed: bool,
    /// In the middle of dropping over-cap input (noted once per episode).
    overflowing: bool,
}

impl InputBuffer {
    pub fn new(cap: usize) -> Self {
        Self {
            chunks: VecDeque::new(),
            offset: 0,
            len: 0,
            cap,
            ended: false,
            closed: false,
            overflowing: false,
        }
    }

    /// Buffers as much of `data` as the cap allows; returns how many bytes were dropped.
    pub fn push(&mut self, mut data: Vec<u8>) -> usize {
        if self.ended || self.closed {
            return data.len();
        }
        let room = self.cap - self.len;
        let dropped = data.len().saturating_sub(room);
        data.truncate(room);
        if dropped > 0 && !self.overflowing {
            eprintln!(
                "rce-shim: interactive input over {} buffered bytes; dropping the excess",
                self.cap
            );
        }
        self.overflowing = dropped > 0;
        if !data.is_empty() {
            self.len += data.len();
            self.chunks.push_back(data);
        }
        dropped
    }

    /// StdinEof: the program reads end-of-file once everything buffered was written.
    pub fn end(&mut self) {
        self.ended = true;
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The program can no longer read (EPIPE): forget what is buffered and drop what comes.
    pub fn close(&mut self) {
        self.closed = true;
        self.chunks.clear();
        self.offset = 0;
        self.len = 0;
    }

    /// The next bytes to write (empty when nothing is buffered).
    pub fn pending(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| &c[self.offset..])
    }

    /// `n` bytes of [`pending`](Self::pending) were written.
    pub fn consume(&mut self, n: usize) {
        self.offset += n;
        self.len -= n;
        if self.chunks.front().is_some_and(|c| self.offset >= c.len()) {
            self.chunks.pop_front();
            self.offset = 0;
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Everything was written and no more will come: time for the program's end-of-file.
    pub fn finished(&self) -> bool {
        self.closed || (self.ended && self.len == 0)
    }
}

/// The job-level state behind the channel: its reader, the interactive input waiting for the
/// run step, and whether the job was cancelled.
pub struct Control {
    /// None once the channel ended (or was never there).
    reader: Option<File>,
    lines: LineSplitter,
    interactive: bool,
    input: InputBuffer,
    cancelled: bool,
    tests_stopped: bool,
    ignored_input_noted: bool,
}

impl Control {
    /// `rest` is what followed the job line; `reader` the channel, unless it already ended.
    pub fn new(reader: Option<OwnedFd>, rest: &[u8], interactive: bool) -> Self {
        let mut control = Self::detached(interactive);
        control.reader = reader.map(File::from);
        control.apply_bytes(rest);
        if control.reader.is_none() {
            control.end_of_channel();
        }
        control
    }

    /// A control with no channel to read (nothing will ever arrive through it).
    fn detached(interactive: bool) -> Self {
        Self {
            reader: None,
            lines: LineSplitter::default(),
            interactive,
            input: InputBuffer::new(MAX_BUFFERED_INPUT),
            cancelled: false,
            tests_stopped: false,
            ignored_input_noted: false,
        }
    }

    pub fn cancelled(&self) -> bool {
        self.cancelled
    }

    /// Judge mode: the runner wants no further test ([`ShimControl::StopTests`]).
    pub fn tests_stopped(&self) -> bool {
        self.tests_stopped
    }

    /// Whether `step` reads interactive input after its own stdin.
    pub fn feeds(&self, step: &ShimStep) -> bool {
        self.interactive && step.name == RUN_STEP
    }

    pub fn input(&mut self) -> &mut InputBuffer {
        &mut self.input
    }

    /// What to poll for the channel, while it is open.
    pub fn pollfd(&self) -> Option<libc::pollfd> {
        self.reader.as_ref().map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
    }

    /// Takes in whatever arrived, without waiting: between steps, to catch a cancellation.
    pub fn check_now(&mut self) {
        if let Some(pfd) = self.pollfd() {
            let mut pfds = [pfd];
            if matches!(sys::poll(&mut pfds, 0), Ok(n) if n > 0) {
                self.read_ready();
            }
        }
    }

    /// Reads what the channel holds (after poll said it is readable), up to a bound.
    pub fn read_ready(&mut self) {
        let Some(reader) = &mut self.reader else {
            return;
        };
        let mut buf = vec![0u8; READ_CHUNK];
        let mut total = 0;
        let mut ended = false;
        let mut got = Vec::new();
        while total < MAX_READ_PER_WAKE {
            match reader.read(&mut buf) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => {
                    total += n;
                    got.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    eprintln!("rce-shim: reading the control channel: {e}; treating it as ended");
                    ended = true;
                    break;
                }
            }
        }
        self.apply_bytes(&got);
        if ended {
            self.reader = None;
            self.end_of_channel();
        }
    }

    fn apply_bytes(&mut self, bytes: &[u8]) {
        let mut pieces = Vec::new();
        self.lines.push(bytes, &mut pieces);
        self.apply_pieces(pieces);
    }

    /// No more control: a last unterminated line still counts, and interactive input is over.
    fn end_of_channel(&mut self) {
        let mut pieces = Vec::new();
        self.lines.finish(&mut pieces);
        self.apply_pieces(pieces);
        self.input.end();
    }

    fn apply_pieces(&mut self, pieces: Vec<Piece>) {
        for piece in pieces {
            match piece {
                Piece::TooLong => eprintln!(
                    "rce-shim: ignoring a control line longer than {MAX_CONTROL_LINE} bytes"
                ),
                Piece::Line(line) => match parse_line(&line) {
                    Ok(Some(message)) => self.apply(message),
                    Ok(None) => {}
                    Err(e) => eprintln!("rce-shim: ignoring a malformed control line: {e}"),
                },
            }
        }
    }

    fn apply(&mut self, message: ShimControl) {
        match message {
            ShimControl::Cancel => self.cancelled = true,
            ShimControl::StopTests => self.tests_stopped = true,
            ShimControl::StdinEof => self.input.end(),
            ShimControl::Stdin { data } => {
                let refused = if !self.interactive {
                    "the job is not interactive"
                } else if self.input.ended() {
                    "they came after stdin_eof"
                } else {
                    self.input.push(data.0);
                    return;
                };
                if !self.ignored_input_noted {
                    self.ignored_input_noted = true;
                    eprintln!("rce-shim: ignoring stdin control lines: {refused}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], finish: bool) -> Vec<Piece> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        if finish {
            s.finish(&mut out);
        }
        out
    }

    fn line(s: &str) -> Piece {
        Piece::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let got = split(
            &[
                b"{\"type\":",
                b"\"cancel\"}\n{\"ty",
                b"pe\":\"stdin_eof\"}\n",
            ],
            false,
        );
        assert_eq!(
            got,
            vec![
                line("{\"type\":\"cancel\"}"),
                line("{\"type\":\"stdin_eof\"}")
            ]
        );
        let got = split(&[b"a\nb\n\nc"], false);
        assert_eq!(got, vec![line("a"), line("b"), line("")]);
    }

    #[test]
    fn an_unterminated_last_line_counts_at_eof() {
        assert_eq!(split(&[b"a\nb"], true), vec![line("a"), line("b")]);
        assert_eq!(split(&[b"a\n"], true), vec![line("a")]);
    }

    #[test]
    fn an_overlong_line_is_dropped_and_the_next_one_kept() {
        let big = vec![b'x'; MAX_CONTROL_LINE / 2 + 1];
        let got = split(&[&big, &big, &big, b"\n", b"ok\n"], false);
        assert_eq!(got, vec![Piece::TooLong, line("ok")]);
        // Over the bound in one read, newline included.
        let mut one = vec![b'y'; MAX_CONTROL_LINE + 1];
        one.extend_from_slice(b"\nok\n");
        assert_eq!(split(&[&one], false), vec![Piece::TooLong, line("ok")]);
        // Skipped to EOF: nothing more.
        assert_eq!(split(&[&big, &big, &big], true), vec![Piece::TooLong]);
    }

    #[test]
    fn parses_the_three_kinds_and_rejects_garbage() {
        assert_eq!(
            parse_line(br#"{"type":"stdin","data":"aGk="}"#),
            Ok(Some(ShimControl::Stdin {
                data: b"hi".to_vec().into()
            }))
        );
        assert_eq!(
            parse_line(b"{\"type\":\"stdin_eof\"}\r"),
            Ok(Some(ShimControl::StdinEof))
        );
        assert_eq!(
            parse_line(br#"{"type":"cancel"}"#),
            Ok(Some(ShimControl::Cancel))
        );
        assert_eq!(parse_line(b"  "), Ok(None));
        assert!(parse_line(b"not json").is_err());
        assert!(parse_line(br#"{"type":"reboot"}"#).is_err());
        assert!(parse_line(br#"{"type":"stdin","data":"%%%"}"#).is_err());
    }

    fn drain(b: &mut InputBuffer) -> Vec<u8> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let n = b.pending().len().min(3);
            out.extend_from_slice(&b.pending()[..n]);
            b.consume(n);
        }
        out
    }

    #[test]
    fn input_is_written_in_order_in_any_slices() {
        let mut b = InputBuffer::new(100);
        b.push(b"hello ".to_vec());
        b.push(Vec::new());
        b.push(b"world".to_vec());
        assert_eq!(b.len(), 11);
        assert_eq!(drain(&mut b), b"hello world");
        assert!(b.is_empty() && !b.finished());
        b.end();
        assert!(b.finished());
    }

    #[test]
    fn input_over_the_cap_is_dropped() {
        let mut b = InputBuffer::new(8);
        assert_eq!(b.push(b"12345".to_vec()), 0);
        assert_eq!(b.push(b"6789".to_vec()), 1);
        assert_eq!(b.push(b"x".to_vec()), 1);
        assert_eq!(b.len(), 8);
        // Room frees as the program reads.
        b.consume(2);
        assert_eq!(b.push(b"ab".to_vec()), 0);
        assert_eq!(drain(&mut b), b"345678ab");
    }

    #[test]
    fn end_waits_for_the_buffer_and_refuses_more() {
        let mut b = InputBuffer::new(100);
        b.push(b"abc".to_vec());
        b.end();
        assert!(!b.finished(), "buffered input is still written first");
        assert_eq!(b.push(b"late".to_vec()), 4);
        assert_eq!(drain(&mut b), b"abc");
        assert!(b.finished());
    }

    #[test]
    fn a_closed_reader_drops_everything() {
        let mut b = InputBuffer::new(100);
        b.push(b"abc".to_vec());
        b.close();
        assert!(b.is_empty() && b.finished());
        assert_eq!(b.push(b"more".to_vec()), 4);
        assert!(b.pending().is_empty());
    }

    fn control(interactive: bool, bytes: &[u8]) -> Control {
        let mut c = Control::detached(interactive);
        c.apply_bytes(bytes);
        c
    }

    #[test]
    fn interactive_input_is_buffered_and_eof_ends_it() {
        let mut c = control(
            true,
            b"{\"type\":\"stdin\",\"data\":\"aGk=\"}\nnonsense\n{\"type\":\"stdin\",\"data\":\"IQ==\"}\n",
        );
        assert_eq!(drain(c.input()), b"hi!");
        assert!(!c.input().finished() && !c.cancelled());
        c.apply_bytes(b"{\"type\":\"stdin_eof\"}\n");
        assert!(c.input().finished());
    }

    #[test]
    fn the_end_of_the_channel_ends_interactive_input_and_keeps_a_last_line() {
        let mut c = control(
            true,
            b"{\"type\":\"stdin\",\"data\":\"aGk=\"}\n{\"type\":\"cancel\"}",
        );
        assert!(!c.cancelled());
        c.end_of_channel();
        assert!(c.cancelled());
        assert_eq!(drain(c.input()), b"hi");
        assert!(c.input().finished());
    }

    #[test]
    fn input_after_stdin_eof_is_ignored() {
        let mut c = control(
            true,
            b"{\"type\":\"stdin_eof\"}\n{\"type\":\"stdin\",\"data\":\"aGk=\"}\n",
        );
        assert!(c.input().is_empty() && c.input().finished());
    }

    #[test]
    fn a_job_that_is_not_interactive_ignores_input_but_not_cancel() {
        let mut c = control(
            false,
            b"{\"type\":\"stdin\",\"data\":\"aGk=\"}\n{\"type\":\"cancel\"}\n",
        );
        assert!(c.input().is_empty());
        assert!(c.cancelled());
    }

    #[test]
    fn only_the_run_step_of_an_interactive_job_is_fed() {
        let step = |name: &str| -> ShimStep {
            serde_json::from_value(serde_json::json!({
                "name": name, "argv": ["x"], "stdin": "",
                "limits": {"wall_time_ms": 1, "cpu_time_ms": 1, "memory_kb": 1, "processes": 1,
                           "output_bytes": 1, "file_size_bytes": 1, "open_files": 1}
            }))
            .unwrap()
        };
        assert!(control(true, b"").feeds(&step("run")));
        assert!(!control(true, b"").feeds(&step("compile")));
        assert!(!control(false, b"").feeds(&step("run")));
    }

    /// A reader that hands out the given chunks, with a WouldBlock between them.
    struct Chunks(Vec<Vec<u8>>, bool);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if self.0.is_empty() {
                return Ok(0);
            }
            let c = self.0.remove(0);
            buf[..c.len()].copy_from_slice(&c);
            Ok(c.len())
        }
    }

    #[test]
    fn the_job_line_ends_at_the_first_newline() {
        let mut r = Chunks(vec![b"{\"a\":".to_vec(), b"1}\n{\"type\"".to_vec()], false);
        let mut waits = 0;
        let l = read_job_line(&mut r, || waits += 1).unwrap();
        assert_eq!(l.job, b"{\"a\":1}");
        assert_eq!(l.rest, b"{\"type\"");
        assert!(!l.eof);
        assert!(waits > 0);
    }

    #[test]
    fn a_job_without_newline_ends_at_eof() {
        let mut r = Chunks(vec![b"{}".to_vec()], false);
        let l = read_job_line(&mut r, || {}).unwrap();
        assert_eq!(
            (l.job.as_slice(), l.rest.is_empty(), l.eof),
            (&b"{}"[..], true, true)
        );
    }

    #[test]
    fn an_endless_job_line_is_refused() {
        let mut r = io::repeat(b'x');
        assert!(read_job_line(&mut r, || {})
            .unwrap_err()
            .contains("longer than"));
    }
}
