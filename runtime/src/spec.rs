//! Loading and validating a bundle's `config.json`. Every check here runs before anything is
//! created, and each error names the field at fault.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Linux, LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A validated bundle: the spec and the absolute bundle and rootfs paths.
pub struct Bundle {
    pub spec: Spec,
    /// `config.json` as read (less unknown capabilities): what `state.json` keeps.
    pub config: serde_json::Value,
    pub path: PathBuf,
    pub rootfs: PathBuf,
}

/// Load `<bundle>/config.json` and check it, without touching anything. (runc changes into
/// the bundle first, hence its "chdir" wording for a missing one.)
pub fn load(bundle: &Path) -> Result<Bundle> {
    let path = std::fs::canonicalize(bundle).map_err(|e| {
        anyhow::anyhow!("chdir {}: {}", bundle.display(), crate::process::io_msg(&e))
    })?;
    let config = path.join("config.json");
    let raw = {
        let data = match std::fs::read(&config) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("JSON specification file config.json not found")
            }
            Err(e) => bail!("read {}: {e}", config.display()),
        };
        // The bytes go before the spec is made: a huge config is held twice at most.
        raw_config(&data)?
    };
    let (spec, raw) = spec_of(raw)?;
    let rootfs = validate(&spec, &path)?;
    Ok(Bundle {
        spec,
        config: raw,
        path,
        rootfs,
    })
}

/// `config.json`'s bytes as a spec, and the JSON it keeps in `state.json`; nothing is read or
/// checked on the host here (`validate` does that).
pub fn parse_config(data: &[u8]) -> Result<(Spec, serde_json::Value)> {
    spec_of(raw_config(data)?)
}

fn raw_config(data: &[u8]) -> Result<serde_json::Value> {
    serde_json::from_slice(data).map_err(|e| anyhow::anyhow!("invalid config.json: {e}"))
}

/// The spec of a parsed config.json, and the JSON it keeps in `state.json`.
fn spec_of(mut raw: serde_json::Value) -> Result<(Spec, serde_json::Value)> {
    // runc ignores capability names it does not know (with a warning) and names a bad rlimit
    // type; oci-spec would refuse both with a bare parse error.
    let unknown = crate::capabilities::strip_unknown(&mut raw);
    if !unknown.is_empty() {
        crate::logging::warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            unknown.join(" ")
        ));
    }
    crate::rlimits::check_names(&raw)?;
    if let Some(process) = raw.get_mut("process") {
        crate::process::spell_sched_flags_for_oci_spec(process);
    }
    let spec = <Spec as serde::Deserialize>::deserialize(&raw)
        .map_err(|e| anyhow::anyhow!("invalid config.json: {e}"))?;
    Ok((spec, raw))
}

/// Check what runc checks before creating anything; return the absolute rootfs path.
/// `bundle` is canonical (`load` made it so).
pub fn validate(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let rootfs = rootfs_path(spec, bundle)?;
    check_process(spec)?;
    for m in spec.mounts().iter().flatten() {
        if m.destination().as_os_str().is_empty() {
            bail!("mount destination must not be empty");
        }
    }
    let linux = spec.linux().as_ref();
    check_namespaces(spec, linux)?;
    check_without_mount_namespace(spec, linux)?;
    check_user_mappings(linux)?;
    check_sysctls(linux)?;
    check_time_offsets(linux)?;
    crate::process::check_attrs(spec)?;
    check_unsupported(linux)?;
    crate::rootfs::check_idmapped_mounts(spec)?;
    if let Some(process) = spec.process() {
        crate::lsm::check(process, linux.and_then(|l| l.mount_label().as_deref()))?;
    }
    crate::seccomp::check_supported(linux.and_then(|l| l.seccomp().as_ref()))?;
    Ok(rootfs)
}

/// `root.path` in the (canonical) bundle, canonical; it must be a directory.
fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .context("root must be specified in config.json")?;
    if root.path().as_os_str().is_empty() {
        bail!("root.path must not be empty");
    }
    // runc works in the bundle (chdir resolves the bundle's own symlinks), makes the path
    // absolute and clean, and refuses it if resolving symlinks changes it.
    let joined = lexically_clean(&bundle.join(root.path()));
    let rootfs = std::fs::canonicalize(&joined).map_err(|_| {
        anyhow::anyhow!("rootfs ({:?}) does not exist", joined.display().to_string())
    })?;
    if rootfs != joined {
        bail!("invalid rootfs: not an absolute path, or a symlink");
    }
    if !rootfs.is_dir() {
        bail!("rootfs ({}) is not a directory", rootfs.display());
    }
    Ok(rootfs)
}

