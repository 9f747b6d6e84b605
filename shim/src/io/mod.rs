//! A process's stdio: pipes (or a pty from `--console-socket`) between the container and
//! the fifos containerd gives, copied by the shim so the container never writes into a
//! fifo directly: it gets no SIGPIPE and keeps running while containerd is away.
//!
//! Output goes to a fifo only while someone (ctr, a client of containerd) has its read end
//! open: then a slow reader slows the container down, as with runc's shim. When the reader
//! is gone (it died with containerd, or `ctr run -d` exited) the write fails with EPIPE and
//! the output is dropped, so the container never blocks on a fifo nobody will drain; a new
//! reader (`ctr task attach`) gets the output from then on.

mod console;
mod relay;

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use console::ConsoleSocket;
use relay::{relay, Dest, OutputFifo, Stream};

const COPY_STACK: usize = 64 * 1024;

/// The stdio a created or exec'd process gets (None = /dev/null).
#[derive(Default)]
pub struct ProcessStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

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

/// Starts a process's stdio: a console socket for a terminal, otherwise pipes.
pub fn prepare_io(
    paths: &StdioPaths,
) -> Result<(Option<ConsoleSocket>, Option<Io>, ProcessStdio), String> {
    if paths.terminal {
        Ok((Some(ConsoleSocket::new()?), None, ProcessStdio::default()))
    } else {
        let (io, stdio) = Io::pipes(paths)?;
        Ok((None, Some(io), stdio))
    }
}

/// The shim's side of what `prepare_io` started, once the runtime has made the process.
pub fn finish_io(
    socket: Option<ConsoleSocket>,
    io: Option<Io>,
    paths: &StdioPaths,
) -> Result<Arc<Io>, String> {
    match (socket, io) {
        (Some(s), _) => Io::console(&s, paths).map(Arc::new),
        (None, Some(io)) => Ok(Arc::new(io)),
        (None, None) => Err("no stdio prepared".into()),
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
