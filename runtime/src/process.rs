//! The clone/sync/exec sequence. `create` clones the container's init straight into its new
//! namespaces; the child sets the container up and waits on `exec.fifo`; `exec` clones a
//! process that joins an existing container (see `exec.rs`). Parent and child talk over a
//! `SOCK_SEQPACKET` socketpair. The runtime is single-threaded, so the child may allocate.

use crate::namespaces::{self, Plan};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Process, Spec};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Message kinds on the sync channel.
pub mod msg {
    /// parent → child: ids mapped, cgroups joined; payload: the state JSON for hooks.
    pub const GO: u8 = b'G';
    /// parent → child: the child is in its cgroups.
    pub const CGROUPS_DONE: u8 = b'C';
    /// child → parent: mounts done, run prestart/createRuntime hooks now.
    pub const HOOKS: u8 = b'H';
    /// parent → child: hooks done.
    pub const HOOKS_DONE: u8 = b'h';
    /// child → parent: set up, about to wait on exec.fifo (create) or exec (exec).
    pub const READY: u8 = b'R';
    /// child → parent: failed; payload: the error.
    pub const ERROR: u8 = b'E';
    /// child → parent: seccomp listener fd number; parent → child: taken.
    pub const SECCOMP_FD: u8 = b'S';
    pub const SECCOMP_DONE: u8 = b's';
}

/// One end of the parent/child sync socket.
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    pub fn pair() -> Result<(Channel, Channel)> {
        let mut fds = [0; 2];
        // SAFETY: socketpair writes two fds into the array we pass.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error()).context("socketpair");
        }
        // SAFETY: both fds were just created and are owned by nobody else.
        Ok(unsafe {
            (
                Channel {
                    fd: OwnedFd::from_raw_fd(fds[0]),
                },
                Channel {
                    fd: OwnedFd::from_raw_fd(fds[1]),
                },
            )
        })
    }

    pub fn send(&self, kind: u8, payload: &[u8]) -> Result<()> {
        let mut buf = Vec::with_capacity(payload.len() + 1);
        buf.push(kind);
        buf.extend_from_slice(payload);
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("sync channel send");
        }
        Ok(())
    }

    /// The next message, or `None` when the other end is closed.
    pub fn recv(&self) -> Result<Option<(u8, Vec<u8>)>> {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // SAFETY: buf is valid for buf.len() bytes.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e).context("sync channel receive");
            }
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n as usize);
            let kind = buf.remove(0);
            return Ok(Some((kind, buf)));
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Fork into new namespaces with `clone3` (falling back to `clone` where the kernel lacks it).
/// Returns the child's pid in the parent and 0 in the child, like `fork`.
pub fn clone_process(flags: libc::c_int) -> Result<i32> {
    clone_into(flags, None).map(|(pid, _)| pid)
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// A fork-like `clone3`: pid in the parent, 0 in the child, or the errno.
fn clone3(flags: u64, cgroup: u64) -> std::io::Result<i32> {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        cgroup,
        ..Default::default()
    };
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack): the child continues on a copy of
    // our address space. The runtime is single-threaded, so no lock is held by another thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r as i32)
}

/// `clone_process`, starting the child in the cgroup2 directory `cgroup` when given (no
/// migration afterwards). Returns the pid and whether the child landed in `cgroup`; when the
/// kernel refuses (old kernel, a cgroup with controllers in its subtree), the clone is retried
/// without it and the caller joins the cgroup itself.
pub fn clone_into(flags: libc::c_int, cgroup: Option<RawFd>) -> Result<(i32, bool)> {
    if let Some(fd) = cgroup {
        if let Ok(pid) = clone3(flags as u32 as u64 | CLONE_INTO_CGROUP, fd as u64) {
            return Ok((pid, true));
        }
    }
    match clone3(flags as u32 as u64, 0) {
        Ok(pid) => return Ok((pid, false)),
        Err(e) if e.raw_os_error() != Some(libc::ENOSYS) => {
            return Err(e).context("clone3 into the container's namespaces")
        }
        Err(_) => {}
    }
    // SAFETY: clone3 is missing: the legacy clone with a null stack (fork semantics), as
    // single-threaded as above.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error())
            .context("clone into the container's namespaces");
    }
    Ok((r as i32, false))
}

