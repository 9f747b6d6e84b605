//! The lifecycle commands on the host side: create, start, run, state, kill, delete, list,
//! spec. The container's own half lives in `process.rs`.

use crate::process::pidfd_open;
use crate::spec;
use crate::state::{self, Container, Status, EXEC_FIFO};
use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

mod create;
pub use create::{create, create_cmd, CreateOpts, Created};

fn reap_status(pid: i32) -> String {
    let mut st = 0;
    // SAFETY: reaping our own child into a local status word.
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    if r != pid {
        return "status unknown".into();
    }
    describe_status(st)
}

pub fn describe_status(st: i32) -> String {
    if libc::WIFEXITED(st) {
        format!("exit status {}", libc::WEXITSTATUS(st))
    } else if libc::WIFSIGNALED(st) {
        format!(
            "signal: {}",
            crate::signals::signal_name(libc::WTERMSIG(st)).unwrap_or("unknown")
        )
    } else {
        format!("status {st}")
    }
}

/// The shell convention runc follows: exit code, or 128+signal.
pub fn exit_code(st: i32) -> i32 {
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else if libc::WIFSIGNALED(st) {
        128 + libc::WTERMSIG(st)
    } else {
        255
    }
}

fn open_path(p: &Path) -> Result<OwnedFd> {
    let c = CString::new(p.as_os_str().as_bytes())?;
    // SAFETY: open on a NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("open {}", p.display()));
    }
    // SAFETY: fd was just opened and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Write the pid file atomically, without a newline (as runc does).
pub fn write_pid_file(p: &Path, pid: i32) -> Result<()> {
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    let tmp = p.with_file_name(format!(
        ".{}.tmp",
        p.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    std::fs::write(&tmp, pid.to_string())
        .with_context(|| format!("write pid file {}", p.display()))?;
    std::fs::rename(&tmp, &p).with_context(|| format!("write pid file {}", p.display()))?;
    Ok(())
}

/// `runrs start`: let the init exec the user process, then run poststart hooks.
pub fn start(root: &Path, id: &str) -> Result<()> {
    crate::logging::mark("start: begin");
    let c = state::load(root, id)?;
    crate::logging::mark("start: loaded");
    start_container(&c, None)
}

/// `start` of a container already loaded (`run` has it from `create`, and with it the
/// fifo's read end when it let the init go on at ready: the container was created by this
/// very process, its init may have run and exited already).
fn start_container(c: &Container, fifo_reader: Option<OwnedFd>) -> Result<()> {
    let _lock = state::lock(&c.dir)?;
    if fifo_reader.is_none() {
        match c.status() {
            Status::Created => {}
            Status::Stopped => bail!("cannot start a container that has stopped"),
            _ => bail!("cannot start an already running container"),
        }
    }
    crate::logging::mark("start: status");
    release_init(c, fifo_reader)?;
    crate::logging::mark("start: process executing");
    if let Some(h) = c.hooks("poststart")? {
        if let Err(e) = crate::hooks::run("poststart", &h, &c.saved.hook_state(Status::Running)) {
            crate::logging::warn(&format!("{e:#}"));
        }
    }
    Ok(())
}

/// `exec.fifo`'s read end; O_NONBLOCK so a dead init cannot hang us.
fn open_fifo(fifo_path: &Path) -> Result<OwnedFd> {
    let cpath = CString::new(fifo_path.as_os_str().as_bytes())?;
    // SAFETY: open on a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("open exec fifo");
    }
    // SAFETY: fd was just opened and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open `exec.fifo` for reading (unless `run` holds it open already): the init writes one
/// byte and then execs (the fifo closes on exec) or writes why it could not.
fn release_init(c: &Container, held: Option<OwnedFd>) -> Result<()> {
    let fifo_path = c.dir.join(EXEC_FIFO);
    let fifo = match held {
        Some(fd) => fd,
        None => open_fifo(&fifo_path)?,
    };
    let pidfd = pidfd_open(c.saved.pid);
    crate::logging::mark("start: fifo open");
    loop {
        let mut fds = vec![libc::pollfd {
            fd: fifo.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(p) = &pidfd {
            fds.push(libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: fds is a live array of fds.len() pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 200) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e).context("poll exec fifo");
        }
        if fds[0].revents & libc::POLLIN != 0 {
            break;
        }
        if fds.get(1).is_some_and(|f| f.revents != 0) || !c.init_alive() {
            let _ = std::fs::remove_file(&fifo_path);
            bail!("cannot start a container that has stopped");
        }
    }
    crate::logging::mark("start: init released");
    let _ = std::fs::remove_file(&fifo_path);
    // Now block: EOF comes when the init execs (CLOEXEC) or exits.
    // SAFETY: fcntl on our own fd.
    unsafe { libc::fcntl(fifo.as_raw_fd(), libc::F_SETFL, 0) };
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(fifo.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e).context("read exec fifo");
        }
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n as usize]);
    }
    match data.split_first() {
        Some((b'0', [])) => Ok(()),
        Some((b'0', rest)) => bail!(
            "unable to start container process: {}",
            String::from_utf8_lossy(rest)
        ),
        _ => bail!("cannot start a container that has stopped"),
    }
}

