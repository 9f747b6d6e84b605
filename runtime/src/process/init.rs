//! The container's init: the clone child of `create`, from namespaces to `exec.fifo`.

use super::errors::{errno_err, io_msg};
use super::finalize::{finalize, ExecTarget};
use super::{child_detach, child_guard_dumpable, reset_signals};
use super::{msg, Channel};
use crate::namespaces::{self, Plan};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Process, Spec};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Everything the container's init needs; built by `create` before the clone.
pub struct InitArgs {
    pub id: String,
    pub spec: Spec,
    pub rootfs: PathBuf,
    pub plan: Plan,
    pub chan: Channel,
    /// `O_PATH` fd of `exec.fifo`.
    pub fifo: RawFd,
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    pub parent: i32,
    pub seccomp: Option<crate::seccomp::Compiled>,
    /// The container's cgroups, which the init enters itself right after `GO`, and whether
    /// `CLONE_INTO_CGROUP` already put it in the cgroup2 one.
    pub cgroup_join: Option<(crate::cgroups::SelfJoin, bool)>,
    /// Namespaces the init creates itself before it waits for `GO` (see
    /// `Plan::early_unshare_flags`).
    pub early_unshare: libc::c_int,
    /// Cgroups made after the clone, which the init enters itself once sent
    /// `CGROUPS_MADE` and their `tasks` files (before `GO`).
    pub join_later: Vec<PathBuf>,
    /// The container's cgroup directories for a `type: "cgroup"` mount.
    pub cgroup_view: crate::cgroups::MountView,
    /// The bind sources opened before the clone (idmapped ones; every bind with a user
    /// namespace), one per mount entry (see `rootfs::open_bind_sources`); may be empty.
    pub bind_sources: Vec<Option<OwnedFd>>,
    /// The runtime's CPUs, which the init takes back at GO (see `SideBySide`).
    pub cpus: Option<super::SideBySide>,
}

/// The container's init: never returns. Errors before `READY` go to the parent over the
/// channel; later ones (startContainer hooks, exec) into `exec.fifo` for `start` to report.
pub fn init(mut args: InitArgs) -> ! {
    // With a new user namespace, dumpable until `GO`: an unprivileged runtime (rootless) may
    // write the id maps of a process only while its /proc files are its own (runc's nsexec
    // does the same).
    child_guard_dumpable(args.parent, args.plan.new_user);
    let code = match init_setup(&mut args) {
        Ok((target, state)) => {
            let _ = wait_start_and_exec(&args, &target, &state);
            1
        }
        Err(e) => {
            let _ = args.chan.send(msg::ERROR, format!("{e:#}").as_bytes());
            1
        }
    };
    // SAFETY: leave without running atexit handlers or destructors of the parent's state.
    unsafe { libc::_exit(code) }
}

/// The container's set-up, stage by stage; returns what to exec and the state JSON for the
/// hooks.
fn init_setup(a: &mut InitArgs) -> Result<(ExecTarget, Vec<u8>)> {
    // runc words errors up to its "ready" sync (namespaces, mounts, hooks, console, masks,
    // sysctls) so; those of the process's own set-up (user, capabilities, cwd, the
    // executable, seccomp) come without it.
    let state = set_up_container(a).context("error during container init")?;
    let a = &*a;
    let process = a
        .spec
        .process()
        .as_ref()
        .context("process must be specified")?;
    crate::logging::mark("init: finalize");
    let linux = a.spec.linux().as_ref();
    let target = finalize(
        process,
        linux,
        None,
        a.preserve_fds,
        a.seccomp.as_ref(),
        &a.chan,
    )?;
    crate::logging::mark("init: finalized");
    Ok((target, state))
}

/// The container around the process: namespaces, cgroups, mounts, hooks, console, masks.
fn set_up_container(a: &mut InitArgs) -> Result<Vec<u8>> {
    let state = wait_for_go(a)?;
    let a = &*a;
    enter_namespaces(a)?;
    mount_rootfs(a)?;
    run_create_hooks(a, &state)?;
    pivot(a)?;
    let process = a
        .spec
        .process()
        .as_ref()
        .context("process must be specified")?;
    attach_console(a, process)?;
    lock_down(a)?;
    Ok(state)
}