/// In a fresh child: die with the parent until we are set up, and hide our memory and
/// `/proc/<pid>/exe` from the container's processes. (A parent that died before the prctl
/// shows up as EOF on the sync channel, which the child waits on first.)
pub fn child_guard(_parent: i32) {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Once the parent may go away: keep running when it does.
pub fn child_detach() {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
    }
}

/// What `execve` needs, resolved inside the container before the point of no return.
pub struct ExecTarget {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

impl ExecTarget {
    /// Replace this process; returns only on failure.
    pub fn exec(&self) -> std::io::Error {
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        // SAFETY: every pointer comes from a live CString; both arrays are null-terminated.
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        std::io::Error::last_os_error()
    }
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).with_context(|| format!("{s:?} contains a NUL byte"))
}

/// Find `arg0` the way Go's `exec.LookPath` does, with the process's PATH, so the errors read
/// as runc's.
pub fn look_path(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let is_exec = |p: &Path| -> std::io::Result<bool> {
        use std::os::unix::fs::PermissionsExt;
        let md = std::fs::metadata(p)?;
        Ok(!md.is_dir() && md.permissions().mode() & 0o111 != 0)
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match is_exec(&p) {
            Ok(true) => Ok(p),
            Ok(false) => bail!("exec: {arg0:?}: permission denied"),
            Err(e) => bail!("exec: {arg0:?}: stat {arg0}: {}", io_msg(&e)),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(arg0);
        if let Ok(true) = is_exec(&p) {
            return Ok(p);
        }
    }
    bail!("exec: {arg0:?}: executable file not found in $PATH")
}

/// An io error the way Go prints it ("no such file or directory").
pub fn io_msg(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            // SAFETY: strerror returns a pointer to a static string.
            let s = unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)) };
            let s = s.to_string_lossy();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        }
        None => e.to_string(),
    }
}

fn errno_err(what: &str) -> anyhow::Error {
    let e = std::io::Error::last_os_error();
    anyhow::anyhow!("{what}: {}", io_msg(&e))
}

/// `$HOME` for `uid` from the container's `/etc/passwd`, `/` when absent (as runc does).
fn home_of(uid: u32) -> String {
    if let Ok(s) = std::fs::read_to_string("/etc/passwd") {
        for line in s.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid) {
                return f[5].to_string();
            }
        }
    }
    "/".to_string()
}

/// Give the container user its stdio (pipes from a shim are owned by root), as runc does.
fn fix_stdio_owner(uid: u32, gid: u32) {
    for fd in 0..3 {
        // SAFETY: fstat into a zeroed stat buffer we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd is a plain integer; st is a valid out pointer.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            continue;
        }
        let is_null =
            st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3);
        if is_null || st.st_uid == uid {
            continue;
        }
        // SAFETY: fchown on a stdio fd; failure is ignored (read-only files, other owners).
        unsafe { libc::fchown(fd, uid, gid) };
    }
}

/// The process half shared by `create` and `exec`, in order: rlimits, bounding set, user and
/// groups, cwd (checked to be inside the container), capabilities, no_new_privs, umask, fds.
/// Returns what to exec.
pub fn finalize(
    process: &Process,
    preserve_fds: i32,
    seccomp: Option<&crate::seccomp::Compiled>,
    chan: &Channel,
) -> Result<ExecTarget> {
    let nnp = process.no_new_privileges() == Some(true);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before dropping
    // capabilities (runc's order); with it, load it last.
    if let (Some(f), false) = (seccomp, nnp) {
        load_seccomp(f, chan)?;
    }
    if let Some(r) = process.rlimits() {
        crate::rlimits::apply(r)?;
    }
    // SAFETY: close_range only changes fd flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 + preserve_fds.max(0) as u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    let caps = process.capabilities().clone().unwrap_or_default_caps();
    crate::capabilities::drop_bounding(&caps)?;
    let user = process.user();
    let (uid, gid) = (user.uid(), user.gid());
    fix_stdio_owner(uid, gid);
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let groups: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    // SAFETY: setgroups reads groups.len() gids from a live Vec.
    if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } != 0 {
        let e = std::io::Error::last_os_error();
        // A user namespace with setgroups denied cannot change groups; runc skips it then.
        if e.raw_os_error() != Some(libc::EPERM) || !groups.is_empty() {
            bail!("setgroups {groups:?}: {}", io_msg(&e));
        }
    }
    // SAFETY: plain integer syscalls.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(errno_err(&format!("setgid {gid}")));
    }
    // SAFETY: plain integer syscall.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(errno_err(&format!("setuid {uid}")));
    }
    let cwd = process.cwd();
    std::env::set_current_dir(cwd).map_err(|e| {
        anyhow::anyhow!(
            "chdir to cwd ({:?}) set in config.json failed: {}",
            cwd,
            io_msg(&e)
        )
    })?;
    check_cwd_inside()?;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    crate::capabilities::apply(&caps)?;
    if nnp {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(errno_err("set no_new_privs"));
        }
    }
    let umask = user.umask().unwrap_or(0o022);
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(umask as libc::mode_t) };

    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(uid)));
    }
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args.first().context("args must not be empty")?;
    let path = look_path(arg0, &env)?;
    if let (Some(f), true) = (seccomp, nnp) {
        load_seccomp(f, chan)?;
    }
    Ok(ExecTarget {
        path: CString::new(path.as_os_str().as_bytes()).context("path contains NUL")?,
        argv: args.iter().map(|a| cstring(a)).collect::<Result<_>>()?,
        envp: env.iter().map(|e| cstring(e)).collect::<Result<_>>()?,
    })
}

