//! `runrs spec`: the default `config.json`, byte for byte what `runc spec` (and
//! `runc spec --rootless`) writes: tab-indented JSON without a final newline.

/// The default bundle configuration. `rootless` gives the `--rootless` variant: no network
/// namespace, a user namespace mapping root to the caller's euid/egid, `/sys` bind-mounted,
/// no device cgroup rules and no `gid=5` on `/dev/pts`.
pub fn default_spec(rootless: bool) -> String {
    let head = HEAD.replace("{OCI_VERSION}", crate::state::OCI_VERSION);
    let mut out = if rootless {
        head.replace("{DEVPTS_MODE}", "\t\t\t\t\"mode=0620\"\n")
    } else {
        head.replace(
            "{DEVPTS_MODE}",
            "\t\t\t\t\"mode=0620\",\n\t\t\t\t\"gid=5\"\n",
        )
    };
    if rootless {
        // SAFETY: geteuid and getegid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        out.push_str(SYS_MOUNT_ROOTLESS);
        out.push_str(CGROUP_MOUNT);
        out.push_str(
            &LINUX_ROOTLESS
                .replace("{HOST_ID}", &uid.to_string())
                .replace("{HOST_GID}", &gid.to_string()),
        );
    } else {
        out.push_str(SYS_MOUNT);
        out.push_str(CGROUP_MOUNT);
        out.push_str(LINUX);
    }
    if crate::cgroups::unified_mode() {
        // runc adds a cgroup namespace on a pure cgroup v2 host, after mount.
        out = out.replacen(
            "\t\t\t\t\"type\": \"mount\"\n\t\t\t}",
            "\t\t\t\t\"type\": \"mount\"\n\t\t\t},\n\t\t\t{\n\t\t\t\t\"type\": \"cgroup\"\n\t\t\t}",
            1,
        );
    }
    out.push_str(TAIL);
    out
}

const HEAD: &str = r#"{
	"ociVersion": "{OCI_VERSION}",
	"process": {
		"terminal": true,
		"user": {
			"uid": 0,
			"gid": 0
		},
		"args": [
			"sh"
		],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"effective": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"permitted": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"ambient": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			]
		},
		"rlimits": [
			{
				"type": "RLIMIT_NOFILE",
				"hard": 1024,
				"soft": 1024
			}
		],
		"noNewPrivileges": true
	},
	"root": {
		"path": "rootfs",
		"readonly": true
	},
	"hostname": "runc",
	"mounts": [
		{
			"destination": "/proc",
			"type": "proc",
			"source": "proc"
		},
		{
			"destination": "/dev",
			"type": "tmpfs",
			"source": "tmpfs",
			"options": [
				"nosuid",
				"strictatime",
				"mode=755",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/pts",
			"type": "devpts",
			"source": "devpts",
			"options": [
				"nosuid",
				"noexec",
				"newinstance",
				"ptmxmode=0666",
{DEVPTS_MODE}			]
		},
		{
			"destination": "/dev/shm",
			"type": "tmpfs",
			"source": "shm",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"mode=1777",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/mqueue",
			"type": "mqueue",
			"source": "mqueue",
			"options": [
				"nosuid",
				"noexec",
				"nodev"
			]
		},
"#;

const SYS_MOUNT: &str = r#"		{
			"destination": "/sys",
			"type": "sysfs",
			"source": "sysfs",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"ro"
			]
		},
"#;

const SYS_MOUNT_ROOTLESS: &str = r#"		{
			"destination": "/sys",
			"type": "none",
			"source": "/sys",
			"options": [
				"rbind",
				"nosuid",
				"noexec",
				"nodev",
				"ro"
			]
		},
"#;

const CGROUP_MOUNT: &str = r#"		{
			"destination": "/sys/fs/cgroup",
			"type": "cgroup",
			"source": "cgroup",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"relatime",
				"ro"
			]
		}
	],
	"linux": {
"#;

const LINUX: &str = r#"		"resources": {
			"devices": [
				{
					"allow": false,
					"access": "rwm"
				}
			]
		},
		"namespaces": [
			{
				"type": "pid"
			},
			{
				"type": "network"
			},
			{
				"type": "ipc"
			},
			{
				"type": "uts"
			},
			{
				"type": "mount"
			}
		],
"#;

const LINUX_ROOTLESS: &str = r#"		"uidMappings": [
			{
				"containerID": 0,
				"hostID": {HOST_ID},
				"size": 1
			}
		],
		"gidMappings": [
			{
				"containerID": 0,
				"hostID": {HOST_GID},
				"size": 1
			}
		],
		"namespaces": [
			{
				"type": "pid"
			},
			{
				"type": "ipc"
			},
			{
				"type": "uts"
			},
			{
				"type": "mount"
			},
			{
				"type": "user"
			}
		],
"#;

const TAIL: &str = r#"		"maskedPaths": [
			"/proc/acpi",
			"/proc/asound",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/sys/firmware",
			"/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger"
		]
	}
}"#;
#[cfg(test)]
mod tests {
    use super::default_spec;

    /// `runc spec [--rootless]` output, when runc is installed.
    fn runc_spec(rootless: bool) -> Option<String> {
        let runc = std::path::Path::new("/usr/sbin/runc");
        if !runc.exists() {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let mut cmd = std::process::Command::new(runc);
        cmd.arg("spec").current_dir(dir.path());
        if rootless {
            cmd.arg("--rootless");
        }
        let ok = cmd.status().ok()?.success();
        assert!(ok, "runc spec failed");
        std::fs::read_to_string(dir.path().join("config.json")).ok()
    }

    fn check(rootless: bool) {
        let ours = default_spec(rootless);
        let spec: oci_spec::runtime::Spec = serde_json::from_str(&ours).unwrap();
        assert_eq!(spec.process().as_ref().unwrap().terminal(), Some(true));
        assert_eq!(spec.version(), crate::state::OCI_VERSION);
        let Some(theirs) = runc_spec(rootless) else {
            return;
        };
        let mut a: serde_json::Value = serde_json::from_str(&ours).unwrap();
        let mut b: serde_json::Value = serde_json::from_str(&theirs).unwrap();
        a.as_object_mut().unwrap().remove("ociVersion");
        b.as_object_mut().unwrap().remove("ociVersion");
        assert_eq!(a, b);
        // Byte for byte, apart from the version.
        let version = |s: &str| s.lines().nth(1).unwrap_or("").to_string();
        assert_eq!(ours.replacen(&version(&ours), &version(&theirs), 1), theirs);
    }

    #[test]
    fn matches_runc_spec() {
        check(false);
    }

    #[test]
    fn matches_runc_spec_rootless() {
        check(true);
    }
}
