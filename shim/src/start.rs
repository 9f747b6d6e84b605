//! `shim start`: bind the task socket, spawn the detached server on it, print the address.

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::address::{group_id, socket_path};
use crate::flags::Flags;

pub fn start(flags: &Flags) -> Result<(), String> {
    let bundle = std::env::current_dir().map_err(|e| format!("cwd (the bundle): {e}"))?;
    let group = group_id(&bundle, &flags.id);
    let path = socket_path(&flags.address, &flags.namespace, &group);
    let address = format!("unix://{}", path.display());

    let listener = match bind(&path)? {
        Some(l) => l,
        None => {
            // A server already serves this group: the sandbox's shim (or containerd
            // retried `start`); it will get this container's Create.
            write_address(&bundle, &address)?;
            print!("{}", answer(&address, max_shim_version()));
            return Ok(());
        }
    };

    let exe = std::env::current_exe().map_err(|e| format!("finding own binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "-namespace",
        &flags.namespace,
        "-id",
        &flags.id,
        "-address",
        &flags.address,
    ]);
    if !flags.publish_binary.is_empty() {
        cmd.args(["-publish-binary", &flags.publish_binary]);
    }
    if flags.debug {
        cmd.arg("-debug");
    }
    cmd.current_dir(&bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let fd = listener.as_raw_fd();
    // SAFETY: the closure only calls async-signal-safe functions (setsid, dup2, fcntl)
    // on file descriptors that are valid in the forked child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if fd == 3 {
                // dup2 onto itself keeps FD_CLOEXEC: clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| {
        let _ = fs::remove_file(&path);
        format!("spawning the shim server: {e}")
    })?;
    write_address(&bundle, &address)?;
    print!("{}", answer(&address, max_shim_version()));
    std::io::stdout().flush().map_err(|e| e.to_string())
}

/// The highest shim protocol version the calling containerd takes: 1.7 and later say so in
/// `MAX_SHIM_VERSION`; 1.6 sets nothing.
fn max_shim_version() -> Option<u32> {
    std::env::var("MAX_SHIM_VERSION").ok()?.trim().parse().ok()
}

/// What `start` prints: the bootstrap parameters (version 2: the Task API v2, over ttrpc)
/// for a containerd that reads them, the bare address for one that does not (1.6).
fn answer(address: &str, max_version: Option<u32>) -> String {
    match max_version {
        Some(v) if v >= 2 => serde_json::json!({
            "version": 2,
            "address": address,
            "protocol": "ttrpc",
        })
        .to_string(),
        _ => address.to_string(),
    }
}

/// Binds the socket; `None` when a live server already answers on it.
fn bind(path: &Path) -> Result<Option<UnixListener>, String> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(dir)
            .map_err(|e| format!("creating socket dir {}: {e}", dir.display()))?;
    }
    match UnixListener::bind(path) {
        Ok(l) => only_owner(path).map(|()| Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Ok(None);
            }
            // Stale socket from a shim that died: replace it.
            fs::remove_file(path).map_err(|e| format!("removing stale {}: {e}", path.display()))?;
            let l =
                UnixListener::bind(path).map_err(|e| format!("binding {}: {e}", path.display()))?;
            only_owner(path).map(|()| Some(l))
        }
        Err(e) => Err(format!("binding {}: {e}", path.display())),
    }
}

/// Mode 0600: only root (the shim's user) may connect; the server checks the peer's uid too.
fn only_owner(socket: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(socket, fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", socket.display()))
}

fn write_address(bundle: &Path, address: &str) -> Result<(), String> {
    let tmp = bundle.join(".address.tmp");
    fs::write(&tmp, address).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    fs::rename(&tmp, bundle.join("address")).map_err(|e| format!("writing address: {e}"))
}

#[cfg(test)]
mod tests {
    use super::answer;

    #[test]
    fn containerd_16_gets_the_address_and_later_ones_bootstrap_parameters() {
        assert_eq!(answer("unix:///s", None), "unix:///s");
        let json: serde_json::Value = serde_json::from_str(&answer("unix:///s", Some(3))).unwrap();
        assert_eq!(json["version"], 2);
        assert_eq!(json["address"], "unix:///s");
        assert_eq!(json["protocol"], "ttrpc");
    }
}
