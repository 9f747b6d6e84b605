//! The CRIU client: `criu swrk 3` with one end of a SOCK_SEQPACKET socketpair as its fd 3,
//! one protobuf `criu_req` per packet and one `criu_resp` back, notifications (`NOTIFY`,
//! answered with `notify_success`) in between, as runc's criuSwrk drives it.

use super::rpc::{CriuReq, CriuReqType as ReqType, CriuResp};
use anyhow::{bail, Context, Result};
use protobuf::Message;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// A packet from CRIU is at most this long (runc's buffer: 10 pages).
const MAX_PACKET: usize = 10 * 4096;

/// What a notification callback gets: the script name, the pid CRIU gave, and an fd that
/// came with it (`orphan-pts-master`).
pub struct Notify {
    pub script: String,
    pub pid: i32,
    pub fd: Option<OwnedFd>,
}

/// Called with CRIU's pid before the request goes out (restore: the cgroups to join).
pub type Started<'a> = &'a mut dyn FnMut(i32, &mut CriuReq) -> Result<()>;

/// How one `criu swrk` is run.
pub struct Swrk<'a> {
    /// Where CRIU's log file is, for error messages.
    pub log: PathBuf,
    /// fds CRIU inherits as 4, 5, ... (namespaces for `inherit_fd`).
    pub extra_fds: Vec<OwnedFd>,
    /// Whether CRIU shares our stdio (restore: the restored process's pipes come from it).
    pub inherit_stdio: bool,
    /// Called once CRIU runs and before the request is sent (restore: cgroups to join).
    pub started: Option<Started<'a>>,
}

/// The `criu` binary: looked up in `PATH` as runc does, with runc's words when it is missing.
pub fn criu_path() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("criu"))
        .find(|p| is_executable(p))
        .context("CRIU version check failed: exec: \"criu\": executable file not found in $PATH")
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A SOCK_SEQPACKET pair: (ours, CRIU's), both close-on-exec.
fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for socketpair to fill.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("socketpair for criu swrk");
    }
    // SAFETY: socketpair succeeded: two fresh fds nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Start `criu swrk 3`: its end of the socket as fd 3, `extra` as 4, 5, ...
fn spawn(criu: &Path, theirs: &OwnedFd, extra: &[OwnedFd], inherit_stdio: bool) -> Result<Child> {
    let mut cmd = Command::new(criu);
    cmd.args(["swrk", "3"]);
    if !inherit_stdio {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    let mut fds: Vec<RawFd> = vec![theirs.as_raw_fd()];
    fds.extend(extra.iter().map(AsRawFd::as_raw_fd));
    // Above every target first, so that one dup2 cannot clobber the source of the next.
    let high: Vec<OwnedFd> = fds
        .iter()
        .map(|&fd| {
            // SAFETY: F_DUPFD_CLOEXEC on an open fd returns a new fd or -1.
            let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
            if dup < 0 {
                return Err(std::io::Error::last_os_error()).context("dup fd for criu");
            }
            // SAFETY: dup is a fresh fd nobody else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(dup) })
        })
        .collect::<Result<_>>()?;
    let raw: Vec<RawFd> = high.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: between fork and exec only dup2 (async-signal-safe) runs; the fds stay open in
    // the parent (`high`) until spawn returns. dup2 to a new number clears FD_CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in raw.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("start {} swrk", criu.display()))
}

/// Refuse, before anything is made for it, a request this host's CRIU is too old for
/// (`run` checks again, from the answer kept).
pub fn refuse_too_old(req: &CriuReq) -> Result<()> {
    refuse_older(version(&criu_path()?)?, req)
}

/// Run one request through a new `criu swrk`; `notify` answers its notifications. The
/// final response (its type that of the request) when CRIU reports success.
pub fn run(
    mut req: CriuReq,
    mut swrk: Swrk<'_>,
    notify: &mut dyn FnMut(Notify) -> Result<()>,
) -> Result<CriuResp> {
    let criu = criu_path()?;
    refuse_older(version(&criu)?, &req)?;
    let (ours, theirs) = socketpair()?;
    let mut child = spawn(&criu, &theirs, &swrk.extra_fds, swrk.inherit_stdio)?;
    drop(theirs);
    swrk.extra_fds.clear();
    let result = converse(&ours, &mut child, &mut req, &mut swrk, notify);
    let status = hang_up(ours, &mut child)?;
    let resp = result?;
    let kind = req.type_();
    // A PRE_DUMP criu waits for more requests, then fails at the closed socket: runc's
    // rule is that only its response counts.
    if !status.success() && kind != ReqType::PRE_DUMP {
        bail!(
            "criu failed: {}\nlog file: {}",
            describe_exit(status),
            swrk.log.display()
        );
    }
    Ok(resp)
}

/// Shut our end of the socket, at which `criu swrk` exits (a failed conversation must not
/// leave it running), and reap it.
fn hang_up(sock: OwnedFd, child: &mut Child) -> Result<std::process::ExitStatus> {
    // SAFETY: shutdown of our own socket.
    unsafe { libc::shutdown(sock.as_raw_fd(), libc::SHUT_WR) };
    drop(sock);
    child.wait().context("wait for criu")
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("signal: {s}"),
        _ => "unknown exit".into(),
    }
}

