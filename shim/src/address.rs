//! Where a shim serves: the task socket of a group of containers, named by containerd's
//! scheme so that containerd and `shim start` find the same one.

use std::fs;
use std::path::{Path, PathBuf};

use crate::sha256::sha256_hex;

/// containerd's default grpc address; shims of that containerd live in /run/containerd/s.
const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";
/// sun_path holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// CRI marks every container of a pod with its sandbox's id: they share one shim.
const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";

/// Which shim serves container `id` of `bundle`: its sandbox's (the annotation in
/// config.json), else its own.
pub fn group_id(bundle: &Path, id: &str) -> String {
    let sandbox = fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|spec| {
            spec["annotations"][SANDBOX_ID_ANNOTATION]
                .as_str()
                .map(str::to_string)
        });
    sandbox
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| id.to_string())
}

/// The socket path for (containerd address, namespace, id): containerd's scheme, the
/// sha256 of `<address>/<ns>/<id>` in hex. A private containerd gets its shims' sockets
/// in `s/` beside its own socket, shortening the name if the path would not fit.
pub fn socket_path(address: &str, namespace: &str, id: &str) -> PathBuf {
    let digest = sha256_hex(format!("{address}/{namespace}/{id}").as_bytes());
    let address_dir = Path::new(address)
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    let dir = match address_dir {
        Some(d) if address != DEFAULT_ADDRESS => d.join("s"),
        _ => PathBuf::from("/run/containerd/s"),
    };
    let room = MAX_SOCKET_PATH.saturating_sub(dir.as_os_str().len() + 1);
    dir.join(&digest[..room.clamp(16, 64)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_containerd_uses_run_containerd_s() {
        let p = socket_path(DEFAULT_ADDRESS, "default", "c1");
        let want = sha256_hex(b"/run/containerd/containerd.sock/default/c1");
        assert_eq!(p, Path::new("/run/containerd/s").join(want));
    }

    #[test]
    fn private_containerd_socket_fits_sun_path() {
        let long = format!("/tmp/{}/containerd.sock", "x".repeat(60));
        let p = socket_path(&long, "ns", "id");
        assert!(p.starts_with(format!("/tmp/{}/s", "x".repeat(60))));
        assert!(p.as_os_str().len() <= MAX_SOCKET_PATH);
        let short = socket_path("/tmp/t/containerd.sock", "ns", "id");
        assert_eq!(short.file_name().unwrap().len(), 64);
    }
}
