//! OCI hooks: each hook runs with the container state JSON on stdin, its `args` and `env`,
//! and its `timeout`; a hook that fails or times out is an error naming it.
//!
//! Errors use runc 1.1's wording (its Go `exec` messages included), e.g.
//! `error running hook #0: error running hook: exit status 3, stdout: ..., stderr: ...`,
//! `error running hook #0: hook ran past specified timeout of 1.0s`,
//! `error running hook #0: fork/exec /nope: no such file or directory`.

use anyhow::{anyhow, bail, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{pipe2, read, write, ForkResult, Pid};
use oci_spec::runtime::Hook;
use std::ffi::{c_char, CString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

/// Run `hooks` one after the other; `kind` names them in errors (`"prestart"`, ...), `state`
/// is the state JSON written to each hook's stdin. Stops at the first failure.
///
/// runc 1.1 does not put the kind in its message (`error running hook #1: ...`), and neither
/// do we, so that tools parsing runc's errors keep working; `kind` is kept for callers' logs.
pub fn run(_kind: &str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    for (i, hook) in hooks.iter().enumerate() {
        run_one(hook, state).map_err(|e| anyhow!("error running hook #{i}: {e}"))?;
    }
    Ok(())
}

/// What a hook's argv, envp and path look like once ready for `execve` (built before `fork`:
/// the child may only make async-signal-safe calls).
struct ExecArgs {
    path: CString,
    _strings: Vec<CString>,
    argv: Vec<*const c_char>,
    /// `None`: the hook inherits our environment, as runc's hooks do when `env` is absent.
    envp: Option<Vec<*const c_char>>,
}

impl ExecArgs {
    fn new(hook: &Hook) -> Result<Self> {
        let cstr = |s: &[u8]| {
            CString::new(s).map_err(|_| anyhow!("hook {:?} contains a NUL byte", hook.path()))
        };
        let path = cstr(hook.path().as_os_str().as_bytes())?;
        let mut strings = Vec::new();
        match hook.args() {
            Some(args) if !args.is_empty() => {
                for a in args {
                    strings.push(cstr(a.as_bytes())?);
                }
            }
            _ => strings.push(path.clone()),
        }
        let argc = strings.len();
        let envc = match hook.env() {
            Some(env) => {
                for e in env {
                    strings.push(cstr(e.as_bytes())?);
                }
                Some(env.len())
            }
            None => None,
        };
        let ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        let mut argv = ptrs[..argc].to_vec();
        argv.push(std::ptr::null());
        let envp = envc.map(|_| {
            let mut v = ptrs[argc..].to_vec();
            v.push(std::ptr::null());
            v
        });
        Ok(ExecArgs {
            path,
            _strings: strings,
            argv,
            envp,
        })
    }
}

/// A pipe end moved to fd 3 or above, so that `dup2` onto 0, 1, 2 in the child never
/// clobbers another of the pipes.
fn above_stdio(fd: OwnedFd) -> Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let new = fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn cloexec_pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| anyhow!("create a pipe for a hook: {e}"))?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

/// The hook's stdin: a pipe fed with the state while the hook runs (see [`Feed`]).
fn state_pipe(state: &[u8]) -> Result<(OwnedFd, Feed<'_>)> {
    let (r, w) = cloexec_pipe()?;
    if state.len() > 65536 {
        let size = libc::c_int::try_from(state.len()).unwrap_or(libc::c_int::MAX);
        // Best effort (the limit is /proc/sys/fs/pipe-max-size): what does not fit is
        // written as the hook reads.
        let _ = fcntl(w.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(size));
    }
    fcntl(w.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    let mut feed = Feed {
        fd: Some(w),
        data: state,
        off: 0,
    };
    feed.push();
    Ok((r, feed))
}

/// What of the state is still to be written to the hook's stdin. Written without blocking
/// as the hook reads; closed once all is written (the hook's EOF), or when the hook closes
/// its end (EPIPE: a hook need not read its stdin), so we never block on a hook.
struct Feed<'a> {
    fd: Option<OwnedFd>,
    data: &'a [u8],
    off: usize,
}

impl Feed<'_> {
    /// Writes what fits now.
    fn push(&mut self) {
        while let Some(fd) = &self.fd {
            if self.off == self.data.len() {
                self.fd = None;
                return;
            }
            match write(fd, &self.data[self.off..]) {
                Ok(n) => self.off += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => self.fd = None,
            }
        }
    }
}

