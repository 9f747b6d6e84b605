//! The harness of the containerd suites (`containerd.rs`, `drills.rs`): a private
//! containerd (Debian's, config under a temp dir) running containers through this shim
//! (`io.containerd.runrs.v2`), driven with `ctr`.
//!
//! The runtime binary is `RUNRS_TEST_RUNTIME`, else the workspace's `target/debug/runrs`
//! (Debian's `runc` only if that was not built). Tests skip (with a note) when not root or
//! containerd/ctr are missing. Everything a test starts is cleaned up by `Env`'s Drop, by
//! pid and path only.
#![allow(dead_code)] // each suite uses part of it

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use runrs_proto::shim_ttrpc::TaskClient;
use runrs_proto::ttrpc;

pub const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-runrs-v2");
pub const RUNTIME_TYPE: &str = "io.containerd.runrs.v2";
pub const RUNC: &str = "/usr/sbin/runc";

pub fn runtime_binary() -> String {
    if let Ok(r) = std::env::var("RUNRS_TEST_RUNTIME") {
        return r;
    }
    let runrs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/runrs");
    match runrs.canonicalize() {
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(_) => RUNC.into(),
    }
}

pub fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["/usr/bin/containerd", "/usr/bin/ctr", "/bin/busybox"]
        .iter()
        .all(|p| Path::new(p).exists());
    let runtime = Path::new(&runtime_binary()).exists();
    if !(root && tools && runtime) {
        eprintln!(
            "skipping: needs root, containerd, ctr, busybox and {}",
            runtime_binary()
        );
    }
    root && tools && runtime
}

/// A private containerd with its own root, state, sockets and namespace.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub namespace: String,
    pub containerd: Option<Child>,
    /// Extra environment of containerd, which its shims inherit (e.g. RUNRS_SHIM_FAULT).
    pub containerd_env: Vec<(String, String)>,
}

/// A process a test started in the background (`ctr run`, `ctr events`, `script`): killed
/// (by pid) and reaped when the test ends, whatever happened.
pub struct Background(pub Child);

