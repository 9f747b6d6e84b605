//! OOM notification: v1 registers an eventfd on `memory.oom_control` through
//! `cgroup.event_control`; v2 watches the `oom_kill` count of `memory.events`.

use super::Backend;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub enum OomWatch {
    V1 { efd: OwnedFd, _oom_control: File },
    V2 { dir: PathBuf, seen: u64 },
    Nothing,
}

fn oom_kills(dir: &Path) -> u64 {
    super::stats::flat_keyed(dir, "memory.events")
        .get("oom_kill")
        .copied()
        .unwrap_or(0)
}

impl OomWatch {
    pub fn new(paths: &[PathBuf]) -> OomWatch {
        match super::backend(paths) {
            Some(Backend::V1(b)) => b
                .dir("memory")
                .and_then(register_v1)
                .unwrap_or(OomWatch::Nothing),
            Some(Backend::V2(b)) if b.dir.join("memory.events").exists() => OomWatch::V2 {
                seen: oom_kills(&b.dir),
                dir: b.dir,
            },
            _ => OomWatch::Nothing,
        }
    }

    /// Wait up to `timeout`; the number of OOM events seen (returns early on one).
    pub fn wait(&mut self, timeout: Duration) -> u64 {
        match self {
            OomWatch::V1 { efd, .. } => {
                let mut p = libc::pollfd {
                    fd: efd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
                // SAFETY: one valid pollfd for the duration of the call.
                if unsafe { libc::poll(&mut p, 1, ms) } <= 0 {
                    return 0;
                }
                let mut n = 0u64;
                // SAFETY: reads 8 bytes (an eventfd counter) into a local u64.
                let r = unsafe { libc::read(efd.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
                if r == 8 {
                    n
                } else {
                    0
                }
            }
            OomWatch::V2 { dir, seen } => {
                let deadline = Instant::now() + timeout;
                loop {
                    let now = oom_kills(dir);
                    if now > *seen {
                        let n = now - *seen;
                        *seen = now;
                        return n;
                    }
                    if Instant::now() >= deadline || !dir.exists() {
                        return 0;
                    }
                    std::thread::sleep(Duration::from_millis(50).min(timeout));
                }
            }
            OomWatch::Nothing => {
                std::thread::sleep(timeout);
                0
            }
        }
    }
}

fn register_v1(dir: &Path) -> Option<OomWatch> {
    let ctl = File::open(dir.join("memory.oom_control")).ok()?;
    // SAFETY: eventfd(2) with flags only; a returned fd is ours.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
    let efd = unsafe { OwnedFd::from_raw_fd(fd) };
    let line = format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd());
    super::write_file(dir, "cgroup.event_control", &line).ok()?;
    Some(OomWatch::V1 {
        efd,
        _oom_control: ctl,
    })
}