/// The child side of the fork: stdio, a clean signal state, then `execve`. On failure the
/// errno goes to `err_w` and the child exits 127. Only async-signal-safe calls.
fn exec_child(args: &ExecArgs, stdio: [RawFd; 3], err_w: RawFd) -> ! {
    // SAFETY: after fork we only call async-signal-safe libc functions on valid fds and on
    // pointers prepared before the fork (NUL-terminated strings, NULL-terminated arrays).
    unsafe {
        for (target, fd) in stdio.iter().enumerate() {
            libc::dup2(*fd, target as libc::c_int);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        // Whatever descriptors the runtime holds without O_CLOEXEC must not reach the hook.
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        match &args.envp {
            Some(envp) => libc::execve(args.path.as_ptr(), args.argv.as_ptr(), envp.as_ptr()),
            None => libc::execv(args.path.as_ptr(), args.argv.as_ptr()),
        };
        let errno = *libc::__errno_location();
        let bytes = errno.to_ne_bytes();
        libc::write(err_w, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    }
}

fn run_one(hook: &Hook, state: &[u8]) -> Result<()> {
    let args = ExecArgs::new(hook)?;
    let (stdin_r, mut feed) = state_pipe(state)?;
    let (out_r, out_w) = cloexec_pipe()?;
    let (err_r, err_w) = cloexec_pipe()?;
    let (exec_r, exec_w) = cloexec_pipe()?;

    // SAFETY: the child only runs `exec_child`, which is async-signal-safe, so forking is sound
    // even if the caller has other threads.
    let pid = match unsafe { nix::unistd::fork() }.map_err(|e| anyhow!("fork for hook: {e}"))? {
        ForkResult::Child => exec_child(
            &args,
            [stdin_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
            exec_w.as_raw_fd(),
        ),
        ForkResult::Parent { child } => child,
    };
    drop((stdin_r, out_w, err_w, exec_w));

    if let Some(errno) = read_exec_error(&exec_r) {
        let _ = waitpid(pid, None);
        bail!(
            "fork/exec {}: {}",
            hook.path().display(),
            go_errno_text(Errno::from_raw(errno))
        );
    }

    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(0) as u64));
    let mut out = Vec::new();
    let mut err = Vec::new();
    let pipes = [out_r, err_r];
    let status = match wait_capturing(pid, deadline, &mut feed, pipes, [&mut out, &mut err])? {
        Some(status) => status,
        None => {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            bail!(
                "hook ran past specified timeout of {:.1}s",
                hook.timeout().unwrap_or(0) as f64
            );
        }
    };
    match status {
        WaitStatus::Exited(_, 0) => Ok(()),
        other => bail!(
            "error running hook: {}, stdout: {}, stderr: {}",
            go_status_text(other),
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        ),
    }
}

/// The errno the child sent if `execve` failed; `None` once exec succeeded (EOF).
fn read_exec_error(exec_r: &OwnedFd) -> Option<i32> {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        match read(exec_r.as_raw_fd(), &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    (got == buf.len()).then(|| i32::from_ne_bytes(buf))
}

fn pidfd_open(pid: Pid) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    // SAFETY: a non-negative result is a new descriptor owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Read the hook's stdout and stderr (and feed its stdin) until it exits; `None` if
/// `deadline` passed first (the hook is still running). Once the hook has exited, output
/// still buffered is read, but descendants holding the pipes open are not waited for.
fn wait_capturing(
    pid: Pid,
    deadline: Option<Instant>,
    feed: &mut Feed<'_>,
    pipes: [OwnedFd; 2],
    bufs: [&mut Vec<u8>; 2],
) -> Result<Option<WaitStatus>> {
    let pidfd = pidfd_open(pid);
    let mut open = [true, true];
    let [out_buf, err_buf] = bufs;
    let bufs = [out_buf, err_buf];
    loop {
        if let Some(status) = try_reap(pid)? {
            for (i, fd) in pipes.iter().enumerate() {
                if open[i] {
                    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
                    while drain(fd, bufs[i]) == Drain::More {}
                }
            }
            return Ok(Some(status));
        }
        let timeout = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                left
            }
            None => Duration::from_secs(3600),
        };
        // Without a pidfd (kernel < 5.3) we look at the hook again every 50ms.
        let timeout = if pidfd.is_some() {
            timeout
        } else {
            timeout.min(Duration::from_millis(50))
        };
        for i in poll_once(&pipes, &open, feed, pidfd.as_ref(), timeout)? {
            if drain(&pipes[i], bufs[i]) == Drain::Eof {
                open[i] = false;
            }
        }
        feed.push();
    }
}

