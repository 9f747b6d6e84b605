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
    /// Dropped with the Io: ends the stdin copier, which may wait forever for a writer.
    _stop_stdin: Option<OwnedFd>,
    /// Output copiers still running.
    copying: Arc<AtomicUsize>,
}

impl Io {
    /// Pipes for a process without a terminal; returns the container's ends too.
    pub fn pipes(paths: &StdioPaths) -> Result<(Io, ProcessStdio), String> {
        let mut io = Io::empty();
        let mut stdio = ProcessStdio::default();
        if !paths.stdin.is_empty() {
            let (r, w) = pipe()?;
            stdio.stdin = Some(r);
            *io.stdin.lock().unwrap() = Some(File::from(w));
            io.copy_stdin(&paths.stdin)?;
        }
        if !paths.stdout.is_empty() {
            let (r, w) = pipe()?;
            stdio.stdout = Some(w);
            io.copy_output(File::from(r), &paths.stdout)?;
        }
        if !paths.stderr.is_empty() {
            let (r, w) = pipe()?;
            stdio.stderr = Some(w);
            io.copy_output(File::from(r), &paths.stderr)?;
        }
        Ok((io, stdio))
    }

    /// Takes the pty master the runtime sent to `socket` and copies it to and from the fifos.
    pub fn console(socket: &ConsoleSocket, paths: &StdioPaths) -> Result<Io, String> {
        let master = socket.receive()?;
        let mut io = Io::empty();
        if !paths.stdout.is_empty() {
            let reader = master
                .try_clone()
                .map_err(|e| format!("dup pty master: {e}"))?;
            io.copy_output(reader, &paths.stdout)?;
        }
        if !paths.stdin.is_empty() {
            let writer = master
                .try_clone()
                .map_err(|e| format!("dup pty master: {e}"))?;
            *io.stdin.lock().unwrap() = Some(writer);
            io.copy_stdin(&paths.stdin)?;
        }
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
    fn copy_stdin(&mut self, fifo: &str) -> Result<(), String> {
        let src = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
            .map_err(|e| format!("opening stdin fifo {fifo}: {e}"))?;
        let dst = self.stdin.clone();
        let (stopped, stop) = pipe()?;
        self._stop_stdin = Some(stop);
        spawn_copier(move || {
            let mut buf = vec![0u8; COPY_BUF];
            // Before containerd opens its end a read says EOF: wait for data or hang-up.
            while wait_readable(&src, &stopped) {
                let n = match (&src).read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let mut guard = dst.lock().unwrap();
                let Some(w) = guard.as_mut() else { return };
                if w.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            // containerd closed stdin: so does the container.
            dst.lock().unwrap().take();
        })
    }

    /// container → fifo, until the container side closes (EOF, or EIO on a pty).
    fn copy_output(&self, mut src: File, fifo: &str) -> Result<(), String> {
        let mut dst = OutputFifo::open(fifo)?;
        let copying = self.copying.clone();
        copying.fetch_add(1, Ordering::SeqCst);
        spawn_copier(move || {
            let mut buf = vec![0u8; COPY_BUF];
            loop {
                let n = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                dst.write(&buf[..n]);
            }
            drop(dst);
            copying.fetch_sub(1, Ordering::SeqCst);
        })
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

/// The write end of an output fifo, opened once a reader is there.
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
        // O_NONBLOCK so the open does not wait for a reader; writes then block again.
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
        {
            Ok(f) => {
                set_blocking(&f)?;
                self.file = Some(f);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes `data` if someone reads the fifo, else drops it. The fd is kept after EPIPE:
    /// it works again as soon as a new reader opens the fifo.
    fn write(&mut self, data: &[u8]) {
        if self.file.is_none() && self.try_open().is_err() {
            return;
        }
        if let Some(f) = &mut self.file {
            // EPIPE (SIGPIPE is ignored in the shim) means no reader: the output is dropped.
            let _ = f.write_all(data);
        }
    }
}

fn set_blocking(f: &File) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(f.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(())
}

fn spawn_copier(f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    std::thread::Builder::new()
        .name("io".into())
        .stack_size(COPY_STACK)
        .spawn(f)
        .map(|_| ())
        .map_err(|e| format!("starting io thread: {e}"))
}

/// Blocks until `f` has data or its writer hung up; false on error or once `stop`
/// is readable (its write end was closed).
fn wait_readable(f: &File, stop: &OwnedFd) -> bool {
    let mut pfds = [f.as_raw_fd(), stop.as_raw_fd()].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        // SAFETY: two valid pollfds for the duration of the call.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), 2, -1) };
        if r >= 0 {
            return pfds[1].revents == 0;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
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
