//! The lifecycle commands on the host side: create, start, run, state, kill, delete, list,
//! spec. The container's own half lives in `process.rs`.

use crate::cgroups;
use crate::namespaces;
use crate::process::{self, msg, Channel, InitArgs};
use crate::spec;
use crate::state::{self, Container, Saved, Status, EXEC_FIFO};
use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct CreateOpts<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub pid_file: Option<&'a Path>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    pub systemd_cgroup: bool,
}

/// A container just created: its init waits on `exec.fifo`.
pub struct Created {
    pub pid: i32,
    pub container: Container,
}

/// Undoes a half-made create: kills the init, stops the systemd unit, removes cgroups and
/// the state directory.
struct CreateGuard {
    dir: Option<PathBuf>,
    cgroups: Vec<PathBuf>,
    unit: Option<String>,
    pid: Option<i32>,
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            // SAFETY: signalling and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        if let Some(u) = &self.unit {
            if let Err(e) = cgroups::systemd::stop(u) {
                crate::logging::warn(&format!("{e:#}"));
            }
        }
        cgroups::remove(&self.cgroups);
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl CreateGuard {
    fn disarm(mut self) {
        self.dir = None;
        self.cgroups.clear();
        self.unit = None;
        self.pid = None;
    }
}

/// `runrs create`: create, then leave the init waiting for `start`.
pub fn create_cmd(o: &CreateOpts) -> Result<()> {
    create(o, None, true).map(|_| ())
}

/// Create the container. `console` replaces `--console-socket` (used by a foreground `run`).
pub fn create(o: &CreateOpts, console: Option<OwnedFd>, detached: bool) -> Result<Created> {
    crate::logging::mark("create: begin");
    spec::validate_id(o.id)?;
    let bundle = spec::load(o.bundle)?;
    create_from(o, bundle, console, detached)
}