fn converse(
    sock: &OwnedFd,
    child: &mut Child,
    req: &mut CriuReq,
    swrk: &mut Swrk<'_>,
    notify: &mut dyn FnMut(Notify) -> Result<()>,
) -> Result<CriuResp> {
    if let Some(started) = swrk.started.as_mut() {
        started(child.id() as i32, req)?;
    }
    let kind = req.type_();
    send(sock, req)?;
    loop {
        let (resp, fd) = recv(sock)?;
        if !resp.success() {
            bail!("{}", failure(kind, &resp, &swrk.log));
        }
        if resp.type_() != ReqType::NOTIFY {
            return Ok(resp);
        }
        let n = resp
            .notify
            .as_ref()
            .context("criu sent NOTIFY without notify")?;
        crate::logging::debug(&format!("criu notify: {}", n.script()));
        notify(Notify {
            script: n.script().to_string(),
            pid: n.pid(),
            fd,
        })?;
        let mut ack = CriuReq::new();
        ack.set_type(ReqType::NOTIFY);
        ack.set_notify_success(true);
        send(sock, &ack)?;
    }
}

/// CRIU's version as runc numbers it (3.16.1 is 31601), asked once per command of a `criu
/// swrk` of its own, as runc (go-criu) asks it: CRIU 3.0 and later answer `VERSION`.
fn version(criu: &Path) -> Result<u32> {
    static KNOWN: OnceLock<u32> = OnceLock::new();
    if let Some(v) = KNOWN.get() {
        return Ok(*v);
    }
    let (ours, theirs) = socketpair()?;
    let mut child = spawn(criu, &theirs, &[], false)?;
    drop(theirs);
    let answer = ask_version(&ours);
    hang_up(ours, &mut child)?;
    let v = answer?;
    crate::logging::debug(&format!("criu version {v}"));
    Ok(*KNOWN.get_or_init(|| v))
}

fn ask_version(sock: &OwnedFd) -> Result<u32> {
    let mut ask = CriuReq::new();
    ask.set_type(ReqType::VERSION);
    send(sock, &ask)?;
    let (resp, _) = recv(sock).context("CRIU version check failed")?;
    let v = resp
        .version
        .as_ref()
        .filter(|_| resp.success() && resp.type_() == ReqType::VERSION)
        .context(
            "CRIU version check failed: criu does not answer VERSION (it is older than 3.0)",
        )?;
    let part = |n: i32| u32::try_from(n).unwrap_or(0);
    Ok(part(v.major_number()) * 10000 + part(v.minor_number()) * 100 + part(v.sublevel()))
}

