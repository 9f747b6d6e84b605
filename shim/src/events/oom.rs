//! OOM notification: which containers' memory cgroups hit their limit.
//!
//! cgroup v1: an eventfd registered for `memory.oom_control` through
//! `cgroup.event_control` (it also fires when the cgroup is removed). cgroup v2: inotify
//! on `memory.events`, reporting when its `oom_kill` count grows. All fds sit in one
//! epoll set, which the shim's event loop polls beside its signalfd: no thread of its own.

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::cgroup;
use runrs::cgroups::running::OomSource;

/// The epoll token of the inotify fd; an eventfd's token is its fd number.
const INOTIFY_TOKEN: u64 = u64::MAX;

/// v1: an eventfd the kernel signals on OOM in `cgroup` (and when it is removed).
struct V1Watch {
    container_id: String,
    eventfd: EventFd,
    cgroup: PathBuf,
}

/// v2: `memory.events` watched for a growing `oom_kill` count.
struct V2Watch {
    container_id: String,
    events_file: PathBuf,
    oom_kills: u64,
}

#[derive(Default)]
struct Watches {
    v1: HashMap<u64, V1Watch>,
    v2: HashMap<WatchDescriptor, V2Watch>,
}

pub struct OomWatcher {
    epoll: Epoll,
    inotify: Inotify,
    watches: Mutex<Watches>,
}

impl OomWatcher {
    pub fn new() -> Result<OomWatcher, String> {
        let epoll =
            Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| format!("epoll: {e}"))?;
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| format!("inotify: {e}"))?;
        epoll
            .add(
                inotify.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, INOTIFY_TOKEN),
            )
            .map_err(|e| format!("epoll add: {e}"))?;
        Ok(OomWatcher {
            epoll,
            inotify,
            watches: Mutex::new(Watches::default()),
        })
    }

    /// The fd to poll: readable when some watch has something to report.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }

    /// Watches the memory cgroup `pid` is in, reported as `container_id`.
    pub fn watch(&self, container_id: &str, pid: i32) -> Result<(), String> {
        let container_id = container_id.to_string();
        let cgroup = match cgroup::oom_source(pid)? {
            OomSource::EventControl(dir) => dir,
            OomSource::Events(events_file) => {
                let wd = self
                    .inotify
                    .add_watch(&events_file, AddWatchFlags::IN_MODIFY)
                    .map_err(|e| format!("watching {}: {e}", events_file.display()))?;
                let oom_kills = oom_kills(&events_file);
                let watch = V2Watch {
                    container_id,
                    events_file,
                    oom_kills,
                };
                self.watches.lock().unwrap().v2.insert(wd, watch);
                return Ok(());
            }
        };
        let eventfd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC)
            .map_err(|e| format!("eventfd: {e}"))?;
        let control = fs::File::open(cgroup.join("memory.oom_control"))
            .map_err(|e| format!("opening memory.oom_control of {}: {e}", cgroup.display()))?;
        let line = format!("{} {}", eventfd.as_raw_fd(), control.as_raw_fd());
        fs::write(cgroup.join("cgroup.event_control"), line)
            .map_err(|e| format!("registering for OOM in {}: {e}", cgroup.display()))?;
        let token = eventfd.as_raw_fd() as u64;
        self.epoll
            .add(eventfd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
            .map_err(|e| format!("epoll add: {e}"))?;
        let watch = V1Watch {
            container_id,
            eventfd,
            cgroup,
        };
        self.watches.lock().unwrap().v1.insert(token, watch);
        Ok(())
    }

    /// Stops watching `container_id` (before its cgroup goes).
    pub fn forget(&self, container_id: &str) {
        let mut w = self.watches.lock().unwrap();
        w.v1.retain(|_, v| {
            let keep = v.container_id != container_id;
            if !keep {
                let _ = self.epoll.delete(v.eventfd.as_fd());
            }
            keep
        });
        let gone: Vec<WatchDescriptor> =
            w.v2.iter()
                .filter(|(_, v)| v.container_id == container_id)
                .map(|(wd, _)| *wd)
                .collect();
        for wd in gone {
            w.v2.remove(&wd);
            let _ = self.inotify.rm_watch(wd);
        }
    }

    /// Handles what is ready without blocking; returns the containers that hit an OOM.
    pub fn ready(&self) -> Vec<String> {
        let mut events = [EpollEvent::empty(); 16];
        let n = self
            .epoll
            .wait(&mut events, EpollTimeout::ZERO)
            .unwrap_or(0);
        let mut ooms = Vec::new();
        let mut w = self.watches.lock().unwrap();
        for ev in &events[..n] {
            if ev.data() == INOTIFY_TOKEN {
                for e in self.inotify.read_events().unwrap_or_default() {
                    if let Some(v) = w.v2.get_mut(&e.wd) {
                        let now = oom_kills(&v.events_file);
                        if now > v.oom_kills {
                            v.oom_kills = now;
                            ooms.push(v.container_id.clone());
                        }
                    }
                }
                continue;
            }
            let Some(v) = w.v1.get(&ev.data()) else {
                continue;
            };
            let _ = v.eventfd.read();
            if v.cgroup.join("memory.oom_control").exists() {
                ooms.push(v.container_id.clone());
            } else if let Some(v) = w.v1.remove(&ev.data()) {
                // The cgroup was removed, which signals the eventfd too.
                let _ = self.epoll.delete(v.eventfd.as_fd());
            }
        }
        ooms
    }
}

/// The `oom_kill` count of a v2 `memory.events` file.
fn oom_kills(events_file: &Path) -> u64 {
    let dir = events_file.parent().unwrap_or(Path::new("/"));
    runrs::cgroups::stats::flat_keyed(dir, "memory.events")
        .get("oom_kill")
        .copied()
        .unwrap_or(0)
}
