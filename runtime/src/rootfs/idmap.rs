//! Idmapped bind mounts (`mounts[].uidMappings`/`gidMappings`, the `idmap` and `ridmap`
//! options), made by the runtime before the clone: the source is cloned as a detached tree
//! (`open_tree`), given a user namespace holding the mappings (`mount_setattr` with
//! `MOUNT_ATTR_IDMAP`, which the kernel allows only on a detached mount), and the init
//! attaches it like any bind source opened early. A file owned on disk by `hostID` shows as
//! `containerID` through the mount.

use super::options::MountOptions;
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// How one entry is idmapped: with mappings of its own (or the container's), or with the
/// user namespace the container joins.
#[derive(Debug, PartialEq)]
pub(crate) enum Idmap {
    Maps {
        uid: Vec<LinuxIdMapping>,
        gid: Vec<LinuxIdMapping>,
        recursive: bool,
    },
    UsernsPath {
        path: std::path::PathBuf,
        recursive: bool,
    },
}

/// Whether `m` is idmapped, and how; errors in runc's words for what cannot be.
pub(crate) fn of_mount(spec: &Spec, m: &Mount) -> Result<Option<Idmap>> {
    let options = m.options().as_deref().unwrap_or(&[]);
    let parsed = MountOptions::parse(options);
    let own_maps = m.uid_mappings().is_some() || m.gid_mappings().is_some();
    if !parsed.idmap && !own_maps {
        return Ok(None);
    }
    let invalid = |why: &str| anyhow::anyhow!("invalid mount {}: {why}", m.destination().display());
    let bind = parsed.is_bind() || m.typ().as_deref() == Some("bind");
    if !bind {
        return Err(invalid(
            "id-mapped mounts are only supported for bind-mounts",
        ));
    }
    let recursive = options.iter().any(|o| o == "ridmap");
    let linux = spec.linux().as_ref();
    if !own_maps {
        // `idmap`/`ridmap` alone: the container's user namespace (runc's reading).
        let userns = linux
            .and_then(|l| l.namespaces().as_ref())
            .and_then(|n| n.iter().find(|n| n.typ() == LinuxNamespaceType::User));
        if let Some(path) = userns.and_then(|n| n.path().clone()) {
            return Ok(Some(Idmap::UsernsPath { path, recursive }));
        }
        if userns.is_some() {
            let uid = linux
                .and_then(|l| l.uid_mappings().clone())
                .unwrap_or_default();
            let gid = linux
                .and_then(|l| l.gid_mappings().clone())
                .unwrap_or_default();
            return Ok(Some(Idmap::Maps {
                uid,
                gid,
                recursive,
            }));
        }
    }
    let uid = m.uid_mappings().clone().unwrap_or_default();
    let gid = m.gid_mappings().clone().unwrap_or_default();
    if uid.is_empty() || gid.is_empty() {
        return Err(invalid(
            "id-mapped mounts must have both uid and gid mappings specified",
        ));
    }
    Ok(Some(Idmap::Maps {
        uid,
        gid,
        recursive,
    }))
}

/// Every idmapped entry of `spec.mounts`, checked (for `spec::validate`).
pub fn check(spec: &Spec) -> Result<()> {
    for m in spec.mounts().iter().flatten() {
        of_mount(spec, m)?;
    }
    Ok(())
}

/// A rootless container has no idmapped mounts: the detached copy of a host mount and its
/// mount_setattr need privilege over the host's mount namespace. Refused before anything is
/// made, in runc 1.3's words.
pub fn check_rootless(spec: &Spec, rootless: bool) -> Result<()> {
    if !rootless {
        return Ok(());
    }
    for m in spec.mounts().iter().flatten() {
        if of_mount(spec, m)?.is_some() {
            anyhow::bail!(
                "invalid mount {}: id-mapped mounts are not supported for rootless containers",
                m.destination().display()
            );
        }
    }
    Ok(())
}

/// User namespaces made for mappings, one per distinct set, kept until the trees are made.
#[derive(Default)]
pub(crate) struct Namespaces {
    made: HashMap<String, OwnedFd>,
}

impl Namespaces {
    /// The idmapped detached tree of bind `source` for `m`.
    pub fn tree(&mut self, source: &Path, m: &Mount, idmap: &Idmap) -> Result<OwnedFd> {
        let recursive = match idmap {
            Idmap::Maps { recursive, .. } | Idmap::UsernsPath { recursive, .. } => *recursive,
        };
        let userns = match idmap {
            Idmap::Maps { uid, gid, .. } => self.with_maps(uid, gid).with_context(|| {
                format!(
                    "idmapped mount of {} on {}",
                    source.display(),
                    m.destination().display()
                )
            })?,
            Idmap::UsernsPath { path, .. } => OwnedFd::from(
                std::fs::File::open(path)
                    .with_context(|| format!("open user namespace {}", path.display()))?,
            ),
        };
        let rbind = m.options().iter().flatten().any(|o| o == "rbind");
        let tree = super::mounts::clone_tree_at(libc::AT_FDCWD, source, rbind || recursive)
            .with_context(|| {
                format!(
                    "open bind source {} for {}",
                    source.display(),
                    m.destination().display()
                )
            })?;
        set_idmap(&tree, &userns, recursive).with_context(|| {
            format!(
                "idmapped mount of {} on {} (the filesystem may not support idmapped mounts)",
                source.display(),
                m.destination().display()
            )
        })?;
        Ok(tree)
    }

