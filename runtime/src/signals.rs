//! The foreground `run` and `exec`: forward signals to the container process, relay a
//! terminal, and wait for the exit status.

use anyhow::{bail, Context, Result};
use nix::poll::PollTimeout;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

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
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
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
        let mut relay = match master {
            Some(m) => Some(crate::console::Relay::new(m)?),
            None => None,
        };
        loop {
            if let Some(st) = try_reap(pid) {
                if let Some(r) = relay.as_mut() {
                    r.finish()?;
                }
                return Ok(st);
            }
            let signalled = match relay.as_mut() {
                Some(r) => r.pump(PollTimeout::NONE, &[self.sfd.as_fd()])?[0],
                None => {
                    let mut p = libc::pollfd {
                        fd: self.sfd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one live pollfd.
                    unsafe { libc::poll(&mut p, 1, -1) > 0 }
                }
            };
            if signalled {
                self.forward(pid, relay.as_ref());
            }
        }
    }

    /// Forward every pending signal: SIGWINCH resizes the pty, SIGCHLD only wakes us.
    fn forward(&self, pid: i32, relay: Option<&crate::console::Relay>) {
        loop {
            // SAFETY: a zeroed siginfo buffer of the right size for the signalfd read.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let sz = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reading at most one siginfo into our buffer (the fd is non-blocking).
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
            match info.ssi_signo as libc::c_int {
                libc::SIGCHLD => {}
                libc::SIGWINCH => {
                    if let Some(r) = relay {
                        r.resize();
                    }
                }
                sig => {
                    // SAFETY: forwarding a signal to our own child.
                    unsafe { libc::kill(pid, sig) };
                }
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

/// Parse a signal by name (`KILL`, `SIGKILL`) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    // Any number goes to kill(2) as it is (runc's rule): 0 probes, the kernel refuses others.
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    for n in 1..=31 {
        if signal_name(n).and_then(|x| x.strip_prefix("SIG")) == Some(name) {
            return Ok(n);
        }
    }
    if name == "IOT" {
        return Ok(libc::SIGABRT);
    }
    if name == "CLD" {
        return Ok(libc::SIGCHLD);
    }
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.trim_start_matches('+').parse().unwrap_or(-1)
        };
        if (0..=30).contains(&off) {
            return Ok(libc::SIGRTMIN() + off);
        }
    }
    bail!("unknown signal {s:?}")
}

pub fn signal_name(n: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    NAMES.get((n - 1) as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("sigusr1").unwrap(), 10);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("FOO").is_err());
        assert_eq!(parse_signal("0").unwrap(), 0);
    }
}