/// Load the filter; with a NOTIFY rule, hand the listener fd to the parent (which takes it
/// with `pidfd_getfd` and sends it to `listenerPath`) and wait until it has.
fn load_seccomp(f: &crate::seccomp::Compiled, chan: &Channel) -> Result<()> {
    if let Some(fd) = crate::seccomp::apply(f)? {
        chan.send(msg::SECCOMP_FD, fd.as_raw_fd().to_string().as_bytes())?;
        match chan.recv()? {
            Some((msg::SECCOMP_DONE, _)) => {}
            _ => bail!("runtime went away while passing the seccomp listener fd"),
        }
    }
    Ok(())
}

/// Parent side of `load_seccomp`: fetch the child's listener fd and send it on.
pub fn forward_seccomp_fd(
    pid: i32,
    payload: &[u8],
    spec: &Spec,
    state: &[u8],
    chan: &Channel,
) -> Result<()> {
    let fd: i32 = std::str::from_utf8(payload)?.parse()?;
    let sc = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .context("seccomp listener fd without a seccomp config")?;
    let pidfd = crate::container::pidfd_open(pid).context("pidfd_open")?;
    // SAFETY: pidfd_getfd duplicates the child's fd into a new fd of ours.
    let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if got < 0 {
        return Err(std::io::Error::last_os_error()).context("pidfd_getfd seccomp listener fd");
    }
    // SAFETY: the fd was just created and is owned here.
    let notify = unsafe { OwnedFd::from_raw_fd(got as i32) };
    match sc.listener_path() {
        Some(path) => crate::seccomp::send_listener(
            path,
            notify,
            pid,
            state,
            sc.listener_metadata().as_deref(),
        )?,
        None => drop(notify),
    }
    chan.send(msg::SECCOMP_DONE, &[])
}

/// CVE-2024-21626: a cwd reached through a leaked host fd lies outside our root; the kernel's
/// getcwd then says "(unreachable)". Refuse to run there.
fn check_cwd_inside() -> Result<()> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the raw getcwd syscall writes at most buf.len() bytes into buf.
    let n = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    if n < 0 {
        return Err(errno_err("getcwd"));
    }
    if buf.first() != Some(&b'/') {
        bail!("current working directory is outside of container mount namespace root -- possible container breakout detected");
    }
    Ok(())
}

/// `process.capabilities` absent means no capabilities at all.
trait CapsOrEmpty {
    fn unwrap_or_default_caps(self) -> oci_spec::runtime::LinuxCapabilities;
}

impl CapsOrEmpty for Option<oci_spec::runtime::LinuxCapabilities> {
    fn unwrap_or_default_caps(self) -> oci_spec::runtime::LinuxCapabilities {
        self.unwrap_or_else(|| {
            let empty = std::collections::HashSet::new();
            let mut c = oci_spec::runtime::LinuxCapabilities::default();
            c.set_bounding(Some(empty.clone()))
                .set_effective(Some(empty.clone()))
                .set_permitted(Some(empty.clone()))
                .set_inheritable(Some(empty.clone()))
                .set_ambient(Some(empty));
            c
        })
    }
}

