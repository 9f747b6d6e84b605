//! OCI bundles made from the host's busybox-static, with a config.json shaped like
//! `runc spec`'s and tweaked per test.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where busybox-static lives on the test machine.
pub const BUSYBOX: &str = "/bin/busybox";

/// The environment variable every bundle's process gets, `RUNRS_IT_MARK=<bundle dir>`,
/// so a leftover container process can be found on the host by its environment.
pub const MARK_VAR: &str = "RUNRS_IT_MARK";

/// A bundle directory: `rootfs/` (busybox, its applets, /etc/passwd with root and user
/// 1000) and `config.json`, which every mutator rewrites.
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    config: Value,
}

fn applets() -> &'static [String] {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let out = std::process::Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .expect("run busybox --list (is busybox-static installed?)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .filter(|a| !a.is_empty() && a != "busybox")
            .collect()
    })
}

impl Bundle {
    /// Makes a bundle in `dir` (created).
    pub fn create(dir: &Path) -> Bundle {
        let rootfs = dir.join("rootfs");
        for sub in [
            "bin",
            "proc",
            "sys",
            "dev",
            "tmp",
            "etc",
            "root",
            "home/user",
        ] {
            std::fs::create_dir_all(rootfs.join(sub)).expect("create rootfs dir");
        }
        std::fs::set_permissions(
            rootfs.join("tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .expect("chmod rootfs/tmp");
        // A copy, never a hard link: a container may write to its own /bin/busybox.
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("copy busybox");
        for applet in applets() {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
        )
        .expect("write passwd");
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nuser:x:1000:\n").expect("group");
        let mut bundle = Bundle {
            dir: dir.to_owned(),
            config: default_config(),
        };
        let mark = format!("{MARK_VAR}={}", dir.display());
        bundle.push("/process/env", json!(mark));
        bundle
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The path on the host of `path` inside the rootfs (`/tmp/x` → `<bundle>/rootfs/tmp/x`).
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.rootfs().join(path.trim_start_matches('/'))
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The `RUNRS_IT_MARK=...` entry in this bundle's process environment.
    pub fn mark(&self) -> String {
        format!("{MARK_VAR}={}", self.dir.display())
    }

    /// Writes config.json from the current config.
    pub fn save(&self) {
        let text = serde_json::to_string_pretty(&self.config).expect("serialize config");
        std::fs::write(self.dir.join("config.json"), text).expect("write config.json");
    }

    /// Replaces the whole config.
    pub fn set_config(&mut self, config: Value) -> &mut Self {
        self.config = config;
        self.save();
        self
    }

    pub fn set_args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    /// `sh -c <script>` as the container process.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.set_args(&["sh", "-c", script])
    }

    /// The value at a JSON pointer, if present.
    pub fn get(&self, pointer: &str) -> Option<&Value> {
        self.config.pointer(pointer)
    }

    /// Sets the value at a JSON pointer, creating missing objects on the way. An array
    /// index of `-` appends.
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Self {
        let (parent, key) = split_pointer(pointer);
        let slot = ensure_object_path(&mut self.config, &parent);
        match slot {
            Value::Object(map) => {
                map.insert(key, value);
            }
            Value::Array(items) if key == "-" => items.push(value),
            Value::Array(items) => {
                let i: usize = key.parse().expect("array index");
                items[i] = value;
            }
            other => panic!("cannot set {pointer}: parent is {other}"),
        }
        self.save();
        self
    }

    /// Appends to the array at a JSON pointer (created when missing).
    pub fn push(&mut self, pointer: &str, value: Value) -> &mut Self {
        if matches!(self.config.pointer(pointer), None | Some(Value::Null)) {
            self.set(pointer, json!([]));
        }
        self.set(&format!("{pointer}/-"), value)
    }

    /// Removes the value at a JSON pointer, if present.
    pub fn remove(&mut self, pointer: &str) -> &mut Self {
        let (parent, key) = split_pointer(pointer);
        let parent_ptr = if parent.is_empty() {
            String::new()
        } else {
            format!("/{}", parent.join("/"))
        };
        match self.config.pointer_mut(&parent_ptr) {
            Some(Value::Object(map)) => {
                map.remove(&key);
            }
            Some(Value::Array(items)) => {
                let i: usize = key.parse().expect("array index");
                items.remove(i);
            }
            _ => {}
        }
        self.save();
        self
    }

    /// Appends a mount.
    pub fn mount(
        &mut self,
        destination: &str,
        kind: &str,
        source: &str,
        options: &[&str],
    ) -> &mut Self {
        self.push(
            "/mounts",
            json!({"destination": destination, "type": kind, "source": source, "options": options}),
        )
    }

    /// Adds a namespace (`path` joins an existing one), replacing one of the same type.
    pub fn namespace(&mut self, kind: &str, path: Option<&str>) -> &mut Self {
        self.without_namespace(kind);
        let entry = match path {
            Some(p) => json!({"type": kind, "path": p}),
            None => json!({"type": kind}),
        };
        self.push("/linux/namespaces", entry)
    }

    /// Drops the namespace of this type (the container shares the host's).
    pub fn without_namespace(&mut self, kind: &str) -> &mut Self {
        if let Some(Value::Array(list)) = self.config.pointer_mut("/linux/namespaces") {
            list.retain(|ns| ns["type"] != kind);
        }
        self.save();
        self
    }

    /// Adds a hook of `kind` (`prestart`, `createRuntime`, ...): `path args...`, with the
    /// bundle's marker in its environment.
    pub fn hook(&mut self, kind: &str, args: &[&str], timeout: Option<u64>) -> &mut Self {
        let mut hook = json!({
            "path": args[0],
            "args": args,
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", self.mark()],
        });
        if let Some(t) = timeout {
            hook["timeout"] = json!(t);
        }
        self.push(&format!("/hooks/{kind}"), hook)
    }

    /// Sets all five capability sets of the process.
    pub fn capabilities(&mut self, caps: &[&str]) -> &mut Self {
        for set in [
            "bounding",
            "effective",
            "permitted",
            "inheritable",
            "ambient",
        ] {
            self.set(&format!("/process/capabilities/{set}"), json!(caps));
        }
        self
    }
}

fn split_pointer(pointer: &str) -> (Vec<String>, String) {
    assert!(
        pointer.starts_with('/'),
        "JSON pointer must start with /: {pointer}"
    );
    let mut parts: Vec<String> = pointer[1..]
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    let key = parts.pop().expect("non-empty pointer");
    (parts, key)
}

fn ensure_object_path<'a>(mut value: &'a mut Value, path: &[String]) -> &'a mut Value {
    for key in path {
        if value.is_null() {
            *value = json!({});
        }
        value = match value {
            Value::Object(map) => map.entry(key.clone()).or_insert(Value::Null),
            Value::Array(items) => {
                let i: usize = key.parse().expect("array index");
                &mut items[i]
            }
            other => panic!("cannot descend into {other} at {key}"),
        };
    }
    if value.is_null() {
        *value = json!({});
    }
    value
}

/// `runc spec`'s default config (runc 1.1), with `terminal: false` and a writable root
/// so tests can leave files in the rootfs.
pub fn default_config() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}
