//! After `pivot_root`: masked paths, read-only paths, and read-only remounts.

use super::mounts::{bind_read_only, mount_fd, remount_bind};
use super::resolve::{Create, Root};
use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::{fstat, major, minor, SFlag};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

/// Bind each existing path onto itself and remount it read-only (keeping nosuid/nodev/noexec,
/// which a user namespace may not drop).
pub(crate) fn make_read_only(root: &Root, paths: &[String]) -> Result<()> {
    for path in paths {
        let path = Path::new(path);
        let Some(fd) = open_existing(root, path, "readonlyPaths")? else {
            continue;
        };
        if bind_read_only(fd.as_fd()).is_ok() {
            continue;
        }
        // An older kernel: bind, then remount by path (any other refusal is then said).
        let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
        mount_fd(Some(fd.as_fd()), fd.as_fd(), None, flags, None)
            .with_context(|| format!("bind readonlyPaths entry {} onto itself", path.display()))?;
        drop(fd);
        remount_read_only(root, path)
            .with_context(|| format!("remount readonlyPaths entry {} read-only", path.display()))?;
    }
    Ok(())
}

/// Hide each existing path: `/dev/null` over a file, an empty read-only tmpfs over a
/// directory (one tmpfs, bound onto every directory after the first: a superblock fewer to
/// make, and to tear down when the container's mounts go, for each). The paths are opened
/// without following symlinks out of the root and mounted onto by fd, so a container cannot
/// redirect the mask (CVE-2019-19921 class).
pub(crate) fn mask(root: &Root, paths: &[String]) -> Result<()> {
    let mut null: Option<OwnedFd> = None;
    let mut empty_dir: Option<OwnedFd> = None;
    for path in paths {
        let path = Path::new(path);
        let Some(fd) = open_existing(root, path, "maskedPaths")? else {
            continue;
        };
        if null.is_none() {
            null = Some(open_null(root)?);
        }
        let Some(null) = null.as_ref() else {
            unreachable!("set just above");
        };
        // Looked at first, as runc does: a refused bind of /dev/null onto a directory costs
        // the kernel an RCU grace period to throw away the mount it had prepared.
        let stat = fstat(fd.as_raw_fd())
            .with_context(|| format!("stat maskedPaths entry {}", path.display()))?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            match &empty_dir {
                Some(tmpfs) => mount_fd(
                    Some(tmpfs.as_fd()),
                    fd.as_fd(),
                    None,
                    MsFlags::MS_BIND,
                    None,
                ),
                None => mount_fd(None, fd.as_fd(), Some("tmpfs"), MsFlags::MS_RDONLY, None),
            }
            .with_context(|| format!("mask directory {} with a tmpfs", path.display()))?;
            if empty_dir.is_none() {
                // The tmpfs now mounted there, to bind onto the next ones.
                empty_dir = Some(
                    open_existing(root, path, "maskedPaths")?
                        .with_context(|| format!("open the tmpfs masking {}", path.display()))?,
                );
            }
        } else {
            mount_fd(Some(null.as_fd()), fd.as_fd(), None, MsFlags::MS_BIND, None)
                .with_context(|| format!("mask {} with /dev/null", path.display()))?;
        }
    }
    Ok(())
}

/// Remounts the mount at `path` (inside `root`) read-only, keeping its other flags.
pub(crate) fn remount_read_only(root: &Root, path: &Path) -> Result<()> {
    let mounted = root
        .resolve(path, Create::Nothing)
        .with_context(|| format!("open {}", path.display()))?;
    let keep =
        current_flags(&mounted)? & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    remount_bind(mounted.as_fd(), keep | MsFlags::MS_RDONLY)
        .with_context(|| format!("remount {} read-only", path.display()))
}

fn current_flags(fd: &OwnedFd) -> Result<MsFlags> {
    let stat = nix::sys::statvfs::fstatvfs(fd).context("statvfs")?;
    // ST_* and MS_* share their bit values for the per-mount flags.
    Ok(MsFlags::from_bits_truncate(stat.flags().bits() as _))
}

/// `None` for a path that does not exist (runc skips those).
fn open_existing(root: &Root, path: &Path, field: &str) -> Result<Option<OwnedFd>> {
    match root.resolve(path, Create::Nothing) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("open {field} entry {}", path.display())),
    }
}

/// The container's `/dev/null`, checked to really be the null device (1:3) before it is
/// used to mask anything.
fn open_null(root: &Root) -> Result<OwnedFd> {
    let fd = root
        .resolve(Path::new("/dev/null"), Create::Nothing)
        .context("open /dev/null to mask paths")?;
    let stat = fstat(fd.as_raw_fd()).context("fstat /dev/null")?;
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFCHR || major(stat.st_rdev) != 1 || minor(stat.st_rdev) != 3 {
        bail!("/dev/null in the container is not the null device (1:3); refusing to mask with it");
    }
    Ok(fd)
}