/// `runrs run`: create, start, and (unless detached) wait and delete. Whatever fails after
/// create, the container is destroyed rather than left behind.
pub fn run(o: &CreateOpts, detach: bool, keep: bool) -> Result<i32> {
    spec::validate_id(o.id)?;
    let bundle = spec::load(o.bundle)?;
    let bundle_terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    let (console_ours, console_theirs) = if bundle_terminal && !detach && o.console_socket.is_none()
    {
        let (ours, theirs) = crate::console::local_pair()?;
        (Some(ours), Some(theirs))
    } else {
        (None, None)
    };
    let forwarder = if detach {
        None
    } else {
        Some(crate::signals::Forwarder::block()?)
    };
    // Nothing can look at the container between its init's ready and its exec without a
    // startContainer hook or a terminal to set up: the init need not wait for `start` to
    // wake it (crun's run has no fifo at all).
    let hold_fifo = !bundle_terminal
        && (bundle.spec.hooks().as_ref())
            .and_then(|h| h.start_container().as_ref())
            .is_none_or(|h| h.is_empty());
    let created = create::create_from(o, bundle, console_theirs, detach, hold_fifo)?;
    let c = &created.container;
    let status = (|| -> Result<Option<i32>> {
        let master = match &console_ours {
            Some(s) => Some(crate::console::recv_master(s.as_raw_fd())?),
            None => None,
        };
        start_container(c, created.fifo_reader)?;
        match forwarder {
            Some(fwd) => fwd.wait_child(created.pid, master).map(Some),
            None => Ok(None),
        }
    })();
    match status {
        Err(e) => {
            let _ = destroy(c, true);
            Err(e)
        }
        Ok(None) => Ok(0),
        Ok(Some(st)) => {
            crate::logging::mark("run: exited");
            if !keep {
                destroy(c, true)?;
            }
            crate::logging::mark("run: destroyed");
            Ok(exit_code(st))
        }
    }
}

/// `runrs state`: the OCI state, pretty-printed as runc prints it.
pub fn state_json(root: &Path, id: &str) -> Result<String> {
    let c = state::load(root, id)?;
    let st = c.status();
    Ok(serde_json::to_string_pretty(&c.saved.oci(st))?)
}

/// `runrs kill`.
pub fn kill(root: &Path, id: &str, sig: &str, all: bool) -> Result<()> {
    let sig = crate::signals::parse_signal(sig)?;
    let c = state::load(root, id)?;
    // A pidfd before the check that the pid is still our init (by its start time): the
    // pidfd holds that very process, so an init that exits and is reaped meanwhile, its pid
    // taken by another process (pid_max may be 32768), makes the signal fail instead of
    // reaching the other process, as kill(2) by pid would.
    let pidfd = (!all).then(|| pidfd_open(c.saved.pid)).flatten();
    if c.status() == Status::Stopped {
        bail!("container not running");
    }
    if all {
        return c.cgroup().signal_all(sig);
    }
    let rc = match &pidfd {
        // SAFETY: a signal through a pidfd we own; no siginfo.
        Some(fd) => unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            ) as i32
        },
        // No pidfd although the init was alive after the attempt: a kernel without
        // pidfd_open (before 5.3). kill(2) of the init just verified by start time.
        // SAFETY: kill with integer arguments.
        None => unsafe { libc::kill(c.saved.pid, sig) },
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        bail!("unable to signal init: {}", crate::process::io_msg(&e));
    }
    Ok(())
}

