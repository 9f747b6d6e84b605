//! fstab-style mount options from `config.json` turned into `mount(2)` flags, propagation
//! changes and the data string, with runc's vocabulary.

use nix::mount::MsFlags;

/// One `mounts[]` entry's options, split the way `mount(2)` wants them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// Flags for the mount call itself (bind, ro, nosuid, ...).
    pub flags: MsFlags,
    /// Propagation changes, applied one by one after the mount, in the order given.
    pub propagation: Vec<MsFlags>,
    /// Everything the kernel flags do not cover, passed to the filesystem (`size=65536k`).
    pub data: String,
    /// `rro`, `rnosuid`, ...: attributes for the whole mount tree, set with mount_setattr(2).
    pub recursive: RecursiveAttrs,
    /// `idmap`/`ridmap` was asked for (`idmap.rs` makes such a mount).
    pub idmap: bool,
    /// `tmpcopyup`: a tmpfs gets a copy of the directory it covers (`copyup.rs`).
    pub copyup: bool,
}

/// `MOUNT_ATTR_*` bits to set and to clear, as `struct mount_attr` takes them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecursiveAttrs {
    pub set: u64,
    pub clear: u64,
}

impl RecursiveAttrs {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
const MOUNT_ATTR_RELATIME: u64 = 0x0;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x20_0000;

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            data: String::new(),
            recursive: RecursiveAttrs::default(),
            idmap: false,
            copyup: false,
        }
    }
}

impl MountOptions {
    pub fn parse<S: AsRef<str>>(options: &[S]) -> MountOptions {
        let mut parsed = MountOptions::default();
        for option in options {
            let option = option.as_ref();
            if let Some((set, flag)) = flag_option(option) {
                if set {
                    parsed.flags.insert(flag);
                } else {
                    parsed.flags.remove(flag);
                }
            } else if let Some(flag) = propagation_option(option) {
                parsed.propagation.push(flag);
            } else if let Some((set, attr)) = recursive_option(option) {
                if set {
                    parsed.recursive.set |= attr;
                    parsed.recursive.clear &= !attr;
                    if attr & MOUNT_ATTR_ATIME_MASK == attr {
                        // An access-time mode replaces the current one: the kernel wants the
                        // whole atime field cleared alongside.
                        parsed.recursive.clear |= MOUNT_ATTR_ATIME_MASK;
                    }
                } else {
                    parsed.recursive.clear |= attr;
                    parsed.recursive.set &= !attr;
                }
            } else if option == "idmap" || option == "ridmap" || option.starts_with("idmap=") {
                parsed.idmap = true;
            } else if option == "tmpcopyup" {
                parsed.copyup = true;
            } else {
                if !parsed.data.is_empty() {
                    parsed.data.push(',');
                }
                parsed.data.push_str(option);
            }
        }
        parsed
    }

