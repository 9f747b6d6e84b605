//! The container's filesystem view: mounts in order, propagation, devices, `/dev` symlinks,
//! `pivot_root` (or chroot with `--no-pivot`), masked and read-only paths.
//!
//! Every function here runs in the container's init (the clone child), inside its new mount
//! namespace, single-threaded. Mount destinations are resolved inside the rootfs without
//! following symlinks out of it (see `resolve`), and every mount targets `/proc/self/fd/<N>`
//! of the resolved fd, so nothing can be swapped between the check and the mount.

mod cgroup_v1;
mod copyup;
mod devices;
mod entry;
mod idmap;
mod mounts;
mod options;
mod paths;
mod resolve;

use anyhow::{anyhow, Context, Result};
use entry::mount_entry;
pub use idmap::check as check_idmapped_mounts;
pub use idmap::check_rootless as check_rootless_idmapped_mounts;
use mounts::{lexical_clean, mount_fd, Mounter};
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fchmod, fstat, Mode, SFlag};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use resolve::{open_host, owned, Create, Root};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

/// Before `pivot_root`: set `/` propagation (rslave by default, or `rootfsPropagation`), bind
/// the rootfs onto itself, perform every `mounts` entry in order, create default devices and
/// `linux.devices`, and the `/dev` symlinks. `rootfs` is absolute (on the host); `cgroups`
/// is what a `type: "cgroup"` mount shows.
pub fn prepare(spec: &Spec, rootfs: &Path, cgroups: &crate::cgroups::MountView) -> Result<()> {
    prepare_with_sources(spec, rootfs, cgroups, &[])
}

/// The bind sources of `spec.mounts` as detached copies of their mounts (`open_tree` with
/// `OPEN_TREE_CLONE`, recursive for `rbind`), one per entry, made by the runtime before the
/// clone: every idmapped one (`idmap.rs`; an error if it cannot be made), and with a user
/// namespace (`any_user`) every bind, whose source the init, root of that namespace, may not
/// be allowed to reach (runc opens them before it enters the namespace, for the same reason;
/// a detached tree, unlike an fd of a path, can be attached in the init's mount namespace).
/// `None` for other kinds, or a plain source that would not open (the init tries again and
/// says why); empty when there is nothing to open.
pub fn open_bind_sources(spec: &Spec, any_user: bool) -> Result<Vec<Option<OwnedFd>>> {
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    let idmapped = |m: &oci_spec::runtime::Mount| {
        m.uid_mappings().is_some()
            || m.gid_mappings().is_some()
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "idmap" || o == "ridmap")
    };
    if !any_user && !mounts.iter().any(idmapped) {
        return Ok(Vec::new());
    }
    let mut userns = idmap::Namespaces::default();
    let mut sources = Vec::with_capacity(mounts.len());
    for m in mounts {
        let options = m.options().as_deref().unwrap_or(&[]);
        let rbind = options.iter().any(|o| o == "rbind");
        let bind =
            rbind || m.typ().as_deref() == Some("bind") || options.iter().any(|o| o == "bind");
        let source = m.source().as_deref().filter(|_| bind);
        let tree = match (source, idmap::of_mount(spec, m)?) {
            (Some(s), Some(how)) => Some(userns.tree(s, m, &how)?),
            (Some(s), None) if any_user => mounts::clone_tree_at(libc::AT_FDCWD, s, rbind).ok(),
            _ => None,
        };
        sources.push(tree);
    }
    Ok(sources)
}

/// [`prepare`], with bind sources opened before the init entered its user namespace.
pub fn prepare_with_sources(
    spec: &Spec,
    rootfs: &Path,
    cgroups: &crate::cgroups::MountView,
    bind_sources: &[Option<OwnedFd>],
) -> Result<()> {
    let linux = spec.linux().as_ref();
    let propagation = root_propagation(spec)?.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    set_propagation("/", propagation).context("set the propagation of / in the container")?;
    if propagation.contains(MsFlags::MS_SHARED) {
        // pivot_root refuses a shared new root or a shared parent of it; `finish` applies the
        // requested propagation again once the root is in place.
        make_parent_private(rootfs)?;
    }
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind rootfs {} onto itself", rootfs.display()))?;
    if propagation.contains(MsFlags::MS_SHARED) {
        set_propagation(rootfs, MsFlags::MS_PRIVATE)
            .with_context(|| format!("make rootfs {} private for pivot_root", rootfs.display()))?;
    }

    let root = Root::open(rootfs).with_context(|| format!("open rootfs {}", rootfs.display()))?;
    let namespaces = linux.and_then(|l| l.namespaces().as_ref());
    let has_namespace =
        |typ: LinuxNamespaceType| namespaces.is_some_and(|n| n.iter().any(|ns| ns.typ() == typ));
    let mounter = Mounter {
        root: &root,
        rootfs,
        userns: has_namespace(LinuxNamespaceType::User),
        cgroupns: has_namespace(LinuxNamespaceType::Cgroup),
        cgroups,
    };

    let mut devpts = false;
    for (i, entry) in spec.mounts().as_deref().unwrap_or(&[]).iter().enumerate() {
        let opened = bind_sources
            .get(i)
            .and_then(|f| f.as_ref())
            .map(|f| f.as_fd());
        mount_entry(&mounter, entry, opened)?;
        if lexical_clean(entry.destination()) == Path::new("/dev/pts") {
            devpts = entry.typ().as_deref() == Some("devpts");
        }
    }

    if !dev_is_bind(spec) {
        let devices = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
        devices::create(&root, devices, mounter.userns)?;
        devices::create_symlinks(&root, devpts)?;
    }
    Ok(())
}

