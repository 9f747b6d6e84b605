//! The foreground `run` and `exec`: forward signals to the container process, relay a
//! terminal, and wait for the exit status.

use anyhow::{Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const FORWARDED: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCHLD,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGPIPE,
    libc::SIGALRM,
];

/// Signals blocked and read from a signalfd. Create it before the child exists, so that no
/// signal meant for the container is lost; the child resets its mask before exec.
pub struct Forwarder {
    sfd: OwnedFd,
}

impl Forwarder {
    pub fn block() -> Result<Forwarder> {
        // SAFETY: sigset operations on a local set, then sigprocmask and signalfd with it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in FORWARDED {
                libc::sigaddset(&mut set, *s);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).context("signalfd");
            }
            Ok(Forwarder {
                sfd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// Wait for our child `pid` to exit, forwarding signals to it and relaying `master` (a
    /// pty master) with our stdio when given. Returns the raw wait status.
    pub fn wait_child(&self, pid: i32, master: Option<OwnedFd>) -> Result<i32> {
        let _raw = master.as_ref().and_then(|_| RawMode::enter(0));
        if let Some(m) = &master {
            copy_winsize(0, m.as_raw_fd());
        }
        let mut stdin_open = master.is_some();
        let mut master_open = master.is_some();
        loop {
            if let Some(st) = try_reap(pid) {
                if let Some(m) = &master {
                    drain(m.as_raw_fd(), 1);
                }
                return Ok(st);
            }
            let mut fds = vec![libc::pollfd {
                fd: self.sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            if let (Some(m), true) = (&master, master_open) {
                fds.push(libc::pollfd {
                    fd: m.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                if stdin_open {
                    fds.push(libc::pollfd {
                        fd: 0,
                        events: libc::POLLIN,
                        revents: 0,
                    });
                }
            }
            // SAFETY: fds is a live array of fds.len() pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e).context("poll");
            }
            if fds[0].revents & libc::POLLIN != 0 {
                self.forward(pid, master.as_ref().map(|m| m.as_raw_fd()));
            }
            if let Some(m) = &master {
                if fds.len() > 1 && fds[1].revents != 0 && !copy_once(m.as_raw_fd(), 1) {
                    master_open = false;
                }
                if fds.len() > 2 && fds[2].revents != 0 && !copy_once(0, m.as_raw_fd()) {
                    stdin_open = false;
                }
            }
        }
    }

    fn forward(&self, pid: i32, master: Option<RawFd>) {
        // SAFETY: a zeroed siginfo buffer of the right size for the signalfd read.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let sz = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading exactly one siginfo into our buffer.
        let n = unsafe {
            libc::read(
                self.sfd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                sz,
            )
        };
        if n as usize != sz {
            return;
        }
        let sig = info.ssi_signo as libc::c_int;
        match sig {
            libc::SIGCHLD => {}
            libc::SIGWINCH => {
                if let Some(m) = master {
                    copy_winsize(0, m);
                }
            }
            _ => {
                // SAFETY: forwarding a signal to our own child.
                unsafe { libc::kill(pid, sig) };
            }
        }
    }
}

fn try_reap(pid: i32) -> Option<i32> {
    let mut st = 0;
    // SAFETY: non-blocking wait for our own child.
    let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
    (r == pid).then_some(st)
}

/// Copy what is readable from `from` to `to`; false at EOF or error.
fn copy_once(from: RawFd, to: RawFd) -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return false;
    }
    let mut off = 0;
    while off < n as usize {
        // SAFETY: the slice from off is within the bytes just read.
        let w = unsafe { libc::write(to, buf[off..].as_ptr().cast(), n as usize - off) };
        if w <= 0 {
            return false;
        }
        off += w as usize;
    }
    true
}

/// After the child exited: copy what is left in the master without blocking.
fn drain(from: RawFd, to: RawFd) {
    // SAFETY: fcntl on an fd we hold.
    unsafe { libc::fcntl(from, libc::F_SETFL, libc::O_NONBLOCK) };
    while copy_once(from, to) {}
}

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a zeroed winsize we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Our terminal in raw mode while relaying; restored on drop.
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: tcgetattr/tcsetattr on a tty fd with termios structs we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the attributes saved from the same fd.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}