/// Reset the signal mask and dispositions the runtime may have changed, before exec.
pub fn reset_signals() {
    // SAFETY: sigset operations on a local set; signal() with SIG_DFL for every catchable one.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

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
}

/// The container's init: never returns. Errors before `READY` go to the parent over the
/// channel; later ones (startContainer hooks, exec) into `exec.fifo` for `start` to report.
pub fn init(args: InitArgs) -> ! {
    child_guard(args.parent);
    let code = match init_setup(&args) {
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

fn init_setup(a: &InitArgs) -> Result<(ExecTarget, Vec<u8>)> {
    let spec = &a.spec;
    let state = match a.chan.recv()? {
        Some((msg::GO, state)) => state,
        _ => bail!("runtime went away during create"),
    };
    for (t, path) in &a.plan.join {
        namespaces::join(*t, path)?;
    }
    let early = a.plan.unshare_flags & !libc::CLONE_NEWCGROUP;
    if early != 0 {
        // SAFETY: unshare with namespace flags only.
        if unsafe { libc::unshare(early) } != 0 {
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
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| anyhow::anyhow!("sethostname {h:?}: {e}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: d is valid for d.len() bytes.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(errno_err(&format!("setdomainname {d:?}")));
        }
    }
    let has_mnt_ns = a.plan.clone_flags & libc::CLONE_NEWNS != 0
        || a.plan.unshare_flags & libc::CLONE_NEWNS != 0
        || a.plan
            .join
            .iter()
            .any(|(t, _)| *t == oci_spec::runtime::LinuxNamespaceType::Mount);
    if !has_mnt_ns {
        bail!("a mount namespace is required (add {{\"type\": \"mount\"}} to linux.namespaces)");
    }
    crate::logging::mark("init: mounts");
    // The parent joins us to the cgroups meanwhile (a v1 migration waits for an RCU grace
    // period): wait for it only where it matters, then make the cgroup namespace.
    let cgroup_ns = a.plan.unshare_flags & libc::CLONE_NEWCGROUP;
    crate::rootfs::prepare_with(spec, &a.rootfs, &mut || {
        match a.chan.recv()? {
            Some((msg::CGROUPS_DONE, _)) => {}
            _ => bail!("runtime went away while joining cgroups"),
        }
        // SAFETY: unshare with a namespace flag only.
        if cgroup_ns != 0 && unsafe { libc::unshare(cgroup_ns) } != 0 {
            return Err(errno_err("unshare cgroup namespace"));
        }
        Ok(())
    })?;
    crate::logging::mark("init: mounted");
    let hooks = spec.hooks().as_ref();
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
        crate::hooks::run("createContainer", h, &state)?;
    }
    crate::rootfs::enter(&a.rootfs, a.no_pivot)?;
    crate::logging::mark("init: pivoted");
    let process = spec
        .process()
        .as_ref()
        .context("process must be specified")?;
    if process.terminal() == Some(true) {
        let sock = a
            .console
            .as_ref()
            .context("cannot allocate tty if runc will detach without setting console socket")?;
        setup_terminal(sock.as_raw_fd())?;
    }
    // Sysctls before readonlyPaths (which usually hold /proc/sys), as runc does.
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctl {
            let p = format!("/proc/sys/{}", k.replace('.', "/"));
            std::fs::write(&p, v)
                .map_err(|e| anyhow::anyhow!("write sysctl {k}={v}: {}", io_msg(&e)))?;
        }
    }
    crate::rootfs::finish(spec)?;
    if !a.no_new_keyring {
        join_session_keyring(&a.id);
    }
    crate::logging::mark("init: finalize");
    let target = finalize(process, a.preserve_fds, a.seccomp.as_ref(), &a.chan)?;
    crate::logging::mark("init: finalized");
    Ok((target, state))
}

/// Open a pty inside the container, send its master to the console socket, make the slave
/// `/dev/console` and our controlling terminal.
pub fn setup_terminal(socket: RawFd) -> Result<()> {
    let (master, slave) = crate::console::open_pty()?;
    let name = crate::console::pty_name(&master)?;
    crate::console::send_master(socket, &master)?;
    drop(master);
    crate::rootfs::mount_console(&name)?;
    crate::console::set_controlling_tty(&slave)?;
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