/// `/dev` is a bind mount of the host's (its last mount there says so): then the runtime
/// makes no device nodes in it and leaves its `/dev/null` alone.
fn dev_is_bind(spec: &Spec) -> bool {
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    mounts
        .iter()
        .rfind(|m| lexical_clean(m.destination()) == Path::new("/dev"))
        .is_some_and(|m| {
            let options = m.options().as_deref().unwrap_or(&[]);
            m.typ().as_deref() == Some("bind")
                || options.iter().any(|o| o == "bind" || o == "rbind")
        })
}

/// After `pivot_root`, where the runtime made `/dev` (not a bind of the host's): each of fds
/// 0-2 that is a `/dev/null` (the host's, given by the caller: conmon's for a container
/// without `-i`) is replaced by the container's own `/dev/null`, as runc does. CRIU can
/// dump only files on the container's mounts: with the host's `/dev/null` on its stdin a
/// podman container could not be checkpointed ("Can't lookup mount").
pub fn reopen_dev_null(spec: &Spec) -> Result<()> {
    if dev_is_bind(spec) {
        return Ok(());
    }
    let null = match open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => owned(fd),
        // A config whose /dev lacks it: nothing to reopen on (the process keeps what it has).
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e).context("open /dev/null in the container"),
    };
    let rdev = fstat(null.as_raw_fd()).context("stat /dev/null")?.st_rdev;
    for fd in 0..3 {
        let Ok(st) = fstat(fd) else { continue };
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
            && st.st_rdev == rdev
        {
            // SAFETY: dup3 of an fd we own onto a stdio slot: no Rust object owns 0-2.
            let r = unsafe { libc::dup3(null.as_raw_fd(), fd, 0) };
            nix::errno::Errno::result(r)
                .with_context(|| format!("reopen fd {fd} on the container's /dev/null"))?;
        }
    }
    Ok(())
}

/// `pivot_root` into `rootfs` (or `MS_MOVE` + chroot when `no_pivot`), then `chdir("/")`.
pub fn enter(rootfs: &Path, no_pivot: bool) -> Result<()> {
    if no_pivot {
        hide_host_proc_and_sys(rootfs)?;
        chdir(rootfs).with_context(|| format!("chdir to rootfs {}", rootfs.display()))?;
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .with_context(|| format!("move rootfs {} onto / (--no-pivot)", rootfs.display()))?;
        chroot(".").context("chroot into the rootfs (--no-pivot)")?;
    } else {
        let dir = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        let old_root = open("/", dir, Mode::empty())
            .map(owned)
            .context("open old /")?;
        let new_root = open(rootfs, dir, Mode::empty())
            .map(owned)
            .with_context(|| format!("open rootfs {}", rootfs.display()))?;
        fchdir(new_root.as_raw_fd()).context("chdir to the rootfs")?;
        // With new and old root the same directory no temporary put_old is needed: the old
        // root ends up mounted under the new one, and is detached right away.
        pivot_root(".", ".").with_context(|| format!("pivot_root into {}", rootfs.display()))?;
        fchdir(old_root.as_raw_fd()).context("chdir to the old root")?;
        // Unmount events must not propagate to the host's mounts.
        set_propagation(".", MsFlags::MS_SLAVE | MsFlags::MS_REC)
            .context("make the old root rslave")?;
        umount2(".", MntFlags::MNT_DETACH).context("detach the old root")?;
    }
    chdir("/").context("chdir to / in the container")?;
    Ok(())
}

/// `--no-pivot` keeps the host's mounts in the container's mount namespace, only out of the
/// chroot's sight. The kernel lets a new procfs or sysfs be mounted where a full one is
/// already mounted, unmasked: so a container able to make a user and mount namespace could
/// mount a fresh `/proc` without the masks. As runc does, detach every full procfs and sysfs
/// mount outside the rootfs first (where detaching is refused, cover it with a tmpfs).
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let mounts = crate::mountinfo::read_mountinfo()?;
    let full = mounts.iter().filter(|m| {
        m.root == Path::new("/")
            && matches!(m.fs_type.as_str(), "proc" | "sysfs")
            && !m.mount_point.starts_with(rootfs)
    });
    for m in full {
        let p = m.mount_point.as_path();
        // The unmount must not propagate to the host.
        match set_propagation(p, MsFlags::MS_SLAVE | MsFlags::MS_REC) {
            // A parent detached before took it along.
            Err(nix::errno::Errno::ENOENT) => continue,
            r => r.with_context(|| format!("make {} rslave (--no-pivot)", p.display()))?,
        }
        match umount2(p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => {
                mount(
                    Some("tmpfs"),
                    p,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    None::<&str>,
                )
                .with_context(|| format!("cover {} with a tmpfs (--no-pivot)", p.display()))?;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("detach {} (--no-pivot)", p.display()))
            }
        }
    }
    Ok(())
}

