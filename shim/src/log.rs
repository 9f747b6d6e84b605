//! The shim's log: its stderr, which the server sends to the bundle's `log` fifo, where
//! containerd reads it.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Best-effort log line to containerd's shim log (the bundle's `log` fifo).
pub fn log(msg: &str) {
    let msg = msg.replace('"', "'");
    let _ = writeln!(
        std::io::stderr(),
        "level=info msg=\"{msg}\" runtime=io.containerd.runrs.v2"
    );
}

/// The shim's stderr goes to the bundle's `log` fifo, which containerd reads, without
/// ever blocking: if containerd is away the lines are dropped.
pub fn redirect_stderr_to_log(bundle: &Path) {
    let Ok(f) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_nonblock()
        .open(bundle.join("log"))
    else {
        return;
    };
    // SAFETY: dup2 onto fd 2 with a valid open fd; `f` is closed after, fd 2 stays.
    unsafe { libc::dup2(f.as_raw_fd(), 2) };
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}