/// The oldest CRIU that can carry out `req` (runc's minimums), and runc's words when a
/// particular option is what needs it.
fn required_version(req: &CriuReq) -> (u32, Option<&'static str>) {
    let opts = req.opts.as_ref();
    if opts.is_some_and(|o| o.has_lsm_profile()) {
        return (31600, Some("--lsm-profile requires at least CRIU 3.16"));
    }
    if opts.is_some_and(|o| o.has_lsm_mount_context()) {
        return (
            31600,
            Some("--lsm-mount-context requires at least CRIU 3.16"),
        );
    }
    // A namespace joined by path is external to CRIU (`net[<inode>]:extRootNetNS` at the
    // dump, an inherited fd of that key at the restore): pid from 3.15, net from 3.11.
    let external = |kind: &str, key: &str| {
        opts.is_some_and(|o| {
            o.external.iter().any(|e| e.starts_with(kind))
                || o.inherit_fd.iter().any(|i| i.key() == key)
        })
    };
    // `--lazy-pages` needs 3.15 too: its `--status-fd` waits for CRIU's `status-ready`.
    if external("pid[", "extRootPidNS") || opts.is_some_and(|o| o.lazy_pages()) {
        return (31500, None);
    }
    if external("net[", "extRootNetNS") {
        return (31100, None);
    }
    (30000, None)
}

/// Refuse a CRIU of version `have` too old for `req`, in runc's words, before it is asked to
/// do anything.
fn refuse_older(have: u32, req: &CriuReq) -> Result<()> {
    match required_version(req) {
        (need, Some(why)) if have < need => bail!("{why}"),
        (need, None) if have < need => bail!("CRIU version {have} must be {need} or higher"),
        _ => Ok(()),
    }
}

/// runc's words, and the last error CRIU logged (where it explains what it could not do).
fn failure(kind: ReqType, resp: &CriuResp, log: &Path) -> String {
    let mut msg = format!("criu failed: type {kind:?} errno {}", resp.cr_errno());
    if let Some(e) = resp.cr_errmsg.as_deref().filter(|e| !e.is_empty()) {
        msg.push_str(&format!(": {e}"));
    } else if let Some(e) = last_log_error(log) {
        msg.push_str(&format!(": {e}"));
    }
    msg.push_str(&format!("\nlog file: {}", log.display()));
    msg
}

/// The last `Error` line of a CRIU log, without its timestamp.
pub fn last_log_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().rev().find(|l| l.contains("Error"))?;
    let line = line.split_once(") ").map_or(line, |(_, rest)| rest);
    Some(line.trim().to_string())
}

fn send(sock: &OwnedFd, req: &CriuReq) -> Result<()> {
    let data = req.write_to_bytes().context("encode criu request")?;
    // SAFETY: data is valid for data.len() bytes.
    let n = unsafe { libc::send(sock.as_raw_fd(), data.as_ptr().cast(), data.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).context("send request to criu");
    }
    Ok(())
}

/// One response, with the fd that came with it, if any.
fn recv(sock: &OwnedFd) -> Result<(CriuResp, Option<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut cmsg = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg) as _;
    let n = loop {
        // SAFETY: msg points at live buffers of the lengths it gives.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e).context("read from criu");
        }
    };
    let fd = received_fd(&msg);
    if n == 0 {
        bail!("unexpected EOF from criu");
    }
    if n == buf.len() {
        bail!("criu response too long (buffer is too small)");
    }
    let resp = CriuResp::parse_from_bytes(&buf[..n]).context("decode criu response")?;
    Ok((resp, fd))
}

fn received_fd(msg: &libc::msghdr) -> Option<OwnedFd> {
    // SAFETY: CMSG_* walk the control buffer recvmsg filled, within msg_controllen.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(msg);
        if c.is_null() || (*c).cmsg_level != libc::SOL_SOCKET || (*c).cmsg_type != libc::SCM_RIGHTS
        {
            return None;
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
        Some(OwnedFd::from_raw_fd(fd))
    }
}

