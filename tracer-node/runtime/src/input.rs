//! Input lines. The node reads stdin itself until it first has to wait for
//! input and for a timer (an RPC deadline) at once; from then on a thread
//! of its own reads, and hands over whole chunks, not lines, so a burst
//! costs one channel operation per 64 KiB.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::Instant;

const CHUNK: usize = 64 << 10;
/// Chunks read ahead, at most: input beyond that waits in the pipe.
const READ_AHEAD: usize = 16;

/// What [`Input::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A line is in the buffer (without its newline).
    Line,
    /// A line longer than the limit was skipped; its length.
    TooLong(usize),
    /// The deadline passed before a line was complete.
    Timeout,
    /// End of input.
    Eof,
}

pub(crate) struct Input {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    /// Bytes of the current line so far (when not skipping).
    pub(crate) line: Vec<u8>,
    /// Length of an over-long line being skipped.
    skipping: Option<usize>,
    /// A line is partly read (a deadline interrupted it).
    partial: bool,
    eof: bool,
}

impl Input {
    /// Starts the reader thread.
    pub(crate) fn spawn<R: Read + Send + 'static>(mut reader: R) -> Input {
        let (tx, rx) = mpsc::sync_channel(READ_AHEAD);
        std::thread::Builder::new()
            .name("tracer-input".into())
            .spawn(move || loop {
                let mut buf = vec![0u8; CHUNK];
                match reader.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(buf)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            })
            .expect("spawn the input thread");
        Input {
            rx,
            chunk: Vec::new(),
            pos: 0,
            line: Vec::new(),
            skipping: None,
            partial: false,
            eof: false,
        }
    }

    fn take(&mut self, got: io::Result<Vec<u8>>) -> io::Result<()> {
        self.chunk = got?;
        self.pos = 0;
        Ok(())
    }

    fn finish_line(&mut self) -> Next {
        self.partial = false;
        match self.skipping.take() {
            Some(n) => Next::TooLong(n),
            None => {
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                Next::Line
            }
        }
    }

    /// The next line, keeping at most `max` bytes of it. Before it would
    /// block it calls `idle` (to flush output), then waits until `deadline`.
    pub(crate) fn next(
        &mut self,
        max: usize,
        deadline: Option<Instant>,
        mut idle: impl FnMut() -> io::Result<()>,
    ) -> io::Result<Next> {
        if !self.partial {
            self.line.clear();
        }
        loop {
            if self.pos < self.chunk.len() {
                self.partial = true;
                let rest = &self.chunk[self.pos..];
                let (len, used, done) = match memchr::memchr(b'\n', rest) {
                    Some(i) => (i, i + 1, true),
                    None => (rest.len(), rest.len(), false),
                };
                match &mut self.skipping {
                    Some(n) => *n += len,
                    None if self.line.len() + len > max => {
                        self.skipping = Some(self.line.len() + len);
                        self.line.clear();
                    }
                    None => self.line.extend_from_slice(&rest[..len]),
                }
                self.pos += used;
                if done {
                    return Ok(self.finish_line());
                }
                continue;
            }
            if self.eof {
                return Ok(if self.partial {
                    self.finish_line()
                } else {
                    Next::Eof
                });
            }
            match self.rx.try_recv() {
                Ok(got) => {
                    self.take(got)?;
                    continue;
                }
                Err(TryRecvError::Disconnected) => {
                    self.eof = true;
                    continue;
                }
                Err(TryRecvError::Empty) => {}
            }
            // About to wait: nothing may sit in an output buffer meanwhile.
            idle()?;
            let got = match deadline {
                Some(d) => match self
                    .rx
                    .recv_timeout(d.saturating_duration_since(Instant::now()))
                {
                    Ok(got) => got,
                    Err(RecvTimeoutError::Timeout) => return Ok(Next::Timeout),
                    Err(RecvTimeoutError::Disconnected) => {
                        self.eof = true;
                        continue;
                    }
                },
                None => match self.rx.recv() {
                    Ok(got) => got,
                    Err(_) => {
                        self.eof = true;
                        continue;
                    }
                },
            };
            self.take(got)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lines_across_chunks_and_over_long_lines() {
        let mut data = b"short\r\n".to_vec();
        data.extend(vec![b'x'; 200_000]);
        data.extend(b"\nok\nlast");
        let mut input = Input::spawn(std::io::Cursor::new(data));
        let mut idle = || Ok(());
        assert_eq!(input.next(100_000, None, &mut idle).unwrap(), Next::Line);
        assert_eq!(input.line, b"short");
        assert_eq!(
            input.next(100_000, None, &mut idle).unwrap(),
            Next::TooLong(200_000)
        );
        assert_eq!(input.next(100_000, None, &mut idle).unwrap(), Next::Line);
        assert_eq!(input.line, b"ok");
        assert_eq!(input.next(100_000, None, &mut idle).unwrap(), Next::Line);
        assert_eq!(input.line, b"last");
        assert_eq!(input.next(100_000, None, &mut idle).unwrap(), Next::Eof);
    }

    #[test]
    fn a_deadline_interrupts_the_wait_and_idle_runs_first() {
        let (mut w, r) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut input = Input::spawn(r);
        let mut idled = 0;
        let got = input
            .next(
                100,
                Some(Instant::now() + Duration::from_millis(30)),
                || {
                    idled += 1;
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(got, Next::Timeout);
        assert_eq!(idled, 1);
        use std::io::Write;
        w.write_all(b"hello\n").unwrap();
        assert_eq!(input.next(100, None, || Ok(())).unwrap(), Next::Line);
        assert_eq!(input.line, b"hello");
    }
}
