//! The runtime under Debian's containerd-shim-runc-v2: `ctr run --runc-binary <runtime>`
//! against a private containerd.
//!
//! Debian's shim hard-codes /run/containerd/{s,runc}, so containerd runs in a private
//! mount namespace with a temp dir bound over /run. A holder process keeps that
//! namespace; containerd is made a child subreaper so that the shims it starts are
//! reaped by it instead of becoming zombies of the machine's init.

use runrs_integration::procfs::{self, ProcRef};
use runrs_integration::*;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every process this test started or caused, killed (by recorded pid, or found by the
/// temp dir in its command line or environment) when dropped.
struct Daemons {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Daemons {
    fn start(&mut self, mut command: Command, log: &Path) -> u32 {
        let log = std::fs::File::create(log).unwrap();
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Processes whose command line mentions the temp dir (shims, containerd).
    fn strays(&self) -> Vec<i32> {
        let needle = self.dir.to_string_lossy().into_owned();
        std::fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                    .filter(|pid| {
                        std::fs::read(format!("/proc/{pid}/cmdline"))
                            .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                            .unwrap_or(false)
                    })
                    .filter(|pid| procfs::pid_alive(*pid))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        // containerd first (politely), then everything else we started.
        for child in self.children.iter_mut().rev() {
            // SAFETY: kill(2) on a child we spawned and have not reaped yet.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let mark = format!("{}={}", bundle::MARK_VAR, self.dir.display());
        for pid in self
            .strays()
            .into_iter()
            .chain(procfs::processes_with_env(&mark))
        {
            if let Some(p) = ProcRef::of(pid) {
                p.kill();
            }
        }
    }
}

fn wait_child(mut child: Child, timeout: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return (status.code(), String::new());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (None, format!("killed after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ctr_run_with_the_runtime_as_runc_binary_prints_the_output() {
    for tool in [
        "containerd",
        "ctr",
        "containerd-shim-runc-v2",
        "unshare",
        "nsenter",
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is not installed (hack/test installs containerd)"
        );
    }
    let env = TestEnv::new("ctr_run");
    let dir = env.dir().to_owned();
    let runtime = env.rt.bin.clone();
    let mut daemons = Daemons {
        dir: dir.clone(),
        children: Vec::new(),
    };

    std::fs::create_dir(dir.join("run")).unwrap();
    std::fs::create_dir(dir.join("fifo")).unwrap();
    let socket = dir.join("containerd.sock");
    let config = dir.join("containerd.toml");
    let d = dir.display();
    std::fs::write(
        &config,
        format!(
            r#"version = 2
root = "{d}/containerd-root"
state = "{d}/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/containerd-debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd-opt"
"#
        ),
    )
    .unwrap();

    // The holder: a private mount namespace with <dir>/run over /run.
    let mut holder = Command::new("unshare");
    holder
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind '{d}/run' /run && echo mounted > '{d}/holder-ready' && exec sleep 1000"
        ));
    let holder_pid = daemons.start(holder, &dir.join("holder.log"));
    wait_until("holder namespace", Duration::from_secs(10), || {
        dir.join("holder-ready").exists()
    });

    let mut containerd = Command::new("nsenter");
    containerd
        .args([
            "-t",
            &holder_pid.to_string(),
            "-m",
            "containerd",
            "--config",
        ])
        .arg(&config);
    // SAFETY: prctl in the forked child before exec; async-signal-safe.
    unsafe {
        containerd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    daemons.start(containerd, &dir.join("containerd.log"));
    let booted = wait_for(Duration::from_secs(20), || socket.exists());
    assert!(
        booted,
        "containerd did not start:\n{}",
        std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
    );

    let b = env.bundle();
    let id = format!("ctr-{}", std::process::id());
    let namespace = format!("runrs-it-{}", std::process::id());
    let out_path = dir.join("ctr.out");
    let ctr = Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["-n", &namespace, "run", "--rm"])
        .arg("--fifo-dir")
        .arg(dir.join("fifo"))
        .arg("--runc-binary")
        .arg(&runtime)
        .args(["--cgroup", &format!("/{id}")])
        .args(["--env", &b.mark()])
        .arg("--rootfs")
        .arg(b.rootfs())
        .args([&id, "/bin/echo", "hi"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(dir.join("ctr.err")).unwrap())
        .spawn()
        .expect("run ctr");
    let (code, note) = wait_child(ctr, Duration::from_secs(60));
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(dir.join("ctr.err")).unwrap_or_default();
    assert_eq!(
        code,
        Some(0),
        "ctr run failed {note}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- containerd ---\n{}",
        std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
    );
    assert_eq!(stdout.trim(), "hi", "stderr: {stderr}");

    // Nothing of the container is left once ctr run --rm returned.
    wait_until("container processes gone", Duration::from_secs(5), || {
        procfs::processes_with_env(&b.mark()).is_empty()
    });
    assert!(
        procfs::cgroup_dirs_named(&id).is_empty(),
        "cgroup {id} left"
    );
    drop(daemons);
    let strays = Daemons {
        dir: dir.clone(),
        children: Vec::new(),
    };
    assert!(
        strays.strays().is_empty(),
        "processes left: {:?}",
        strays.strays()
    );
}
