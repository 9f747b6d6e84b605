//! The shim server (the binary without an action): the Task service on the socket `start`
//! bound, the reaper on its own thread, until Shutdown.

use std::collections::HashMap;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixListener;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::address::{group_id, socket_path};
use crate::events::oom::OomWatcher;
use crate::events::Publisher;
use crate::flags::Flags;
use crate::log::{log, redirect_stderr_to_log};
use crate::process::reaper::Reaper;
use crate::server;
use crate::task::state::Shim;
use crate::task::TaskService;

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
    server::serve(listener, &TaskService(shim))?;

    publisher.flush(Duration::from_secs(3));
    let group = group_id(&bundle, &flags.id);
    let _ = std::fs::remove_file(socket_path(&flags.address, &flags.namespace, &group));
    // Copier threads may still be blocked: exiting the process ends them.
    std::process::exit(0);
}
