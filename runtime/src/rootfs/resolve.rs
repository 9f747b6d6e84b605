//! Resolving container paths inside the rootfs without ever leaving it.
//!
//! Mount destinations come from the image and the config: a rootfs symlink such as
//! `evil -> /` or `evil -> ../../..` must not redirect a mount onto the host
//! (CVE-2021-30465). Every path is resolved from an `O_PATH` fd of the root with
//! `openat2(RESOLVE_IN_ROOT)`; missing components are created relative to their parent fd by a
//! component walk that clamps symlinks and `..` to the root (also the fallback for kernels
//! without `openat2`). Callers mount onto `/proc/self/fd/<N>` of the returned fd.

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Linux's own limit on symlinks followed in one lookup.
const MAX_SYMLINKS: u32 = 40;

/// Set once `openat2` returned ENOSYS (kernels before 5.6, or a seccomp filter).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// What to create when a path component is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Create {
    /// Nothing: a missing path is ENOENT.
    Nothing,
    /// Directories all the way (mode 0755).
    Dirs,
    /// Directories, and an empty regular file (mode 0644) as the last component.
    File,
}

/// Takes ownership of a fd a syscall just returned.
pub(crate) fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open-like syscall and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `/proc/self/fd/<N>`: a path the kernel resolves to exactly the file the fd refers to.
pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Opens a host path as `O_PATH` (following symlinks: host paths are trusted, the fd pins the
/// file so that it cannot be swapped between checks and the mount).
pub(crate) fn open_host(path: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map(owned)
}

/// An `O_PATH` fd of a directory that paths are resolved inside of.
pub(crate) struct Root {
    fd: OwnedFd,
}

impl AsFd for Root {
    /// The root directory itself.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Root {
    pub fn open(path: &Path) -> nix::Result<Root> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(path, flags, Mode::empty())?;
        Ok(Root { fd: owned(fd) })
    }

    /// Opens `path` (absolute or not, always taken relative to the root) as `O_PATH`,
    /// following symlinks but never out of the root, creating what `create` asks for.
    pub fn resolve(&self, path: &Path, create: Create) -> nix::Result<OwnedFd> {
        let relative = relative(path);
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let target: &OsStr = if relative.is_empty() {
                OsStr::new(".")
            } else {
                relative
            };
            match self.open_in_root(target) {
                Ok(fd) => return Ok(fd),
                Err(Errno::ENOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
                // EAGAIN: a concurrent rename made the kernel refuse to vouch for `..`.
                Err(Errno::ENOENT) if create != Create::Nothing => {
                    if let Some(fd) = self.create_in_parent(relative, create) {
                        return Ok(fd);
                    }
                }
                Err(Errno::EAGAIN) => {}
                Err(e) => return Err(e),
            }
        }
        self.walk(relative, create)
    }

    /// openat2 of `path` in the root: symlinks followed but never out of it, no magic links.
    fn open_in_root(&self, path: &OsStr) -> nix::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(self.fd.as_raw_fd(), path, how).map(owned)
    }

    /// A missing target whose parent exists (a mount point in a new tmpfs, the common case):
    /// the last component made in the parent, opened in the root, and the whole path opened
    /// again, where the walk would open and stat every component from the root. `None` where
    /// that does not do (a missing parent, a dangling symlink, a path ending in `..`): the
    /// walk decides then.
    fn create_in_parent(&self, relative: &OsStr, create: Create) -> Option<OwnedFd> {
        let bytes = relative.as_bytes();
        let (parent, name) = match bytes.iter().rposition(|&b| b == b'/') {
            Some(i) => (&bytes[..i], &bytes[i + 1..]),
            None => (&b"."[..], bytes),
        };
        if name.is_empty() || name == b"." || name == b".." {
            return None;
        }
        let parent = self.open_in_root(OsStr::from_bytes(parent)).ok()?;
        let file = create == Create::File;
        create_entry(parent.as_raw_fd(), OsStr::from_bytes(name), file).ok()?;
        self.open_in_root(relative).ok()
    }

    fn duplicate(&self) -> nix::Result<OwnedFd> {
        let arg = nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0);
        nix::fcntl::fcntl(self.fd.as_raw_fd(), arg).map(owned)
    }

    /// The component walk: each step is an `openat(O_PATH|O_NOFOLLOW)` from the parent's fd;
    /// a symlink's target is pushed back onto the queue with `/` meaning the root, and `..`
    /// never goes above the root.
    fn walk(&self, relative: &OsStr, create: Create) -> nix::Result<OwnedFd> {
        let mut queue: VecDeque<OsString> = VecDeque::new();
        push_front_components(&mut queue, relative);
        // Directories below the root on the way to the target; the root itself is implicit.
        let mut dirs: Vec<OwnedFd> = Vec::new();
        let mut symlinks = 0;
        // Bounds the create-then-retry loop should something keep removing what we create.
        let mut creations = 0;

        while let Some(name) = queue.pop_front() {
            if name == ".." {
                dirs.pop();
                continue;
            }
            let parent = dirs.last().map_or(self.fd.as_raw_fd(), |d| d.as_raw_fd());
            let last = queue.is_empty();
            let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd = match openat(Some(parent), name.as_os_str(), flags, Mode::empty()) {
                Ok(fd) => owned(fd),
                Err(Errno::ENOENT) if create != Create::Nothing && creations < 64 => {
                    creations += 1;
                    create_entry(parent, &name, last && create == Create::File)?;
                    queue.push_front(name);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let kind = SFlag::from_bits_truncate(fstat(fd.as_raw_fd())?.st_mode) & SFlag::S_IFMT;
            if kind == SFlag::S_IFLNK {
                symlinks += 1;
                if symlinks > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                let target = readlinkat(Some(fd.as_raw_fd()), "")?;
                if target.as_bytes().starts_with(b"/") {
                    dirs.clear();
                }
                push_front_components(&mut queue, &target);
            } else if kind == SFlag::S_IFDIR {
                dirs.push(fd);
            } else if last {
                return Ok(fd);
            } else {
                return Err(Errno::ENOTDIR);
            }
        }
        match dirs.pop() {
            Some(fd) => Ok(fd),
            None => self.duplicate(),
        }
    }
}

/// Creates a missing directory or empty file; losing a race to another creator is fine.
fn create_entry(parent: RawFd, name: &OsStr, file: bool) -> nix::Result<()> {
    let result = if file {
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_RDONLY;
        openat(
            Some(parent),
            name,
            flags | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(|fd| drop(owned(fd)))
    } else {
        mkdirat(Some(parent), name, Mode::from_bits_truncate(0o755))
    };
    match result {
        Err(Errno::EEXIST) => Ok(()),
        other => other,
    }
}

/// `path` without its leading slashes.
fn relative(path: &Path) -> &OsStr {
    let bytes = path.as_os_str().as_bytes();
    let start = bytes.iter().position(|&b| b != b'/').unwrap_or(bytes.len());
    OsStr::from_bytes(&bytes[start..])
}

/// Puts the components of `path` in front of `queue`, in order, skipping empty ones and `.`.
fn push_front_components(queue: &mut VecDeque<OsString>, path: &OsStr) {
    let components = path
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".");
    let components: Vec<&[u8]> = components.collect();
    for component in components.into_iter().rev() {
        queue.push_front(OsStr::from_bytes(component).to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_skip_dots_and_slashes() {
        let mut q = VecDeque::new();
        q.push_back(OsString::from("z"));
        push_front_components(&mut q, OsStr::new("//a/./b//../c/"));
        assert_eq!(q, ["a", "b", "..", "c", "z"]);
        assert_eq!(relative(Path::new("///x/y")), "x/y");
        assert_eq!(relative(Path::new("/")), "");
    }
}
