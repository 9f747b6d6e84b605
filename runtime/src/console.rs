//! Terminals: the pty a `terminal: true` process gets, and the console socket protocol
//! (the pty master sent over `SCM_RIGHTS`, as runc does).
//!
//! For a foreground `run`/`exec` with a terminal and no `--console-socket`, [`Relay`] copies
//! between our stdio and the pty master, the way runc does: the host terminal goes raw,
//! `ONLCR` is cleared on the pty so container output keeps plain `\n`, and the window size
//! follows our terminal.

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    connect, recvmsg, sendmsg, socket, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::sys::stat::Mode;
use nix::sys::termios::{self, SetArg, Termios};
use nix::unistd::{dup2, isatty, read, setsid, write};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// The name runc sends with the master (`containerd/console` names the master `/dev/ptmx`).
const MASTER_NAME: &str = "/dev/ptmx";

/// Open a new pty from `/dev/ptmx` of the current mount namespace (inside the container, after
/// `pivot_root`): returns `(master, slave)`. The slave is the container's controlling tty.
pub fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let fd = open("/dev/ptmx", flags, Mode::empty()).map_err(|e| anyhow!("open /dev/ptmx: {e}"))?;
    // SAFETY: `open` returned a new descriptor that nothing else owns.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from a valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        bail!("unlockpt: {}", Errno::last());
    }
    // TIOCGPTPEER opens the slave from the master itself, with no path lookup in a rootfs
    // that the container controls; kernels before 4.13 get the path instead.
    let peer = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor or -1.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, peer) };
    let slave = if fd >= 0 {
        // SAFETY: the ioctl returned a new descriptor that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    } else {
        let path = pty_name(&master)?;
        let fd = open(&path, flags, Mode::empty())
            .map_err(|e| anyhow!("open {}: {e}", path.display()))?;
        // SAFETY: `open` returned a new descriptor that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    Ok((master, slave))
}

/// The slave's path for a pty `master` (`/dev/pts/N`, from `TIOCGPTN`).
pub fn pty_name(master: &OwnedFd) -> Result<PathBuf> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through a valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) } < 0 {
        bail!("ptsname: {}", Errno::last());
    }
    Ok(PathBuf::from(format!("/dev/pts/{n}")))
}

/// Set the window size of the terminal `fd` (e.g. from `process.consoleSize`).
pub fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        bail!("set the terminal size: {}", Errno::last());
    }
    Ok(())
}

fn get_size(fd: RawFd) -> Option<libc::winsize> {
    // SAFETY: an all-zero winsize is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize through a valid pointer.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some(ws)
}

/// Make `slave` the calling process's controlling terminal and its stdin/stdout/stderr
/// (`setsid`, `TIOCSCTTY`, `dup2` onto 0, 1, 2).
pub fn set_controlling_tty(slave: &OwnedFd) -> Result<()> {
    // EPERM: already a session leader (e.g. the init of a new pid namespace after setsid).
    match setsid() {
        Ok(_) | Err(Errno::EPERM) => {}
        Err(e) => bail!("setsid: {e}"),
    }
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal from another session).
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        bail!(
            "set the controlling terminal (TIOCSCTTY): {}",
            Errno::last()
        );
    }
    for target in 0..3 {
        dup2(slave.as_raw_fd(), target).map_err(|e| anyhow!("dup2 the tty onto {target}: {e}"))?;
    }
    Ok(())
}

/// Send `master` over the connected unix socket `socket` with `SCM_RIGHTS`, as runc does
/// (the message data is the pty's name, e.g. `/dev/ptmx`).
pub fn send_master(socket: RawFd, master: &OwnedFd) -> Result<()> {
    send_fd(socket, MASTER_NAME, master)
        .map_err(|e| anyhow!("send the pty master to the console socket: {e}"))
}

/// `--pidfd-socket`: a pidfd of `pid` sent over the connected socket, with runc's message
/// data (`standard` for a container's init, `setns` for an exec'd process).
pub fn send_pidfd(socket: &OwnedFd, pid: i32, kind: &str) -> Result<()> {
    let pidfd = crate::process::pidfd_open(pid)
        .with_context(|| format!("failed to pidfd_open: {}", std::io::Error::last_os_error()))?;
    send_fd(socket.as_raw_fd(), kind, &pidfd)
        .map_err(|e| anyhow!("failed to send pidfd on socket: {e}"))
}