/// Make the namespaces the init makes itself, enter the cgroups made after the clone when
/// told, wait for `GO` (ids mapped), then enter the container's cgroups. Returns the state
/// JSON that came with `GO`.
fn wait_for_go(a: &mut InitArgs) -> Result<Vec<u8>> {
    // SAFETY: unshare with namespace flags only.
    if a.early_unshare != 0 && unsafe { libc::unshare(a.early_unshare) } != 0 {
        return Err(errno_err("create the container's namespaces"));
    }
    crate::logging::mark("init: namespaces made");
    if !a.join_later.is_empty() {
        match a.chan.recv_fds(a.join_later.len())? {
            Some((msg::CGROUPS_MADE, tasks)) => {
                crate::cgroups::SelfJoin::received(&a.join_later, tasks)?.join(false)?
            }
            _ => bail!("runtime went away during create"),
        }
    }
    let state = match a.chan.recv()? {
        Some((msg::GO, state)) => state,
        _ => bail!("runtime went away during create"),
    };
    crate::logging::mark("init: go");
    if let Some(cpus) = &a.cpus {
        cpus.restore();
    }
    if a.plan.new_user {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    }
    if let Some((join, in_cgroup2)) = a.cgroup_join.take() {
        join.join(in_cgroup2)?;
    }
    crate::logging::mark("init: in cgroups");
    Ok(state)
}

/// Join the namespaces given by path, unshare the rest, become root of a user namespace, and
/// set the hostname and domainname.
fn enter_namespaces(a: &InitArgs) -> Result<()> {
    let spec = &a.spec;
    for (t, path) in &a.plan.join {
        namespaces::join(*t, path)?;
    }
    // In its cgroups already, so a new cgroup namespace is rooted at the container's cgroup.
    if a.plan.unshare_flags != 0 {
        // SAFETY: unshare with namespace flags only.
        if unsafe { libc::unshare(a.plan.unshare_flags) } != 0 {
            return Err(errno_err("unshare namespaces"));
        }
    }
    if a.plan.any_user {
        // Become root of the user namespace (the creator's ids may be unmapped in it).
        // SAFETY: plain integer syscalls.
        unsafe {
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                return Err(errno_err(
                    "become root in the user namespace (is uid/gid 0 mapped?)",
                ));
            }
        }
    }
    if let Some(offsets) = &a.plan.time_offsets {
        namespaces::new_time_ns(offsets)?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| anyhow::anyhow!("sethostname {h:?}: {e}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: d is valid for d.len() bytes.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(errno_err(&format!("setdomainname {d:?}")));
        }
    }
    Ok(())
}

/// Whether the container has a mount namespace (new or joined). Without one it shares the
/// runtime's mounts and is only chrooted into its rootfs (`spec::validate` refused mounts,
/// masks and devices for it).
fn has_mount_ns(a: &InitArgs) -> bool {
    a.plan.clone_flags & libc::CLONE_NEWNS != 0
        || a.plan.unshare_flags & libc::CLONE_NEWNS != 0
        || a.plan
            .join
            .iter()
            .any(|(t, _)| *t == oci_spec::runtime::LinuxNamespaceType::Mount)
}

/// In the container's mount namespace: the mounts, devices and `/dev` symlinks.
fn mount_rootfs(a: &InitArgs) -> Result<()> {
    if !has_mount_ns(a) {
        return Ok(());
    }
    crate::logging::mark("init: mounts");
    crate::rootfs::prepare_with_sources(&a.spec, &a.rootfs, &a.cgroup_view, &a.bind_sources)?;
    crate::logging::mark("init: mounted");
    Ok(())
}

/// The hooks that run between mounting and `pivot_root`: prestart and createRuntime by the
/// runtime (we wait for it), then createContainer here.
fn run_create_hooks(a: &InitArgs, state: &[u8]) -> Result<()> {
    let hooks = a.spec.hooks().as_ref();
    let has_parent_hooks = hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if has_parent_hooks {
        a.chan.send(msg::HOOKS, &[])?;
        match a.chan.recv()? {
            Some((msg::HOOKS_DONE, _)) => {}
            _ => bail!("runtime went away while running hooks"),
        }
    }
    if let Some(h) = hooks.and_then(|h| h.create_container().as_ref()) {
        crate::logging::mark("init: hooks");
        // runc's createContainer hooks run in the rootfs (its init is in there by then).
        nix::unistd::chdir(&a.rootfs)
            .with_context(|| format!("chdir to rootfs {}", a.rootfs.display()))?;
        crate::hooks::run("createContainer", h, state)?;
    }
    Ok(())
}

/// Into the rootfs: `pivot_root` (or chroot with `--no-pivot`); without a mount namespace
/// only a chroot (runc's too), which touches no mount of the host's.
fn pivot(a: &InitArgs) -> Result<()> {
    if !has_mount_ns(a) {
        nix::unistd::chroot(&a.rootfs)
            .with_context(|| format!("chroot into {}", a.rootfs.display()))?;
        nix::unistd::chdir("/").context("chdir to / in the container")?;
        // Nor can we mount one: the runtime's own steps (exec.fifo, fds) need it.
        if !Path::new("/proc/self/fd").is_dir() {
            bail!(
                "without a mount namespace the rootfs must have a procfs mounted at /proc already"
            );
        }
        return Ok(());
    }
    crate::rootfs::enter(&a.rootfs, a.no_pivot)?;
    crate::rootfs::reopen_dev_null(&a.spec)?;
    crate::logging::mark("init: pivoted");
    Ok(())
}