    /// What a bind remount with `flags` sets (`MS_REMOUNT|MS_BIND` leaves every per-mount
    /// flag not given cleared, and the access time relatime unless given), as mount_setattr(2)
    /// attributes; `None` for flags it has no attribute for (`sync`, `mand`, ...).
    pub fn remount_as_attrs(flags: MsFlags) -> Option<RecursiveAttrs> {
        let per_mount = [
            (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
            (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
            (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
            (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
            (MsFlags::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
        ];
        let atime = [
            (MsFlags::MS_NOATIME, MOUNT_ATTR_NOATIME),
            (MsFlags::MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
            (MsFlags::MS_RELATIME, MOUNT_ATTR_RELATIME),
        ];
        let known = per_mount
            .iter()
            .chain(&atime)
            .fold(MsFlags::empty(), |a, (f, _)| a | *f);
        if !known.contains(flags) {
            return None;
        }
        let mut attrs = RecursiveAttrs {
            set: 0,
            clear: MOUNT_ATTR_ATIME_MASK,
        };
        for (flag, attr) in per_mount {
            if flags.contains(flag) {
                attrs.set |= attr;
            } else {
                attrs.clear |= attr;
            }
        }
        if let Some((_, attr)) = atime.iter().find(|(f, _)| flags.contains(*f)) {
            attrs.set |= attr;
        }
        Some(attrs)
    }

    /// A bind mount: `type: "bind"` or a `bind`/`rbind` option.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// Flags a bind mount ignores on creation and needs a second, remounting call for.
    pub fn bind_remount_flags(&self) -> MsFlags {
        self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
    }
}

/// `(true, F)` sets flag F, `(false, F)` clears it.
fn flag_option(option: &str) -> Option<(bool, MsFlags)> {
    let nosymfollow = MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);
    Some(match option {
        "defaults" => (true, MsFlags::empty()),
        "ro" => (true, MsFlags::MS_RDONLY),
        "rw" => (false, MsFlags::MS_RDONLY),
        "bind" => (true, MsFlags::MS_BIND),
        "rbind" => (true, MsFlags::MS_BIND | MsFlags::MS_REC),
        "nosuid" => (true, MsFlags::MS_NOSUID),
        "suid" => (false, MsFlags::MS_NOSUID),
        "nodev" => (true, MsFlags::MS_NODEV),
        "dev" => (false, MsFlags::MS_NODEV),
        "noexec" => (true, MsFlags::MS_NOEXEC),
        "exec" => (false, MsFlags::MS_NOEXEC),
        "sync" => (true, MsFlags::MS_SYNCHRONOUS),
        "async" => (false, MsFlags::MS_SYNCHRONOUS),
        "dirsync" => (true, MsFlags::MS_DIRSYNC),
        "remount" => (true, MsFlags::MS_REMOUNT),
        "mand" => (true, MsFlags::MS_MANDLOCK),
        "nomand" => (false, MsFlags::MS_MANDLOCK),
        "atime" => (false, MsFlags::MS_NOATIME),
        "noatime" => (true, MsFlags::MS_NOATIME),
        "diratime" => (false, MsFlags::MS_NODIRATIME),
        "nodiratime" => (true, MsFlags::MS_NODIRATIME),
        "relatime" => (true, MsFlags::MS_RELATIME),
        "norelatime" => (false, MsFlags::MS_RELATIME),
        "strictatime" => (true, MsFlags::MS_STRICTATIME),
        "nostrictatime" => (false, MsFlags::MS_STRICTATIME),
        "lazytime" => (true, MsFlags::MS_LAZYTIME),
        "nolazytime" => (false, MsFlags::MS_LAZYTIME),
        "iversion" => (true, MsFlags::MS_I_VERSION),
        "noiversion" => (false, MsFlags::MS_I_VERSION),
        "silent" => (true, MsFlags::MS_SILENT),
        "loud" => (false, MsFlags::MS_SILENT),
        "nosymfollow" => (true, nosymfollow),
        "symfollow" => (false, nosymfollow),
        _ => return None,
    })
}

/// `(true, A)` sets recursive attribute A, `(false, A)` clears it (runc's vocabulary).
fn recursive_option(option: &str) -> Option<(bool, u64)> {
    Some(match option {
        "rro" => (true, MOUNT_ATTR_RDONLY),
        "rrw" => (false, MOUNT_ATTR_RDONLY),
        "rnosuid" => (true, MOUNT_ATTR_NOSUID),
        "rsuid" => (false, MOUNT_ATTR_NOSUID),
        "rnodev" => (true, MOUNT_ATTR_NODEV),
        "rdev" => (false, MOUNT_ATTR_NODEV),
        "rnoexec" => (true, MOUNT_ATTR_NOEXEC),
        "rexec" => (false, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (true, MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (false, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (true, MOUNT_ATTR_RELATIME),
        "rnorelatime" => (false, MOUNT_ATTR_RELATIME),
        "rnoatime" => (true, MOUNT_ATTR_NOATIME),
        "ratime" => (false, MOUNT_ATTR_NOATIME),
        "rstrictatime" => (true, MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => (false, MOUNT_ATTR_STRICTATIME),
        "rnosymfollow" => (true, MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (false, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// `shared`, `rslave`, ...: the flags for `mount(NULL, target, NULL, flags, NULL)`.
pub(crate) fn propagation_option(option: &str) -> Option<MsFlags> {
    let rec = MsFlags::MS_REC;
    Some(match option {
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | rec,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | rec,
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | rec,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | rec,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_flags_propagation_and_data() {
        let o = MountOptions::parse(&["nosuid", "rbind", "ro", "rslave", "size=1k", "mode=755"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, "size=1k,mode=755");
        assert!(o.is_bind());
        assert_eq!(
            o.bind_remount_flags(),
            MsFlags::MS_NOSUID | MsFlags::MS_RDONLY
        );
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let o = MountOptions::parse(&["ro", "rw", "noexec", "exec", "tmpcopyup"]);
        assert_eq!(o.flags, MsFlags::empty());
        assert!(o.data.is_empty());
        assert!(o.recursive.is_empty());
    }

    #[test]
    fn recursive_attributes() {
        let o = MountOptions::parse(&["rbind", "rro", "rnosuid", "rnoatime", "rsuid"]);
        assert_eq!(o.recursive.set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME);
        assert_eq!(o.recursive.clear, MOUNT_ATTR_ATIME_MASK | MOUNT_ATTR_NOSUID);
        assert!(o.data.is_empty());
        assert!(MountOptions::parse(&["idmap"]).idmap);
    }

    #[test]
    fn bind_remount_flags_as_attributes() {
        let o = MountOptions::parse(&["nosuid", "noexec", "nodev", "relatime", "ro"]);
        let a = MountOptions::remount_as_attrs(o.flags).unwrap();
        let flags = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
        assert_eq!(a.set, flags | MOUNT_ATTR_RELATIME);
        // What a remount leaves unset is cleared; the access time is always replaced.
        assert_eq!(a.clear, MOUNT_ATTR_ATIME_MASK | MOUNT_ATTR_NODIRATIME);
        let rw = MountOptions::remount_as_attrs(MsFlags::MS_NOATIME).unwrap();
        assert_eq!(rw.set, MOUNT_ATTR_NOATIME);
        assert_eq!(rw.clear & flags, flags);
        assert!(MountOptions::remount_as_attrs(MsFlags::MS_SYNCHRONOUS).is_none());
    }
}