/// `create` with the bundle already loaded (`run` looks at it first).
fn create_from(
    o: &CreateOpts,
    bundle: spec::Bundle,
    console: Option<OwnedFd>,
    detached: bool,
) -> Result<Created> {
    crate::logging::mark("create: spec loaded");
    let spec = &bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .context("process must be specified")?;
    let terminal = process.terminal() == Some(true);
    if terminal && o.console_socket.is_none() && console.is_none() && detached {
        bail!("cannot allocate tty if runc will detach without setting console socket");
    }
    if !terminal && o.console_socket.is_some() {
        bail!("cannot use console socket if runc will not detach or allocate tty");
    }
    let linux = spec.linux().as_ref();
    let driver = CgroupDriver::choose(o, spec)?;
    let plan = namespaces::plan(spec);
    let seccomp = linux
        .and_then(|l| l.seccomp().as_ref())
        .map(crate::seccomp::compile)
        .transpose()?;
    if plan.clone_flags & libc::CLONE_NEWPID == 0 {
        // Without a pid namespace of its own, container processes can see our init while it
        // runs runtime code: run from a sealed copy so `/proc/<pid>/exe` cannot reach us.
        crate::selfexe::ensure_sealed()?;
    }
    let console = match (console, o.console_socket) {
        (Some(c), _) => Some(c),
        (None, Some(p)) if terminal => Some(crate::console::connect_socket(p)?),
        _ => None,
    };

    // Relative bind sources and hook paths are relative to the bundle, as in runc.
    std::env::set_current_dir(&bundle.path)
        .with_context(|| format!("chdir to bundle {}", bundle.path.display()))?;
    let dir = state::create_dir(o.root, o.id)?;
    let mut guard = CreateGuard {
        dir: Some(dir.clone()),
        cgroups: Vec::new(),
        unit: None,
        pid: None,
    };
    let fifo_path = dir.join(EXEC_FIFO);
    // Mode 0622 as runc makes it (writable by the container's user) whatever our umask:
    // cleared around the mkfifo, which is cheaper than a chmod of the new inode.
    let umask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let made = nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o622));
    nix::sys::stat::umask(umask);
    made.with_context(|| format!("create {}", fifo_path.display()))?;
    crate::logging::mark("create: state dir");
    let cgroups = driver.plan()?;
    // With `early` namespaces the init makes them itself while we make its v1 cgroups,
    // which it then opens and enters itself; only the cgroup2 directory it is cloned into
    // must exist before the clone. Without (a user namespace: the init could not open them),
    // all are made and opened now.
    let early = plan.early_unshare_flags();
    // Under systemd, systemd makes the scope's directory once the init exists.
    let systemd = driver.systemd.is_some();
    cgroups.make(&mut guard.cgroups, |h| {
        !systemd && (early == 0 || h.unified)
    })?;
    crate::logging::mark("create: cgroups made");
    let fifo = open_path(&fifo_path)?;
    let (parent_chan, child_chan) = Channel::pair()?;
    if let Some(p) = &plan.pid_join {
        namespaces::join(oci_spec::runtime::LinuxNamespaceType::Pid, p)?;
    }

    let mut saved = Saved {
        id: o.id.to_string(),
        pid: 0,
        start_time: 0,
        bundle: bundle.path.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::logging::rfc3339_now(true),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        owner: String::new(),
        cgroup_paths: cgroups.dirs.clone(),
        systemd_unit: driver.systemd.as_ref().map(|(u, _)| u.name.clone()),
        config: serde_json::value::to_raw_value(&bundle.config)?,
    };

    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let listen = socket_activation_fds();
    crate::logging::mark("create: clone");
    let cgroup_join = cgroups::SelfJoin::open(&guard.cgroups)?;
    // What is left to make after the clone (nothing without early namespaces, or on a
    // cgroup2-only host).
    let later: Vec<PathBuf> = (cgroups.dirs.iter())
        .filter(|d| !systemd && !guard.cgroups.contains(d))
        .cloned()
        .collect();
    crate::logging::mark("create: cgroups opened");
    let (pid, in_cgroup2) =
        process::clone_into(plan.clone_flags & !early, cgroup_join.cgroup2_fd())?;
    crate::logging::mark("create: cloned");
    if pid == 0 {
        drop(parent_chan);
        // The child owns its copy of everything: move, not clone (a clone touched new pages).
        let mut spec = bundle.spec;
        if listen > 0 {
            // systemd socket activation passes through, as in runc.
            if let Some(p) = spec.process_mut() {
                let mut env = p.env().clone().unwrap_or_default();
                env.push(format!("LISTEN_FDS={listen}"));
                env.push("LISTEN_PID=1".to_string());
                p.set_env(Some(env));
            }
        }
        process::init(InitArgs {
            id: o.id.to_string(),
            spec,
            rootfs: bundle.rootfs.clone(),
            plan,
            chan: child_chan,
            fifo: fifo.as_raw_fd(),
            console,
            no_pivot: o.no_pivot,
            no_new_keyring: o.no_new_keyring,
            preserve_fds: o.preserve_fds + listen,
            parent,
            seccomp,
            cgroup_join: Some((cgroup_join, in_cgroup2)),
            early_unshare: early,
            join_later: later,
            cgroup_view: cgroups.view,
        });
    }
    drop(cgroup_join);
    guard.pid = Some(pid);
    drop(child_chan);
    drop(console);
    drop(fifo);

    if plan.new_user {
        namespaces::write_id_maps(pid, spec)?;
    }
    if !later.is_empty() {
        // Meanwhile the init makes its namespaces.
        cgroups.make(&mut guard.cgroups, |h| !h.unified)?;
        // It enters them while we configure them (before GO: no device node yet). A failed
        // send shows as the init's error or exit at GO below.
        let _ = parent_chan.send(msg::CGROUPS_MADE, &[]);
        crate::logging::mark("create: cgroups made after the clone");
    }
    if let Some((unit, props)) = driver.systemd {
        // systemd moves the init into the new scope; the init's cgroup namespace, made after
        // GO, is rooted there.
        cgroups::systemd::Systemd::connect()?.start_scope(&unit, pid, props)?;
        guard.unit = Some(unit.name);
        guard.cgroups = cgroups.dirs.clone();
        crate::logging::mark("create: systemd scope started");
    }
    // The init waits for GO (in a cgroup2 one already, in v1 ones perhaps): no process of
    // the container runs yet.
    // No linux.resources still means runc's default device rules.
    let resources = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    cgroups::apply(&guard.cgroups, &resources)?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string()).map_err(|e| {
            anyhow::anyhow!(
                "set oomScoreAdj {adj}: {} (lowering it needs CAP_SYS_RESOURCE)",
                process::io_msg(&e)
            )
        })?;
    }
    saved.pid = pid;
    let creating = saved.hook_state(Status::Creating);
    crate::logging::mark("create: go");
    if parent_chan.send(msg::GO, &creating).is_err() {
        // It may have said why before it went (an early namespace it could not make).
        if let Ok(Some((msg::ERROR, e))) = parent_chan.recv() {
            bail!(
                "runrs create failed: unable to start container process: {}",
                String::from_utf8_lossy(&e)
            );
        }
        guard.pid = None;
        bail!(
            "container init exited before it was set up ({})",
            reap_status(pid)
        );
    }
    // While the init sets itself up: the state, under a name nothing reads until it is ready.
    saved.start_time = state::proc_stat(pid).map(|s| s.1).unwrap_or(0);
    state::write_pending(&dir, &saved)?;
    loop {
        match parent_chan.recv()? {
            Some((msg::HOOKS, _)) => {
                if let Some(h) = spec.hooks().as_ref() {
                    if let Some(v) = h.prestart() {
                        crate::hooks::run("prestart", v, &creating)?;
                    }
                    if let Some(v) = h.create_runtime() {
                        crate::hooks::run("createRuntime", v, &creating)?;
                    }
                }
                parent_chan.send(msg::HOOKS_DONE, &[])?;
            }
            Some((msg::SECCOMP_FD, fd)) => {
                process::forward_seccomp_fd(pid, &fd, spec, &creating, &parent_chan)?
            }
            Some((msg::READY, _)) => {
                crate::logging::mark("create: ready");
                break;
            }
            Some((msg::ERROR, e)) => bail!(
                "runrs create failed: unable to start container process: {}",
                String::from_utf8_lossy(&e)
            ),
            Some(_) => bail!("unexpected message from the container's init"),
            None => bail!(
                "container init exited before it was set up ({})",
                reap_status(pid)
            ),
        }
    }
    state::commit_pending(&dir)?;
    if let Some(p) = o.pid_file {
        write_pid_file(p, pid)?;
    }
    guard.disarm();
    crate::logging::mark("create: done");
    Ok(Created {
        pid,
        container: Container { dir, saved },
    })
}

