//! The container's filesystem view: mounts in order, propagation, devices, `/dev` symlinks,
//! `pivot_root` (or chroot with `--no-pivot`), masked and read-only paths.
//!
//! Every function here runs in the container's init (the clone child), inside its new mount
//! namespace, single-threaded. Mount destinations are resolved inside the rootfs without
//! following symlinks out of it.

use anyhow::Result;
use oci_spec::runtime::Spec;
use std::path::Path;

/// Before `pivot_root`: set `/` propagation (rslave by default, or `rootfsPropagation`), bind
/// the rootfs onto itself, perform every `mounts` entry in order, create default devices and
/// `linux.devices`, and the `/dev` symlinks. `rootfs` is absolute (on the host).
pub fn prepare(_spec: &Spec, _rootfs: &Path) -> Result<()> {
    anyhow::bail!("rootfs setup is not available in this build")
}

/// `pivot_root` into `rootfs` (or `MS_MOVE` + chroot when `no_pivot`), then `chdir("/")`.
pub fn enter(_rootfs: &Path, _no_pivot: bool) -> Result<()> {
    anyhow::bail!("pivot_root is not available in this build")
}

/// After `pivot_root`: `maskedPaths`, `readonlyPaths`, and `root.readonly` (remount `/` ro).
pub fn finish(_spec: &Spec) -> Result<()> {
    anyhow::bail!("rootfs finishing is not available in this build")
}
