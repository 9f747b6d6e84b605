//! The process half shared by the container's init and `exec`: user, capabilities, cwd,
//! seccomp, and what to `execve`.

use super::errors::{errno_err, io_msg};
use super::{msg, pidfd_open, Channel};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{ExecCPUAffinity, Linux, Process, Spec, User};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
    // No PATH in the process's environment (or an empty one): nothing is searched, as Go's
    // LookPath in runc does (runc 1.1 and 1.3 alike; runrs searched a default list before).
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or_default();
    for dir in path.split(':').filter(|_| !path.is_empty()) {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(arg0);
        if let Ok(true) = is_exec(&p) {
            return Ok(p);
        }
    }
    bail!("exec: {arg0:?}: executable file not found in $PATH")
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
fn fix_stdio_owner(uid: u32) {
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
        // Only the owner, as runc: the group stays what the mount gave it (devpts `gid=5`,
        // the tty group). SAFETY: fchown on a stdio fd; failure is ignored (read-only
        // files, other owners).
        unsafe { libc::fchown(fd, uid, st.st_gid) };
    }
}

/// The process half shared by `create` and `exec`, in order: CPU affinity, scheduler, I/O
/// priority, personality and memory policy (`attrs`), rlimits, fds, bounding set, user and
/// groups, cwd (checked to be inside the container), capabilities, no_new_privs, umask, then
/// what to exec; the seccomp filter first, or last with no_new_privs.
pub fn finalize(
    process: &Process,
    linux: Option<&Linux>,
    exec_affinity: Option<&ExecCPUAffinity>,
    preserve_fds: i32,
    seccomp: Option<&crate::seccomp::Compiled>,
    chan: &Channel,
) -> Result<ExecTarget> {
    let nnp = process.no_new_privileges() == Some(true);
    super::attrs::set_final_affinity(exec_affinity)?;
    super::attrs::apply(process, linux)?;
    if let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        crate::lsm::apply_apparmor(profile)?;
    }
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before dropping
    // capabilities (runc's order); with it, load it last.
    if let (Some(f), false) = (seccomp, nnp) {
        load_seccomp(f, chan)?;
    }
    if let Some(r) = process.rlimits() {
        crate::rlimits::apply(r)?;
    }
    close_on_exec_from(3 + preserve_fds.max(0) as u32);
    let caps = process.capabilities().clone().unwrap_or_default_caps();
    crate::capabilities::drop_bounding(&caps)?;
    let user = process.user();
    fix_stdio_owner(user.uid());
    keep_caps(true);
    set_ids(user)?;
    enter_cwd(process.cwd())?;
    keep_caps(false);
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

    let (path, args, env) = command(process, user.uid())?;
    if let (Some(f), true) = (seccomp, nnp) {
        load_seccomp(f, chan)?;
    }
    Ok(ExecTarget {
        path: CString::new(path.as_os_str().as_bytes()).context("path contains NUL")?,
        argv: args.iter().map(|a| cstring(a)).collect::<Result<_>>()?,
        envp: env.iter().map(|e| cstring(e)).collect::<Result<_>>()?,
    })
}

/// Mark every fd from `first` on close-on-exec: the container gets stdio and the fds it
/// was told to keep.
fn close_on_exec_from(first: u32) {
    // SAFETY: close_range only changes fd flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
}

/// PR_SET_KEEPCAPS: whether the permitted capabilities survive the switch away from uid 0.
fn keep_caps(on: bool) {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_int::from(on), 0, 0, 0) };
}

/// The container user's supplementary groups, gid and uid.
fn set_ids(user: &User) -> Result<()> {
    let (uid, gid) = (user.uid(), user.gid());
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
    Ok(())
}

/// chdir to `process.cwd`, refusing one outside the container.
fn enter_cwd(cwd: &Path) -> Result<()> {
    std::env::set_current_dir(cwd).map_err(|e| {
        anyhow::anyhow!(
            "chdir to cwd ({:?}) set in config.json failed: {}",
            cwd,
            io_msg(&e)
        )
    })?;
    check_cwd_inside()
}

/// What to run: the path found for `args[0]`, the args, and the environment (with `$HOME`
/// from the container's passwd when the config has none).
fn command(process: &Process, uid: u32) -> Result<(PathBuf, Vec<String>, Vec<String>)> {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(uid)));
    }
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args.first().context("args must not be empty")?;
    let path = look_path(arg0, &env)?;
    Ok((path, args, env))
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
    let pidfd = pidfd_open(pid).context("pidfd_open")?;
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