/// The cgroup driver of a create, chosen once from `--systemd-cgroup`, with everything about
/// it checked before anything is made.
struct CgroupDriver {
    /// The cgroup path from the hierarchy root (systemd) or as runc resolves it.
    path: String,
    /// The scope unit and its properties, under the systemd driver.
    systemd: Option<(
        cgroups::systemd::Unit,
        Vec<cgroups::systemd::properties::Property>,
    )>,
}

impl CgroupDriver {
    fn choose(o: &CreateOpts, spec: &oci_spec::runtime::Spec) -> Result<CgroupDriver> {
        let linux = spec.linux().as_ref();
        let path = linux
            .and_then(|l| l.cgroups_path().as_ref())
            .and_then(|p| p.to_str());
        if !o.systemd_cgroup {
            return Ok(CgroupDriver {
                path: cgroups::resolve_path(path, o.id)?,
                systemd: None,
            });
        }
        use cgroups::systemd::{properties, Unit};
        cgroups::systemd::check_booted()?;
        let unit = Unit::parse(path, o.id)?;
        let mut props = match linux.and_then(|l| l.resources().as_ref()) {
            Some(r) => properties::from_resources(r)?,
            None => Vec::new(),
        };
        let annotations = spec.annotations().clone().unwrap_or_default();
        props.extend(properties::from_annotations(
            &annotations.into_iter().collect(),
        )?);
        Ok(CgroupDriver {
            path: unit.cgroup_path(),
            systemd: Some((unit, props)),
        })
    }

    fn plan(&self) -> Result<cgroups::Planned> {
        let planned = cgroups::plan(&self.path)?;
        planned.check_empty()?;
        if self.systemd.is_some() && !planned.is_pure_v2() {
            bail!("--systemd-cgroup on a cgroup v1 or hybrid host is not supported yet: use the cgroupfs driver (drop the flag)");
        }
        Ok(planned)
    }
}