/// `path` without `.`, `..` and repeated separators, symlinks left alone (Go's
/// `filepath.Clean` of an absolute path).
fn lexically_clean(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn check_process(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .context("process must be specified in config.json")?;
    match process.args() {
        Some(a) if !a.is_empty() => {}
        _ => bail!("args must not be empty"),
    }
    if !process.cwd().is_absolute() {
        bail!("cwd {:?} is not an absolute path", process.cwd());
    }
    Ok(())
}

/// Whether `linux.namespaces` has a namespace of type `t` (new or joined).
fn has_namespace(linux: Option<&Linux>, t: LinuxNamespaceType) -> bool {
    linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
}

/// No namespace type twice; a hostname or domainname only with a UTS namespace.
fn check_namespaces(spec: &Spec, linux: Option<&Linux>) -> Result<()> {
    let mut seen = HashSet::new();
    if let Some(nss) = linux.and_then(|l| l.namespaces().as_ref()) {
        for ns in nss {
            if !seen.insert(ns.typ()) {
                bail!(
                    "duplicate namespace type {:?} in linux.namespaces",
                    ns.typ()
                );
            }
        }
    }
    let uts = has_namespace(linux, LinuxNamespaceType::Uts);
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !uts {
        bail!("unable to set hostname without a private UTS namespace");
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !uts {
        bail!("unable to set domainname without a private UTS namespace");
    }
    Ok(())
}

/// Without a mount namespace the container shares the runtime's mounts: it is only chrooted
/// into its rootfs. What would have to be mounted or made there is refused, rather than
/// mounted into the host's namespace (runc makes the host's `/` rslave and leaves the
/// mounts on the host) or skipped in silence.
fn check_without_mount_namespace(spec: &Spec, linux: Option<&Linux>) -> Result<()> {
    if has_namespace(linux, LinuxNamespaceType::Mount) {
        return Ok(());
    }
    let non_empty = |v: Option<&Vec<String>>| v.is_some_and(|v| !v.is_empty());
    if linux.is_some_and(|l| {
        non_empty(l.masked_paths().as_ref()) || non_empty(l.readonly_paths().as_ref())
    }) {
        bail!("unable to restrict sys entries without a private MNT namespace");
    }
    let what = if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        "mounts"
    } else if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        "root.readonly"
    } else if linux
        .and_then(|l| l.devices().as_ref())
        .is_some_and(|d| !d.is_empty())
    {
        "linux.devices"
    } else {
        return Ok(());
    };
    bail!(
        "{what} need a private mount namespace: without one they would be made in the host's \
         (add {{\"type\": \"mount\"}} to linux.namespaces)"
    )
}

/// A new user namespace needs uid and gid mappings; mappings need a user namespace.
fn check_user_mappings(linux: Option<&Linux>) -> Result<()> {
    if has_namespace(linux, LinuxNamespaceType::User) {
        let l = linux.expect("namespaces come from linux");
        let own_user_ns = l
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
        if own_user_ns && l.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            bail!("user namespaces enabled, but no uid mappings found");
        }
        if own_user_ns && l.gid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            bail!("user namespaces enabled, but no gid mappings found");
        }
    } else if linux.is_some_and(|l| {
        l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
    }) {
        bail!("user namespace mappings specified, but user namespace isn't enabled in the config");
    }
    Ok(())
}

/// Time offsets need a time namespace of the container's own (runc's checks and words).
fn check_time_offsets(linux: Option<&Linux>) -> Result<()> {
    let offsets = linux.and_then(|l| l.time_offsets().as_ref());
    let time_ns = linux
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::Time));
    let Some(ns) = time_ns else {
        if offsets.is_some() {
            bail!(
                "time namespace offsets specified, but time namespace isn't enabled in the config"
            );
        }
        return Ok(());
    };
    if !Path::new("/proc/self/timens_offsets").exists() {
        bail!("time namespaces aren't enabled in the kernel");
    }
    if ns.path().is_some() && offsets.is_some() {
        bail!("time namespace enabled, but both namespace path and time offsets specified -- you may only provide one");
    }
    for clock in offsets.into_iter().flat_map(|o| o.keys()) {
        if clock != "monotonic" && clock != "boottime" {
            bail!("linux.timeOffsets: unknown clock {clock:?} (monotonic or boottime)");
        }
    }
    Ok(())
}

/// What the host cannot do is refused, never ignored.
fn check_unsupported(linux: Option<&Linux>) -> Result<()> {
    let Some(l) = linux else { return Ok(()) };
    if let Some(rdt) = l.intel_rdt() {
        crate::intelrdt::validate(rdt)?;
    }
    Ok(())
}

/// Every sysctl must belong to a namespace the container has of its own.
fn check_sysctls(linux: Option<&Linux>) -> Result<()> {
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        for key in sysctl.keys() {
            let need = sysctl_namespace(key);
            match need {
                Some(t) if has_namespace(linux, t) => {}
                Some(t) => bail!(
                    "sysctl {key:?} is not allowed as it requires a new {} namespace",
                    ns_name(t)
                ),
                None => bail!("sysctl {key:?} is not in a separate kernel namespace"),
            }
        }
    }
    Ok(())
}

/// The namespace a sysctl belongs to, or `None` when it is host-wide.
fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// runc's rule for container ids.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        bail!("container id cannot be empty");
    }
    if id == "." || id == ".." {
        bail!("invalid container ID format");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b))
    {
        bail!("invalid container ID format");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc_rules() {
        for ok in ["a", "web-1", "x.y_z+1"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "a:b"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sysctls_map_to_namespaces() {
        assert_eq!(
            sysctl_namespace("net.ipv4.ip_forward"),
            Some(LinuxNamespaceType::Network)
        );
        assert_eq!(
            sysctl_namespace("fs.mqueue.msg_max"),
            Some(LinuxNamespaceType::Ipc)
        );
        assert_eq!(sysctl_namespace("vm.swappiness"), None);
    }
}
