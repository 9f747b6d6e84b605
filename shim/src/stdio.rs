//! A process's stdio: pipes (or a pty from `--console-socket`) between the container and
//! the fifos containerd gives, copied by the shim so the container never writes into a
//! fifo directly: it gets no SIGPIPE and keeps running while containerd is away.
//!
//! Output goes to a fifo only while someone (ctr, a client of containerd) has its read end
//! open: then a slow reader slows the container down, as with runc's shim. When the reader
//! is gone (it died with containerd, or `ctr run -d` exited) the write fails with EPIPE and
//! the output is dropped, so the container never blocks on a fifo nobody will drain; a new
//! reader (`ctr task attach`) gets the output from then on.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::runtime::ProcessStdio;

const COPY_STACK: usize = 64 * 1024;
/// Per copier; it lives as long as the process (a pipe holds 64 KiB anyway).
const COPY_BUF: usize = 8 * 1024;

/// The fifo paths containerd gave (any may be empty).
#[derive(Clone, Debug, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// The shim's side of a process's stdio.
pub struct Io {
    /// Where the container's stdin is written (pipe or pty master); CloseIO drops it.
    stdin: Arc<Mutex<Option<File>>>,
    /// The pty master, for ResizePty.
    console: Option<File>,
    /// Dropped with the Io: ends the copy of stdin, which may wait forever for a writer.
    _stop_stdin: Option<OwnedFd>,
    /// Output streams not yet at their end.
    copying: Arc<AtomicUsize>,
}

impl Io {
    /// Pipes for a process without a terminal; returns the container's ends too.
    pub fn pipes(paths: &StdioPaths) -> Result<(Io, ProcessStdio), String> {
        let mut io = Io::empty();
        let mut stdio = ProcessStdio::default();
        let mut streams = Vec::new();
        if !paths.stdin.is_empty() {
            let (r, w) = pipe()?;
            stdio.stdin = Some(r);
            *io.stdin.lock().unwrap() = Some(File::from(w));
            streams.push(io.stdin_stream(&paths.stdin)?);
        }
        if !paths.stdout.is_empty() {
            let (r, w) = pipe()?;
            stdio.stdout = Some(w);
            streams.push(io.output_stream(File::from(r), &paths.stdout)?);
        }
        if !paths.stderr.is_empty() {
            let (r, w) = pipe()?;
            stdio.stderr = Some(w);
            streams.push(io.output_stream(File::from(r), &paths.stderr)?);
        }
        io.start(streams)?;
        Ok((io, stdio))
    }

    /// Takes the pty master the runtime sent to `socket` and copies it to and from the fifos.
    pub fn console(socket: &ConsoleSocket, paths: &StdioPaths) -> Result<Io, String> {
        let master = socket.receive()?;
        let mut io = Io::empty();
        let mut streams = Vec::new();
        if !paths.stdout.is_empty() {
            let reader = master
                .try_clone()
                .map_err(|e| format!("dup pty master: {e}"))?;
            streams.push(io.output_stream(reader, &paths.stdout)?);
        }
        if !paths.stdin.is_empty() {
            let writer = master
                .try_clone()
                .map_err(|e| format!("dup pty master: {e}"))?;
            *io.stdin.lock().unwrap() = Some(writer);
            streams.push(io.stdin_stream(&paths.stdin)?);
        }
        io.start(streams)?;
        io.console = Some(master);
        Ok(io)
    }

