//! What CRIU is told about a container's mounts and namespaces, as runc tells it: bind
//! mounts from the host and device nodes are external mounts (named by their destination at
//! the dump, mapped back to their host source at the restore), masked files are `/dev/null`
//! binds, and network/pid namespaces joined by path are external namespaces.

use super::rpc::{CriuOpts, ExtMountMap, InheritFd, JoinNamespace};
use crate::cgroups::V1Dir;
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// The device nodes every container gets (runc's AllowedDevices with a path).
const DEFAULT_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/random",
    "/dev/urandom",
];

fn ext_mnt(key: &str, val: &str) -> ExtMountMap {
    let mut m = ExtMountMap::new();
    m.set_key(key.into());
    m.set_val(val.into());
    m
}

/// A destination as CRIU sees it inside the root: absolute, `.`/`..` resolved lexically.
fn clean(dest: &Path) -> String {
    let mut out = PathBuf::from("/");
    for c in dest.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.to_string_lossy().into_owned()
}

/// `type: bind` or a `bind`/`rbind` option (runc's Device "bind").
pub fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_ref()
            .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"))
}

/// Device node paths: the defaults and `linux.devices`.
fn device_paths(spec: &Spec) -> Vec<String> {
    let mut paths: Vec<String> = DEFAULT_DEVICES.iter().map(|s| s.to_string()).collect();
    let devices = spec.linux().as_ref().and_then(|l| l.devices().as_ref());
    for d in devices.into_iter().flatten() {
        let p = clean(d.path());
        if !paths.contains(&p) {
            paths.push(p);
        }
    }
    paths
}

fn mounts(spec: &Spec) -> &[Mount] {
    spec.mounts().as_deref().unwrap_or_default()
}

/// The dump's external mounts: binds and devices by their destination, masked files (those
/// that exist in the running container, `pid`'s root) as `/dev/null`.
pub fn dump_ext_mounts(opts: &mut CriuOpts, spec: &Spec, pid: i32) {
    for m in mounts(spec).iter().filter(|m| is_bind(m)) {
        let d = clean(m.destination());
        opts.ext_mnt.push(ext_mnt(&d, &d));
    }
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref());
    for p in masked.into_iter().flatten() {
        let inside = format!("/proc/{pid}/root{}", clean(Path::new(p)));
        if std::fs::metadata(&inside).is_ok_and(|m| !m.is_dir()) {
            opts.ext_mnt.push(ext_mnt(p, "/dev/null"));
        }
    }
    for d in device_paths(spec) {
        opts.ext_mnt.push(ext_mnt(&d, &d));
    }
}

/// The restore's map back: each bind's destination to its host source (relative sources are
/// relative to the bundle), `/dev/null` for masked files, devices to the host's nodes.
pub fn restore_ext_mounts(opts: &mut CriuOpts, spec: &Spec, bundle: &Path) {
    for m in mounts(spec).iter().filter(|m| is_bind(m)) {
        let Some(src) = m.source().as_ref() else {
            continue;
        };
        let src = if src.is_absolute() {
            src.clone()
        } else {
            bundle.join(src)
        };
        let d = clean(m.destination());
        opts.ext_mnt.push(ext_mnt(&d, &src.to_string_lossy()));
    }
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref());
    if masked.is_some_and(|m| !m.is_empty()) {
        opts.ext_mnt.push(ext_mnt("/dev/null", "/dev/null"));
    }
    for d in device_paths(spec) {
        opts.ext_mnt.push(ext_mnt(&d, &d));
    }
}

/// cgroup v1 without a cgroup namespace: each hierarchy of a `type: "cgroup"` mount is a bind
/// of the container's cgroup on the host (`rootfs/cgroup_v1.rs`), a slave of the host's mount
/// that CRIU cannot dump ("has unreachable sharing"). As runc does, they are external mounts:
/// each destination with its hierarchy in `v1` (names, and at the restore the directories).
fn cgroup_binds<'a>(spec: &Spec, v1: &'a [V1Dir]) -> Vec<(String, &'a V1Dir)> {
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    if namespaces.is_some_and(|n| n.iter().any(|ns| ns.typ() == LinuxNamespaceType::Cgroup)) {
        return Vec::new(); // new cgroup mounts, which CRIU dumps itself
    }
    let cgroup_mounts = mounts(spec)
        .iter()
        .filter(|m| m.typ().as_deref() == Some("cgroup"));
    cgroup_mounts
        .flat_map(|m| {
            v1.iter()
                .map(move |h| (clean(&m.destination().join(&h.name)), h))
        })
        .collect()
}