impl Background {
    /// Its exit status within `timeout`, or None if it is still running.
    pub fn wait_for(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Env {
    pub fn new(name: &str) -> Env {
        Env::with_runtime(name, &runtime_binary())
    }

    pub fn with_runtime(name: &str, runtime: &str) -> Env {
        Env::with_containerd_env(name, runtime, &[])
    }

    /// An Env whose containerd (and so every shim it starts) gets `vars` too.
    pub fn with_containerd_env(name: &str, runtime: &str, vars: &[(&str, &str)]) -> Env {
        // Short path: shim sockets live in <dir>/s/ and must fit in sun_path.
        let dir = tempfile::Builder::new()
            .prefix("rs")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        let namespace = format!("runrs-{name}-{}", std::process::id());
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
  level = "debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#,
            d = d.display()
        );
        fs::write(d.join("config.toml"), config).unwrap();
        fs::write(
            d.join("runtime.toml"),
            format!(
                "binary_name = \"{}\"\nroot = \"{}/runtime-root\"\n",
                runtime,
                d.display()
            ),
        )
        .unwrap();
        fs::create_dir_all(d.join("fifo")).unwrap();
        let bin = d.join("rootfs/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        for applet in [
            "sh", "echo", "cat", "head", "sleep", "true", "ps", "id", "printf", "stty", "dd",
            "usleep",
        ] {
            symlink("busybox", bin.join(applet)).unwrap();
        }
        let mut env = Env {
            dir,
            namespace,
            containerd: None,
            containerd_env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        env.start_containerd();
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn start_containerd(&mut self) {
        // RUNRS_TEST_SHIM_DIR: another build of the shim (e.g. release, for shim_memory).
        let shim_dir = std::env::var_os("RUNRS_TEST_SHIM_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(SHIM).parent().unwrap().to_path_buf());
        let path = format!(
            "{}:{}",
            shim_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("containerd.log"))
            .unwrap();
        let child = Command::new("/usr/bin/containerd")
            .arg("--config")
            .arg(self.path().join("config.toml"))
            .env("PATH", path)
            .envs(self.containerd_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        self.containerd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.ctr(&["version"]).status.success() {
                return;
            }
            sleep(Duration::from_millis(100));
        }
        panic!(
            "containerd did not come up; log:\n{}",
            self.containerd_log()
        );
    }

    /// SIGKILL containerd (by pid): shims and containers must live on.
    pub fn kill_containerd(&mut self) {
        if let Some(mut c) = self.containerd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn containerd_log(&self) -> String {
        fs::read_to_string(self.path().join("containerd.log")).unwrap_or_default()
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_with_input(args, None)
    }

    /// `timeout 60 ctr --address .. -n NS args...`, stdio left to the caller.
    pub fn ctr_command(&self, args: &[String]) -> Command {
        self.ctr_command_for(60, args)
    }

    /// `ctr` killed after `secs` seconds (a checkpoint under emulation takes minutes).
    pub fn ctr_command_for(&self, secs: u32, args: &[String]) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.arg(secs.to_string())
            .args(["/usr/bin/ctr", "--address"])
            .arg(self.path().join("c.sock"));
        cmd.args(["-n", &self.namespace]).args(args);
        cmd
    }

    /// `ctr args...` with 300 seconds to finish, its output captured.
    pub fn ctr_long(&self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.ctr_command_for(300, &args)
            .stdin(Stdio::null())
            .output()
            .expect("running ctr")
    }

    /// `ctr --address .. -n NS args...` without `timeout`, for a process the test kills
    /// itself (by its pid: killing `timeout` would leave ctr running, and an orphaned
    /// `ctr run`/`ctr task attach` deletes its task when the task exits).
    pub fn ctr_process(&self, args: &[String]) -> Command {
        let mut cmd = Command::new("/usr/bin/ctr");
        cmd.arg("--address").arg(self.path().join("c.sock"));
        cmd.args(["-n", &self.namespace]).args(args);
        cmd
    }

    pub fn ctr_with_input(&self, args: &[&str], input: Option<&[u8]>) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut cmd = self.ctr_command(&args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("running ctr");
        if let Some(data) = input {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(data).unwrap();
            // Kept open: ctr 1.6 does not forward EOF anyway.
            std::mem::forget(stdin);
        }
        child.wait_with_output().unwrap()
    }

    /// `ctr run` with our runtime, the busybox rootfs and fifos under the temp dir.
    pub fn run(&self, extra: &[&str], id: &str, cmd: &[&str]) -> Output {
        self.run_with_input(extra, id, cmd, None)
    }

    pub fn run_with_input(
        &self,
        extra: &[&str],
        id: &str,
        cmd: &[&str],
        input: Option<&[u8]>,
    ) -> Output {
        let args = self.run_args(extra, id, cmd);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctr_with_input(&args, input)
    }

    /// The arguments of `ctr run` (after the global flags).
    pub fn run_args(&self, extra: &[&str], id: &str, cmd: &[&str]) -> Vec<String> {
        let d = self.path().display();
        let mut args: Vec<String> = vec![
            "run".into(),
            "--fifo-dir".into(),
            format!("{d}/fifo"),
            "--runtime".into(),
            RUNTIME_TYPE.into(),
            "--runtime-config-path".into(),
            format!("{d}/runtime.toml"),
            "--env".into(),
            "PATH=/bin".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend(["--rootfs".into(), format!("{d}/rootfs"), id.into()]);
        args.extend(cmd.iter().map(|a| a.to_string()));
        args
    }

    /// Our own ttrpc Task client on the socket of the shim serving `id`.
    pub fn task_client(&self, id: &str) -> TaskClient {
        let bundle = self
            .path()
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.namespace)
            .join(id);
        let address = fs::read_to_string(bundle.join("address")).expect("the shim's address");
        TaskClient::new(ttrpc::Client::connect(&address).expect("connecting to the shim"))
    }

    pub fn task_status(&self, id: &str) -> Option<String> {
        let out = self.ctr(&["task", "ls"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().skip(1).find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&id)).then(|| cols.get(2).unwrap_or(&"").to_string())
        })
    }

    /// Pids of the shims serving this containerd (their -address names our socket).
    pub fn shim_pids(&self) -> Vec<i32> {
        let needle = self.path().join("c.sock").to_string_lossy().into_owned();
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if args
                .first()
                .is_some_and(|a| a.ends_with("containerd-shim-runrs-v2"))
                && args.contains(&needle)
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// `ctr task kill -s KILL`, wait for STOPPED, `ctr task delete`: each must succeed. The
    /// delete's output (it names the exit status).
    #[track_caller]
    pub fn kill_and_delete(&self, id: &str) -> Output {
        let out = self.ctr(&["task", "kill", "-s", "KILL", id]);
        assert!(out.status.success(), "kill {id}: {}", describe(&out));
        self.wait_until(&format!("{id} stopped"), || {
            self.task_status(id).as_deref() == Some("STOPPED")
        });
        let out = self.ctr(&["task", "delete", id]);
        assert!(out.status.success(), "delete {id}: {}", describe(&out));
        out
    }

    pub fn wait_until(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if f() {
                return;
            }
            sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for {what}; containerd log:\n{}",
            self.containerd_log()
        );
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Tasks and containers of our namespace, through containerd while it is up.
        if self.containerd.is_some() {
            let out = self.ctr(&["task", "ls", "-q"]);
            for id in String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
            {
                let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
                sleep(Duration::from_millis(200));
                let _ = self.ctr(&["task", "delete", "-f", id]);
            }
            let out = self.ctr(&["c", "ls", "-q"]);
            for id in String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
            {
                let _ = self.ctr(&["c", "rm", id]);
            }
        }
        self.kill_containerd();
        // Whatever is left of ours: shims (their containers die with their pid namespace
        // only when killed, so the runtime's state dir tells us their pids too).
        for pid in self.shim_pids() {
            // SAFETY: kill(2) of a shim process started by this test's containerd.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // The shim keeps each namespace's containers in <root>/<namespace>.
        let runtime_root = self.path().join("runtime-root").join(&self.namespace);
        for entry in fs::read_dir(&runtime_root).into_iter().flatten().flatten() {
            let state = fs::read_to_string(entry.path().join("state.json")).unwrap_or_default();
            if let Some(pid) = serde_json_pid(&state) {
                // SAFETY: kill(2) of a container init this test created (pid from runtime state).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        // Any process still in our namespace's cgroups (cgroupsPath /<ns>/<id>; v1 or v2).
        for ns_dir in namespace_cgroups(&self.namespace) {
            for child in fs::read_dir(&ns_dir).into_iter().flatten().flatten() {
                let procs = fs::read_to_string(child.path().join("cgroup.procs"));
                for pid in procs
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.parse().ok())
                {
                    // SAFETY: kill(2) of a process in a cgroup of this test's namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        sleep(Duration::from_millis(200));
        // Mounts under our temp dir, deepest first.
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.path().to_string_lossy().into_owned();
        let mut mounts: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let c = std::ffi::CString::new(m).unwrap();
            // SAFETY: umount2 with a valid C string path under our own temp dir.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        // The empty per-namespace cgroups the runtime created (cgroupsPath /<ns>/<id>), in
        // each v1 hierarchy and at the top of a cgroup v2 one.
        for ns_dir in namespace_cgroups(&self.namespace) {
            for child in fs::read_dir(&ns_dir).into_iter().flatten().flatten() {
                if child.path().is_dir() {
                    let _ = fs::remove_dir(child.path());
                }
            }
            let _ = fs::remove_dir(&ns_dir);
        }
    }
}

/// The init's pid from a runtime's state.json (runc: `"init_process_pid":N`, runrs:
/// `"pid":N`), without a JSON dependency.
/// The directory of a containerd namespace's cgroups (cgroupsPath /<ns>/<id>) in each v1
/// hierarchy and at the top of a cgroup v2 one, existing or not.
pub fn namespace_cgroups(namespace: &str) -> Vec<std::path::PathBuf> {
    let hierarchies = fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    hierarchies
        .chain([Path::new("/sys/fs/cgroup").to_path_buf()])
        .map(|h| h.join(namespace))
        .collect()
}

pub fn serde_json_pid(state: &str) -> Option<i32> {
    let rest = state
        .split("\"init_process_pid\":")
        .nth(1)
        .or_else(|| state.split("\"pid\":").nth(1))?;
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .map(|(_, rest)| rest.starts_with(|c| c != 'Z'))
        })
        .unwrap_or(false)
}

pub fn task_pid(env: &Env, id: &str) -> i32 {
    stdout(&env.ctr(&["task", "ls"]))
        .lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{id} listed with its pid"))
}

/// Reads `r` to its end on a thread; what arrived so far is in the returned buffer.
pub fn collect(
    mut r: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            out.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

pub fn text(buf: &std::sync::Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

/// `Name:  value kB` fields of a /proc status-like file, in kB.
pub fn proc_kb(path: &str, field: &str) -> u64 {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