    fn empty() -> Io {
        Io {
            stdin: Arc::new(Mutex::new(None)),
            console: None,
            _stop_stdin: None,
            copying: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// fifo → container, until containerd closes its end, CloseIO, or the Io is dropped.
    fn stdin_stream(&self, fifo: &str) -> Result<Stream, String> {
        // Non-blocking: before containerd opens its end a read says EOF, so the relay
        // polls it (no POLLHUP until a writer has come and gone).
        let src = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
            .map_err(|e| format!("opening stdin fifo {fifo}: {e}"))?;
        if let Some(w) = self.stdin.lock().unwrap().as_ref() {
            set_nonblocking(w).map_err(|e| format!("stdin of the container: {e}"))?;
        }
        Ok(Stream::new(src, Dest::Container(self.stdin.clone())))
    }

    /// container → fifo, until the container side closes (EOF, or EIO on a pty).
    fn output_stream(&self, src: File, fifo: &str) -> Result<Stream, String> {
        set_nonblocking(&src).map_err(|e| format!("output of the container: {e}"))?;
        let dst = OutputFifo::open(fifo)?;
        self.copying.fetch_add(1, Ordering::SeqCst);
        Ok(Stream::new(src, Dest::Fifo(dst)))
    }

    /// One thread relays all of the process's streams (it used to be one per stream).
    fn start(&mut self, streams: Vec<Stream>) -> Result<(), String> {
        if streams.is_empty() {
            return Ok(());
        }
        let (stopped, stop) = pipe()?;
        self._stop_stdin = Some(stop);
        let copying = self.copying.clone();
        std::thread::Builder::new()
            .name("io".into())
            .stack_size(COPY_STACK)
            .spawn(move || relay(streams, stopped, &copying))
            .map(|_| ())
            .map_err(|e| format!("starting io thread: {e}"))
    }

    /// CloseIO: the container sees EOF on stdin.
    pub fn close_stdin(&self) {
        self.stdin.lock().unwrap().take();
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<(), String> {
        let Some(master) = &self.console else {
            return Err("process has no terminal".into());
        };
        let ws = libc::winsize {
            ws_row: height as u16,
            ws_col: width as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the call; the fd is open.
        let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if r < 0 {
            return Err(format!("resizing pty: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Whether all output has been copied out (Wait answers after that, bounded).
    pub fn output_done(&self) -> bool {
        self.copying.load(Ordering::SeqCst) == 0
    }
}

enum Dest {
    /// An output fifo of containerd's.
    Fifo(OutputFifo),
    /// The container's stdin (shared with CloseIO, which takes it).
    Container(Arc<Mutex<Option<File>>>),
}

/// One direction of copying. Every fd is non-blocking: a stream that cannot write waits
/// for POLLOUT on its destination and stops reading its source meanwhile, so a slow reader
/// slows down only the writer feeding it (as with a thread per stream).
struct Stream {
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
    fn new(src: File, dst: Dest) -> Stream {
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
                Dest::Fifo(f) => match f.writer() {
                    Some(w) => Some(w.write(data)),
                    // Nobody reads the fifo: the output is dropped.
                    None => Some(Ok(data.len())),
                },
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
fn relay(mut streams: Vec<Stream>, stopped: OwnedFd, copying: &AtomicUsize) {
    let mut stop_seen = false;
    loop {
        streams.retain(|s| {
            if s.done && s.is_output() {
                copying.fetch_sub(1, Ordering::SeqCst);
            }
            !s.done
        });
        if streams.is_empty() {
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
        // A stream whose destination is gone (-1) is ended by `step` without waiting.
        let timeout = if pfds.iter().any(|p| p.fd < 0) { 0 } else { -1 };
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
struct OutputFifo {
    path: String,
    file: Option<File>,
}

impl OutputFifo {
    /// Fails only if `path` cannot be a fifo for us; no reader yet is fine.
    fn open(path: &str) -> Result<OutputFifo, String> {
        let mut fifo = OutputFifo {
            path: path.to_string(),
            file: None,
        };
        fifo.try_open()
            .map_err(|e| format!("opening output fifo {path}: {e}"))?;
        Ok(fifo)
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

fn set_nonblocking(f: &File) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(f.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// A listening socket the runtime sends the pty master to (`--console-socket`).
pub struct ConsoleSocket {
    listener: UnixListener,
    dir: PathBuf,
    pub path: PathBuf,
}

impl ConsoleSocket {
    pub fn new() -> Result<ConsoleSocket, String> {
        let dir =
            std::env::temp_dir().join(format!("runrs-pty-{}-{}", std::process::id(), unique()));
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let path = dir.join("pty.sock");
        let listener =
            UnixListener::bind(&path).map_err(|e| format!("binding {}: {e}", path.display()))?;
        Ok(ConsoleSocket {
            listener,
            dir,
            path,
        })
    }

    fn receive(&self) -> Result<File, String> {
        self.listener
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let stream = accept_within(&self.listener, Duration::from_secs(10))?;
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_fd().as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("receiving pty master: {e}"))?;
        for cmsg in msg.cmsgs().map_err(|e| e.to_string())? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(&fd) = fds.first() {
                    // SAFETY: SCM_RIGHTS just installed this fd in our table; we own it.
                    return Ok(unsafe { File::from_raw_fd(fd) });
                }
            }
        }
        Err("the runtime sent no pty master on the console socket".into())
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn accept_within(
    l: &UnixListener,
    timeout: Duration,
) -> Result<std::os::unix::net::UnixStream, String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).map_err(|e| e.to_string())?;
                return Ok(s);
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && std::time::Instant::now() < deadline =>
            {
                // Sleep until the runtime connects (or the deadline), not in a polling loop.
                use std::os::fd::AsFd;
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
                let mut fds = [nix::poll::PollFd::new(
                    l.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
            }
            Err(e) => {
                return Err(format!(
                    "waiting for the runtime on the console socket: {e}"
                ))
            }
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
