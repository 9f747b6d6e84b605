//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient
//! scope unit that systemd makes (StartTransientUnit over D-Bus) with the init in it,
//! `Delegate=yes`, and the resource properties systemd understands; then, as runc does, the
//! cgroupfs backend writes into the delegated directory what systemd cannot express.
//! `linux.cgroupsPath` is runc's `slice:prefix:name`: the unit is `prefix-name.scope` in
//! `slice` (`system.slice` when empty); an empty path is `system.slice:runrs:<id>`.
//! Rootless, the unit is the user's own systemd's (`systemd --user`, reached over the user's
//! bus as runc reaches it), in `user.slice` when the path names no slice, and its cgroup is
//! under that manager's (`/user.slice/user-1000.slice/user@1000.service/user.slice/...`).

mod dbus;
pub mod properties;

use anyhow::{bail, Result};
use std::path::Path;

pub use dbus::Systemd;

/// Which systemd a unit belongs to: the system's, or the user's own (rootless).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Manager {
    #[default]
    System,
    User,
}

/// Whether `cgroupsPath` is written in systemd's `slice:prefix:name` form (not a path): the
/// cgroupfs driver refuses it, and a shim that was not told the driver takes it as a request
/// for the systemd one.
pub fn is_systemd_form(cgroups_path: &str) -> bool {
    !cgroups_path.starts_with('/') && cgroups_path.split(':').count() == 3
}

/// A container's scope unit: its name, the slice it lives in and the manager that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub slice: String,
    pub name: String,
    pub manager: Manager,
    /// The manager's own cgroup, which its slices are under: empty for the system's,
    /// `/user.slice/user-1000.slice/user@1000.service` for a user's (set by [`Unit::locate`]).
    pub root: String,
}

impl Unit {
    /// runc's `slice:prefix:name`; anything else is refused with runc's words.
    pub fn parse(cgroups_path: Option<&str>, id: &str, manager: Manager) -> Result<Unit> {
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
        let slice = match (slice, manager) {
            ("", Manager::System) => "system.slice",
            ("", Manager::User) => "user.slice",
            (slice, _) => slice,
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
            manager,
            root: String::new(),
        })
    }

    /// A user's unit: ask its manager where its cgroup is (runc asks for `ControlGroup` too).
    pub fn locate(&mut self, systemd: &Systemd) -> Result<()> {
        if self.manager == Manager::User {
            self.root = systemd.manager_cgroup()?;
        }
        Ok(())
    }

    /// The unit's cgroup, from the hierarchy root: `/system.slice/runrs-ID.scope`.
    pub fn cgroup_path(&self) -> String {
        let slice = expand_slice(&self.slice).unwrap_or_default();
        format!(
            "{}{}/{}",
            self.root.trim_end_matches('/'),
            slice.trim_end_matches('/'),
            self.name
        )
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
pub fn stop(unit: &str, manager: Manager) -> Result<()> {
    Systemd::connect(manager)?.stop(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_cgroups_path_forms() {
        let u = Unit::parse(Some("system.slice:docker:abc"), "abc", Manager::System).unwrap();
        assert_eq!(u.name, "docker-abc.scope");
        assert_eq!(u.cgroup_path(), "/system.slice/docker-abc.scope");
        let u = Unit::parse(
            Some("kubepods-burstable-pod12.slice:cri-containerd:x"),
            "x",
            Manager::System,
        )
        .unwrap();
        assert_eq!(
            u.cgroup_path(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-containerd-x.scope"
        );
        let u = Unit::parse(Some(":runrs:x"), "x", Manager::System).unwrap();
        assert_eq!(u.slice, "system.slice");
        let u = Unit::parse(None, "web", Manager::System).unwrap();
        assert_eq!(u.name, "runrs-web.scope");
        assert_eq!(
            Unit::parse(Some("-.slice::x"), "x", Manager::System)
                .unwrap()
                .cgroup_path(),
            "/x.scope"
        );
    }

    #[test]
    fn a_users_unit_is_under_its_managers_cgroup_in_user_slice() {
        let mut u = Unit::parse(None, "web", Manager::User).unwrap();
        assert_eq!(u.slice, "user.slice");
        u.root = "/user.slice/user-1000.slice/user@1000.service".into();
        assert_eq!(
            u.cgroup_path(),
            "/user.slice/user-1000.slice/user@1000.service/user.slice/runrs-web.scope"
        );
        let mut u = Unit::parse(Some("app.slice:podman:x"), "x", Manager::User).unwrap();
        u.root = "/user.slice/user-1000.slice/user@1000.service/".into();
        assert_eq!(
            u.cgroup_path(),
            "/user.slice/user-1000.slice/user@1000.service/app.slice/podman-x.scope"
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
            assert!(
                Unit::parse(Some(p), "id", Manager::System).is_err(),
                "{p} accepted"
            );
        }
        let e = Unit::parse(Some("a:b"), "id", Manager::System)
            .unwrap_err()
            .to_string();
        assert!(e.contains("slice:prefix:name"), "{e}");
    }
}