/// `$LISTEN_FDS` when `$LISTEN_PID` is us (systemd socket activation), else 0.
fn socket_activation_fds() -> i32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if !ours {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

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
    start_container(&c)
}

/// `start` of a container already loaded (`run` has it from `create`).
fn start_container(c: &Container) -> Result<()> {
    let _lock = state::lock(&c.dir)?;
    match c.status() {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        _ => bail!("cannot start an already running container"),
    }
    crate::logging::mark("start: status");
    release_init(c)?;
    crate::logging::mark("start: process executing");
    if let Some(h) = c.hooks("poststart")? {
        if let Err(e) = crate::hooks::run("poststart", &h, &c.saved.hook_state(Status::Running)) {
            crate::logging::warn(&format!("{e:#}"));
        }
    }
    Ok(())
}

/// Open `exec.fifo` for reading: the init writes one byte and then execs (the fifo closes
/// on exec) or writes why it could not.
fn release_init(c: &Container) -> Result<()> {
    let fifo_path = c.dir.join(EXEC_FIFO);
    let cpath = CString::new(fifo_path.as_os_str().as_bytes())?;
    // SAFETY: open on a NUL-terminated path; O_NONBLOCK so a dead init cannot hang us.
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
    let fifo = unsafe { OwnedFd::from_raw_fd(fd) };
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

pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the fd was just created and is owned here.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
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
    let created = create_from(o, bundle, console_theirs, detach)?;
    let c = &created.container;
    let status = (|| -> Result<Option<i32>> {
        let master = match &console_ours {
            Some(s) => Some(crate::console::recv_master(s.as_raw_fd())?),
            None => None,
        };
        start_container(c)?;
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
    if c.status() == Status::Stopped {
        bail!("container not running");
    }
    if all {
        return cgroups::signal_all(&c.saved.cgroup_paths, sig);
    }
    // SAFETY: kill of the init we verified by start time above.
    if unsafe { libc::kill(c.saved.pid, sig) } != 0 {
        return Err(std::io::Error::last_os_error()).context("kill container init");
    }
    Ok(())
}

/// `runrs delete`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let c = match state::load(root, id) {
        Ok(c) => c,
        Err(e) if e.to_string().ends_with("does not exist") => {
            // An aborted create may leave a directory without state.json.
            if spec::validate_id(id).is_ok() {
                let _ = std::fs::remove_dir_all(state::container_dir(root, id));
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
    let paths = &c.saved.cgroup_paths;
    if c.init_alive() {
        thaw(paths);
        // SAFETY: kill of the init verified by start time.
        unsafe { libc::kill(c.saved.pid, libc::SIGKILL) };
        wait_gone(c.saved.pid, c.saved.start_time, Duration::from_secs(10));
    }
    // Nothing to thaw or kill in an empty cgroup (the common case: `run` once its init exited).
    if kill_all && !cgroups::pids(paths).is_empty() {
        thaw(paths);
        for _ in 0..100 {
            let pids = cgroups::pids(paths);
            if pids.is_empty() {
                break;
            }
            for p in pids {
                // SAFETY: kill of a process in the container's cgroup.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if let Some(unit) = &c.saved.systemd_unit {
        if let Err(e) = cgroups::systemd::stop(unit) {
            crate::logging::warn(&format!("{e:#}"));
        }
    }
    cgroups::remove(paths);
    if let Ok(Some(h)) = c.hooks("poststop") {
        if let Err(e) = crate::hooks::run("poststop", &h, &c.saved.hook_state(Status::Stopped)) {
            crate::logging::warn(&format!("{e:#}"));
        }
    }
    std::fs::remove_dir_all(&c.dir).with_context(|| format!("remove {}", c.dir.display()))?;
    Ok(())
}

fn thaw(paths: &[PathBuf]) {
    for d in paths {
        let f = d.join("freezer.state");
        if f.exists() {
            let _ = std::fs::write(f, "THAWED");
        }
        let f = d.join("cgroup.freeze");
        if f.exists() {
            let _ = std::fs::write(f, "0");
        }
    }
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
        bail!("File {} exists. Remove it first", path.display());
    }
    std::fs::write(&path, crate::default_spec::default_spec(rootless))
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
