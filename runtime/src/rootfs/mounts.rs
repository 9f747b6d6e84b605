//! The kinds of mount a `mounts[]` entry can be (bind, filesystem, cgroup2), what they share
//! (a [`Mounter`] that resolves destinations inside the rootfs), and the mount calls on fds
//! that every part of `rootfs` uses. `entry` picks the kind; `cgroup_v1` is one more.

use super::options::{MountOptions, RecursiveAttrs};
use super::resolve::{fd_path, open_host, Create, Root};
use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, SFlag};
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};
use nix::sys::statvfs::fstatvfs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

/// Files under `/proc` that may be mounted over (what lxcfs emulates); anything else under
/// `/proc` could hide the kernel's security knobs from the runtime (runc's rule).
pub(super) const PROC_OVERMOUNTABLE: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// What every mount of one container shares.
pub(crate) struct Mounter<'a> {
    pub root: &'a Root,
    /// The rootfs on the host, for error messages.
    pub rootfs: &'a Path,
    /// The container has its own user namespace (mknod and some filesystems are refused).
    pub userns: bool,
    /// The container has its own cgroup namespace.
    pub cgroupns: bool,
    /// The container's cgroup directories (for `type: "cgroup"`).
    pub cgroups: &'a crate::cgroups::MountView,
}

