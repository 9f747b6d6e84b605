//! The clone/sync/exec sequence. `create` clones the container's init straight into its new
//! namespaces; the child sets the container up and waits on `exec.fifo`; `exec` clones a
//! process that joins an existing container (see `exec.rs`). Parent and child talk over a
//! `SOCK_SEQPACKET` socketpair. The runtime is single-threaded, so the child may allocate.

mod attrs;
mod errors;
mod finalize;
mod init;

pub use attrs::{
    check as check_attrs, set_initial_affinity, spell_sched_flags_for_oci_spec, SideBySide,
};
pub use errors::io_msg;
pub use finalize::{finalize, forward_seccomp_fd, look_path, ExecTarget};
pub use init::{init, set_console_size, setup_terminal, with_status, InitArgs};

use anyhow::{Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Message kinds on the sync channel.
pub mod msg {
    /// parent → child: ids mapped, enter the cgroups and go on; payload: the state JSON for hooks.
    pub const GO: u8 = b'G';
    /// child → parent: mounts done, run prestart/createRuntime hooks now.
    pub const HOOKS: u8 = b'H';
    /// parent → child: hooks done.
    pub const HOOKS_DONE: u8 = b'h';
    /// child → parent: set up, about to wait on exec.fifo (create) or exec (exec).
    pub const READY: u8 = b'R';
    /// child → parent: failed; payload: the error.
    pub const ERROR: u8 = b'E';
    /// parent → child, before `GO`: the cgroup directories made after the clone exist; the
    /// init enters them while the runtime applies `linux.resources`. With it (`SCM_RIGHTS`)
    /// their `tasks` files, which the runtime opened while the init made its namespaces.
    pub const CGROUPS_MADE: u8 = b'C';
    /// child → parent: seccomp listener fd number; parent → child: taken.
    pub const SECCOMP_FD: u8 = b'S';
    pub const SECCOMP_DONE: u8 = b's';
    /// Either way: a part of a message too long for one packet; its last part has the
    /// message's own kind.
    pub const CONTINUED: u8 = b'+';
}

/// The payload of one packet on the sync channel (a packet must fit the socket's buffer).
const MAX_PACKET: usize = 32 * 1024;

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

    /// Sends one message. A payload over MAX_PACKET (a config's annotations end up in the
    /// hooks' state) goes as CONTINUED packets and a last one of its kind: one packet of
    /// it would exceed the socket's buffer (EMSGSIZE) or the receiver's buffer.
    pub fn send(&self, kind: u8, payload: &[u8]) -> Result<()> {
        let mut chunks = payload.chunks(MAX_PACKET).peekable();
        if chunks.peek().is_none() {
            return self.send_packet(kind, &[]);
        }
        while let Some(chunk) = chunks.next() {
            let k = if chunks.peek().is_some() {
                msg::CONTINUED
            } else {
                kind
            };
            self.send_packet(k, chunk)?;
        }
        Ok(())
    }

    fn send_packet(&self, kind: u8, payload: &[u8]) -> Result<()> {
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
        let mut whole: Vec<u8> = Vec::new();
        loop {
            let Some((kind, part)) = self.recv_packet()? else {
                return Ok(None);
            };
            if kind != msg::CONTINUED {
                if whole.is_empty() {
                    return Ok(Some((kind, part)));
                }
                whole.extend_from_slice(&part);
                return Ok(Some((kind, whole)));
            }
            whole.extend_from_slice(&part);
        }
    }

    fn recv_packet(&self) -> Result<Option<(u8, Vec<u8>)>> {
        // Not zeroed: a zeroed 64 KiB buffer per message faulted in 16 pages, in the
        // runtime and again (copy-on-write) in the container's init; the kernel writes
        // only the message.
        let mut buf: Vec<u8> = Vec::with_capacity(MAX_PACKET + 1);
        loop {
            // SAFETY: buf has buf.capacity() writable bytes. MSG_TRUNC: the packet's real
            // length is returned, so a longer one is an error, not silently cut.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.capacity(),
                    libc::MSG_TRUNC,
                )
            };
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
            if n as usize > buf.capacity() {
                anyhow::bail!("sync channel receive: a packet of {n} bytes is over the limit");
            }
            // SAFETY: recv initialised the first n bytes (n <= capacity).
            unsafe { buf.set_len(n as usize) };
            let kind = buf.remove(0);
            return Ok(Some((kind, buf)));
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends a message of no payload with `fds` (`SCM_RIGHTS`).
    pub fn send_fds(&self, kind: u8, fds: &[RawFd]) -> Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let cmsg = [ControlMessage::ScmRights(fds)];
        let iov = [std::io::IoSlice::new(std::slice::from_ref(&kind))];
        loop {
            match sendmsg::<()>(self.raw(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(std::io::Error::from(e)).context("sync channel send"),
            }
        }
    }

    /// The next message, of no payload, with the fds it brought (close-on-exec); `None`
    /// when the other end is closed.
    pub fn recv_fds(&self, max: usize) -> Result<Option<(u8, Vec<OwnedFd>)>> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let mut kind = [0u8; 1];
        let mut iov = [std::io::IoSliceMut::new(&mut kind)];
        let mut space = vec![0u8; nix::sys::socket::cmsg_space::<RawFd>() * max.max(1)];
        let msg = loop {
            match recvmsg::<()>(
                self.raw(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => break m,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(std::io::Error::from(e)).context("sync channel receive"),
            }
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs().context("sync channel receive")? {
            if let ControlMessageOwned::ScmRights(got) = c {
                // SAFETY: SCM_RIGHTS installed these descriptors in our table; we own them.
                fds.extend(
                    got.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            anyhow::bail!("sync channel receive: more than {max} file descriptors");
        }
        Ok((msg.bytes > 0).then(|| (kind[0], fds)))
    }
}

/// A pidfd for `pid` (readable once it exits); `None` when it is gone or the kernel has none.
pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the fd was just created and is owned here.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
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

/// Fork into new namespaces with `clone3` (falling back to `clone` where the kernel lacks it),
/// starting the child in the cgroup2 directory `cgroup` when given (no migration afterwards).
/// Returns the pid (0 in the child, like `fork`) and whether the child landed in `cgroup`;
/// when the kernel refuses (old kernel, a cgroup with controllers in its subtree), the clone
/// is retried without it and the caller joins the cgroup itself.
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
pub fn child_guard(parent: i32) {
    child_guard_dumpable(parent, false)
}

/// [`child_guard`], leaving the process dumpable when `dumpable` (until it says otherwise).
pub fn child_guard_dumpable(_parent: i32, dumpable: bool) {
    // SAFETY: prctl and setsid with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if !dumpable {
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        }
        // A session of its own, as runc gives the init and every exec: a container process
        // must not stay in the session (and process group) of whoever ran the runtime.
        libc::setsid();
    }
}

/// SIGKILL our child `pid` and reap it: a create, restore or exec that failed after the clone.
pub fn kill_and_reap(pid: i32) {
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// Once the parent may go away: keep running when it does.
pub fn child_detach() {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_longer_than_a_packet_arrive_whole() {
        let (a, b) = Channel::pair().unwrap();
        let big: Vec<u8> = (0..3 * MAX_PACKET + 17).map(|i| (i % 251) as u8).collect();
        let sent = big.clone();
        let sender = std::thread::spawn(move || {
            a.send(msg::GO, &sent).unwrap();
            a.send(msg::READY, &[]).unwrap();
            a.send(msg::ERROR, b"short").unwrap();
        });
        assert_eq!(b.recv().unwrap(), Some((msg::GO, big)));
        assert_eq!(b.recv().unwrap(), Some((msg::READY, Vec::new())));
        assert_eq!(b.recv().unwrap(), Some((msg::ERROR, b"short".to_vec())));
        sender.join().unwrap();
        assert_eq!(b.recv().unwrap(), None);
    }
}
