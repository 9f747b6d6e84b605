//! The relay of a process's stdio: one thread polls every stream of the process.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Per copier; it lives as long as the process (a pipe holds 64 KiB anyway).
const COPY_BUF: usize = 8 * 1024;

/// How often output held for a fifo's first reader tries the fifo again, at first; the
/// interval grows to a tenth of how long it has waited, up to READER_RETRY_MAX_MS.
const READER_RETRY_MS: i32 = 5;
const READER_RETRY_MAX_MS: i32 = 1000;

pub(super) enum Dest {
    /// An output fifo of containerd's.
    Fifo(OutputFifo),
    /// The container's stdin (shared with CloseIO, which takes it).
    Container(Arc<Mutex<Option<File>>>),
}

/// One direction of copying. Every fd is non-blocking: a stream that cannot write waits
/// for POLLOUT on its destination and stops reading its source meanwhile, so a slow reader
/// slows down only the writer feeding it (as with a thread per stream).
pub(super) struct Stream {
    src: File,
    dst: Dest,
    /// Allocated (and zeroed) once, at the first read.
    buf: Vec<u8>,
    /// buf[pos..end] is still to be written.
    pos: usize,
    end: usize,
    done: bool,
}

impl Stream {
    pub(super) fn new(src: File, dst: Dest) -> Stream {
        Stream {
            src,
            dst,
            buf: Vec::new(),
            pos: 0,
            end: 0,
            done: false,
        }
    }

    fn is_output(&self) -> bool {
        matches!(self.dst, Dest::Fifo(_))
    }

    /// Output held until its fifo's first reader comes.
    fn waits_for_reader(&self) -> bool {
        self.pending() && self.unmet().is_some()
    }

    /// The output fifo, while no reader has ever had it open.
    fn unmet(&self) -> Option<&OutputFifo> {
        match &self.dst {
            Dest::Fifo(f) if f.never_met() => Some(f),
            _ => None,
        }
    }

    fn pending(&self) -> bool {
        self.pos < self.end
    }

    /// What to poll for: the source while nothing is pending, else the destination. A
    /// closed destination (CloseIO) shows as POLLNVAL, and `step` then ends the stream.
    fn pollfd(&self) -> libc::pollfd {
        let (fd, events) = if !self.pending() {
            (self.src.as_raw_fd(), libc::POLLIN)
        } else {
            let fd = match &self.dst {
                Dest::Fifo(f) => f.file.as_ref().map(|f| f.as_raw_fd()),
                Dest::Container(c) => c.lock().unwrap().as_ref().map(|f| f.as_raw_fd()),
            };
            (fd.unwrap_or(-1), libc::POLLOUT)
        };
        libc::pollfd {
            fd,
            events,
            revents: 0,
        }
    }

