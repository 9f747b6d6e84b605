//! The reaper: the shim is the child subreaper of everything it starts, and one thread
//! reaps every child (SIGCHLD through a signalfd) into a table of recent exits.
//!
//! Runtime commands and container processes both claim their exit from that table; every
//! exit carries a sequence number so a caller only takes exits that happened after it
//! started its process (a pid reused later cannot be confused with an old one).

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Exits nobody claimed are forgotten after this many newer ones.
const KEEP: usize = 512;

#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub pid: i32,
    /// Exit code, or 128 + signal number for a signal death.
    pub status: u32,
    pub at: SystemTime,
    seq: u64,
}

#[derive(Default)]
struct Table {
    seq: u64,
    recent: VecDeque<Exit>,
}

pub struct Reaper {
    table: Mutex<Table>,
    changed: Condvar,
}

impl Reaper {
    /// Blocks SIGCHLD in the calling thread: call before any other thread exists so all
    /// inherit the mask and only the signalfd sees the signal.
    pub fn install() -> Result<(Arc<Reaper>, SignalFd), String> {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer flag and touches no memory.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(format!(
                "PR_SET_CHILD_SUBREAPER: {}",
                std::io::Error::last_os_error()
            ));
        }
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block()
            .map_err(|e| format!("blocking SIGCHLD: {e}"))?;
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| format!("signalfd: {e}"))?;
        let reaper = Arc::new(Reaper {
            table: Mutex::new(Table::default()),
            changed: Condvar::new(),
        });
        Ok((reaper, sfd))
    }

    /// The shim's event loop: calls `on_other` when `other` is readable (the OOM watcher's
    /// fd), and reaps on SIGCHLD (`on_exit` sees every exit after it is in the table).
    pub fn run(
        self: Arc<Self>,
        sfd: SignalFd,
        other: BorrowedFd<'_>,
        on_exit: impl Fn(Exit),
        on_other: impl Fn(),
    ) {
        loop {
            let mut fds = [
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(other, PollFlags::POLLIN),
            ];
            if poll(&mut fds, PollTimeout::NONE).is_err() {
                continue;
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            // The OOM first: a kill's OOM and its exit seen in one wake-up go out in the
            // order they happened (the CRI says OOMKilled only if the OOM came first).
            if ready(&fds[1]) {
                on_other();
            }
            if ready(&fds[0]) {
                // Non-blocking: SIGCHLDs coalesce, one read and a full reap is enough.
                while let Ok(Some(_)) = sfd.read_signal() {}
                for exit in self.reap_all() {
                    on_exit(exit);
                }
            }
        }
    }

    fn reap_all(&self) -> Vec<Exit> {
        let mut exits = Vec::new();
        loop {
            let status = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code as u32),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as u32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            };
            let mut t = self.table.lock().unwrap();
            t.seq += 1;
            let exit = Exit {
                pid: status.0.as_raw(),
                status: status.1,
                at: SystemTime::now(),
                seq: t.seq,
            };
            t.recent.push_back(exit);
            if t.recent.len() > KEEP {
                t.recent.pop_front();
            }
            exits.push(exit);
        }
        if !exits.is_empty() {
            self.changed.notify_all();
        }
        exits
    }

    /// A mark to take before starting a process whose exit will be claimed.
    pub fn mark(&self) -> u64 {
        self.table.lock().unwrap().seq
    }

    /// Takes the exit of `pid` recorded after `mark`, if there is one.
    pub fn take(&self, pid: i32, mark: u64) -> Option<Exit> {
        let mut t = self.table.lock().unwrap();
        let i = t.recent.iter().position(|e| e.pid == pid && e.seq > mark)?;
        t.recent.remove(i)
    }

    /// Waits for the exit of `pid` (a child started after `mark`).
    pub fn wait(&self, pid: i32, mark: u64) -> Exit {
        let mut t = self.table.lock().unwrap();
        loop {
            if let Some(i) = t.recent.iter().position(|e| e.pid == pid && e.seq > mark) {
                return t.recent.remove(i).expect("index just found");
            }
            t = self.changed.wait(t).unwrap();
        }
    }
}
