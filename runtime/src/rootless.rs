//! Rootless: runrs run by a user other than root. What changes: the state lives under
//! `$XDG_RUNTIME_DIR/runrs`, the container's cgroups are made only where the user may make
//! them (a subtree delegated to the user), and the user namespace's maps are written through
//! `newuidmap`/`newgidmap` unless they map only the user's own ids (`namespaces.rs`).

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;
use std::path::PathBuf;

/// `--rootless true|false|auto` (runc's flag; auto when not given): whether cgroup permission
/// errors mean "no cgroup there" rather than a failure. Auto as runc decides it: a user
/// other than root is rootless; root of the initial user namespace is not; root of another
/// user namespace (`unshare -r`, rootless Podman) is with the cgroupfs driver, and with the
/// systemd driver when the user's bus belongs to a user other than root (runc asks
/// `busctl --user status` for its OwnerUID; no user bus counts as root).
pub fn parse_flag(value: Option<&str>, systemd_cgroup: bool) -> Result<bool> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("auto") => Ok(euid() != 0
            || (in_user_namespace()
                && (!systemd_cgroup
                    || (user_bus_address().is_some() && session_owner() != Some(0))))),
        // Go's strconv.ParseBool, as runc reads it.
        Some("1" | "t" | "true") => Ok(true),
        Some("0" | "f" | "false") => Ok(false),
        Some(_) => bail!(
            "strconv.ParseBool: parsing {:?}: invalid syntax",
            value.unwrap_or_default()
        ),
    }
}

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Whether this process is in a user namespace other than the initial one (whose uid map is
/// the whole range, `0 0 4294967295`).
pub fn in_user_namespace() -> bool {
    let map = crate::kernfs::read("/proc/self/uid_map").unwrap_or_default();
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields != ["0", "0", "4294967295"]
}

/// The user's bus as runc finds it: `$DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`
/// if it exists.
pub fn user_bus_address() -> Option<String> {
    match std::env::var("DBUS_SESSION_BUS_ADDRESS") {
        Ok(a) if !a.is_empty() => Some(a),
        _ => {
            let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty())?;
            let bus = PathBuf::from(xdg).join("bus");
            bus.exists().then(|| format!("unix:path={}", bus.display()))
        }
    }
}

/// The user whose session this process runs in, as the bus sees it (sd_bus's owner uid): the
/// euid outside a user namespace; in one (rootless Podman maps the user to 0), the `N` of
/// `user-N.slice` in this process's cgroup, else the euid as the user namespace maps it.
pub fn session_owner() -> Option<u32> {
    if !in_user_namespace() {
        return Some(euid());
    }
    let cgroup = crate::kernfs::read("/proc/self/cgroup").unwrap_or_default();
    let from_cgroup = cgroup
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .flat_map(|path| path.split('/'))
        .find_map(|c| {
            c.strip_prefix("user-")?
                .strip_suffix(".slice")?
                .parse()
                .ok()
        });
    from_cgroup.or_else(|| {
        let map = crate::kernfs::read("/proc/self/uid_map").ok()?;
        outside_id(&map, euid())
    })
}

/// `id` of this user namespace as its parent sees it, by a `uid_map`'s lines.
fn outside_id(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [inside, outside, count] = f[..] else {
            return None;
        };
        let id = u64::from(id);
        (inside <= id && id < inside + count).then(|| (outside + id - inside) as u32)
    })
}

/// The state directory when `--root` is not given: `$XDG_RUNTIME_DIR/runrs` for a user other
/// than root, or root of a user namespace whose `$USER` is not root (runc's rule, with its
/// name); `/run/runrs` otherwise.
pub fn default_root() -> PathBuf {
    let honor_xdg =
        euid() != 0 || (in_user_namespace() && std::env::var("USER").map_or(true, |u| u != "root"));
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(xdg) if honor_xdg && !xdg.is_empty() => PathBuf::from(xdg).join("runrs"),
        _ => PathBuf::from("/run/runrs"),
    }
}

/// Rootless, with some of the container's cgroups not made (`dropped` hierarchies): what
/// `linux.resources` asks that would need them, in runc's words. Device rules need no cgroup
/// of the user's (the user namespace has no device nodes to open but the host's).
pub fn check_resources(r: Option<&LinuxResources>, dropped: usize) -> Result<()> {
    let Some(r) = r else { return Ok(()) };
    if dropped == 0 {
        return Ok(());
    }
    let set = |v: serde_json::Result<serde_json::Value>| match v {
        Ok(serde_json::Value::Object(o)) => !o.is_empty(),
        Ok(serde_json::Value::Array(a)) => !a.is_empty(),
        Ok(serde_json::Value::Null) | Err(_) => false,
        Ok(_) => true,
    };
    let asked = [
        ("memory", set(serde_json::to_value(r.memory()))),
        ("cpu", set(serde_json::to_value(r.cpu()))),
        ("pids", set(serde_json::to_value(r.pids()))),
        ("blkio", set(serde_json::to_value(r.block_io()))),
        ("hugetlb", set(serde_json::to_value(r.hugepage_limits()))),
        ("network", set(serde_json::to_value(r.network()))),
        ("rdma", set(serde_json::to_value(r.rdma()))),
        ("unified", set(serde_json::to_value(r.unified()))),
    ];
    if let Some((what, _)) = asked.iter().find(|(_, asked)| *asked) {
        bail!(
            "cannot set {what} limit: container could not join or create cgroup \
             (rootless: this user may not make the container's cgroup there; run it in a \
             cgroup systemd delegated to the user, e.g. systemd-run --user --scope)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_flag_reads_as_runc_reads_it() {
        assert!(parse_flag(Some("true"), false).unwrap());
        assert!(parse_flag(Some("T"), false).unwrap());
        assert!(!parse_flag(Some("false"), false).unwrap());
        assert!(!parse_flag(Some("0"), false).unwrap());
        let auto = euid() != 0 || in_user_namespace();
        assert_eq!(parse_flag(Some("auto"), false).unwrap(), auto);
        assert_eq!(parse_flag(None, false).unwrap(), auto);
        let e = parse_flag(Some("maybe"), false).unwrap_err().to_string();
        assert_eq!(e, "strconv.ParseBool: parsing \"maybe\": invalid syntax");
    }

    #[test]
    fn ids_translate_through_a_uid_map() {
        // rootless Podman: the user is root inside, subordinate ids above.
        let map = "         0       1000          1\n         1     100000      65536\n";
        assert_eq!(outside_id(map, 0), Some(1000));
        assert_eq!(outside_id(map, 1), Some(100000));
        assert_eq!(outside_id(map, 65536), Some(165535));
        assert_eq!(outside_id(map, 65537), None);
        assert_eq!(outside_id("0 0 4294967295\n", 41500), Some(41500));
    }

    #[test]
    fn resources_that_need_a_cgroup() {
        let r: LinuxResources = serde_json::from_str(r#"{"memory": {"limit": 1048576}}"#).unwrap();
        assert!(check_resources(Some(&r), 0).is_ok(), "every cgroup made");
        let e = check_resources(Some(&r), 1).unwrap_err().to_string();
        assert!(e.starts_with("cannot set memory limit: container could not join or create cgroup"));
        // Device rules and empty sections ask nothing of a cgroup of the user's.
        let r: LinuxResources = serde_json::from_str(
            r#"{"devices": [{"allow": false, "access": "rwm"}], "memory": {}}"#,
        )
        .unwrap();
        assert!(check_resources(Some(&r), 3).is_ok());
    }
}