/// One poll of the open output pipes, the stdin being fed and the pidfd; returns the
/// output pipes that are readable.
fn poll_once(
    pipes: &[OwnedFd; 2],
    open: &[bool; 2],
    feed: &Feed<'_>,
    pidfd: Option<&OwnedFd>,
    timeout: Duration,
) -> Result<Vec<usize>> {
    let mut fds = Vec::with_capacity(4);
    let mut which = Vec::with_capacity(4);
    for (i, fd) in pipes.iter().enumerate() {
        if open[i] {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            which.push(Some(i));
        }
    }
    if let Some(w) = &feed.fd {
        fds.push(PollFd::new(w.as_fd(), PollFlags::POLLOUT));
        which.push(None);
    }
    if let Some(p) = pidfd {
        fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        which.push(None);
    }
    let ms = PollTimeout::try_from(timeout.as_millis().min(i32::MAX as u128) as i32)
        .unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, ms) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => bail!("poll on hook output: {e}"),
    }
    Ok(fds
        .iter()
        .zip(&which)
        .filter_map(|(f, w)| match (f.revents(), w) {
            (Some(r), Some(i)) if !r.is_empty() => Some(*i),
            _ => None,
        })
        .collect())
}

#[derive(PartialEq)]
enum Drain {
    More,
    Eof,
    Empty,
}

/// One read from `fd` into `buf`.
fn drain(fd: &OwnedFd, buf: &mut Vec<u8>) -> Drain {
    let mut chunk = [0u8; 8192];
    loop {
        match read(fd.as_raw_fd(), &mut chunk) {
            Ok(0) => return Drain::Eof,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Drain::More;
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return Drain::Empty,
            Err(_) => return Drain::Eof,
        }
    }
}

fn try_reap(pid: Pid) -> Result<Option<WaitStatus>> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Ok(Some(s)),
            Ok(_) => return Ok(None),
            Err(Errno::EINTR) => {}
            Err(e) => bail!("wait for hook (pid {pid}): {e}"),
        }
    }
}

/// Go's `ProcessState.String()`: `exit status 3`, `signal: killed`.
fn go_status_text(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, sig, core) => {
            let core = if core { " (core dumped)" } else { "" };
            format!("signal: {}{core}", go_signal_text(sig as i32))
        }
        other => format!("{other:?}"),
    }
}

/// Go's names for Linux signals (glibc's `strsignal` with a lower-case first letter).
pub fn go_signal_text(sig: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "hangup",
        "interrupt",
        "quit",
        "illegal instruction",
        "trace/breakpoint trap",
        "aborted",
        "bus error",
        "floating point exception",
        "killed",
        "user defined signal 1",
        "segmentation fault",
        "user defined signal 2",
        "broken pipe",
        "alarm clock",
        "terminated",
        "stack fault",
        "child exited",
        "continued",
        "stopped (signal)",
        "stopped",
        "stopped (tty input)",
        "stopped (tty output)",
        "urgent I/O condition",
        "CPU time limit exceeded",
        "file size limit exceeded",
        "virtual timer expired",
        "profiling timer expired",
        "window changed",
        "I/O possible",
        "power failure",
        "bad system call",
    ];
    match usize::try_from(sig).ok().and_then(|i| NAMES.get(i)) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => format!("signal {sig}"),
    }
}

/// Go's text for an errno: the C library's message with a lower-case first letter.
pub fn go_errno_text(errno: Errno) -> String {
    let mut chars = errno.desc().chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
