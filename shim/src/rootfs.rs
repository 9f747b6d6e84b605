//! The rootfs mounts containerd hands to Create (overlay from the overlayfs snapshotter,
//! bind mounts), mounted onto `<bundle>/rootfs`, and their removal.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use runrs_proto::mount::Mount;

/// Splits fstab-style options into mount flags and the data string.
pub fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        let (set, clear) = match o.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, data.join(","))
}

/// Mounts every rootfs mount onto `target`, in order; on failure undoes what it did.
pub fn mount_rootfs(mounts: &[Mount], target: &Path) -> Result<(), String> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            for _ in 0..i {
                let _ = umount2(target, MntFlags::MNT_DETACH);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> Result<(), String> {
    let (flags, data) = parse_options(&m.options);
    let fstype = (!m.type_.is_empty() && m.type_ != "bind").then_some(m.type_.as_str());
    let data = (!data.is_empty()).then_some(data.as_str());
    let ro_bind = flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY);
    mount(Some(m.source.as_str()), target, fstype, flags, data).map_err(|e| {
        format!(
            "mounting {} ({}) on {}: {e}",
            m.source,
            m.type_,
            target.display()
        )
    })?;
    if ro_bind {
        // A bind mount ignores MS_RDONLY until it is remounted.
        mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(|e| format!("remounting {} read-only: {e}", target.display()))?;
    }
    Ok(())
}

/// Unmounts everything stacked on `target` (only if it is a mount point).
pub fn unmount_all(target: &Path) -> Result<(), String> {
    for _ in 0..32 {
        if !is_mount_point(target) {
            return Ok(());
        }
        umount2(target, MntFlags::MNT_DETACH)
            .map_err(|e| format!("unmounting {}: {e}", target.display()))?;
    }
    Ok(())
}

/// Whether `path` appears as a mount point in /proc/self/mountinfo.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4).map(unescape).as_deref() == Some(&*want))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn overlay_options_go_to_data() {
        let (f, d) = parse_options(&opts(&[
            "index=off",
            "workdir=/w",
            "upperdir=/u",
            "lowerdir=/l1:/l2",
        ]));
        assert!(f.is_empty());
        assert_eq!(d, "index=off,workdir=/w,upperdir=/u,lowerdir=/l1:/l2");
    }

    #[test]
    fn bind_flags() {
        let (f, d) = parse_options(&opts(&["rbind", "ro", "nosuid"]));
        assert!(f.contains(
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        ));
        assert!(d.is_empty());
        let (f, _) = parse_options(&opts(&["ro", "rw"]));
        assert!(!f.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn root_is_a_mount_point() {
        assert!(is_mount_point(Path::new("/")));
        assert!(!is_mount_point(Path::new("/definitely/not/here")));
    }
}