/// With `process.terminal`: a pty made inside the container, its master sent to the console
/// socket, the slave our `/dev/console` and controlling terminal.
fn attach_console(a: &InitArgs, process: &Process) -> Result<()> {
    if process.terminal() == Some(true) {
        let sock = a
            .console
            .as_ref()
            .context("cannot allocate tty if runc will detach without setting console socket")?;
        setup_terminal(sock.as_raw_fd(), process)?;
    }
    Ok(())
}

/// After `pivot_root`: sysctls, read-only and masked paths, the session keyring.
fn lock_down(a: &InitArgs) -> Result<()> {
    let spec = &a.spec;
    // Sysctls before readonlyPaths (which usually hold /proc/sys), as runc does.
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctl {
            let p = format!("/proc/sys/{}", k.replace('.', "/"));
            std::fs::write(&p, v)
                .map_err(|e| anyhow::anyhow!("write sysctl {k}={v}: {}", io_msg(&e)))?;
        }
    }
    if has_mount_ns(a) {
        crate::rootfs::finish(spec)?;
    }
    if !a.no_new_keyring {
        join_session_keyring(&a.id);
    }
    Ok(())
}

/// Open a pty inside the container, send its master to the console socket, make the slave
/// `/dev/console` and our controlling terminal.
pub fn setup_terminal(socket: RawFd, process: &Process) -> Result<()> {
    let (master, slave) = crate::console::open_pty()?;
    set_console_size(&slave, process)?;
    let name = crate::console::pty_name(&master)?;
    crate::console::send_master(socket, &master)?;
    drop(master);
    crate::rootfs::mount_console(&name)?;
    crate::console::set_controlling_tty(&slave)?;
    Ok(())
}

/// `process.consoleSize` on a new terminal, as runc sets it (`exec` too).
pub fn set_console_size(tty: &OwnedFd, process: &Process) -> Result<()> {
    if let Some(size) = process.console_size() {
        let (rows, cols) = (size.height(), size.width());
        if rows != 0 && cols != 0 {
            crate::console::set_size(std::os::fd::AsFd::as_fd(tty), rows as u16, cols as u16)?;
        }
    }
    Ok(())
}

/// A session keyring named after the container, so containers do not share the host's.
fn join_session_keyring(id: &str) {
    let Ok(name) = CString::new(id) else { return };
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING (1) takes a NUL-terminated name.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, 1, name.as_ptr()) };
    if r < 0 {
        crate::logging::debug(&format!(
            "join session keyring: {}",
            std::io::Error::last_os_error()
        ));
    }
}

/// Tell the parent we are ready, block until `start` opens `exec.fifo`, run the
/// startContainer hooks, exec. Returns only on failure (already reported into the fifo).
fn wait_start_and_exec(a: &InitArgs, target: &ExecTarget, state: &[u8]) -> anyhow::Error {
    child_detach();
    if let Err(e) = a.chan.send(msg::READY, &[]) {
        return e;
    }
    let path = CString::new(format!("/proc/self/fd/{}", a.fifo)).expect("no NUL");
    // SAFETY: open on a NUL-terminated path; blocks until `start` opens the read end.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return errno_err("open exec fifo");
    }
    // SAFETY: fd was just opened and is owned here.
    let fifo = unsafe { OwnedFd::from_raw_fd(fd) };
    let report = |e: &anyhow::Error| {
        let m = format!("{e:#}");
        // SAFETY: m is valid for m.len() bytes.
        unsafe { libc::write(fifo.as_raw_fd(), m.as_ptr().cast(), m.len()) };
    };
    // SAFETY: writing one byte from a static buffer.
    if unsafe { libc::write(fifo.as_raw_fd(), b"0".as_ptr().cast(), 1) } != 1 {
        return errno_err("write exec fifo");
    }
    // SAFETY: close the O_PATH fd, so the container never sees it.
    unsafe { libc::close(a.fifo) };
    if let Some(h) = a
        .spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref())
    {
        let state = with_status(state, "created");
        if let Err(e) = crate::hooks::run("startContainer", h, &state) {
            report(&e);
            return e;
        }
    }
    reset_signals();
    let e = target.exec();
    let err = anyhow::anyhow!("exec {:?}: {}", target.path.to_string_lossy(), io_msg(&e));
    report(&err);
    err
}

/// The state JSON with another `status`.
pub fn with_status(state: &[u8], status: &str) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(state) {
        Ok(mut v) => {
            v["status"] = serde_json::Value::from(status);
            serde_json::to_vec(&v).unwrap_or_default()
        }
        Err(_) => state.to_vec(),
    }
}
