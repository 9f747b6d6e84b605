//! Namespaces: which to create with `clone3`, which to join by path, and uid/gid maps.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub fn clone_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80, // CLONE_NEWTIME
    }
}

/// The `/proc/<pid>/ns/` name of a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// How the container's namespaces come about.
#[derive(Default, Debug)]
pub struct Plan {
    /// Namespaces created by the clone itself.
    pub clone_flags: libc::c_int,
    /// Namespaces the child creates with `unshare` after joining (a joined user namespace
    /// must own them; the cgroup namespace must come after the cgroup is joined).
    pub unshare_flags: libc::c_int,
    /// Namespaces joined by path, user first; a pid namespace is joined by the parent.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    pub pid_join: Option<PathBuf>,
    pub new_user: bool,
    pub any_user: bool,
    /// `linux.timeOffsets` as `/proc/PID/timens_offsets` wants them: with offsets the init
    /// makes its time namespace itself (`new_time_ns`), since a clone would enter it at once
    /// and freeze the offsets at zero.
    pub time_offsets: Option<String>,
}

impl Plan {
    /// New namespaces the init may create itself (unshare) right after the clone, while the
    /// runtime makes its cgroups: the clone's own share of the work is then only what must
    /// happen at the clone (pid and time namespaces, which only children enter). Only
    /// without user namespaces, which order everything around their id maps. As in crun,
    /// the init enters its cgroups after it made these namespaces.
    pub fn early_unshare_flags(&self) -> libc::c_int {
        if self.any_user {
            return 0;
        }
        self.clone_flags
            & (libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS)
    }
}

pub fn plan(spec: &Spec) -> Plan {
    let mut p = Plan::default();
    let nss = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let user_joined = nss
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some());
    for ns in &nss {
        let t = ns.typ();
        match ns.path() {
            Some(path) if t == LinuxNamespaceType::Pid => p.pid_join = Some(path.clone()),
            Some(path) => p.join.push((t, path.clone())),
            None => {
                let f = clone_flag(t);
                if t == LinuxNamespaceType::Cgroup || (user_joined && t != LinuxNamespaceType::Pid)
                {
                    p.unshare_flags |= f;
                } else {
                    p.clone_flags |= f;
                }
                if t == LinuxNamespaceType::User {
                    p.new_user = true;
                }
            }
        }
        if t == LinuxNamespaceType::User {
            p.any_user = true;
        }
    }
    p.time_offsets = time_offsets(spec);
    if p.time_offsets.is_some() {
        p.clone_flags &= !clone_flag(LinuxNamespaceType::Time);
        p.unshare_flags &= !clone_flag(LinuxNamespaceType::Time);
    }
    // Join the user namespace first: it owns the others. The mount namespace last but one,
    // so that the other paths still resolve on the host.
    p.join.sort_by_key(|(t, _)| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    p
}

/// The offsets of a new time namespace, one "clock secs nanosecs" line each; `None` when
/// there are none or the time namespace is joined (`spec::validate` refuses that).
fn time_offsets(spec: &Spec) -> Option<String> {
    let linux = spec.linux().as_ref()?;
    let offsets = linux.time_offsets().as_ref()?;
    let own = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none());
    if !own {
        return None;
    }
    let mut clocks: Vec<_> = offsets.iter().collect();
    clocks.sort_by_key(|(clock, _)| clock.as_str());
    Some(
        clocks
            .into_iter()
            .map(|(clock, o)| {
                format!(
                    "{clock} {} {}\n",
                    o.secs().unwrap_or(0),
                    o.nanosecs().unwrap_or(0)
                )
            })
            .collect(),
    )
}

/// A new time namespace with these offsets, and this process in it: unshare (which only
/// children would enter), set the offsets while nothing is in it yet, then join it.
pub fn new_time_ns(offsets: &str) -> Result<()> {
    // SAFETY: unshare with a namespace flag only.
    if unsafe { libc::unshare(clone_flag(LinuxNamespaceType::Time)) } != 0 {
        return Err(std::io::Error::last_os_error()).context("unshare time namespace");
    }
    std::fs::write("/proc/self/timens_offsets", offsets)
        .with_context(|| format!("set linux.timeOffsets ({:?})", offsets.trim_end()))?;
    join(
        LinuxNamespaceType::Time,
        Path::new("/proc/self/ns/time_for_children"),
    )
}