impl Mounter<'_> {
    /// Bind-mounts host `source` onto `dest`, then remounts for ro/nosuid/... which a bind
    /// mount ignores on creation.
    pub fn bind(&self, source: &Path, dest: &Path, options: &MountOptions) -> Result<()> {
        let source_fd = open_host(source).with_context(|| {
            format!(
                "open bind source {} for {}",
                source.display(),
                dest.display()
            )
        })?;
        let source_is_dir = is_dir(source_fd.as_fd())?;
        let create = if source_is_dir {
            Create::Dirs
        } else {
            Create::File
        };
        let target = self.resolve(dest, create)?;
        self.check_not_procfs(&target, dest, "bind")?;
        let flags = MsFlags::MS_BIND | (options.flags & MsFlags::MS_REC);
        mount_fd(Some(source_fd.as_fd()), target.as_fd(), None, flags, None)
            .with_context(|| format!("bind mount {} on {}", source.display(), dest.display()))?;
        let remount = options.bind_remount_flags();
        if !remount.is_empty() {
            let mounted = self.resolve(dest, Create::Nothing)?;
            remount_bind(mounted.as_fd(), remount).with_context(|| {
                format!("remount bind mount on {} ({remount:?})", dest.display())
            })?;
        }
        Ok(())
    }

    /// A bind whose source the runtime cloned before the clone (`rootfs::open_bind_sources`):
    /// attach that detached tree on `dest` (move_mount(2)), then remount as [`Mounter::bind`].
    pub fn attach_tree(
        &self,
        source: &Path,
        tree: BorrowedFd<'_>,
        dest: &Path,
        options: &MountOptions,
    ) -> Result<()> {
        let create = if is_dir(tree)? {
            Create::Dirs
        } else {
            Create::File
        };
        let target = self.resolve(dest, create)?;
        self.check_not_procfs(&target, dest, "bind")?;
        move_mount_fd(tree, target.as_fd())
            .with_context(|| format!("bind mount {} on {}", source.display(), dest.display()))?;
        let mounted = self.resolve(dest, Create::Nothing)?;
        // The clone was made in the host's namespace, a peer of the host's mount: as a bind
        // made in the container's rslave copy would be, a slave (the entry's own propagation
        // options come after).
        mount::<str, str, str, str>(
            None,
            fd_path(mounted.as_fd()).as_str(),
            None,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None,
        )
        .with_context(|| format!("make the bind mount on {} rslave", dest.display()))?;
        let remount = options.bind_remount_flags();
        if !remount.is_empty() {
            remount_bind(mounted.as_fd(), remount).with_context(|| {
                format!("remount bind mount on {} ({remount:?})", dest.display())
            })?;
        }
        Ok(())
    }

    /// A filesystem mount (`proc`, `sysfs`, `tmpfs`, `devpts`, `mqueue`, ...), with runc's
    /// fallbacks when a user namespace may not mount `sysfs` or `mqueue`.
    pub(super) fn filesystem(
        &self,
        typ: &str,
        source: Option<&Path>,
        dest: &Path,
        options: &MountOptions,
    ) -> Result<()> {
        if matches!(typ, "proc" | "sysfs") {
            self.check_ordinary_dir(typ, dest)?;
        }
        let data = if typ == "tmpfs" {
            self.tmpfs_data(dest, &options.data)
        } else {
            options.data.clone()
        };
        let target = self.resolve(dest, Create::Dirs)?;
        if typ != "proc" {
            self.check_not_procfs(&target, dest, typ)?;
        }
        let source = source.unwrap_or(Path::new(typ));
        if typ == "tmpfs" && options.copyup {
            return self.tmpfs_copyup(source, target, dest, options, &data);
        }
        let data = Some(data.as_str()).filter(|d| !d.is_empty());
        let result = mount(
            Some(source),
            fd_path(target.as_fd()).as_str(),
            Some(typ),
            options.flags,
            data,
        );
        // Without its own network (sysfs) or IPC (mqueue) namespace a user namespace may not
        // mount a new instance: show the host's instead.
        let host = match (typ, result) {
            ("sysfs", Err(Errno::EPERM)) => Path::new("/sys"),
            ("mqueue", Err(Errno::EPERM)) => Path::new("/dev/mqueue"),
            (_, result) => {
                return result.with_context(|| format!("mount {typ} on {}", dest.display()))
            }
        };
        drop(target);
        let bind_options = MountOptions {
            flags: (options.flags - MsFlags::MS_REMOUNT) | MsFlags::MS_BIND | MsFlags::MS_REC,
            ..MountOptions::default()
        };
        self.bind(host, dest, &bind_options).with_context(|| {
            format!(
                "mount {typ} on {}: not permitted, and binding the host's failed",
                dest.display()
            )
        })
    }

    /// A tmpfs over a directory that exists takes its mode (runc 1.1.15+ and 1.2+): `mode=`
    /// of the directory's before the entry's own data, where a `mode=` of its own wins.
    fn tmpfs_data(&self, dest: &Path, data: &str) -> String {
        let existing = self.root.resolve(dest, Create::Nothing).ok();
        let mode = existing
            .and_then(|fd| fstat(fd.as_raw_fd()).ok())
            .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .map(|st| st.st_mode & 0o7777);
        match (mode, data.is_empty()) {
            (Some(m), true) => format!("mode={m:04o}"),
            (Some(m), false) => format!("mode={m:04o},{data}"),
            (None, _) => data.to_string(),
        }
    }

    /// A tmpfs with `tmpcopyup`: mounted writable over `target`, filled with a copy of what
    /// it covers, then made read-only if asked.
    fn tmpfs_copyup(
        &self,
        source: &Path,
        target: OwnedFd,
        dest: &Path,
        options: &MountOptions,
        data: &str,
    ) -> Result<()> {
        let covered = super::copyup::open_covered(&target)
            .with_context(|| format!("tmpcopyup: open {}", dest.display()))?;
        let data = Some(data).filter(|d| !d.is_empty());
        let flags = options.flags - MsFlags::MS_RDONLY;
        mount(
            Some(source),
            fd_path(target.as_fd()).as_str(),
            Some("tmpfs"),
            flags,
            data,
        )
        .with_context(|| format!("mount tmpfs on {}", dest.display()))?;
        let mounted = self.resolve(dest, Create::Nothing)?;
        let top = super::copyup::open_covered(&mounted)?;
        super::copyup::copy_tree(&covered, &top)
            .with_context(|| format!("tmpcopyup of {}", dest.display()))?;
        if options.flags.contains(MsFlags::MS_RDONLY) {
            mount(
                None::<&str>,
                fd_path(mounted.as_fd()).as_str(),
                None::<&str>,
                options.flags | MsFlags::MS_REMOUNT,
                data,
            )
            .with_context(|| format!("remount tmpfs on {} read-only", dest.display()))?;
        }
        Ok(())
    }

    /// `cgroup2`: a new mount of the unified hierarchy; where that is refused (user namespace
    /// without cgroup namespace), the container's own cgroup directory bound instead.
    pub(super) fn cgroup2(
        &self,
        source: Option<&Path>,
        dest: &Path,
        options: &MountOptions,
    ) -> Result<()> {
        let target = self.resolve(dest, Create::Dirs)?;
        let data = Some(options.data.as_str()).filter(|d| !d.is_empty());
        let source = source.unwrap_or(Path::new("cgroup2"));
        let path = fd_path(target.as_fd());
        match mount(
            Some(source),
            path.as_str(),
            Some("cgroup2"),
            options.flags,
            data,
        ) {
            Err(Errno::EPERM | Errno::EBUSY) => {}
            result => {
                return result.with_context(|| format!("mount cgroup2 on {}", dest.display()))
            }
        }
        drop(target);
        let host = self
            .cgroups
            .unified
            .as_deref()
            .with_context(|| format!("mount cgroup2 on {}: not permitted", dest.display()))?;
        let bind_options = MountOptions {
            flags: (options.flags - MsFlags::MS_REMOUNT) | MsFlags::MS_BIND | MsFlags::MS_REC,
            ..MountOptions::default()
        };
        self.bind(host, dest, &bind_options)
    }

    /// Applies `shared`/`rslave`/... options to the mount now on `dest`.
    pub(super) fn propagate(&self, dest: &Path, propagation: &[MsFlags]) -> Result<()> {
        if propagation.is_empty() {
            return Ok(());
        }
        let mounted = self.resolve(dest, Create::Nothing)?;
        let path = fd_path(mounted.as_fd());
        for &flags in propagation {
            mount::<str, str, str, str>(None, path.as_str(), None, flags, None)
                .with_context(|| format!("set propagation {flags:?} on {}", dest.display()))?;
        }
        Ok(())
    }

    /// Opens `dest` inside the rootfs, as `O_PATH`, creating it when asked.
    pub fn resolve(&self, dest: &Path, create: Create) -> Result<OwnedFd> {
        self.root.resolve(dest, create).with_context(|| {
            format!(
                "resolve mount destination {} inside rootfs {}",
                dest.display(),
                self.rootfs.display()
            )
        })
    }

    /// runc's rule for `proc` and `sysfs` (CVE-2019-16884, CVE-2019-19921): the destination
    /// itself must be a directory or missing, never a symlink (the image's `/proc -> /x`
    /// would put the masks and read-only paths beside the real procfs) nor a file.
    fn check_ordinary_dir(&self, typ: &str, dest: &Path) -> Result<()> {
        let clean = lexical_clean(dest);
        let (Some(parent), Some(name)) = (clean.parent(), clean.file_name()) else {
            return Ok(());
        };
        // `/proc` and `/sys` are in the root itself: no parent to resolve.
        let resolved;
        let parent = if parent == Path::new("/") {
            self.root.as_fd()
        } else {
            resolved = match self.root.resolve(parent, Create::Nothing) {
                Err(Errno::ENOENT) => return Ok(()),
                r => r.with_context(|| format!("resolve {} in the rootfs", parent.display()))?,
            };
            resolved.as_fd()
        };
        let flags = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
        match nix::sys::stat::fstatat(Some(parent.as_raw_fd()), name, flags) {
            Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("stat {}", dest.display())),
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
                Ok(())
            }
            Ok(_) => bail!(
                "error mounting {typ:?} to rootfs at {:?}: filesystem {typ:?} must be mounted on ordinary directory",
                dest.display().to_string()
            ),
        }
    }

    /// A destination that resolved (say through a symlink) into the container's procfs must
    /// be one of the files lxcfs emulates.
    fn check_not_procfs(&self, target: &OwnedFd, dest: &Path, typ: &str) -> Result<()> {
        let on_procfs = fstatfs(target).map(|s| s.filesystem_type() == PROC_SUPER_MAGIC);
        if on_procfs.unwrap_or(false) && !PROC_OVERMOUNTABLE.iter().any(|p| dest == Path::new(p)) {
            bail!(
                "mount {typ} on {}: the destination is inside procfs, which only allows {}",
                dest.display(),
                PROC_OVERMOUNTABLE.join(", ")
            );
        }
        Ok(())
    }
}

