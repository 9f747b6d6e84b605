//! `type: "cgroup"` on a cgroup v1 (or hybrid) host, the way runc shows it: a tmpfs at the
//! destination with one directory per hierarchy. Without a cgroup namespace each directory is
//! a bind of the container's own cgroup on the host; with one, a new cgroup mount.

use super::mounts::{mount_fd, remount_bind, set_recursive_attrs, Mounter};
use super::options::MountOptions;
use super::resolve::{fd_path, owned, Create};
use crate::cgroups::V1Dir;
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{mkdirat, Mode};
use nix::unistd::symlinkat;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Mount the tmpfs on `dest`, a directory per hierarchy in it with the hierarchy mounted or
/// bound there, then the flags the entry asks for.
pub(crate) fn mount(mounter: &Mounter<'_>, dest: &Path, options: &MountOptions) -> Result<()> {
    let read_only = options.flags.contains(MsFlags::MS_RDONLY);
    let per_mount = options.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    mount_tmpfs(mounter, dest, per_mount)?;
    // The new tmpfs is empty and only this process sees it yet: its directories are made and
    // opened right in it, without resolving each path from the root again.
    let tmpfs = mounter.resolve(dest, Create::Nothing)?;

    let bind_flags = options.flags - MsFlags::MS_REMOUNT;
    let mut binds = Vec::new();
    for h in &mounter.cgroups.v1 {
        let sub_dest = dest.join(&h.name);
        let target = hierarchy_dir(tmpfs.as_fd(), &h.name, &sub_dest)?;
        if mounter.cgroupns {
            mount_hierarchy(&target, h, bind_flags, &sub_dest)?;
        } else {
            bind_own_cgroup(&target, h, &sub_dest)?;
            binds.push(h.name.as_os_str());
        }
        link_controllers(tmpfs.as_fd(), &h.name, dest)?;
    }
    let tmpfs_flags = read_only.then_some(per_mount | MsFlags::MS_RDONLY);
    apply_flags(tmpfs.as_fd(), dest, &binds, bind_flags, tmpfs_flags)
}

/// The tmpfs that holds the hierarchies' directories.
fn mount_tmpfs(mounter: &Mounter<'_>, dest: &Path, per_mount: MsFlags) -> Result<()> {
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
    })
}

/// Directory `name` in the tmpfs, made if missing; `sub_dest` names it in errors. Returns
/// its path through the tmpfs's fd: in the new tmpfs that only this process sees, nothing
/// can be swapped under the name, so no fd of its own is opened for the mount.
fn hierarchy_dir(tmpfs: BorrowedFd<'_>, name: &OsStr, sub_dest: &Path) -> Result<PathBuf> {
    match mkdirat(
        Some(tmpfs.as_raw_fd()),
        name,
        Mode::from_bits_truncate(0o755),
    ) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e).with_context(|| format!("mkdir {}", sub_dest.display())),
    }
    Ok(Path::new(&fd_path(tmpfs)).join(name))
}

/// With a cgroup namespace: a new mount of hierarchy `h`, rooted at the container's cgroup.
fn mount_hierarchy(target: &Path, h: &V1Dir, flags: MsFlags, sub_dest: &Path) -> Result<()> {
    let data = if h.controllers.starts_with("name=") {
        format!("none,{}", h.controllers)
    } else {
        h.controllers.clone()
    };
    nix::mount::mount(
        None::<&str>,
        target,
        Some("cgroup"),
        flags,
        Some(data.as_str()),
    )
    .with_context(|| format!("mount cgroup ({data}) on {}", sub_dest.display()))
}

/// Without a cgroup namespace: the container's own cgroup directory of `h` on the host, bound
/// by its path (the host's cgroupfs: nothing of the container's can be reached from it).
fn bind_own_cgroup(target: &Path, h: &V1Dir, sub_dest: &Path) -> Result<()> {
    nix::mount::mount(
        Some(&h.dir),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind mount {} on {}", h.dir.display(), sub_dest.display()))
}

/// Co-mounted controllers (`cpu,cpuacct`) get a symlink per controller, as on the host.
fn link_controllers(tmpfs: BorrowedFd<'_>, name: &OsStr, dest: &Path) -> Result<()> {
    let name = name.to_string_lossy();
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
    Ok(())
}

/// Give the binds the entry's flags (`bind_flags`) and, when it is read-only, the tmpfs
/// `tmpfs_flags`.
fn apply_flags(
    tmpfs: BorrowedFd<'_>,
    dest: &Path,
    binds: &[&OsStr],
    bind_flags: MsFlags,
    tmpfs_flags: Option<MsFlags>,
) -> Result<()> {
    // A bind takes its flags (ro, nosuid, ...) only from a remount: one mount_setattr(2) for
    // the tmpfs and every bind at once, else a remount of each.
    let at_once = MountOptions::remount_as_attrs(bind_flags - MsFlags::MS_BIND - MsFlags::MS_REC)
        .is_some_and(|attrs| set_recursive_attrs(tmpfs, attrs).is_ok());
    if !at_once {
        for name in binds {
            let mounted = open_dir(tmpfs, name)
                .with_context(|| format!("open {}", dest.join(name).display()))?;
            remount_bind(mounted.as_fd(), bind_flags).with_context(|| {
                format!("remount {} ({bind_flags:?})", dest.join(name).display())
            })?;
        }
        if let Some(flags) = tmpfs_flags {
            remount_bind(tmpfs, flags)
                .with_context(|| format!("remount {} read-only", dest.display()))?;
        }
    }
    Ok(())
}

/// `O_PATH` of directory `name` in `dir`, never through a symlink.
fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(Some(dir.as_raw_fd()), name, flags, Mode::empty()).map(owned)
}
