//! `tmpcopyup` (runc's mount extension): a tmpfs mounted over a directory of the image starts
//! with a copy of what that directory held. The directory is opened before the mount covers
//! it; its tree is copied through fds, never following a symlink of the image.

use anyhow::{Context, Result};
use nix::dir::Dir;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, mknodat, Mode, SFlag};
use nix::unistd::{fchown, fchownat, symlinkat, Gid, Uid};
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

const NOFOLLOW: nix::fcntl::AtFlags = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;

/// A readable fd of the directory `target` (an `O_PATH` fd) is, to copy from once covered.
pub(super) fn open_covered(target: &OwnedFd) -> Result<OwnedFd> {
    let fd = openat(
        Some(target.as_raw_fd()),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("open the directory to copy up")?;
    // SAFETY: openat returned a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Copy the tree of directory `src` into directory `dst`: files, directories, symlinks and
/// device nodes, with their modes and owners.
pub(super) fn copy_tree(src: &OwnedFd, dst: &OwnedFd) -> Result<()> {
    let listing = Dir::openat(
        Some(src.as_raw_fd()),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    let mut listing = listing;
    for entry in listing.iter() {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    for name in names {
        copy_entry(src, dst, &name)
            .with_context(|| format!("tmpcopyup: copy {}", name.to_string_lossy()))?;
    }
    Ok(())
}

fn open_at(dir: &OwnedFd, name: &OsStr, flags: OFlag, mode: Mode) -> Result<OwnedFd> {
    let fd = openat(
        Some(dir.as_raw_fd()),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        mode,
    )?;
    // SAFETY: openat returned a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn copy_entry(src: &OwnedFd, dst: &OwnedFd, name: &OsStr) -> Result<()> {
    let st = fstatat(Some(src.as_raw_fd()), name, NOFOLLOW)?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let (uid, gid) = (
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    );
    let (s, d) = (Some(src.as_raw_fd()), Some(dst.as_raw_fd()));
    if kind == SFlag::S_IFDIR {
        mkdirat(d, name, Mode::S_IRWXU)?;
        let from = open_at(
            src,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )?;
        let to = open_at(
            dst,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )?;
        copy_tree(&from, &to)?;
        fchown(to.as_raw_fd(), uid, gid)?;
        fchmod(to.as_raw_fd(), mode)?;
    } else if kind == SFlag::S_IFREG {
        let from = open_at(src, name, OFlag::O_RDONLY, Mode::empty())?;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let to = open_at(dst, name, flags, Mode::S_IRUSR | Mode::S_IWUSR)?;
        std::io::copy(&mut File::from(from), &mut &File::from(to.try_clone()?))?;
        // The owner first: a chown clears set-id bits.
        fchown(to.as_raw_fd(), uid, gid)?;
        fchmod(to.as_raw_fd(), mode)?;
    } else if kind == SFlag::S_IFLNK {
        let target = nix::fcntl::readlinkat(s, name)?;
        symlinkat(target.as_os_str(), d, name)?;
        fchownat(d, name, uid, gid, NOFOLLOW)?;
    } else {
        // Device nodes, fifos and sockets: the node itself.
        mknodat(d, name, kind, mode, st.st_rdev)?;
        fchownat(d, name, uid, gid, NOFOLLOW)?;
        let node = open_at(dst, name, OFlag::O_PATH, Mode::empty())?;
        // chmod through the O_PATH fd's magic link: fchmod refuses an O_PATH fd.
        nix::sys::stat::fchmodat(
            None,
            format!("/proc/self/fd/{}", node.as_raw_fd()).as_str(),
            mode,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )?;
    }
    Ok(())
}