/// After `pivot_root`: `rootfsPropagation` again, `readonlyPaths`, `maskedPaths`, `/dev`
/// read-only when its mount asked for it, and `root.readonly` (remount `/` ro).
pub fn finish(spec: &Spec) -> Result<()> {
    let root = Root::open(Path::new("/")).context("open / of the container")?;
    // The root's propagation once more, now that it is `/` (pivot_root refused a shared one),
    // unless private (the parent was made private already): runc 1.3.3+ and 1.4 do, and a
    // recursive one then overrides the mounts' own options below it (runc 1.1 applied it
    // only before the mounts).
    if let Some(propagation) = root_propagation(spec)?.filter(|p| !p.contains(MsFlags::MS_PRIVATE))
    {
        set_propagation("/", propagation).context("set linux.rootfsPropagation on /")?;
    }
    if let Some(linux) = spec.linux() {
        if let Some(paths) = linux.readonly_paths() {
            paths::make_read_only(&root, paths)?;
        }
        if let Some(paths) = linux.masked_paths() {
            paths::mask(&root, paths)?;
        }
    }
    let dev_read_only = spec.mounts().as_deref().unwrap_or(&[]).iter().any(|m| {
        let options = options::MountOptions::parse(m.options().as_deref().unwrap_or(&[]));
        lexical_clean(m.destination()) == Path::new("/dev")
            && options.flags.contains(MsFlags::MS_RDONLY)
    });
    if dev_read_only {
        paths::remount_read_only(&root, Path::new("/dev"))?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        paths::remount_read_only(&root, Path::new("/")).context("root.readonly")?;
    }
    Ok(())
}

/// After `pivot_root`: bind the console's pty slave (e.g. `/dev/pts/0`) onto `/dev/console`,
/// created as an empty file (mode 0666) if missing.
pub fn mount_console(pty_slave_path: &Path) -> Result<()> {
    let root = Root::open(Path::new("/")).context("open / of the container")?;
    let dev = root
        .resolve(Path::new("/dev"), Create::Dirs)
        .context("open /dev")?;
    let create = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_RDONLY;
    let mode = Mode::from_bits_truncate(0o666);
    match nix::fcntl::openat(
        Some(dev.as_raw_fd()),
        "console",
        create | OFlag::O_CLOEXEC,
        mode,
    ) {
        Ok(fd) => {
            let fd = owned(fd);
            fchmod(fd.as_raw_fd(), mode).context("chmod /dev/console")?;
        }
        Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e).context("create /dev/console"),
    }
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let console = nix::fcntl::openat(Some(dev.as_raw_fd()), "console", flags, Mode::empty())
        .map(owned)
        .context("open /dev/console")?;
    let kind = SFlag::from_bits_truncate(fstat(console.as_raw_fd())?.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFLNK || kind == SFlag::S_IFDIR {
        anyhow::bail!(
            "/dev/console is a symlink or directory; refusing to mount the console on it"
        );
    }
    let pty = open_host(pty_slave_path)
        .with_context(|| format!("open console pty {}", pty_slave_path.display()))?;
    mount_fd(
        Some(pty.as_fd()),
        console.as_fd(),
        None,
        MsFlags::MS_BIND,
        None,
    )
    .with_context(|| {
        format!(
            "bind console {} onto /dev/console",
            pty_slave_path.display()
        )
    })
}

/// `linux.rootfsPropagation` as mount flags; `None` when not set.
fn root_propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    let value = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref());
    match value {
        None | Some("") => Ok(None),
        Some(value) => options::propagation_option(value).map(Some).ok_or_else(|| {
            anyhow!(
                "linux.rootfsPropagation {value:?} is not one of shared, slave, private, \
                 unbindable or their r-prefixed (recursive) forms"
            )
        }),
    }
}

fn set_propagation<P: ?Sized + nix::NixPath>(path: &P, flags: MsFlags) -> nix::Result<()> {
    mount::<str, P, str, str>(None, path, None, flags, None)
}

/// Makes the mount that holds `rootfs` private (before the rootfs is bound onto itself).
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let mountinfo = crate::mountinfo::read_mountinfo()?;
    let parent = mountinfo
        .iter()
        .filter(|m| rootfs.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
        .with_context(|| format!("no mount holds rootfs {}", rootfs.display()))?;
    if parent.optional.split(' ').any(|f| f.starts_with("shared:")) {
        set_propagation(&parent.mount_point, MsFlags::MS_PRIVATE).with_context(|| {
            format!(
                "make {} (parent of the rootfs) private",
                parent.mount_point.display()
            )
        })?;
    }
    Ok(())
}
