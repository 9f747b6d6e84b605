//! `type: "cgroup"` on a cgroup v1 (or hybrid) host, the way runc shows it: a tmpfs at the
//! destination with one directory per hierarchy. Without a cgroup namespace each directory is
//! a bind of the container's own cgroup on the host; with one, a new cgroup mount.

use super::mounts::{mount_fd, remount_bind, set_recursive_attrs, Mounter};
use super::options::MountOptions;
use super::resolve::{open_host, owned, Create};
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{mkdirat, Mode};
use nix::unistd::symlinkat;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

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
    // The new tmpfs is empty and only this process sees it yet: its directories are made and
    // opened right in it, without resolving each path from the root again.
    let tmpfs = mounter.resolve(dest, Create::Nothing)?;

    let bind_flags = options.flags - MsFlags::MS_REMOUNT;
    let mut binds = Vec::new();
    for h in &mounter.cgroups.v1 {
        let sub_dest = dest.join(&h.name);
        match mkdirat(
            Some(tmpfs.as_raw_fd()),
            h.name.as_os_str(),
            Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("mkdir {}", sub_dest.display())),
        }
        let target = open_dir(tmpfs.as_fd(), &h.name)
            .with_context(|| format!("open {}", sub_dest.display()))?;
        if mounter.cgroupns {
            let data = if h.controllers.starts_with("name=") {
                format!("none,{}", h.controllers)
            } else {
                h.controllers.clone()
            };
            mount_fd(
                None,
                target.as_fd(),
                Some("cgroup"),
                bind_flags,
                Some(&data),
            )
            .with_context(|| format!("mount cgroup ({data}) on {}", sub_dest.display()))?;
        } else {
            let source =
                open_host(&h.dir).with_context(|| format!("open cgroup {}", h.dir.display()))?;
            mount_fd(
                Some(source.as_fd()),
                target.as_fd(),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .with_context(|| format!("bind mount {} on {}", h.dir.display(), sub_dest.display()))?;
            binds.push(h.name.as_os_str());
        }
        // Co-mounted controllers (`cpu,cpuacct`) get a symlink per controller, as on the host.
        let name = h.name.to_string_lossy();
        if name.contains(',') {
            for controller in name.split(',') {
                match symlinkat(name.as_ref(), Some(tmpfs.as_raw_fd()), controller) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("symlink {}/{controller} -> {name}", dest.display())
                        })
                    }
                }
            }
        }
    }

    // A bind takes its flags (ro, nosuid, ...) only from a remount: one mount_setattr(2) for
    // the tmpfs and every bind at once, else a remount of each.
    let tmpfs_flags = if read_only {
        per_mount | MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    let at_once = MountOptions::remount_as_attrs(bind_flags - MsFlags::MS_BIND - MsFlags::MS_REC)
        .is_some_and(|attrs| set_recursive_attrs(tmpfs.as_fd(), attrs).is_ok());
    if !at_once {
        for name in binds {
            let mounted = open_dir(tmpfs.as_fd(), name)
                .with_context(|| format!("open {}", dest.join(name).display()))?;
            remount_bind(mounted.as_fd(), bind_flags).with_context(|| {
                format!("remount {} ({bind_flags:?})", dest.join(name).display())
            })?;
        }
        if read_only {
            remount_bind(tmpfs.as_fd(), tmpfs_flags)
                .with_context(|| format!("remount {} read-only", dest.display()))?;
        }
    }
    Ok(())
}

/// `O_PATH` of directory `name` in `dir`, never through a symlink.
fn open_dir(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(Some(dir.as_raw_fd()), name, flags, Mode::empty()).map(owned)
}
