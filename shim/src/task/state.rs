//! The Task service's state: the containers this shim serves, their processes, and what
//! happens on an exit or an OOM (the events containerd gets).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use nix::sys::eventfd::EventFd;
use runrs_proto::task_events::{TaskExit, TaskOOM};

use crate::events::oom::OomWatcher;
use crate::events::{timestamp, topic_of, Publisher};
use crate::log::log;
use crate::process::reaper::{Exit, Reaper};
use crate::process::Proc;
use crate::runtime::Runtime;

use super::error::{not_found, Result};

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: Runtime,
    pub rootfs_mounted: bool,
    pub paused: bool,
    pub init: Proc,
    pub execs: HashMap<String, Proc>,
    /// Created from a checkpoint: its images, restored at Start.
    pub restore_from: Option<String>,
}

impl Container {
    /// A container just created: its init, no exec'd process yet.
    pub fn new(
        id: String,
        bundle: PathBuf,
        runtime: Runtime,
        rootfs_mounted: bool,
        init: Proc,
    ) -> Container {
        Container {
            id,
            bundle,
            runtime,
            rootfs_mounted,
            paused: false,
            init,
            execs: HashMap::new(),
            restore_from: None,
        }
    }

    pub fn proc(&self, exec_id: &str) -> Option<&Proc> {
        if exec_id.is_empty() {
            Some(&self.init)
        } else {
            self.execs.get(exec_id)
        }
    }
}

pub struct Shim {
    pub namespace: String,
    pub reaper: Arc<Reaper>,
    pub publisher: Publisher,
    pub oom: OomWatcher,
    pub containers: Mutex<HashMap<String, Container>>,
    /// Signalled on every exit (Delete waiting for a killed init).
    pub changed: Condvar,
    /// Written on every exit: wakes the server to answer parked Waits.
    pub waker: EventFd,
    /// Shutdown was accepted: the server exits once its reply is out.
    pub shutdown: AtomicBool,
}

impl Shim {
    pub fn lock(&self) -> MutexGuard<'_, HashMap<String, Container>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn runtime_of(&self, id: &str) -> Result<Runtime> {
        let c = self.lock();
        c.get(id)
            .map(|c| c.runtime.clone())
            .ok_or_else(|| not_found(id, ""))
    }

    /// Called by the reaper for every exit.
    pub fn on_exit(&self, exit: Exit) {
        let mut containers = self.lock();
        for c in containers.values_mut() {
            let id = c.id.clone();
            let found = std::iter::once(("", &mut c.init))
                .chain(c.execs.iter_mut().map(|(k, v)| (k.as_str(), v)))
                .find(|(_, p)| p.pid == exit.pid && p.exit.is_none());
            if let Some((exec_id, p)) = found {
                if let Some(e) = self.reaper.take(exit.pid, p.mark) {
                    let exec_id = exec_id.to_string();
                    self.record_exit(&id, &exec_id, p, e);
                }
                return;
            }
        }
    }

    /// Publishes `/tasks/oom` for each container whose memory cgroup hit an OOM.
    pub fn on_oom(&self) {
        for container_id in self.oom.ready() {
            log(&format!(
                "container {container_id} hit its memory limit (OOM)"
            ));
            let mut ev = TaskOOM::new();
            ev.container_id = container_id;
            self.publisher.publish(topic_of::<TaskOOM>(), &ev);
        }
    }

    /// Records an exit; its event goes out now, or after Start's if Start is under way.
    pub fn record_exit(&self, container_id: &str, exec_id: &str, p: &mut Proc, e: Exit) {
        p.exit = Some((e.status, e.at));
        if p.started {
            self.publish_exit(container_id, exec_id, p);
        }
        self.changed.notify_all();
        let _ = self.waker.write(1);
    }

    pub fn publish_exit(&self, container_id: &str, exec_id: &str, p: &Proc) {
        let Some((status, at)) = p.exit else { return };
        let mut ev = TaskExit::new();
        ev.container_id = container_id.to_string();
        ev.id = if exec_id.is_empty() {
            container_id.to_string()
        } else {
            exec_id.to_string()
        };
        ev.pid = p.pid as u32;
        ev.exit_status = status;
        ev.exited_at = Some(timestamp(at)).into();
        self.publisher.publish(topic_of::<TaskExit>(), &ev);
    }
}
