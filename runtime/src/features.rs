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
    potentially_unsafe_config_annotations: &'static [&'static str],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Linux {
    namespaces: &'static [&'static str],
    capabilities: &'static [&'static str],
    cgroup: Cgroup,
    seccomp: Seccomp,
    apparmor: Enabled,
    selinux: Enabled,
    intel_rdt: IntelRdt,
    mount_extensions: MountExtensions,
    net_devices: Enabled,
}

/// runc 1.4's: support built in (the host may still lack resctrl), `schemata` and
/// `enableMonitoring` honoured.
#[derive(Serialize)]
struct IntelRdt {
    enabled: bool,
    schemata: bool,
    monitoring: bool,
}

#[derive(Serialize)]
struct MountExtensions {
    idmap: Enabled,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cgroup {
    v1: bool,
    v2: bool,
    systemd: bool,
    systemd_user: bool,
    rdma: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Seccomp {
    enabled: bool,
    actions: &'static [&'static str],
    operators: &'static [&'static str],
    archs: Vec<String>,
    known_flags: &'static [&'static str],
    supported_flags: Vec<&'static str>,
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

/// Mount options understood in `mounts[].options`: the flags, propagation and recursive
/// (`mount_setattr`) vocabulary of `rootfs/options.rs` and runc's `tmpcopyup`; anything else
/// is passed to the filesystem as data. `idmap`/`ridmap` are reported as
/// `mountExtensions.idmap`, as runc does. Sorted, as runc prints them.
pub const MOUNT_OPTIONS: [&str; 60] = [
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
pub const NAMESPACES: [&str; 8] = [
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
];

/// Filter flags a `config.json` can ask for: runc 1.3's three and `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`, which runc 1.3 does not know (runtime-spec 1.2).
pub const SECCOMP_KNOWN_FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// The seccomp part: what `seccomp::compile` understands, the architectures it accepts on
/// this machine and the known flags this kernel has (others are dropped when loading).
fn seccomp() -> Seccomp {
    let mut archs = crate::seccomp::accepted_architectures();
    archs.sort();
    let supported = crate::seccomp::supported_flags();
    Seccomp {
        enabled: true,
        actions: crate::seccomp::ACTIONS,
        operators: crate::seccomp::OPERATORS,
        archs,
        known_flags: &SECCOMP_KNOWN_FLAGS,
        supported_flags: SECCOMP_KNOWN_FLAGS
            .into_iter()
            .filter(|flag| supported.contains(flag))
            .collect(),
    }
}

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
                systemd: true,
                systemd_user: true,
                rdma: true,
            },
            seccomp: seccomp(),
            // runc reports whether the host has it: profiles are applied where it does.
            apparmor: Enabled {
                enabled: crate::lsm::apparmor_enabled(),
            },
            selinux: Enabled { enabled: false },
            intel_rdt: IntelRdt {
                enabled: true,
                schemata: true,
                monitoring: true,
            },
            mount_extensions: MountExtensions {
                idmap: Enabled { enabled: true },
            },
            net_devices: Enabled { enabled: true },
        },
        annotations: BTreeMap::from([(
            "org.opencontainers.runrs.version",
            env!("CARGO_PKG_VERSION"),
        )]),
        // Annotations that change what runrs does on the host (systemd unit properties).
        potentially_unsafe_config_annotations: &["org.systemd.property."],
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
    use serde_json::{json, Value};

    fn features() -> Value {
        serde_json::from_str(&super::json()).unwrap()
    }

    fn strings(v: &Value) -> Vec<&str> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect()
    }

    fn assert_sorted_unique(list: &[&str]) {
        let mut sorted = list.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(list, sorted);
    }

    /// Whether `seccomp::check_supported` takes this profile.
    fn accepted(profile: Value) -> bool {
        let seccomp: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(profile).unwrap();
        crate::seccomp::check_supported(Some(&seccomp)).is_ok()
    }

    #[test]
    fn shape_follows_runc() {
        let text = super::json();
        assert!(text.starts_with("{\n    \"ociVersionMin\": \"1.0.0\",\n    \"ociVersionMax\""));
        let v = features();
        assert_eq!(v["hooks"].as_array().unwrap().len(), 6);
        assert_eq!(v["linux"]["capabilities"][0], "CAP_CHOWN");
        assert_eq!(v["linux"]["capabilities"][40], "CAP_CHECKPOINT_RESTORE");
        assert_eq!(
            v["linux"]["cgroup"],
            json!({"v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": true})
        );
        assert_eq!(
            v["linux"]["apparmor"],
            json!({"enabled": crate::lsm::apparmor_enabled()})
        );
        assert_eq!(v["linux"]["selinux"], json!({"enabled": false}));
        let opts = strings(&v["mountOptions"]);
        assert_sorted_unique(&opts);
        assert!(opts.contains(&"rbind") && opts.contains(&"rro") && opts.contains(&"rslave"));
        assert!(opts.contains(&"tmpcopyup"));
        // As runc: idmapped mounts are a mount extension, not in the options list.
        for absent in ["idmap", "ridmap"] {
            assert!(!opts.contains(&absent), "{absent}");
        }
        assert_eq!(
            v["linux"]["mountExtensions"],
            json!({"idmap": {"enabled": true}})
        );
        assert!(strings(&v["linux"]["namespaces"]).contains(&"time"));
    }

    #[test]
    fn seccomp_lists_what_compile_accepts() {
        let v = features();
        let sc = &v["linux"]["seccomp"];
        assert_eq!(sc["enabled"], true);
        let actions = strings(&sc["actions"]);
        assert_eq!(actions.len(), 9);
        assert_sorted_unique(&actions);
        for action in actions {
            let profile = json!({"defaultAction": "SCMP_ACT_ALLOW",
                                 "syscalls": [{"names": ["getppid"], "action": action}]});
            assert!(accepted(profile), "{action}");
        }
        let operators = strings(&sc["operators"]);
        assert_eq!(operators.len(), 7);
        assert_sorted_unique(&operators);
        for op in operators {
            let args = json!([{"index": 0, "value": 1, "valueTwo": 1, "op": op}]);
            let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "args": args}]});
            let seccomp = serde_json::from_value(profile).unwrap();
            assert!(crate::seccomp::compile(&seccomp).is_ok(), "{op}");
        }
        let archs = strings(&sc["archs"]);
        assert_sorted_unique(&archs);
        assert!(!archs.is_empty());
        for arch in &archs {
            assert!(
                accepted(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [arch]})),
                "{arch}"
            );
        }
        if cfg!(target_arch = "x86_64") {
            assert!(archs.contains(&"SCMP_ARCH_X86_64") && archs.contains(&"SCMP_ARCH_X86"));
        }
    }

    #[test]
    fn seccomp_flags_are_known_and_supported_by_this_kernel() {
        let v = features();
        let sc = &v["linux"]["seccomp"];
        let known = strings(&sc["knownFlags"]);
        assert_sorted_unique(&known);
        for flag in &known {
            let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag]});
            assert!(accepted(profile), "{flag}");
        }
        // A flag oci-spec cannot parse cannot be in a config.json.
        let unparsed: Result<oci_spec::runtime::LinuxSeccompFilterFlag, _> =
            serde_json::from_value(json!("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"));
        if unparsed.is_err() {
            assert!(!known.contains(&"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"));
        }
        let supported = strings(&sc["supportedFlags"]);
        assert!(supported.iter().all(|f| known.contains(f)), "{supported:?}");
        // TSYNC is as old as seccomp filters' threads support (Linux 3.17).
        assert!(supported.contains(&"SECCOMP_FILTER_FLAG_TSYNC"));
    }
}