/// `/a/./b/../c` → `/a/c`, never above `/`.
pub(crate) fn lexical_clean(path: &Path) -> PathBuf {
    let mut clean = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::ParentDir => {
                clean.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    clean
}

/// `mount(2)` with fds for source and target (as `/proc/self/fd/N`).
pub(crate) fn mount_fd(
    source: Option<BorrowedFd<'_>>,
    target: BorrowedFd<'_>,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    let source = source.map(fd_path);
    mount(
        source.as_deref(),
        fd_path(target).as_str(),
        fstype,
        flags,
        data,
    )
}

/// `MS_BIND|MS_REMOUNT` with `flags` on the mount whose root `mounted` is. In a user
/// namespace the flags the mount was created with (nosuid, nodev, noexec, ro, atime) are
/// locked: when the kernel refuses, retry keeping them.
pub(crate) fn remount_bind(mounted: BorrowedFd<'_>, flags: MsFlags) -> nix::Result<()> {
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    match mount_fd(None, mounted, None, base | flags, None) {
        Err(Errno::EPERM) => {}
        other => return other,
    }
    let current = MsFlags::from_bits_truncate(fstatvfs(mounted)?.flags().bits() as _);
    let atime = MsFlags::MS_NOATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME;
    let mut locked = current
        & (MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NODIRATIME
            | atime);
    if flags.intersects(atime) {
        locked.remove(atime);
    }
    mount_fd(None, mounted, None, base | flags | locked, None)
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
pub(crate) struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// mount_setattr(2) with `AT_RECURSIVE` on the mount tree rooted at `mounted` (Linux 5.12+).
pub(crate) fn set_recursive_attrs(
    mounted: BorrowedFd<'_>,
    attrs: RecursiveAttrs,
) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: attrs.set,
        attr_clr: attrs.clear,
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr(mounted, &attr, true)
}

/// mount_setattr(2) on the mount `mounted` is the root of, or on its whole tree.
pub(crate) fn mount_setattr(
    mounted: BorrowedFd<'_>,
    attr: &MountAttr,
    recursive: bool,
) -> nix::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: the path is a NUL-terminated empty string, `attr` is a valid `struct mount_attr`
    // of the size passed, and the kernel only reads both during the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mounted.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}

/// open_tree(2) with `OPEN_TREE_CLONE`: a detached copy of the mount at `path` (relative to
/// `dir`, or the fd `dir` itself when the path is empty), with the mounts below it when
/// `recursive`.
pub(crate) fn clone_tree_at(dir: RawFd, path: &Path, recursive: bool) -> nix::Result<OwnedFd> {
    let cpath =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    if path.as_os_str().is_empty() && dir != libc::AT_FDCWD {
        flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    }
    // SAFETY: a NUL-terminated path; the kernel returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dir, cpath.as_ptr(), flags) };
    // SAFETY: open_tree returned a new fd, owned here from now on.
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A read-only bind of the file or directory `at` onto itself, as `mount --rbind` then a
/// read-only remount of its top would make it, its other flags kept: a detached copy of the
/// tree (open_tree), read-only at its top only (mount_setattr, not recursive: the remount
/// runc does), moved onto `at` (move_mount). Three system calls on fds, where the bind and
/// the remount by path walk `/proc/self/fd` three times and reopen the path in between.
/// An error leaves `at` as it was (the detached copy goes with its fd): before Linux 5.12
/// (ENOSYS) the caller binds and remounts instead.
pub(crate) fn bind_read_only(at: BorrowedFd<'_>) -> nix::Result<()> {
    let tree = clone_tree_at(at.as_raw_fd(), Path::new(""), true)?;
    let attr = MountAttr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr(tree.as_fd(), &attr, false)?;
    move_mount_fd(tree.as_fd(), at)
}

/// move_mount(2) of the detached tree `tree` onto the file or directory `onto`, both fds.
fn move_mount_fd(tree: BorrowedFd<'_>, onto: BorrowedFd<'_>) -> nix::Result<()> {
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: two fds we hold and empty NUL-terminated paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            onto.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    Errno::result(rc).map(drop)
}

fn is_dir(fd: BorrowedFd<'_>) -> Result<bool> {
    let stat = fstat(fd.as_raw_fd()).context("fstat")?;
    Ok(SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
}
