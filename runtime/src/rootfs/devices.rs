//! Device nodes in the container's `/dev` (the defaults every container gets plus
//! `linux.devices`) and the `/dev` symlinks.

use super::mounts::mount_fd;
use super::resolve::{open_host, owned, Create, Root};
use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{fstat, makedev, mknodat, umask, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// One node to create: container path, type, major, minor, mode, uid, gid.
struct Node<'a> {
    path: &'a Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The devices the OCI spec says every Linux container has (runc's modes and owners).
const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Creates the default devices and `devices` (a spec entry wins over a default of the same
/// path). In a user namespace, where mknod is refused, the host's node is bind-mounted onto an
/// empty file instead.
pub(crate) fn create(root: &Root, devices: &[LinuxDevice], userns: bool) -> Result<()> {
    let mut nodes = Vec::with_capacity(DEFAULT_DEVICES.len() + devices.len());
    for &(path, major, minor) in DEFAULT_DEVICES {
        if !devices.iter().any(|d| d.path() == Path::new(path)) {
            nodes.push(Node {
                path: Path::new(path),
                kind: SFlag::S_IFCHR,
                major,
                minor,
                mode: 0o666,
                uid: 0,
                gid: 0,
            });
        }
    }
    for device in devices {
        let kind = match device.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => bail!(
                "linux.devices entry {} has type \"a\", which is only valid in cgroup rules",
                device.path().display()
            ),
        };
        let (Ok(major), Ok(minor)) = (u64::try_from(device.major()), u64::try_from(device.minor()))
        else {
            bail!(
                "linux.devices entry {} has a negative major or minor",
                device.path().display()
            );
        };
        nodes.push(Node {
            path: device.path(),
            kind,
            major,
            minor,
            mode: device.file_mode().unwrap_or(0o666) & 0o7777,
            uid: device.uid().unwrap_or(0),
            gid: device.gid().unwrap_or(0),
        });
    }

    // Modes are exactly as configured, not filtered by the runtime's umask.
    let old_umask = umask(Mode::empty());
    let result = create_nodes(root, &nodes, userns);
    umask(old_umask);
    result
}

fn create_nodes(root: &Root, nodes: &[Node<'_>], userns: bool) -> Result<()> {
    // Most nodes share a directory (`/dev`): resolve each directory once.
    let mut parent: Option<(PathBuf, OwnedFd)> = None;
    for node in nodes {
        let (Some(dir), Some(name)) = (node.path.parent(), node.path.file_name()) else {
            bail!("device path {} has no file name", node.path.display());
        };
        if parent.as_ref().map(|(p, _)| p.as_path()) != Some(dir) {
            let fd = root
                .resolve(dir, Create::Dirs)
                .with_context(|| format!("create directory {} for devices", dir.display()))?;
            parent = Some((dir.to_path_buf(), fd));
        }
        let Some((_, dir_fd)) = parent.as_ref() else {
            unreachable!("set just above");
        };
        let dir_fd = dir_fd.as_raw_fd();
        let mknod = || {
            let dev = makedev(node.major, node.minor);
            mknodat(
                Some(dir_fd),
                name,
                node.kind,
                Mode::from_bits_truncate(node.mode),
                dev,
            )
        };
        // A FIFO needs no privilege, a device node does.
        let made = if userns && node.kind != SFlag::S_IFIFO {
            Err(Errno::EPERM)
        } else {
            mknod()
        };
        match made {
            Ok(()) => chown(dir_fd, name.as_ref(), node)?,
            Err(Errno::EEXIST) => {}
            Err(Errno::EPERM) => bind_host_node(dir_fd, name.as_ref(), node)?,
            Err(e) => {
                return Err(e).with_context(|| format!("mknod {}", node.path.display()));
            }
        }
    }
    Ok(())
}

fn chown(dir: RawFd, name: &Path, node: &Node<'_>) -> Result<()> {
    if node.uid == 0 && node.gid == 0 {
        return Ok(()); // created by uid 0 already
    }
    let (uid, gid) = (Some(Uid::from_raw(node.uid)), Some(Gid::from_raw(node.gid)));
    fchownat(Some(dir), name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)
        .with_context(|| format!("chown {} to {}:{}", node.path.display(), node.uid, node.gid))
}

/// Bind-mounts the host's node of the same path onto an empty file (runc's way in a user
/// namespace).
fn bind_host_node(dir: RawFd, name: &Path, node: &Node<'_>) -> Result<()> {
    let create = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_RDONLY;
    match openat(Some(dir), name, create | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => drop(owned(fd)),
        Err(Errno::EEXIST) => {}
        Err(e) => return Err(e).with_context(|| format!("create {}", node.path.display())),
    }
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let target = openat(Some(dir), name, flags, Mode::empty())
        .map(owned)
        .with_context(|| format!("open {}", node.path.display()))?;
    let kind = SFlag::from_bits_truncate(fstat(target.as_raw_fd())?.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFLNK || kind == SFlag::S_IFDIR {
        bail!(
            "{} in the rootfs is a symlink or directory, not a device",
            node.path.display()
        );
    }
    let host = open_host(node.path)
        .with_context(|| format!("open host device {} to bind it", node.path.display()))?;
    mount_fd(
        Some(host.as_fd()),
        target.as_fd(),
        None,
        MsFlags::MS_BIND,
        None,
    )
    .with_context(|| format!("bind-mount host device {}", node.path.display()))
}

/// `/dev/fd`, `/dev/std{in,out,err}`, `/dev/core` (when the kernel has `/proc/kcore`) and, when
/// `/dev/pts` is a devpts mount, `/dev/ptmx -> pts/ptmx`.
pub(crate) fn create_symlinks(root: &Root, ptmx: bool) -> Result<()> {
    let dev = root
        .resolve(Path::new("/dev"), Create::Dirs)
        .context("open /dev in the rootfs for its symlinks")?;
    let dev = dev.as_raw_fd();
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    if ptmx {
        match unlinkat(Some(dev), "ptmx", UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e).context("remove /dev/ptmx to link it to pts/ptmx"),
        }
        links.push(("pts/ptmx", "ptmx"));
    }
    for (target, name) in links {
        match symlinkat(target, Some(dev), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("symlink /dev/{name} -> {target}")),
        }
    }
    Ok(())
}
