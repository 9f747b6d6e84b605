//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient
//! scope unit that systemd makes (StartTransientUnit over D-Bus) with the init in it,
//! `Delegate=yes`, and the resource properties systemd understands; then, as runc does, the
//! cgroupfs backend writes into the delegated directory what systemd cannot express.
//! `linux.cgroupsPath` is runc's `slice:prefix:name`: the unit is `prefix-name.scope` in
//! `slice` (`system.slice` when empty); an empty path is `system.slice:runrs:<id>`.

mod dbus;
pub mod properties;

use anyhow::{bail, Result};
use std::path::Path;

pub use dbus::Systemd;

/// A container's scope unit: its name and the slice it lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub slice: String,
    pub name: String,
}

const DEFAULT_SLICE: &str = "system.slice";

impl Unit {
    /// runc's `slice:prefix:name`; anything else is refused with runc's words.
    pub fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Unit> {
        let path = cgroups_path.unwrap_or("");
        let (slice, prefix, name) = if path.is_empty() {
            ("", "runrs", id)
        } else {
            let parts: Vec<&str> = path.split(':').collect();
            let [slice, prefix, name] = parts[..] else {
                bail!(
                    "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {path:?} instead"
                );
            };
            (slice, prefix, name)
        };
        if name.is_empty() || name.contains('/') {
            bail!("cgroupsPath {path:?}: the unit name {name:?} must be non-empty and have no '/'");
        }
        if name.ends_with(".slice") {
            bail!("cgroupsPath {path:?}: a slice as the container's own unit is not supported; name a scope");
        }
        let slice = if slice.is_empty() {
            DEFAULT_SLICE
        } else {
            slice
        };
        expand_slice(slice)?;
        let name = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        Ok(Unit {
            slice: slice.to_string(),
            name,
        })
    }

    /// The unit's cgroup, from the hierarchy root: `/system.slice/runrs-ID.scope`.
    pub fn cgroup_path(&self) -> String {
        let slice = expand_slice(&self.slice).unwrap_or_default();
        format!("{}/{}", slice.trim_end_matches('/'), self.name)
    }
}

/// Where systemd puts a slice: `a-b-c.slice` is `/a.slice/a-b.slice/a-b-c.slice`, `-.slice`
/// is the root. Refuses what systemd would refuse.
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad = |why: &str| anyhow::anyhow!("invalid slice name {slice:?}: {why}");
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(bad("a slice name ends in .slice"));
    };
    if slice.contains('/') {
        return Err(bad("it contains '/'"));
    }
    if stem == "-" {
        return Ok("/".to_string());
    }
    if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(bad("empty, or a leading, trailing or double '-'"));
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Ok(path)
}

/// `--systemd-cgroup` needs systemd as the init system (sd_booted: /run/systemd/system).
pub fn check_booted() -> Result<()> {
    if !Path::new("/run/systemd/system").is_dir() {
        bail!("systemd not running on this host, can't use systemd as cgroups manager (no /run/systemd/system): drop --systemd-cgroup to use cgroupfs");
    }
    Ok(())
}

/// Stop the unit and leave nothing failed or inactive behind (`delete`, an aborted create).
/// A unit that is already gone (its last process exited) is fine.
pub fn stop(unit: &str) -> Result<()> {
    Systemd::connect()?.stop(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_cgroups_path_forms() {
        let u = Unit::parse(Some("system.slice:docker:abc"), "abc").unwrap();
        assert_eq!(u.name, "docker-abc.scope");
        assert_eq!(u.cgroup_path(), "/system.slice/docker-abc.scope");
        let u = Unit::parse(Some("kubepods-burstable-pod12.slice:cri-containerd:x"), "x").unwrap();
        assert_eq!(
            u.cgroup_path(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-containerd-x.scope"
        );
        let u = Unit::parse(Some(":runrs:x"), "x").unwrap();
        assert_eq!(u.slice, "system.slice");
        let u = Unit::parse(None, "web").unwrap();
        assert_eq!(u.name, "runrs-web.scope");
        assert_eq!(
            Unit::parse(Some("-.slice::x"), "x").unwrap().cgroup_path(),
            "/x.scope"
        );
    }

    #[test]
    fn malformed_paths_are_refused() {
        for p in [
            "a:b",
            "/abs/path",
            "slice.notslice:x:y",
            "a--b.slice:x:y",
            "-a.slice:x:y",
            "a.slice:x:",
        ] {
            assert!(Unit::parse(Some(p), "id").is_err(), "{p} accepted");
        }
        let e = Unit::parse(Some("a:b"), "id").unwrap_err().to_string();
        assert!(e.contains("slice:prefix:name"), "{e}");
    }
}