/// The dump's side of [`cgroup_binds`]: each by its destination (`v1` gives the names).
pub fn dump_cgroup_binds(opts: &mut CriuOpts, spec: &Spec, v1: &[V1Dir]) {
    for (dest, _) in cgroup_binds(spec, v1) {
        opts.ext_mnt.push(ext_mnt(&dest, &dest));
    }
}

/// The restore's side of [`cgroup_binds`]: each destination to the restored container's own
/// directory of that hierarchy.
pub fn restore_cgroup_binds(opts: &mut CriuOpts, spec: &Spec, v1: &[V1Dir]) {
    for (dest, h) in cgroup_binds(spec, v1) {
        opts.ext_mnt.push(ext_mnt(&dest, &h.dir.to_string_lossy()));
    }
}

/// runc's key for an external namespace: `extRoot<Name>NS`.
fn ns_key(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Network => "extRootNetNS",
        _ => "extRootPidNS",
    }
}

fn ns_path(spec: &Spec, t: LinuxNamespaceType) -> Option<PathBuf> {
    let nss = spec.linux().as_ref()?.namespaces().as_ref()?;
    nss.iter().find(|n| n.typ() == t)?.path().clone()
}

/// Network and pid namespaces joined by path are external at the dump: CRIU leaves them
/// alone and expects them back at the restore (`net[<inode>]:extRootNetNS`).
pub fn dump_external_namespaces(opts: &mut CriuOpts, spec: &Spec) -> Result<()> {
    for t in [LinuxNamespaceType::Network, LinuxNamespaceType::Pid] {
        let Some(path) = ns_path(spec, t) else {
            continue;
        };
        let ino = std::fs::metadata(&path)
            .with_context(|| format!("stat {}", path.display()))?
            .ino();
        let name = crate::namespaces::proc_name(t);
        opts.external.push(format!("{name}[{ino}]:{}", ns_key(t)));
    }
    Ok(())
}

/// At the restore: external namespaces handed to CRIU as inherited fds (numbered from 4,
/// after stdio and the RPC socket), other namespaces with a path joined (`join_ns`).
pub fn restore_namespaces(opts: &mut CriuOpts, spec: &Spec) -> Result<Vec<OwnedFd>> {
    let mut fds = Vec::new();
    let nss = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    for ns in nss.into_iter().flatten() {
        let Some(path) = ns.path() else {
            continue;
        };
        match ns.typ() {
            t @ (LinuxNamespaceType::Network | LinuxNamespaceType::Pid) => {
                let f = std::fs::File::open(path).with_context(|| {
                    format!(
                        "Requested network namespace {} does not exist",
                        path.display()
                    )
                })?;
                let mut i = InheritFd::new();
                i.set_key(ns_key(t).into());
                i.set_fd(4 + fds.len() as i32);
                opts.inherit_fd.push(i);
                fds.push(f.into());
            }
            LinuxNamespaceType::Cgroup => {
                bail!("Do not know how to handle namespace cgroup")
            }
            t => {
                let mut j = JoinNamespace::new();
                j.set_ns(crate::namespaces::proc_name(t).into());
                j.set_ns_file(path.to_string_lossy().into_owned());
                opts.join_ns.push(j);
            }
        }
    }
    Ok(fds)
}

/// The mount points of the container's mounts in its rootfs, made as create makes them
/// (a restore may use a fresh copy of the bundle); none under a tmpfs, whose content CRIU
/// restores itself. Symlinks in the rootfs are not followed out of it.
pub fn make_mount_points(spec: &Spec, rootfs: &Path) -> Result<()> {
    let tmpfs: Vec<String> = mounts(spec)
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| clean(m.destination()))
        .collect();
    for m in mounts(spec) {
        let dest = clean(m.destination());
        let under_tmpfs = tmpfs.iter().any(|t| dest.starts_with(&format!("{t}/")));
        if under_tmpfs || m.typ().as_deref() == Some("cgroup") || dest == "/" {
            continue;
        }
        let file = is_bind(m)
            && m.source()
                .as_ref()
                .is_some_and(|s| std::fs::metadata(s).is_ok_and(|md| !md.is_dir()));
        make_inside(rootfs, &dest, file)
            .with_context(|| format!("create criu restore mount for {dest} mount"))?;
    }
    Ok(())
}

