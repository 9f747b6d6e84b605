//! A private "node": containerd 1.6 with its CRI plugin, in its own mount and network
//! namespace (a holder process keeps them: `<dir>/run` over /run for the Go shim's fixed
//! socket dir and the pods' netns files, `<dir>/varlib` over /var/lib for CNI's cache),
//! root, state and sockets under a temp dir, CNI bridge + host-local written here.
//! Handlers: `runrs` (our shim, found on PATH, runtime from a ConfigPath file) and `runc`
//! (Debian's Go shim with /usr/sbin/runc). Drop kills everything it started or caused
//! (by pid, by the temp dir in a command line, by the pods' cgroup parent) and removes
//! the pods' cgroups; nothing is searched by a broad name.

use super::client::Cri;
use super::images;
use runrs_integration::procfs::ProcRef;
use runrs_integration::{runtime_path, wait_for};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SUBNET: &str = "10.77.0";
const SHIM: &str = "containerd-shim-runrs-v2";

pub struct Node {
    pub dir: tempfile::TempDir,
    /// The cgroup parent of every pod of this node (cgroupfs, relative to each hierarchy).
    pub cgroup_root: String,
    holder: Option<Child>,
    containerd: Option<Child>,
    pub cri: Option<Cri>,
}

/// Where the shim binary is: `RUNRS_TEST_SHIM_DIR` or this workspace's target/debug.
pub fn shim_dir() -> PathBuf {
    std::env::var_os("RUNRS_TEST_SHIM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"))
}

fn config(d: &Path) -> String {
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
  level = "debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  max_container_log_line_size = 16384
  # This machine lacks CAP_SYS_RESOURCE: keep oom_score_adj at or above containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runrs]
      runtime_type = "io.containerd.runrs.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runrs.options]
        ConfigPath = "{d}/runrs.toml"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runrs-systemd]
      runtime_type = "io.containerd.runrs.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runrs-systemd.options]
        ConfigPath = "{d}/runrs-systemd.toml"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc-systemd]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc-systemd.options]
        BinaryName = "/usr/sbin/runc"
        Root = "{d}/runc-root"
        SystemdCgroup = true
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "{d}/runc-root"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
"#,
        d = d.display(),
        pause = images::PAUSE,
    )
}

fn cni_conflist(d: &Path) -> String {
    format!(
        r#"{{"cniVersion": "0.4.0", "name": "runrs-cri", "plugins": [
  {{"type": "bridge", "bridge": "cni-runrs0", "isGateway": true, "ipMasq": false,
    "ipam": {{"type": "host-local", "dataDir": "{d}/cni-ipam",
      "ranges": [[{{"subnet": "{SUBNET}.0/24", "gateway": "{SUBNET}.1"}}]],
      "routes": [{{"dst": "0.0.0.0/0"}}]}}}}
]}}"#,
        d = d.display()
    )
}

/// The major version of the containerd on PATH (`containerd --version`: "containerd ID
/// [v]1.7.24 REV"), 0 when it cannot be told.
pub fn containerd_major() -> u32 {
    let out = Command::new("containerd").arg("--version").output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    (text.ok().as_deref())
        .and_then(|t| t.split_whitespace().nth(2))
        .map(|v| v.trim_start_matches('v'))
        .and_then(|v| v.split('.').next()?.parse().ok())
        .unwrap_or(0)
}