fn send_fd(socket: RawFd, name: &str, fd: &OwnedFd) -> nix::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    loop {
        match sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Connect to the `--pidfd-socket` at `path`, in runc's words when it cannot.
pub fn connect_pidfd_socket(path: &Path) -> Result<OwnedFd> {
    connect_unix(path).map_err(|e| {
        let why = match e {
            ConnectError::Path(e) => e.to_string(),
            ConnectError::Connect(e) => format!(
                "dial unix {}: connect: {}",
                path.display(),
                crate::process::io_msg(&std::io::Error::from(e))
            ),
        };
        anyhow!("failed to dail {}: {why}", path.display())
    })
}

/// Why a unix socket could not be connected: its path, or the connect itself.
enum ConnectError {
    Path(Errno),
    Connect(Errno),
}

/// A stream socket connected to `path`.
fn connect_unix(path: &Path) -> std::result::Result<OwnedFd, ConnectError> {
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(ConnectError::Connect)?;
    let addr = UnixAddr::new(path).map_err(ConnectError::Path)?;
    connect(sock.as_raw_fd(), &addr).map_err(ConnectError::Connect)?;
    Ok(sock)
}

/// A connected socket pair standing in for `--console-socket` when a foreground `run` or
/// `exec` relays the terminal itself: the init sends the master on one end, we receive it on
/// the other.
pub fn local_pair() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Connect to the console socket at `path` (the `--console-socket` flag).
pub fn connect_socket(path: &Path) -> Result<OwnedFd> {
    connect_unix(path).map_err(|e| match e {
        ConnectError::Path(e) => anyhow!("console socket path {}: {e}", path.display()),
        ConnectError::Connect(e) => anyhow!("connect to console socket {}: {e}", path.display()),
    })
}

/// Receive a pty master sent with `send_master` on the connected socket `socket`.
pub fn recv_master(socket: RawFd) -> Result<OwnedFd> {
    let mut name = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = loop {
        match recvmsg::<()>(
            socket,
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(Errno::EINTR) => {}
            Err(e) => bail!("receive the pty master: {e}"),
        }
    };
    let mut received: Vec<OwnedFd> = Vec::new();
    for c in msg
        .cmsgs()
        .map_err(|e| anyhow!("receive the pty master: {e}"))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS installed these descriptors in our table; we own them now.
            received.extend(
                fds.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if msg.bytes == 0 && received.is_empty() {
        bail!("receive the pty master: the socket was closed before a terminal was sent");
    }
    let mut it = received.into_iter();
    match (it.next(), it.next()) {
        (Some(fd), None) => Ok(fd),
        (None, _) => bail!("receive the pty master: no file descriptor in the message"),
        (Some(_), Some(_)) => bail!("receive the pty master: more than one file descriptor"),
    }
}

/// Clear `ONLCR` on a pty (through its master), as runc does before relaying, so that the
/// container's `\n` reaches us as `\n` rather than `\r\n`.
pub fn clear_onlcr(master: BorrowedFd<'_>) -> Result<()> {
    let mut t = termios::tcgetattr(master).context("tcgetattr on the pty master")?;
    t.output_flags.remove(termios::OutputFlags::ONLCR);
    termios::tcsetattr(master, SetArg::TCSANOW, &t).context("tcsetattr on the pty master")?;
    Ok(())
}

/// The first of our stdin, stdout, stderr that is a terminal (runc's "current console").
fn host_console() -> Option<RawFd> {
    (0..3).find(|fd| isatty(*fd).unwrap_or(false))
}

/// Puts a terminal in raw mode and restores its settings when dropped.
struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    fn enter(fd: RawFd) -> Result<RawMode> {
        // SAFETY: `fd` is one of our stdio descriptors, open for the life of the process.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        let saved = termios::tcgetattr(b).context("read the terminal settings")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(b, SetArg::TCSANOW, &raw)
            .context("failed to set the terminal from the stdin")?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: as in `enter`, the descriptor is one of our stdio fds.
        let b = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(b, SetArg::TCSANOW, &self.saved);
    }
}

/// Copies between our stdio and a pty master while a foreground `run`/`exec` waits.
///
/// Shape: the caller owns the wait loop (signals, child exit) and calls [`Relay::pump`] with
/// its own wake-up fds (a signalfd, a pidfd); `pump` copies whatever is ready and reports
/// which of those fds are readable. On `SIGWINCH` the caller calls [`Relay::resize`]. When the
/// container process has exited the caller calls [`Relay::finish`] to copy the output left in
/// the pty. Dropping the relay restores the host terminal. `signals::Forwarder` is the caller.
pub struct Relay {
    master: OwnedFd,
    input: Option<RawFd>,
    output: RawFd,
    host_tty: Option<RawFd>,
    _raw: Option<RawMode>,
    master_open: bool,
    pending: Vec<u8>,
}

impl Relay {
    /// Relay between our stdin/stdout and `master`; our terminal (if any) goes raw.
    pub fn new(master: OwnedFd) -> Result<Relay> {
        let tty = host_console();
        Relay::with_fds(master, 0, 1, tty)
    }

    /// Relay between `input`/`output` and `master`; `host_tty` is put in raw mode and gives
    /// the window size. The fds must stay open for the relay's life.
    pub fn with_fds(
        master: OwnedFd,
        input: RawFd,
        output: RawFd,
        host_tty: Option<RawFd>,
    ) -> Result<Relay> {
        clear_onlcr(master.as_fd())?;
        let fl = OFlag::from_bits_truncate(fcntl(master.as_raw_fd(), FcntlArg::F_GETFL)?);
        fcntl(
            master.as_raw_fd(),
            FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK),
        )?;
        let raw = match host_tty {
            Some(fd) => Some(RawMode::enter(fd)?),
            None => None,
        };
        let relay = Relay {
            master,
            input: Some(input),
            output,
            host_tty,
            _raw: raw,
            master_open: true,
            pending: Vec::new(),
        };
        relay.resize();
        Ok(relay)
    }

    /// Copy the host terminal's window size to the pty (on start and on `SIGWINCH`).
    pub fn resize(&self) {
        if let Some(ws) = self.host_tty.and_then(get_size) {
            let _ = set_size(self.master.as_fd(), ws.ws_row, ws.ws_col);
        }
    }

    /// Whether the pty still has a reader on the container side.
    pub fn master_open(&self) -> bool {
        self.master_open
    }

    /// Wait up to `timeout` for input, pty output or one of `extra`, copy what is ready, and
    /// return for each of `extra` whether it is readable.
    pub fn pump(&mut self, timeout: PollTimeout, extra: &[BorrowedFd<'_>]) -> Result<Vec<bool>> {
        // SAFETY: the input fd is kept open by the caller for the relay's life (documented).
        let input = self.input.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
        let mut fds = Vec::with_capacity(2 + extra.len());
        // Closed or idle fds stay out of the set: poll reports POLLHUP even for no events.
        let mut master_at = None;
        if self.master_open {
            let mut ev = PollFlags::POLLIN;
            if !self.pending.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            master_at = Some(fds.len());
            fds.push(PollFd::new(self.master.as_fd(), ev));
        }
        let mut input_at = None;
        if let Some(input) = input.filter(|_| self.pending.is_empty() && self.master_open) {
            input_at = Some(fds.len());
            fds.push(PollFd::new(input, PollFlags::POLLIN));
        }
        let extra_at = fds.len();
        for e in extra {
            fds.push(PollFd::new(*e, PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => bail!("poll the terminal: {e}"),
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        let readable = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        if let Some(m) = master_at.map(|i| revents[i]) {
            if m.intersects(readable) {
                self.copy_output()?;
            }
            if m.contains(PollFlags::POLLOUT) {
                self.flush_input();
            }
        }
        if input_at.is_some_and(|i| revents[i].intersects(readable)) {
            self.read_input();
        }
        Ok(revents[extra_at..]
            .iter()
            .map(|r| r.intersects(readable))
            .collect())
    }

    /// Copy the container output still in the pty (call once the container has exited).
    pub fn finish(&mut self) -> Result<()> {
        while self.master_open {
            if !self.copy_output()? {
                break;
            }
        }
        Ok(())
    }

    /// One read from the master to our output; false when nothing was there.
    fn copy_output(&mut self) -> Result<bool> {
        let mut buf = [0u8; 16384];
        let n = match read(self.master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(Errno::EIO) => {
                // EIO: every slave fd is closed (the container side has gone).
                self.master_open = false;
                return Ok(false);
            }
            Ok(n) => n,
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => return Ok(false),
            Err(e) => bail!("read from the terminal: {e}"),
        };
        write_all(self.output, &buf[..n]);
        Ok(true)
    }

    fn read_input(&mut self) {
        let Some(fd) = self.input else { return };
        let mut buf = [0u8; 4096];
        match read(fd, &mut buf) {
            // EOF on our input: the pty stays open, we just stop reading (as runc does).
            Ok(0) => self.input = None,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                self.flush_input();
            }
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            Err(_) => self.input = None,
        }
    }

    fn flush_input(&mut self) {
        while !self.pending.is_empty() {
            match write(&self.master, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.pending.clear();
                    return;
                }
            }
        }
    }
}

/// Write all of `data` to `fd`, blocking; output that cannot be written is dropped.
fn write_all(fd: RawFd, mut data: &[u8]) {
    // SAFETY: `fd` is the relay's output, kept open by the caller for the relay's life.
    let out = unsafe { BorrowedFd::borrow_raw(fd) };
    while !data.is_empty() {
        match write(out, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut p = [PollFd::new(out, PollFlags::POLLOUT)];
                let _ = poll(&mut p, PollTimeout::NONE);
            }
            Err(_) => return,
        }
    }
}