    fn with_maps(&mut self, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
        let (uid_map, gid_map) = (
            crate::namespaces::map_text(uid),
            crate::namespaces::map_text(gid),
        );
        let key = format!("{uid_map}|{gid_map}");
        if let Some(fd) = self.made.get(&key) {
            return fd.try_clone().context("dup user namespace fd");
        }
        let fd = userns_with_maps(&uid_map, &gid_map)?;
        let copy = fd.try_clone().context("dup user namespace fd")?;
        self.made.insert(key, fd);
        Ok(copy)
    }
}

/// A user namespace with these maps: a child unshares one and waits while we write its maps
/// and open it, then goes away (the fd keeps the namespace).
fn userns_with_maps(uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe().context("pipe")?;
    let (done_r, done_w) = nix::unistd::pipe().context("pipe")?;
    // SAFETY: the runtime is single-threaded; the child only makes syscalls and _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork for an idmap user namespace");
    }
    if pid == 0 {
        drop((ready_r, done_w));
        // SAFETY: plain syscalls on fds we hold; _exit leaves without the parent's state.
        unsafe {
            let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
            libc::write(ready_w.as_raw_fd(), [u8::from(ok)].as_ptr().cast(), 1);
            let mut b = 0u8;
            libc::read(done_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop((ready_w, done_r));
    let result = (|| -> Result<OwnedFd> {
        let mut b = [0u8; 1];
        let n = nix::unistd::read(ready_r.as_raw_fd(), &mut b).context("wait for the child")?;
        if n != 1 || b[0] != 1 {
            bail!("unshare a user namespace for an idmapped mount");
        }
        std::fs::write(format!("/proc/{pid}/uid_map"), uid_map)
            .with_context(|| format!("write uid_map {uid_map:?} of an idmapped mount"))?;
        std::fs::write(format!("/proc/{pid}/gid_map"), gid_map)
            .with_context(|| format!("write gid_map {gid_map:?} of an idmapped mount"))?;
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .context("open the idmap user namespace")?;
        Ok(OwnedFd::from(ns))
    })();
    drop(done_w);
    // SAFETY: reaping the child we forked.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    result
}

/// mount_setattr(2) with MOUNT_ATTR_IDMAP on a detached tree.
fn set_idmap(tree: &OwnedFd, userns: &OwnedFd, recursive: bool) -> Result<()> {
    let attr = super::mounts::MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    super::mounts::mount_setattr(tree.as_fd(), &attr, recursive)
        .context("mount_setattr MOUNT_ATTR_IDMAP")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = serde_json::to_value(Spec::default()).unwrap();
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn first(spec: &Spec) -> Result<Option<Idmap>> {
        of_mount(spec, &spec.mounts().as_ref().unwrap()[0])
    }

    #[test]
    fn which_mounts_are_idmapped() {
        let map = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        let s = spec(json!({"mounts": [{"destination": "/m", "source": "/tmp",
            "options": ["bind"], "uidMappings": map, "gidMappings": map}]}));
        assert!(matches!(
            first(&s).unwrap(),
            Some(Idmap::Maps {
                recursive: false,
                ..
            })
        ));
        let s = spec(json!({"mounts": [{"destination": "/m", "source": "/tmp",
            "options": ["rbind", "ridmap"], "uidMappings": map, "gidMappings": map}]}));
        assert!(matches!(
            first(&s).unwrap(),
            Some(Idmap::Maps {
                recursive: true,
                ..
            })
        ));
        let s = spec(json!({"mounts": [{"destination": "/m", "type": "tmpfs",
            "uidMappings": map, "gidMappings": map}]}));
        assert!(format!("{:#}", first(&s).unwrap_err()).contains("only supported for bind-mounts"));
        let s = spec(json!({"mounts": [{"destination": "/m", "source": "/tmp",
            "options": ["bind", "idmap"]}]}));
        assert!(format!("{:#}", first(&s).unwrap_err()).contains("both uid and gid mappings"));
        let s = spec(json!({"mounts": [{"destination": "/m", "source": "/tmp",
            "options": ["bind"]}]}));
        assert_eq!(first(&s).unwrap(), None);
    }
}
