//! End-to-end: a private containerd (Debian's, config under a temp dir) runs containers
//! through this shim (`io.containerd.runrs.v2`), driven with `ctr`.
//!
//! The runtime binary is `/usr/sbin/runc` until runrs works; `RUNRS_TEST_RUNTIME` picks
//! another. Tests skip (with a note) when not root or containerd/ctr are missing.
//! Everything a test starts is cleaned up by `Env`'s Drop, by pid and path only.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-runrs-v2");
const RUNTIME_TYPE: &str = "io.containerd.runrs.v2";

fn runtime_binary() -> String {
    std::env::var("RUNRS_TEST_RUNTIME").unwrap_or_else(|_| "/usr/sbin/runc".into())
}

fn can_run() -> bool {
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
struct Env {
    dir: tempfile::TempDir,
    namespace: String,
    containerd: Option<Child>,
}

impl Env {
    fn new(name: &str) -> Env {
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
                runtime_binary(),
                d.display()
            ),
        )
        .unwrap();
        fs::create_dir_all(d.join("fifo")).unwrap();
        let bin = d.join("rootfs/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        for applet in [
            "sh", "echo", "cat", "head", "sleep", "true", "ps", "id", "printf",
        ] {
            symlink("busybox", bin.join(applet)).unwrap();
        }
        let mut env = Env {
            dir,
            namespace,
            containerd: None,
        };
        env.start_containerd();
        env
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn start_containerd(&mut self) {
        let shim_dir = Path::new(SHIM).parent().unwrap();
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
    fn kill_containerd(&mut self) {
        if let Some(mut c) = self.containerd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn containerd_log(&self) -> String {
        fs::read_to_string(self.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_with_input(args, None)
    }

    fn ctr_with_input(&self, args: &[&str], input: Option<&[u8]>) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.args(["60", "/usr/bin/ctr", "--address"])
            .arg(self.path().join("c.sock"));
        cmd.args(["-n", &self.namespace]).args(args);
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
    fn run(&self, extra: &[&str], id: &str, cmd: &[&str]) -> Output {
        self.run_with_input(extra, id, cmd, None)
    }

    fn run_with_input(
        &self,
        extra: &[&str],
        id: &str,
        cmd: &[&str],
        input: Option<&[u8]>,
    ) -> Output {
        let fifo = self.path().join("fifo");
        let config = self.path().join("runtime.toml");
        let rootfs = self.path().join("rootfs");
        let mut args = vec![
            "run",
            "--fifo-dir",
            fifo.to_str().unwrap(),
            "--runtime",
            RUNTIME_TYPE,
        ];
        args.extend([
            "--runtime-config-path",
            config.to_str().unwrap(),
            "--env",
            "PATH=/bin",
        ]);
        args.extend(extra);
        args.extend(["--rootfs", rootfs.to_str().unwrap(), id]);
        args.extend(cmd);
        self.ctr_with_input(&args, input)
    }

    fn task_status(&self, id: &str) -> Option<String> {
        let out = self.ctr(&["task", "ls"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().skip(1).find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&id)).then(|| cols.get(2).unwrap_or(&"").to_string())
        })
    }

    /// Pids of the shims serving this containerd (their -address names our socket).
    fn shim_pids(&self) -> Vec<i32> {
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

    fn wait_until(&self, what: &str, mut f: impl FnMut() -> bool) {
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
        let runtime_root = self.path().join("runtime-root");
        for entry in fs::read_dir(&runtime_root).into_iter().flatten().flatten() {
            let state = fs::read_to_string(entry.path().join("state.json")).unwrap_or_default();
            if let Some(pid) = serde_json_pid(&state) {
                // SAFETY: kill(2) of a container init this test created (pid from runtime state).
                unsafe { libc::kill(pid, libc::SIGKILL) };
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
        // The empty per-namespace cgroups the runtime created (cgroupsPath /<ns>/<id>).
        for ctrl in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let ns_dir = ctrl.path().join(&self.namespace);
            for child in fs::read_dir(&ns_dir).into_iter().flatten().flatten() {
                if child.path().is_dir() {
                    let _ = fs::remove_dir(child.path());
                }
            }
            let _ = fs::remove_dir(&ns_dir);
        }
    }
}

/// `"init_process_pid":N` from a runc state.json, without a JSON dependency.
fn serde_json_pid(state: &str) -> Option<i32> {
    let rest = state.split("\"init_process_pid\":").nth(1)?;
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn run_prints_output_propagates_exit_codes_and_stdin() {
    if !can_run() {
        return;
    }
    let env = Env::new("run");
    let out = env.run(&["--rm"], "echo", &["echo", "hi"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "hi\n");

    let out = env.run(&["--rm"], "exit3", &["sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));

    let out = env.run_with_input(&["--rm"], "stdin", &["head", "-n", "1"], Some(b"a\nb\n"));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "a\n");

    let out = env.run(&["--rm"], "missing", &["/bin/no-such-binary"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OCI runtime create failed"),
        "{}",
        describe(&out)
    );
    assert!(err.contains("no-such-binary"), "{}", describe(&out));
    env.wait_until("no shim left", || env.shim_pids().is_empty());
}

#[test]
fn detached_task_lifecycle() {
    if !can_run() {
        return;
    }
    let env = Env::new("detached");
    let out = env.run(&["-d"], "d1", &["sleep", "1000"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(env.task_status("d1").as_deref(), Some("RUNNING"));
    let fifo = env.path().join("fifo");

    let out = env.ctr(&[
        "task",
        "exec",
        "--fifo-dir",
        fifo.to_str().unwrap(),
        "--exec-id",
        "e1",
        "d1",
        "echo",
        "from-exec",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "from-exec\n");
    let out = env.ctr(&[
        "task",
        "exec",
        "--fifo-dir",
        fifo.to_str().unwrap(),
        "--exec-id",
        "e2",
        "d1",
        "sh",
        "-c",
        "exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));

    let out = env.ctr(&["task", "ps", "d1"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stdout(&out).lines().count() >= 2, "{}", describe(&out));

    let out = env.ctr(&["task", "metrics", "d1"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).contains("pids.current") || stdout(&out).contains("memory"),
        "{}",
        describe(&out)
    );

    assert!(env.ctr(&["task", "pause", "d1"]).status.success());
    assert_eq!(env.task_status("d1").as_deref(), Some("PAUSED"));
    assert!(env.ctr(&["task", "resume", "d1"]).status.success());
    assert_eq!(env.task_status("d1").as_deref(), Some("RUNNING"));

    let out = env.ctr(&["task", "kill", "-s", "KILL", "d1"]);
    assert!(out.status.success(), "{}", describe(&out));
    env.wait_until("d1 stopped", || {
        env.task_status("d1").as_deref() == Some("STOPPED")
    });
    let out = env.ctr(&["task", "delete", "d1"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("137"),
        "{}",
        describe(&out)
    );
    assert!(env.ctr(&["c", "rm", "d1"]).status.success());

    // Nothing left: no task, no shim, no socket, no runtime state.
    assert_eq!(env.task_status("d1"), None);
    env.wait_until("no shim left", || env.shim_pids().is_empty());
    let sockets: Vec<_> = fs::read_dir(env.path().join("s"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(sockets.is_empty(), "sockets left: {sockets:?}");
    let state: Vec<_> = fs::read_dir(env.path().join("runtime-root"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(state.is_empty(), "runtime state left: {state:?}");
}

#[test]
fn containers_survive_a_containerd_restart() {
    if !can_run() {
        return;
    }
    let mut env = Env::new("restart");
    for id in ["r1", "r2"] {
        let out = env.run(&["-d"], id, &["sleep", "1000"]);
        assert!(out.status.success(), "{}", describe(&out));
    }
    let out = env.run(&["-d"], "r3", &["sh", "-c", "sleep 3; exit 7"]);
    assert!(out.status.success(), "{}", describe(&out));
    let shims: Vec<i32> = env.shim_pids();
    assert_eq!(shims.len(), 3, "one shim per container");

    env.kill_containerd();
    // r3 exits while containerd is away; its exit event waits in the shim's queue.
    sleep(Duration::from_secs(4));
    let mut alive = env.shim_pids();
    alive.sort();
    let mut before = shims.clone();
    before.sort();
    assert_eq!(alive, before, "shims must outlive containerd");

    env.start_containerd();
    assert_eq!(env.task_status("r1").as_deref(), Some("RUNNING"));
    assert_eq!(env.task_status("r2").as_deref(), Some("RUNNING"));
    env.wait_until("r3 stopped", || {
        env.task_status("r3").as_deref() == Some("STOPPED")
    });
    let out = env.ctr(&["task", "delete", "r3"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exit code 7"),
        "{}",
        describe(&out)
    );
    for id in ["r1", "r2"] {
        assert!(env
            .ctr(&["task", "kill", "-s", "KILL", id])
            .status
            .success());
        env.wait_until("stopped", || {
            env.task_status(id).as_deref() == Some("STOPPED")
        });
        let out = env.ctr(&["task", "delete", id]);
        assert!(out.status.success(), "{}", describe(&out));
    }
    env.wait_until("no shim left", || env.shim_pids().is_empty());
}

#[test]
fn a_killed_shim_is_cleaned_up_through_shim_delete() {
    if !can_run() {
        return;
    }
    let env = Env::new("deadshim");
    let out = env.run(&["-d"], "k1", &["sleep", "1000"]);
    assert!(out.status.success(), "{}", describe(&out));
    let task = stdout(&env.ctr(&["task", "ls"]));
    let init: i32 = task
        .lines()
        .find(|l| l.starts_with("k1 "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("k1 listed with its pid");
    let shims = env.shim_pids();
    assert_eq!(shims.len(), 1);
    // SAFETY: kill(2) of the shim this test's containerd started.
    unsafe { libc::kill(shims[0], libc::SIGKILL) };
    // containerd sees the shim go and runs `shim delete`: the container is killed too.
    env.wait_until("task gone", || env.task_status("k1").is_none());
    env.wait_until("container process gone", || {
        !Path::new(&format!("/proc/{init}")).exists()
    });
    let state: Vec<_> = fs::read_dir(env.path().join("runtime-root"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(state.is_empty(), "runtime state left: {state:?}");
    assert!(env.ctr(&["c", "rm", "k1"]).status.success());
}

/// Runs `program args`, panicking with its output on failure.
fn must(program: &str, args: &[&str], cwd: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        describe(&out)
    );
}

#[test]
fn imported_image_runs_on_overlayfs() {
    if !can_run() || !Path::new("/usr/bin/umoci").exists() {
        eprintln!("skipping: needs umoci");
        return;
    }
    let env = Env::new("overlay");
    let d = env.path();
    // An OCI image from the busybox rootfs, without a registry.
    must("tar", &["-C", "rootfs", "-cf", "layer.tar", "bin"], d);
    must("umoci", &["init", "--layout", "img"], d);
    must("umoci", &["new", "--image", "img:latest"], d);
    must(
        "umoci",
        &["raw", "add-layer", "--image", "img:latest", "layer.tar"],
        d,
    );
    must(
        "umoci",
        &[
            "config",
            "--image",
            "img:latest",
            "--config.env",
            "PATH=/bin",
        ],
        d,
    );
    must("tar", &["-C", "img", "-cf", "img.tar", "."], d);
    let tar = d.join("img.tar");
    let out = env.ctr(&[
        "image",
        "import",
        "--base-name",
        "example.com/busybox",
        tar.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", describe(&out));

    let fifo = d.join("fifo");
    let config = d.join("runtime.toml");
    let out = env.ctr(&[
        "run",
        "--rm",
        "--snapshotter",
        "overlayfs",
        "--fifo-dir",
        fifo.to_str().unwrap(),
        "--runtime",
        RUNTIME_TYPE,
        "--runtime-config-path",
        config.to_str().unwrap(),
        "example.com/busybox:latest",
        "ov1",
        "sh",
        "-c",
        "echo on-overlay; grep ' / / ' /proc/self/mountinfo",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.starts_with("on-overlay\n"), "{}", describe(&out));
    assert!(
        text.contains(" - overlay "),
        "root is not the overlay: {text}"
    );
    // The shim unmounted the rootfs on delete.
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&*d.join("state").to_string_lossy()),
        "rootfs still mounted"
    );
}
