//! Terminals: the pty a `terminal: true` process gets, and the console socket protocol
//! (the pty master sent over `SCM_RIGHTS`, as runc does).

use anyhow::Result;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

/// Open a new pty from `/dev/ptmx` of the current mount namespace (inside the container, after
/// `pivot_root`): returns `(master, slave)`. The slave is the container's controlling tty.
pub fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    anyhow::bail!("terminals are not available in this build")
}

/// Make `slave` the calling process's controlling terminal and its stdin/stdout/stderr
/// (`setsid`, `TIOCSCTTY`, `dup2` onto 0, 1, 2).
pub fn set_controlling_tty(_slave: &OwnedFd) -> Result<()> {
    anyhow::bail!("terminals are not available in this build")
}

/// Send `master` over the connected unix socket `socket` with `SCM_RIGHTS`, as runc does
/// (the message data is the pty's name, e.g. `/dev/ptmx`).
pub fn send_master(_socket: RawFd, _master: &OwnedFd) -> Result<()> {
    anyhow::bail!("terminals are not available in this build")
}

/// Connect to the console socket at `path` (the `--console-socket` flag).
pub fn connect_socket(_path: &Path) -> Result<OwnedFd> {
    anyhow::bail!("terminals are not available in this build")
}

/// Receive a pty master sent with `send_master` on the connected socket `socket`.
pub fn recv_master(_socket: RawFd) -> Result<OwnedFd> {
    anyhow::bail!("terminals are not available in this build")
}
