//! `shim delete`: containerd cleaning up after a shim that is gone.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use runrs_proto::protobuf::Message;
use runrs_proto::shim::DeleteResponse;

use crate::events::timestamp;
use crate::flags::Flags;
use crate::log::log;
use crate::rootfs;
use crate::runtime::{read_pid, Runtime, RuntimeConfig};

/// `shim delete`: the server is gone; force-delete the container, unmount its rootfs and
/// tell containerd (DeleteResponse on stdout) that it was killed.
pub fn delete_after_dead_shim(flags: &Flags) -> Result<(), String> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().map_err(|e| format!("cwd (the bundle): {e}"))?
    } else {
        PathBuf::from(&flags.bundle)
    };
    let config = RuntimeConfig::load(&bundle, &flags.namespace);
    let runtime = Runtime::new(config, &bundle, None);
    if let Err(e) = runtime.call(&["delete", "--force", &flags.id], None) {
        // Gone already is fine: that is the usual case after a clean shutdown.
        if !e.contains("not exist") && !e.contains("not found") {
            log(&format!("delete {}: {e}", flags.id));
        }
    }
    rootfs::unmount_all(&bundle.join("rootfs"))?;
    let mut resp = DeleteResponse::new();
    resp.pid = read_pid(&bundle.join("init.pid")).unwrap_or(0) as u32;
    resp.exit_status = 128 + libc::SIGKILL as u32;
    resp.exited_at = Some(timestamp(SystemTime::now())).into();
    let bytes = resp.write_to_bytes().map_err(|e| e.to_string())?;
    std::io::stdout()
        .write_all(&bytes)
        .map_err(|e| e.to_string())
}
