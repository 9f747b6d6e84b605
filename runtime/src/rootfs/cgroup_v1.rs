//! `type: "cgroup"` on a cgroup v1 (or hybrid) host, the way runc shows it: a tmpfs at the
//! destination with one directory per hierarchy. Without a cgroup namespace each directory is
//! a bind of the container's own cgroup on the host; with one, a new cgroup mount.

use super::mountinfo::{read_mountinfo, read_self_cgroup, MountInfo};
use super::mounts::{mount_fd, remount_bind, Mounter};
use super::options::MountOptions;
use super::resolve::Create;
use anyhow::{Context, Result};
use nix::mount::MsFlags;
use nix::unistd::symlinkat;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

pub(crate) fn mount(mounter: &Mounter<'_>, dest: &Path, options: &MountOptions) -> Result<()> {
    let read_only = options.flags.contains(MsFlags::MS_RDONLY);
    let per_mount = options.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);

    let target = mounter.resolve(dest, Create::Dirs)?;
    mount_fd(
        None,
        target.as_fd(),
        Some("tmpfs"),
        per_mount,
        Some("mode=755"),
    )
    .with_context(|| {
        format!(
            "mount tmpfs for cgroup v1 hierarchies on {}",
            dest.display()
        )
    })?;
    drop(target);
    let tmpfs = mounter.resolve(dest, Create::Nothing)?;

    let mountinfo = read_mountinfo()?;
    for membership in read_self_cgroup()? {
        if membership.controllers.is_empty() {
            continue; // the unified (v2) hierarchy of a hybrid host: runc leaves it out too
        }
        let Some(hierarchy) = find_hierarchy(&mountinfo, &membership.controllers) else {
            continue; // a hierarchy the host did not mount
        };
        let Some(name) = hierarchy.mount_point.file_name() else {
            continue;
        };
        let sub_dest = dest.join(name);
        if mounter.cgroupns {
            let data = membership.controllers.clone();
            let data = if data.starts_with("name=") {
                format!("none,{data}")
            } else {
                data
            };
            let target = mounter.resolve(&sub_dest, Create::Dirs)?;
            mount_fd(
                None,
                target.as_fd(),
                Some("cgroup"),
                options.flags,
                Some(&data),
            )
            .with_context(|| format!("mount cgroup ({data}) on {}", sub_dest.display()))?;
        } else {
            let relative = membership
                .path
                .strip_prefix(&hierarchy.root)
                .unwrap_or(&membership.path);
            let relative = relative.strip_prefix("/").unwrap_or(relative);
            let host_dir = hierarchy.mount_point.join(relative);
            let bind = MountOptions {
                flags: options.flags | MsFlags::MS_BIND | MsFlags::MS_REC,
                ..MountOptions::default()
            };
            mounter.bind(&host_dir, &sub_dest, &bind)?;
        }
        // Co-mounted controllers (`cpu,cpuacct`) get a symlink per controller, as on the host.
        let name = name.to_string_lossy();
        if name.contains(',') {
            for controller in name.split(',') {
                match symlinkat(name.as_ref(), Some(tmpfs.as_raw_fd()), controller) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("symlink {}/{controller} -> {name}", dest.display())
                        })
                    }
                }
            }
        }
    }

    if read_only {
        remount_bind(tmpfs.as_fd(), per_mount | MsFlags::MS_RDONLY)
            .with_context(|| format!("remount {} read-only", dest.display()))?;
    }
    Ok(())
}

/// The v1 mount whose super options hold every controller of `controllers`.
fn find_hierarchy<'a>(mountinfo: &'a [MountInfo], controllers: &str) -> Option<&'a MountInfo> {
    mountinfo.iter().find(|m| {
        m.fs_type == "cgroup"
            && controllers
                .split(',')
                .all(|c| m.super_options.split(',').any(|o| o == c))
    })
}

/// The host directory of this process's cgroup in the unified hierarchy, if one is mounted.
pub(crate) fn own_unified_dir() -> Result<Option<PathBuf>> {
    let Some(membership) = read_self_cgroup()?
        .into_iter()
        .find(|m| m.controllers.is_empty())
    else {
        return Ok(None);
    };
    let mountinfo = read_mountinfo()?;
    let Some(mount) = mountinfo.iter().find(|m| m.fs_type == "cgroup2") else {
        return Ok(None);
    };
    let relative = membership
        .path
        .strip_prefix(&mount.root)
        .unwrap_or(&membership.path);
    let relative = relative.strip_prefix("/").unwrap_or(relative);
    Ok(Some(mount.mount_point.join(relative)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(super_options: &str, mount_point: &str) -> MountInfo {
        MountInfo {
            root: PathBuf::from("/"),
            mount_point: PathBuf::from(mount_point),
            optional: String::new(),
            fs_type: "cgroup".into(),
            super_options: super_options.into(),
        }
    }

    #[test]
    fn finds_comounted_hierarchies() {
        let mounts = [
            info("rw,cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct"),
            info("rw,name=systemd", "/sys/fs/cgroup/systemd"),
        ];
        let found = find_hierarchy(&mounts, "cpuacct,cpu").unwrap();
        assert_eq!(found.mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        let found = find_hierarchy(&mounts, "name=systemd").unwrap();
        assert_eq!(found.mount_point, Path::new("/sys/fs/cgroup/systemd"));
        assert!(find_hierarchy(&mounts, "memory").is_none());
    }
}
