//! One `mounts[]` entry: checks on its destination, the mount its type asks for (a kind from
//! `mounts`, or `cgroup_v1`), then the second steps a mount may need (recursive attributes,
//! propagation changes).

use super::cgroup_v1;
use super::mounts::{lexical_clean, set_recursive_attrs, Mounter, PROC_OVERMOUNTABLE};
use super::options::MountOptions;
use super::resolve::Create;
use anyhow::{bail, Context, Result};
use nix::mount::MsFlags;
use nix::sys::statfs::PROC_SUPER_MAGIC;
use oci_spec::runtime::Mount;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// Performs one `mounts[]` entry; a bind's source may have been opened already (`opened`).
pub(super) fn mount_entry(
    mounter: &Mounter<'_>,
    entry: &Mount,
    opened: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let dest = entry.destination();
    let typ = entry.typ().as_deref().unwrap_or("");
    let mut options = MountOptions::parse(entry.options().as_deref().unwrap_or(&[]));
    if typ == "bind" {
        options.flags.insert(MsFlags::MS_BIND);
    }
    let source = entry.source().as_deref();
    check_proc_destination(dest, typ, &options, source)?;
    let idmapped =
        options.idmap || entry.uid_mappings().is_some() || entry.gid_mappings().is_some();
    if idmapped && opened.is_none() {
        // Never mounted without its mapping: `rootfs::open_bind_sources` makes it.
        bail!(
            "idmapped mount on {} was not prepared before the clone",
            dest.display()
        );
    }
    if !options.is_bind() && lexical_clean(dest) == Path::new("/dev") {
        // Devices and symlinks are created in it yet: `finish` makes it read-only.
        options.flags.remove(MsFlags::MS_RDONLY);
    }

    if options.is_bind() {
        let source =
            source.with_context(|| format!("bind mount on {} has no source", dest.display()))?;
        match opened {
            Some(tree) => mounter.attach_tree(source, tree, dest, &options)?,
            None => mounter.bind(source, dest, &options)?,
        }
    } else {
        match typ {
            // As runc: on a cgroup2-only host `cgroup` means the unified hierarchy.
            "cgroup" if mounter.cgroups.is_pure_v2() => mounter.cgroup2(source, dest, &options)?,
            "cgroup" => cgroup_v1::mount(mounter, dest, &options)?,
            "cgroup2" => mounter.cgroup2(source, dest, &options)?,
            "" => bail!(
                "mount on {} has no type (and is not a bind mount)",
                dest.display()
            ),
            _ => mounter.filesystem(typ, source, dest, &options)?,
        }
    }
    if !options.recursive.is_empty() {
        let mounted = mounter.resolve(dest, Create::Nothing)?;
        set_recursive_attrs(mounted.as_fd(), options.recursive).with_context(|| {
            format!(
                "set recursive mount attributes (rro, rnosuid, ...) on {}",
                dest.display()
            )
        })?;
    }
    mounter.propagate(dest, &options.propagation)
}

/// Lexical rules on `/proc` destinations (runc's `checkProcMount`).
fn check_proc_destination(
    dest: &Path,
    typ: &str,
    options: &MountOptions,
    source: Option<&Path>,
) -> Result<()> {
    let clean = lexical_clean(dest);
    let Ok(under_proc) = clean.strip_prefix("/proc") else {
        return Ok(());
    };
    if under_proc.as_os_str().is_empty() {
        let source_is_proc = || {
            source
                .and_then(|s| nix::sys::statfs::statfs(s).ok())
                .is_some_and(|s| s.filesystem_type() == PROC_SUPER_MAGIC)
        };
        if typ == "proc" || (options.is_bind() && source_is_proc()) {
            return Ok(());
        }
        bail!("mount on /proc must be of type proc (got {typ:?} from {source:?})");
    }
    if PROC_OVERMOUNTABLE.iter().any(|p| clean == Path::new(p)) {
        return Ok(());
    }
    bail!(
        "mount destination {} is under /proc, where only {} may be mounted over",
        dest.display(),
        PROC_OVERMOUNTABLE.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_destinations() {
        let none = MountOptions::default();
        assert!(check_proc_destination(Path::new("/proc"), "proc", &none, None).is_ok());
        assert!(check_proc_destination(Path::new("/proc"), "tmpfs", &none, None).is_err());
        assert!(
            check_proc_destination(Path::new("/x/../proc/self"), "tmpfs", &none, None).is_err()
        );
        assert!(check_proc_destination(Path::new("/proc/cpuinfo"), "bind", &none, None).is_ok());
        assert!(check_proc_destination(Path::new("/procfoo"), "tmpfs", &none, None).is_ok());
        assert_eq!(
            lexical_clean(Path::new("/../a/./b/..//c")),
            Path::new("/a/c")
        );
    }
}