    /// After poll said the fd of `pollfd` is ready: read a chunk, or write what is pending.
    fn step(&mut self) {
        if !self.pending() {
            if self.buf.is_empty() {
                self.buf = vec![0; COPY_BUF];
            }
            (self.pos, self.end) = (0, 0);
            match (&self.src).read(&mut self.buf) {
                Ok(0) => return self.finish(),
                Ok(n) => self.end = n,
                Err(e) if is_retry(&e) => return,
                // EIO: the pty's other side is gone.
                Err(_) => return self.finish(),
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        while self.pending() {
            let data = &self.buf[self.pos..self.end];
            let r = match &mut self.dst {
                Dest::Fifo(f) => {
                    let had_reader = f.had_reader;
                    match f.writer() {
                        Some(w) => Some(w.write(data)),
                        // No reader yet (containerd opens its end concurrently): keep it, as
                        // the Go shim does by opening the fifo blocking; `relay` retries.
                        None if !had_reader => return,
                        // The reader went away: the output is dropped.
                        None => Some(Ok(data.len())),
                    }
                }
                Dest::Container(c) => c.lock().unwrap().as_mut().map(|w| w.write(data)),
            };
            let Some(r) = r else {
                // CloseIO took the container's stdin.
                return self.finish();
            };
            match r {
                Ok(n) => self.pos += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) if self.is_output() => {
                    // EPIPE (SIGPIPE is ignored in the shim): the reader is gone, the output
                    // dropped; the fd works again once a new reader opens the fifo.
                    self.pos = self.end;
                }
                // The container closed its stdin.
                Err(_) => return self.finish(),
            }
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.buf = Vec::new();
        (self.pos, self.end) = (0, 0);
        if let Dest::Container(c) = &self.dst {
            // containerd closed stdin: so does the container.
            c.lock().unwrap().take();
        }
    }
}

fn is_retry(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
    )
}

/// The relay thread of one process: until every stream has ended (the copy of stdin also
/// ends when the Io is dropped: `stopped` becomes readable).
///
/// An output stream that ends before its fifo ever had a reader (a process that wrote
/// nothing to stderr and exited before containerd's goroutine opened the fifo) is not
/// done with the fifo: the reader's open blocks until a writer comes, and its copy (so
/// CRI's ExecSync) waits for EOF. Such fifos are kept in `unmet` and opened once a reader
/// is there, then closed, which is that reader's EOF; or given up when the Io is dropped.
pub(super) fn relay(mut streams: Vec<Stream>, stopped: OwnedFd, copying: &AtomicUsize) {
    let mut stop_seen = false;
    let mut unmet: Vec<OutputFifo> = Vec::new();
    let mut waiting_since: Option<Instant> = None;
    loop {
        if streams.iter().any(|s| s.done) {
            let (done, live): (Vec<Stream>, Vec<Stream>) =
                streams.into_iter().partition(|s| s.done);
            streams = live;
            for s in done {
                if let Dest::Fifo(f) = s.dst {
                    copying.fetch_sub(1, Ordering::SeqCst);
                    if f.never_met() && !stop_seen {
                        unmet.push(f);
                    }
                }
            }
        }
        // Opened is met: dropping the fd gives the reader its EOF.
        unmet.retain_mut(|f| f.writer().is_none());
        if streams.is_empty() && unmet.is_empty() {
            return;
        }
        let mut pfds: Vec<libc::pollfd> = streams.iter().map(Stream::pollfd).collect();
        if !stop_seen {
            pfds.push(libc::pollfd {
                fd: stopped.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // A stream whose destination is gone (-1) is ended by `step` without waiting; one
        // waiting for its fifo's first reader tries again every few milliseconds.
        let waiting = !unmet.is_empty() || streams.iter().any(Stream::waits_for_reader);
        let timeout = if waiting {
            let since = *waiting_since.get_or_insert_with(Instant::now);
            let tenth = (since.elapsed().as_millis() / 10).min(READER_RETRY_MAX_MS as u128);
            (tenth as i32).max(READER_RETRY_MS)
        } else if pfds.iter().any(|p| p.fd < 0) {
            0
        } else {
            -1
        };
        if !waiting {
            waiting_since = None;
        }
        // SAFETY: pfds is a live array of pfds.len() pollfds (a -1 fd is ignored).
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        if r < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // Cannot poll (ENOMEM): give up copying, but let Wait answer.
            let outputs = streams.iter().filter(|s| s.is_output()).count();
            copying.fetch_sub(outputs, Ordering::SeqCst);
            return;
        }
        if !stop_seen && pfds.last().is_some_and(|p| p.revents != 0) {
            // The Io is gone: stop copying stdin; outputs go on until the container's end.
            stop_seen = true;
            unmet.clear();
            for s in streams.iter_mut().filter(|s| !s.is_output()) {
                s.done = true;
            }
        }
        for (s, p) in streams.iter_mut().zip(&pfds) {
            if !s.done && (p.revents != 0 || p.fd < 0) {
                s.step();
            }
        }
    }
}

/// The write end of an output fifo, opened once a reader is there; non-blocking.
pub(super) struct OutputFifo {
    path: String,
    file: Option<File>,
    /// A reader had it open once: output that finds none now is dropped, not held.
    had_reader: bool,
}

impl OutputFifo {
    /// Fails only if `path` cannot be a fifo for us; no reader yet is fine.
    pub(super) fn open(path: &str) -> Result<OutputFifo, String> {
        let mut fifo = OutputFifo {
            path: path.to_string(),
            file: None,
            had_reader: false,
        };
        fifo.try_open()
            .map_err(|e| format!("opening output fifo {path}: {e}"))?;
        Ok(fifo)
    }

    /// No reader has ever had it open (so neither have we).
    fn never_met(&self) -> bool {
        self.file.is_none() && !self.had_reader
    }

    /// Opens the write end if a reader has the fifo open (ENXIO: none yet, not an error).
    fn try_open(&mut self) -> std::io::Result<()> {
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
        {
            Ok(f) => {
                self.file = Some(f);
                self.had_reader = true;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The fifo to write to, or None while nobody has it open for reading. The fd is kept
    /// after EPIPE: it works again as soon as a new reader opens the fifo.
    fn writer(&mut self) -> Option<&mut File> {
        if self.file.is_none() {
            let _ = self.try_open();
        }
        self.file.as_mut()
    }
}
