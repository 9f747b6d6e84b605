//! `runrs features`: the OCI features document, listing what runrs really supports.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Features {
    oci_version_min: &'static str,
    oci_version_max: &'static str,
    hooks: &'static [&'static str],
    mount_options: &'static [&'static str],
    linux: Linux,
    annotations: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct Linux {
    namespaces: &'static [&'static str],
    capabilities: &'static [&'static str],
    cgroup: Cgroup,
    seccomp: Enabled,
    apparmor: Enabled,
    selinux: Enabled,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cgroup {
    v1: bool,
    v2: bool,
    systemd: bool,
    systemd_user: bool,
}

#[derive(Serialize)]
struct Enabled {
    enabled: bool,
}

/// The six OCI hook kinds, all run by runrs.
pub const HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Mount options understood in `mounts[].options` (flags, propagation and recursive
/// variants; anything else is passed to the filesystem as data). Sorted, as runc prints them.
pub const MOUNT_OPTIONS: [&str; 62] = [
    "acl",
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// Namespace types runrs creates or joins.
pub const NAMESPACES: [&str; 7] = ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"];

/// The features JSON, pretty-printed as runc prints it (four-space indent, no final newline).
pub fn json() -> String {
    let features = Features {
        oci_version_min: "1.0.0",
        oci_version_max: crate::state::OCI_VERSION,
        hooks: &HOOKS,
        mount_options: &MOUNT_OPTIONS,
        linux: Linux {
            namespaces: &NAMESPACES,
            capabilities: &crate::capabilities::ALL,
            cgroup: Cgroup {
                v1: true,
                v2: true,
                systemd: false,
                systemd_user: false,
            },
            seccomp: Enabled { enabled: false },
            apparmor: Enabled { enabled: false },
            selinux: Enabled { enabled: false },
        },
        annotations: BTreeMap::from([(
            "org.opencontainers.runrs.version",
            env!("CARGO_PKG_VERSION"),
        )]),
    };
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serializing plain structs of strings and bools into memory cannot fail.
    let _ = features.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn shape_follows_runc() {
        let text = super::json();
        assert!(text.starts_with("{\n    \"ociVersionMin\": \"1.0.0\",\n    \"ociVersionMax\""));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["hooks"].as_array().unwrap().len(), 6);
        assert_eq!(v["linux"]["capabilities"][0], "CAP_CHOWN");
        assert_eq!(v["linux"]["capabilities"][40], "CAP_CHECKPOINT_RESTORE");
        assert_eq!(v["linux"]["cgroup"]["systemd"], false);
        assert_eq!(v["linux"]["seccomp"]["enabled"], false);
        let opts: Vec<&str> = v["mountOptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        let mut sorted = opts.clone();
        sorted.sort();
        assert_eq!(opts, sorted);
    }
}