/// `runrs delete`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let c = match state::load(root, id) {
        Ok(c) => c,
        Err(e) if e.to_string().ends_with("does not exist") => {
            // An aborted create may leave a directory without state.json, and in it what
            // it had made (`--force`: undone).
            if spec::validate_id(id).is_ok() {
                match state::load_pending(root, id) {
                    Some(c) if force => undo_aborted_create(&c),
                    // Kept for `--force`: its pending state lists what is to be undone.
                    Some(_) => {}
                    None => {
                        let _ = std::fs::remove_dir_all(state::container_dir(root, id));
                    }
                }
            }
            if force {
                return Ok(());
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let _lock = state::lock(&c.dir)?;
    match c.status() {
        Status::Stopped | Status::Created => destroy(&c, true),
        st if force => {
            let _ = st;
            destroy(&c, true)
        }
        st => bail!(
            "cannot delete container {id} that is not stopped: {}",
            st.as_str()
        ),
    }
}

/// Kill whatever is left, remove cgroups, run poststop hooks, remove the state directory.
pub fn destroy(c: &Container, kill_all: bool) -> Result<()> {
    tear_down(c, kill_all);
    if let Ok(Some(h)) = c.hooks("poststop") {
        if let Err(e) = crate::hooks::run("poststop", &h, &c.saved.hook_state(Status::Stopped)) {
            crate::logging::warn(&format!("{e:#}"));
        }
    }
    std::fs::remove_dir_all(&c.dir).with_context(|| format!("remove {}", c.dir.display()))?;
    Ok(())
}

/// The init killed (if it still runs), with `kill_all` whatever else is in the cgroups, then
/// the cgroups and the systemd unit removed.
fn tear_down(c: &Container, kill_all: bool) {
    let cgroup = c.cgroup();
    if c.init_alive() {
        cgroup.thaw();
        // SAFETY: kill of the init verified by start time.
        unsafe { libc::kill(c.saved.pid, libc::SIGKILL) };
        wait_gone(c.saved.pid, c.saved.start_time, Duration::from_secs(10));
    }
    if kill_all {
        cgroup.kill_remaining();
    }
    cgroup.destroy();
    if let Some(g) = &c.saved.intel_rdt {
        crate::intelrdt::remove(g);
    }
}

/// What a `create` killed midway had made (its pending state: the init once cloned, the
/// cgroups, the systemd unit), undone with the state directory. No poststop hooks: the
/// container never existed.
fn undo_aborted_create(c: &Container) {
    tear_down(c, true);
    let _ = std::fs::remove_dir_all(&c.dir);
}

/// Wait until `pid` (with that start time) is gone or a zombie.
fn wait_gone(pid: i32, start_time: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    if let Some(fd) = pidfd_open(pid) {
        if state::proc_stat(pid).is_some_and(|(_, s)| s == start_time) {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
            return;
        }
    }
    while Instant::now() < deadline {
        match state::proc_stat(pid) {
            Some((st, s)) if s == start_time && st != 'Z' => {
                std::thread::sleep(Duration::from_millis(2))
            }
            _ => return,
        }
    }
}

/// `runrs spec`: write a default config.json; never overwrite one.
pub fn write_spec(dir: &Path, rootless: bool) -> Result<()> {
    let path = dir.join("config.json");
    if path.exists() {
        // runc names the file as it is in the bundle it changed into.
        bail!("File config.json exists. Remove it first");
    }
    std::fs::write(&path, crate::default_spec::default_spec(rootless))
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
