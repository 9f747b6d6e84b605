//! The console socket: where the runtime sends the pty master of a process with a terminal.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// A listening socket the runtime sends the pty master to (`--console-socket`).
pub struct ConsoleSocket {
    listener: UnixListener,
    dir: PathBuf,
    pub path: PathBuf,
}

impl ConsoleSocket {
    pub fn new() -> Result<ConsoleSocket, String> {
        let dir =
            std::env::temp_dir().join(format!("runrs-pty-{}-{}", std::process::id(), unique()));
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let path = dir.join("pty.sock");
        let listener =
            UnixListener::bind(&path).map_err(|e| format!("binding {}: {e}", path.display()))?;
        Ok(ConsoleSocket {
            listener,
            dir,
            path,
        })
    }

    pub(super) fn receive(&self) -> Result<File, String> {
        self.listener
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let stream = accept_within(&self.listener, Duration::from_secs(10))?;
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_fd().as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("receiving pty master: {e}"))?;
        for cmsg in msg.cmsgs().map_err(|e| e.to_string())? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(&fd) = fds.first() {
                    // SAFETY: SCM_RIGHTS just installed this fd in our table; we own it.
                    return Ok(unsafe { File::from_raw_fd(fd) });
                }
            }
        }
        Err("the runtime sent no pty master on the console socket".into())
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn accept_within(
    l: &UnixListener,
    timeout: Duration,
) -> Result<std::os::unix::net::UnixStream, String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).map_err(|e| e.to_string())?;
                return Ok(s);
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && std::time::Instant::now() < deadline =>
            {
                // Sleep until the runtime connects (or the deadline), not in a polling loop.
                use std::os::fd::AsFd;
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
                let mut fds = [nix::poll::PollFd::new(
                    l.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
            }
            Err(e) => {
                return Err(format!(
                    "waiting for the runtime on the console socket: {e}"
                ))
            }
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