/// `setns` into the namespace at `path`.
pub fn join(t: LinuxNamespaceType, path: &Path) -> Result<()> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("open {} namespace {}", proc_name(t), path.display()))?;
    // SAFETY: setns on an fd we own; the flag restricts the namespace type.
    if unsafe { libc::setns(f.as_raw_fd(), clone_flag(t)) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("join {} namespace {}", proc_name(t), path.display()));
    }
    Ok(())
}

pub fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Write the uid and gid maps of the child `pid` (parent side, before the child goes on).
pub fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        for (kind, maps) in [("uid", linux.uid_mappings()), ("gid", linux.gid_mappings())] {
            if let Some(m) = maps.as_ref().filter(|m| !m.is_empty()) {
                write_id_map_unprivileged(pid, kind, m)?;
            }
        }
        return Ok(());
    }
    if let Some(m) = linux.uid_mappings().as_ref().filter(|m| !m.is_empty()) {
        std::fs::write(format!("/proc/{pid}/uid_map"), map_text(m))
            .context("write uid_map (check linux.uidMappings)")?;
    }
    if let Some(m) = linux.gid_mappings().as_ref().filter(|m| !m.is_empty()) {
        std::fs::write(format!("/proc/{pid}/gid_map"), map_text(m))
            .context("write gid_map (check linux.gidMappings)")?;
    }
    Ok(())
}

/// The maps of the user namespace of `pid`, from an unprivileged parent: a map of the user's
/// own id alone is written directly (the gid one after `setgroups` is denied, as the kernel
/// requires); any other goes through the setuid helper, as runc does.
fn write_id_map_unprivileged(pid: i32, kind: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    // SAFETY: geteuid and getegid have no preconditions.
    let own = unsafe {
        if kind == "uid" {
            libc::geteuid()
        } else {
            libc::getegid()
        }
    };
    let only_own = maps.len() == 1 && maps[0].host_id() == own && maps[0].size() == 1;
    if only_own {
        if kind == "gid" {
            std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                .context("deny setgroups in the user namespace")?;
        }
        let text = map_text(maps);
        return std::fs::write(format!("/proc/{pid}/{kind}_map"), &text)
            .with_context(|| format!("write {kind}_map {:?}", text.trim_end()));
    }
    let helper = format!("new{kind}map");
    let mut cmd = std::process::Command::new(&helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| {
        anyhow::anyhow!(
            "{helper} (to map linux.{kind}Mappings other than your own id): {e}; install uidmap"
        )
    })?;
    if !out.status.success() {
        bail!(
            "{helper} failed (check /etc/sub{kind}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns: &str) -> Spec {
        serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"linux":{{"namespaces":{ns}}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn new_and_joined_namespaces_are_split() {
        let p = plan(&spec(
            r#"[{"type":"pid"},{"type":"mount"},{"type":"network","path":"/run/netns/x"},{"type":"cgroup"}]"#,
        ));
        assert_eq!(p.clone_flags, libc::CLONE_NEWPID | libc::CLONE_NEWNS);
        assert_eq!(p.unshare_flags, libc::CLONE_NEWCGROUP);
        assert_eq!(p.join.len(), 1);
        assert!(!p.any_user);
    }

    #[test]
    fn pid_and_time_stay_with_the_clone_the_rest_may_come_early() {
        let p = plan(&spec(
            r#"[{"type":"pid"},{"type":"mount"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"time"}]"#,
        ));
        let early =
            libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
        assert_eq!(p.early_unshare_flags(), early);
        assert_eq!(
            p.clone_flags & !early,
            libc::CLONE_NEWPID | libc::CLONE_NEWTIME
        );
        // A user namespace orders everything around its id maps: nothing early.
        let p = plan(&spec(
            r#"[{"type":"user"},{"type":"mount"},{"type":"network"}]"#,
        ));
        assert_eq!(p.early_unshare_flags(), 0);
    }

    #[test]
    fn joined_user_namespace_owns_new_ones() {
        let p = plan(&spec(
            r#"[{"type":"mount"},{"type":"user","path":"/proc/1/ns/user"},{"type":"pid"}]"#,
        ));
        assert_eq!(p.clone_flags, libc::CLONE_NEWPID);
        assert_eq!(p.unshare_flags, libc::CLONE_NEWNS);
        assert_eq!(p.join[0].0, LinuxNamespaceType::User);
    }
}
