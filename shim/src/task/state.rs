//! The shim server: its containers and processes, exit handling, serving the Task API
//! (RPCs in task.rs), and `shim delete` for a shim that is gone.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use nix::sys::eventfd::{EfdFlags, EventFd};
use runrs_proto::protobuf::Message;
use runrs_proto::shim::DeleteResponse;
use runrs_proto::task_events::{TaskExit, TaskOOM};
use runrs_proto::ttrpc;

use crate::address::{group_id, socket_path};
use crate::events::oom::OomWatcher;
use crate::events::{timestamp, topic_of, Publisher};
use crate::flags::Flags;
use crate::log::{log, redirect_stderr_to_log};
use crate::process::reaper::{Exit, Reaper};
use crate::process::Proc;
use crate::rootfs;
use crate::runtime::{read_pid, Runtime, RuntimeConfig};

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: Runtime,
    pub rootfs_mounted: bool,
    pub paused: bool,
    pub init: Proc,
    pub execs: HashMap<String, Proc>,
}

impl Container {
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

    /// Called by the reaper for every exit.
    fn on_exit(&self, exit: Exit) {
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
    fn on_oom(&self) {
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

/// A ttrpc error with a gRPC status code containerd maps to its errdefs.
pub fn rpc_error(code: ttrpc::Code, msg: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
}

/// The detached server: fd 3 is the listening task socket `start` bound.
pub fn serve(flags: &Flags) -> Result<(), String> {
    // Before any thread exists, so that all of them inherit the blocked SIGCHLD.
    let (reaper, sfd) = Reaper::install()?;
    let bundle = std::env::current_dir().map_err(|e| format!("cwd (the bundle): {e}"))?;
    redirect_stderr_to_log(&bundle);
    let publisher = Publisher::start(
        std::env::var("TTRPC_ADDRESS").unwrap_or_default(),
        flags.namespace.clone(),
    )?;
    let shim = Arc::new(Shim {
        namespace: flags.namespace.clone(),
        reaper: reaper.clone(),
        publisher: publisher.clone(),
        oom: OomWatcher::new()?,
        containers: Mutex::new(HashMap::new()),
        changed: Condvar::new(),
        waker: EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| format!("eventfd: {e}"))?,
        shutdown: AtomicBool::new(false),
    });
    let looper = shim.clone();
    std::thread::Builder::new()
        .name("reaper".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            let s = &looper;
            reaper.run(sfd, s.oom.fd(), |e| s.on_exit(e), || s.on_oom())
        })
        .map_err(|e| format!("starting reaper: {e}"))?;

    // SAFETY: fd 3 is the listening socket `start` passed; nothing else owns it.
    let listener = unsafe { UnixListener::from_raw_fd(3) };
    log(&format!(
        "serving {} (pid {})",
        flags.id,
        std::process::id()
    ));
    // RPCs run on this thread; runtime calls they make are reaped by the reaper thread.
    crate::server::serve(listener, &crate::task::TaskService(shim))?;

    publisher.flush(Duration::from_secs(3));
    let group = group_id(&bundle, &flags.id);
    let _ = std::fs::remove_file(socket_path(&flags.address, &flags.namespace, &group));
    // Copier threads may still be blocked: exiting the process ends them.
    std::process::exit(0);
}

/// `shim delete`: the server is gone; force-delete the container, unmount its rootfs and
/// tell containerd (DeleteResponse on stdout) that it was killed.
pub fn delete_after_dead_shim(flags: &Flags) -> Result<(), String> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().map_err(|e| format!("cwd (the bundle): {e}"))?
    } else {
        PathBuf::from(&flags.bundle)
    };
    let config = RuntimeConfig::load(&bundle, &flags.namespace);
    let runtime = Runtime::new(config, &bundle, None);
    if let Err(e) = runtime.call(&["delete", "--force", &flags.id], None) {
        // Gone already is fine: that is the usual case after a clean shutdown.
        if !e.contains("not exist") && !e.contains("not found") {
            log(&format!("delete {}: {e}", flags.id));
        }
    }
    rootfs::unmount_all(&bundle.join("rootfs"))?;
    let mut resp = DeleteResponse::new();
    resp.pid = read_pid(&bundle.join("init.pid")).unwrap_or(0) as u32;
    resp.exit_status = 128 + libc::SIGKILL as u32;
    resp.exited_at = Some(timestamp(SystemTime::now())).into();
    let bytes = resp.write_to_bytes().map_err(|e| e.to_string())?;
    std::io::stdout()
        .write_all(&bytes)
        .map_err(|e| e.to_string())
}