#[cfg(test)]
mod tests {
    use super::super::rpc::{CriuOpts, CriuVersion, InheritFd};
    use super::*;

    /// What `ask_version` makes of the answer of a CRIU of version `v` (played by a thread
    /// on the other end of the socket, which checks the question).
    fn asked(v: (i32, i32, i32)) -> u32 {
        let (ours, theirs) = socketpair().unwrap();
        let criu = std::thread::spawn(move || {
            let mut buf = vec![0u8; MAX_PACKET];
            // SAFETY: buf is valid for its length.
            let n =
                unsafe { libc::recv(theirs.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let ask = CriuReq::parse_from_bytes(&buf[..n as usize]).unwrap();
            assert_eq!(ask.type_(), ReqType::VERSION);
            let mut version = CriuVersion::new();
            version.set_major_number(v.0);
            version.set_minor_number(v.1);
            version.set_sublevel(v.2);
            let mut resp = CriuResp::new();
            resp.set_type(ReqType::VERSION);
            resp.set_success(true);
            resp.version = Some(version).into();
            let data = resp.write_to_bytes().unwrap();
            // SAFETY: data is valid for its length.
            unsafe { libc::send(theirs.as_raw_fd(), data.as_ptr().cast(), data.len(), 0) };
        });
        let got = ask_version(&ours).unwrap();
        criu.join().unwrap();
        got
    }

    /// A CRIU of version `v` asked, then `req` checked against it: runc's words, if refused.
    fn converse_with(v: (i32, i32, i32), req: &CriuReq) -> Result<(), String> {
        refuse_older(asked(v), req).map_err(|e| format!("{e:#}"))
    }

    fn restore_with(f: impl FnOnce(&mut CriuOpts)) -> CriuReq {
        let mut opts = CriuOpts::new();
        opts.set_images_dir_fd(3);
        f(&mut opts);
        let mut req = CriuReq::new();
        req.set_type(ReqType::RESTORE);
        req.opts = Some(opts).into();
        req
    }

    #[test]
    fn versions_are_numbered_as_runc_numbers_them() {
        assert_eq!(asked((4, 1, 1)), 40101);
        assert_eq!(asked((3, 16, 0)), 31600);
    }

    #[test]
    fn a_criu_too_old_for_the_request_is_refused_in_runcs_words() {
        let plain = restore_with(|_| {});
        assert_eq!(
            converse_with((2, 12, 0), &plain).unwrap_err(),
            "CRIU version 21200 must be 30000 or higher"
        );
        let lsm = restore_with(|o| o.set_lsm_profile("apparmor:p".into()));
        assert_eq!(
            converse_with((3, 15, 0), &lsm).unwrap_err(),
            "--lsm-profile requires at least CRIU 3.16"
        );
        assert!(converse_with((3, 16, 0), &lsm).is_ok());
        let ctx = restore_with(|o| o.set_lsm_mount_context("system_u:object_r:t:s0".into()));
        assert_eq!(
            converse_with((3, 15, 9), &ctx).unwrap_err(),
            "--lsm-mount-context requires at least CRIU 3.16"
        );
        let pidns = restore_with(|o| {
            let mut i = InheritFd::new();
            i.set_key("extRootPidNS".into());
            i.set_fd(4);
            o.inherit_fd.push(i);
        });
        assert_eq!(
            converse_with((3, 14, 0), &pidns).unwrap_err(),
            "CRIU version 31400 must be 31500 or higher"
        );
        let lazy = restore_with(|o| o.set_lazy_pages(true));
        assert_eq!(
            converse_with((3, 14, 0), &lazy).unwrap_err(),
            "CRIU version 31400 must be 31500 or higher"
        );
        let netns = restore_with(|o| o.external.push("net[4026531992]:extRootNetNS".into()));
        assert!(converse_with((3, 11, 0), &netns).is_ok());
        assert_eq!(
            converse_with((3, 10, 0), &netns).unwrap_err(),
            "CRIU version 31000 must be 31100 or higher"
        );
    }
}