/// mkdir -p (and touch for a file) of `dest` under `rootfs`, refusing symlinks on the way.
fn make_inside(rootfs: &Path, dest: &str, file: bool) -> Result<()> {
    let mut cur = rootfs.to_path_buf();
    let parts: Vec<&str> = dest.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        cur.push(part);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                bail!("{} is a symlink", cur.display())
            }
            Ok(_) => {}
            Err(_) if file && i + 1 == parts.len() => {
                std::fs::File::create(&cur)?;
            }
            Err(_) => std::fs::create_dir(&cur)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_cleaned_lexically() {
        assert_eq!(clean(Path::new("/a/./b/../c")), "/a/c");
        assert_eq!(clean(Path::new("data")), "/data");
        assert_eq!(clean(Path::new("/../..")), "/");
    }

    #[test]
    fn v1_cgroup_binds_are_external_without_a_cgroup_namespace() {
        let spec = |namespaces: serde_json::Value| -> Spec {
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2",
                "root": {"path": "rootfs"},
                "mounts": [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}],
                "linux": {"namespaces": namespaces}
            }))
            .unwrap()
        };
        let v1 = [
            ("memory", "/sys/fs/cgroup/memory/c1"),
            ("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/c1"),
        ]
        .map(|(name, dir)| V1Dir {
            name: name.into(),
            controllers: name.into(),
            dir: dir.into(),
        });
        let pairs = |opts: &CriuOpts| -> Vec<(String, String)> {
            (opts.ext_mnt.iter())
                .map(|m| (m.key().to_string(), m.val().to_string()))
                .collect()
        };
        let plain = spec(serde_json::json!([{"type": "mount"}]));
        let mut dump = CriuOpts::new();
        dump_cgroup_binds(&mut dump, &plain, &v1);
        let mut restore = CriuOpts::new();
        restore_cgroup_binds(&mut restore, &plain, &v1);
        let own = |d: &str| (d.to_string(), d.to_string());
        assert_eq!(
            pairs(&dump),
            [
                own("/sys/fs/cgroup/memory"),
                own("/sys/fs/cgroup/cpu,cpuacct")
            ]
        );
        assert_eq!(
            pairs(&restore),
            [
                (
                    "/sys/fs/cgroup/memory".into(),
                    "/sys/fs/cgroup/memory/c1".into()
                ),
                (
                    "/sys/fs/cgroup/cpu,cpuacct".into(),
                    "/sys/fs/cgroup/cpu,cpuacct/c1".into()
                )
            ]
        );
        // With a cgroup namespace they are new cgroup mounts, which CRIU dumps itself.
        let cgroupns = spec(serde_json::json!([{"type": "mount"}, {"type": "cgroup"}]));
        let mut none = CriuOpts::new();
        dump_cgroup_binds(&mut none, &cgroupns, &v1);
        restore_cgroup_binds(&mut none, &cgroupns, &v1);
        assert!(none.ext_mnt.is_empty());
    }

    #[test]
    fn binds_are_external_both_ways() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/data", "source": "/srv/data", "options": ["rbind"]},
                {"destination": "/rel", "type": "bind", "source": "vol"},
                {"destination": "/proc", "type": "proc", "source": "proc"}
            ],
            "linux": {"maskedPaths": ["/proc/kcore"]}
        }))
        .unwrap();
        let mut opts = CriuOpts::new();
        restore_ext_mounts(&mut opts, &spec, Path::new("/b"));
        let pairs: Vec<(&str, &str)> = opts.ext_mnt.iter().map(|m| (m.key(), m.val())).collect();
        assert_eq!(
            &pairs[..3],
            &[
                ("/data", "/srv/data"),
                ("/rel", "/b/vol"),
                ("/dev/null", "/dev/null")
            ]
        );
        assert!(pairs.contains(&("/dev/urandom", "/dev/urandom")));
    }
}
