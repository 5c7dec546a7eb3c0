//! The shim's stdout: newline-delimited `ShimMessage`s for the runner, each written whole with
//! one blocking write sequence so lines never interleave.
//!
//! The runner may go away mid-job (its exec stream closed): a failed write must then cost
//! nothing but the messages, because the job still has to be stopped and its uid cleaned up
//! for the next job in this container. So the first failure silences the writer for good
//! (a half-written line cannot be repaired) and everything else carries on.

use crate::sys;
use rce_protocol::bytes::Base64Bytes;
use rce_protocol::shim::{Baseline, OutputStream, ShimMessage, ShimRecord, StepOutcome};
use rce_protocol::step::StepName;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};

pub struct MessageWriter {
    out: Box<dyn Write>,
    /// Waited on when a write would block (someone made stdout non-blocking).
    fd: Option<RawFd>,
    broken: bool,
}

impl MessageWriter {
    /// Writes to the shim's stdout through its own close-on-exec descriptor, so neither Rust's
    /// stdout buffering nor anything else the process does with fd 1 gets in the way.
    pub fn stdout() -> Self {
        let stdout = io::stdout();
        match stdout.as_fd().try_clone_to_owned() {
            Ok(fd) => {
                let raw = fd.as_raw_fd();
                Self {
                    out: Box::new(File::from(fd)),
                    fd: Some(raw),
                    broken: false,
                }
            }
            Err(e) => {
                eprintln!("rce-shim: duplicating stdout: {e}; writing to it directly");
                Self {
                    out: Box::new(stdout),
                    fd: Some(1),
                    broken: false,
                }
            }
        }
    }

    #[cfg(test)]
    pub fn to(out: Box<dyn Write>) -> Self {
        Self {
            out,
            fd: None,
            broken: false,
        }
    }

    /// A writer that writes nothing: for steps whose live messages nobody wants (judge mode's
    /// tests, whose outcome carries their output).
    pub fn silent() -> Self {
        Self {
            out: Box::new(io::sink()),
            fd: None,
            broken: true,
        }
    }

    /// Judge mode: test `index` ended (see `ShimMessage::Test`).
    pub fn test(&mut self, index: usize, outcome: StepOutcome) {
        self.send(&ShimMessage::Test { index, outcome });
    }

    pub fn step(&mut self, name: StepName) {
        self.send(&ShimMessage::Step { name });
    }

    pub fn output(&mut self, stream: OutputStream, data: &[u8]) {
        if data.is_empty() || self.broken {
            return;
        }
        self.send(&ShimMessage::Output {
            stream,
            data: Base64Bytes(data.to_vec()),
        });
    }

    pub fn truncated(&mut self, step: StepName) {
        self.send(&ShimMessage::Truncated { step });
    }

    /// What the job did, before its cleanup (see `ShimMessage::Outcome`).
    pub fn outcome(&mut self, outcome: ShimRecord) {
        self.send(&ShimMessage::Outcome(outcome));
    }

    /// The container's resting state: the agent's first line.
    pub fn baseline(&mut self, baseline: Baseline) {
        self.send(&ShimMessage::Baseline(baseline));
    }

    /// The agent's line after a job's shim process ended: the runner may send the next job.
    pub fn done(&mut self, failure: Option<String>) {
        self.send(&ShimMessage::Done { failure });
    }

    /// The last line of every exec; written even if serializing the record fails, so the
    /// runner always gets one.
    pub fn record(&mut self, record: ShimRecord) {
        let line = serde_json::to_string(&ShimMessage::Record(record)).unwrap_or_else(|e| {
            format!(
                "{{\"type\":\"record\",\"job_id\":\"\",\"steps\":[],\"clean\":false,\"error\":{}}}",
                serde_json::Value::String(format!("serializing the record: {e}"))
            )
        });
        self.write_line(line.into_bytes());
    }

    fn send(&mut self, message: &ShimMessage) {
        if self.broken {
            return;
        }
        match serde_json::to_vec(message) {
            Ok(line) => self.write_line(line),
            Err(e) => eprintln!("rce-shim: serializing a message: {e}"),
        }
    }

    fn write_line(&mut self, mut line: Vec<u8>) {
        if self.broken {
            return;
        }
        line.push(b'\n');
        if let Err(e) = self.write_all(&line).and_then(|()| self.out.flush()) {
            eprintln!("rce-shim: stdout: {e}; no more messages will be written");
            self.broken = true;
        }
    }

    /// `write_all`, also waiting out EAGAIN (a blocking write must not fail because the
    /// descriptor happens to be non-blocking).
    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.out.write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let Some(fd) = self.fd else { return Err(e) };
                    let mut pfd = [libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    }];
                    sys::poll(&mut pfd, -1)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// What a [`Flaky`] sink received, and whether it fails.
    #[derive(Default)]
    struct Received {
        data: Vec<u8>,
        fail: bool,
    }

    /// A sink that accepts a few bytes per write, refuses every other call with EINTR, and can
    /// be made to fail.
    struct Flaky {
        shared: Rc<RefCell<Received>>,
        interrupt: bool,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut shared = self.shared.borrow_mut();
            if shared.fail {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(7);
            shared.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn flaky() -> (MessageWriter, Rc<RefCell<Received>>) {
        let shared = Rc::new(RefCell::new(Received::default()));
        let w = MessageWriter::to(Box::new(Flaky {
            shared: shared.clone(),
            interrupt: false,
        }));
        (w, shared)
    }

    fn lines(data: &[u8]) -> Vec<ShimMessage> {
        data.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn partial_and_interrupted_writes_still_make_whole_lines() {
        let (mut w, shared) = flaky();
        w.step(StepName::Run);
        w.output(OutputStream::Stdout, b"hello, world\n");
        w.output(OutputStream::Stderr, b"");
        w.truncated(StepName::Run);
        w.record(ShimRecord {
            tests: Vec::new(),
            job_id: "j".into(),
            clean: true,
            ..ShimRecord::default()
        });
        let got = lines(&shared.borrow().data);
        assert_eq!(got.len(), 4, "empty output is not sent");
        assert!(matches!(&got[0], ShimMessage::Step { name } if *name == StepName::Run));
        assert!(
            matches!(&got[1], ShimMessage::Output { stream: OutputStream::Stdout, data }
            if data.0 == b"hello, world\n")
        );
        assert!(matches!(&got[2], ShimMessage::Truncated { step } if *step == StepName::Run));
        assert!(matches!(&got[3], ShimMessage::Record(r) if r.job_id == "j"));
    }

    #[test]
    fn a_failed_write_silences_the_writer_without_panicking() {
        let (mut w, shared) = flaky();
        w.step(StepName::Compile);
        shared.borrow_mut().fail = true;
        w.output(OutputStream::Stdout, b"lost");
        shared.borrow_mut().fail = false;
        w.step(StepName::Run);
        w.record(ShimRecord::default());
        assert_eq!(lines(&shared.borrow().data).len(), 1);
    }
}