/// The tools the node needs, or what is missing.
pub fn missing_tools() -> Vec<String> {
    let mut need: Vec<PathBuf> = [
        "/usr/bin/containerd",
        "/usr/bin/ctr",
        "/usr/bin/containerd-shim-runc-v2",
        "/usr/sbin/runc",
        "/usr/lib/cni/bridge",
        "/usr/lib/cni/host-local",
        "/usr/lib/cni/loopback",
        "/usr/bin/umoci",
        "/bin/busybox",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    need.push(shim_dir().join(SHIM));
    need.push(runtime_path());
    need.into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect()
}

impl Node {
    /// A node named `name` (in its temp dir's name), containerd up and images imported.
    pub fn start(name: &str) -> Node {
        let dir = tempfile::Builder::new()
            .prefix(&format!("runrs-cri-{name}-"))
            .tempdir_in("/tmp")
            .expect("create temp dir");
        let d = dir.path().to_owned();
        for sub in [
            "run",
            "varlib",
            "cni",
            "cni-ipam",
            "runrs-root",
            "runc-root",
        ] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("config.toml"), config(&d)).unwrap();
        std::fs::write(d.join("cni/10-runrs.conflist"), cni_conflist(&d)).unwrap();
        std::fs::write(
            d.join("runrs.toml"),
            format!(
                "binary_name = \"{}\"\nroot = \"{}/runrs-root\"\n",
                runtime_path().display(),
                d.display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("runrs-systemd.toml"),
            format!(
                "binary_name = \"{}\"\nroot = \"{}/runrs-root\"\nSystemdCgroup = true\n",
                runtime_path().display(),
                d.display()
            ),
        )
        .unwrap();
        let mut node = Node {
            dir,
            cgroup_root: format!("runrs-cri-{name}-{}", std::process::id()),
            holder: None,
            containerd: None,
            cri: None,
        };
        node.start_holder();
        node.start_containerd();
        images::import(&node.socket());
        node.wait_for_images();
        node
    }

    /// The CRI plugin lists the imported images (it learns of them from events).
    fn wait_for_images(&self) {
        let listed = wait_for(Duration::from_secs(20), || {
            let images = self.cri().image_call("ListImages", |mut c| async move {
                c.list_images(super::client::api::ListImagesRequest { filter: None })
                    .await
            });
            let tags: Vec<String> = images
                .map(|r| r.images.into_iter().flat_map(|i| i.repo_tags).collect())
                .unwrap_or_default();
            [images::PAUSE, images::BUSYBOX]
                .iter()
                .all(|want| tags.iter().any(|t| t == want))
        });
        assert!(listed, "CRI does not list the imported images");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("c.sock")
    }

    pub fn cri(&self) -> &Cri {
        self.cri.as_ref().expect("containerd is not running")
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join(name))
            .unwrap()
    }

    fn start_holder(&mut self) {
        let d = self.path().display().to_string();
        // systemd's and D-Bus's sockets stay reachable (the systemd cgroup driver), if any.
        let script = format!(
            "for x in systemd dbus; do [ -d /run/$x ] || continue; mkdir -p '{d}/run/'$x \
             && mount --rbind /run/$x '{d}/run/'$x || exit 1; done; \
             mount --rbind '{d}/run' /run && mount --bind '{d}/varlib' /var/lib \
             && ip link set lo up && touch '{d}/holder-ready' && exec sleep 100000"
        );
        let child = Command::new("unshare")
            .args(["-m", "-n", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(self.log("holder.log"))
            .stderr(self.log("holder.log"))
            .spawn()
            .expect("start the namespace holder (unshare)");
        self.holder = Some(child);
        let ready = self.path().join("holder-ready");
        assert!(
            wait_for(Duration::from_secs(10), || ready.exists()),
            "namespace holder did not come up: {}",
            std::fs::read_to_string(self.path().join("holder.log")).unwrap_or_default()
        );
    }

    pub fn holder_pid(&self) -> u32 {
        self.holder.as_ref().unwrap().id()
    }

    /// Starts containerd in the holder's namespaces (a child subreaper, so the shims it
    /// starts stay its children) and connects the CRI client.
    pub fn start_containerd(&mut self) {
        let path = format!(
            "{}:{}",
            shim_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.holder_pid().to_string(), "-m", "-n"])
            .arg("containerd")
            .arg("--config")
            .arg(self.path().join("config.toml"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(self.log("containerd.log"))
            .stderr(self.log("containerd.log"));
        // SAFETY: prctl in the forked child before exec; async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.containerd = Some(cmd.spawn().expect("start containerd"));
        let socket = self.socket();
        let mut cri = None;
        wait_for(Duration::from_secs(30), || {
            cri = socket
                .exists()
                .then(|| Cri::connect(&socket).ok())
                .flatten();
            cri.as_ref().is_some_and(Cri::ready)
        });
        assert!(
            cri.is_some(),
            "containerd did not come up:\n{}",
            self.containerd_log()
        );
        self.cri = cri;
    }

    /// SIGKILLs containerd (shims and containers live on).
    pub fn kill_containerd(&mut self) {
        self.cri = None;
        if let Some(mut c) = self.containerd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn containerd_log(&self) -> String {
        let log = std::fs::read_to_string(self.path().join("containerd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

/// Live processes whose command line contains `needle`.
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

impl Node {
    /// The shim processes of this node (ours and the Go shim), by their `-address`.
    pub fn shims(&self) -> Vec<(i32, String)> {
        processes_mentioning(&self.socket().display().to_string())
            .into_iter()
            .filter_map(|pid| {
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
                let name = exe.file_name()?.to_string_lossy().into_owned();
                name.starts_with("containerd-shim").then_some((pid, name))
            })
            .collect()
    }

    /// Every cgroup dir (all hierarchies) under this node's pod cgroup parent.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        // v1: one hierarchy per directory of /sys/fs/cgroup; v2: /sys/fs/cgroup itself.
        let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let hierarchies: Vec<PathBuf> = if v2 {
            vec![PathBuf::from("/sys/fs/cgroup")]
        } else {
            (std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten())
            .map(|h| h.path())
            .collect()
        };
        for h in hierarchies {
            collect_dirs(&h.join(&self.cgroup_root), &mut found);
        }
        found
    }

    /// The pids in this node's pod cgroups.
    fn pod_processes(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .cgroup_dirs()
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|s| s.lines().filter_map(|l| l.parse().ok()).collect::<Vec<_>>())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// `dir` and every dir below it, deepest first.
fn collect_dirs(dir: &Path, found: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&e.path(), found);
        }
    }
    found.push(dir.to_owned());
}

fn kill_child(child: &mut Child, grace: Duration) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_for(grace, || matches!(child.try_wait(), Ok(Some(_))));
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Node {
    fn drop(&mut self) {
        // Never panics: this may run while a failed test unwinds.
        self.cri = None;
        if let Some(mut c) = self.containerd.take() {
            kill_child(&mut c, Duration::from_secs(5));
        }
        let needle = self.path().display().to_string();
        for _ in 0..3 {
            let mut pids = processes_mentioning(&needle);
            pids.extend(self.pod_processes());
            pids.retain(|p| u32::try_from(*p).ok() != self.holder.as_ref().map(Child::id));
            if pids.is_empty() {
                break;
            }
            for p in pids.into_iter().filter_map(ProcRef::of) {
                p.kill();
            }
        }
        if let Some(mut h) = self.holder.take() {
            kill_child(&mut h, Duration::from_secs(1));
        }
        // Dying processes leave their cgroups a moment later.
        for d in self.cgroup_dirs() {
            wait_for(Duration::from_secs(5), || {
                std::fs::remove_dir(&d).is_ok() || !d.exists()
            });
        }
    }
}
