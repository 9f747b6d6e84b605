//! Docker runs containers with the runtime: a private dockerd + containerd (hack/docker-env:
//! own PID, mount and network namespaces under a temp dir) with the runtime under test
//! registered as `runrs`, and `docker import`ed busybox as `bb:1`. dockerd 20.10 drives it
//! through Debian's containerd-shim-runc-v2 with `binary_name` set to the runtime; dockerd
//! 23 and later (Debian 13's 26, in the guest) through our shim, containerd-shim-runrs-v2,
//! which calls the runtime: as `runrs` (runtimeType `io.containerd.runrs.v2`), as
//! `runrs-path` (runtimeType = the shim's absolute path) and unconfigured
//! (`--runtime io.containerd.runrs.v2`).
//!
//! Every check runs with `--runtime runrs` and with docker's own `runc`, and expects the
//! same result from both.

#[path = "fixtures/clients.rs"]
mod clients;

use clients::*;
use runrs_integration::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// dockerd and the client from the same Debian package (another `docker` may come first
/// on PATH).
const DOCKER: &str = "/usr/bin/docker";

/// The runtimes each check runs with: the one under test, and docker's default.
const RUNTIMES: [&str; 2] = ["runrs", "runc"];

struct Docker {
    // Dropped first: stops the daemons before the temp dir goes.
    daemon: ClientEnv,
    env: TestEnv,
}

impl Docker {
    /// A private dockerd with `bb:1` imported, or `None` (test skipped) when docker.io
    /// is not installed.
    fn start(test: &str) -> Option<Docker> {
        Docker::start_with(test, false)
    }

    /// `live_restore`: dockerd's `"live-restore": true`.
    fn start_with(test: &str, live_restore: bool) -> Option<Docker> {
        Docker::start_in(test, live_restore, "cgroupfs")
    }

    /// `driver`: dockerd's cgroup driver, `cgroupfs` or `systemd` (hack/docker-env).
    fn start_in(test: &str, live_restore: bool, driver: &str) -> Option<Docker> {
        if !installed(
            test,
            &[
                DOCKER,
                "dockerd",
                "containerd",
                "containerd-shim-runc-v2",
                "unshare",
                "script",
            ],
        ) {
            return None;
        }
        let env = TestEnv::new(test);
        if live_restore {
            std::fs::write(env.path("live-restore"), "").unwrap();
        }
        std::fs::write(env.path("cgroup-driver"), driver).unwrap();
        let daemon = ClientEnv::start("docker-env", env.dir(), &env.rt.bin);
        let docker = Docker { daemon, env };
        let tar = busybox_tar(&docker.env);
        docker.run(&["import", &arg(&tar), "bb:1"]).ok();
        Some(docker)
    }

    /// Whether dockerd runs our shim (dockerd >= 23) rather than the Go shim.
    fn runs_our_shim(&self) -> bool {
        let mode = std::fs::read_to_string(self.daemon.dir.join("shim-mode"));
        mode.unwrap_or_default().trim() == "runrs-shim"
    }

    /// Every way this dockerd has to run the runtime under test, then docker's `runc`.
    fn all_runtimes(&self) -> Vec<&'static str> {
        if self.runs_our_shim() {
            vec!["runrs", "runrs-path", "io.containerd.runrs.v2", "runc"]
        } else {
            RUNTIMES.to_vec()
        }
    }

    /// Asserts that container `id` is served by our shim: a process running the shim's
    /// binary has the id on its command line.
    fn assert_served_by_our_shim(&self, id: &str) {
        let shim = self.daemon.dir.join("bin/containerd-shim-runrs-v2");
        let shim = std::fs::canonicalize(shim).expect("the shim's link");
        let served = std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
            let exe = std::fs::read_link(p.path().join("exe"));
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            exe.is_ok_and(|e| e == shim) && String::from_utf8_lossy(&cmdline).contains(id)
        });
        assert!(
            served,
            "no {} process serves container {id}",
            shim.display()
        );
    }

    fn host(&self) -> String {
        format!("unix://{}", self.daemon.dir.join("docker.sock").display())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(DOCKER);
        command.arg("-H").arg(self.host()).args(args);
        command
    }

    /// `docker <args>` with a timeout.
    fn run(&self, args: &[&str]) -> Out {
        let out = run_in(self.env.dir(), self.command(args), None, CLIENT_TIMEOUT);
        if out.code == Some(125) {
            eprintln!("{out}\n{}", self.daemon.logs());
        }
        out
    }

    /// `docker run --rm --runtime <rt> <flags> bb:1 sh -c <script>`, which must exit 0.
    #[track_caller]
    fn sh(&self, rt: &str, flags: &[&str], script: &str) -> String {
        let mut args = vec!["run", "--rm", "--runtime", rt];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["bb:1", "sh", "-c", script]);
        let out = self.run(&args);
        assert_eq!(out.code, Some(0), "with --runtime {rt}: {out}");
        out.stdout
    }

    /// A docker command line for `script -c`.
    fn line(&self, args: &str) -> String {
        format!("{DOCKER} -H {} {args}", self.host())
    }
}

/// A script printing the container's memory limit, pids limit and CPU quota/period
/// (cgroup v1 or v2 files), one per line.
const RESOURCE_FILES: &str = "if [ -e /sys/fs/cgroup/cgroup.controllers ]; then \
     cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max; \
     else cd /sys/fs/cgroup && cat memory/memory.limit_in_bytes pids/pids.max \
     cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us; fi";

fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[test]
fn docker_run_prints_output_and_exit_code_and_tty() {
    let Some(docker) = Docker::start("docker_run") else {
        return;
    };
    let runtimes = docker.all_runtimes();
    for &rt in &runtimes {
        let out = docker.run(&[
            "run",
            "--rm",
            "--runtime",
            rt,
            "bb:1",
            "sh",
            "-c",
            "echo hi; exit 3",
        ]);
        out.code(3);
        assert_eq!(out.stdout, "hi\n", "--runtime {rt}: {out}");

        // -t: the process gets a terminal as stdin, stdout and stderr.
        let out = under_script(
            docker.env.dir(),
            &docker.line(&format!(
                "run --rm -t --runtime {rt} bb:1 sh -c 'tty; test -t 0 && test -t 1 && echo term-ok; exit 4'"
            )),
            None,
        );
        out.code(4);
        assert_contains(&out.stdout, "/dev/pts/0");
        assert_contains(&out.stdout, "term-ok");

        // -it: what is typed reaches the shell through the terminal.
        let out = under_script(
            docker.env.dir(),
            &docker.line(&format!("run --rm -it --runtime {rt} bb:1 sh")),
            Some("echo typed-$((6*7)); exit 6\n"),
        );
        out.code(6);
        assert_contains(&out.stdout, "typed-42");
    }
    // The runtime ran each of its containers (three per way to name it; runc's do not
    // pass through it).
    let calls = docker.daemon.runtime_log();
    let creates = calls
        .lines()
        .filter(|l| l.contains("create --bundle "))
        .count();
    assert_eq!(creates, 3 * (runtimes.len() - 1), "runtime calls:\n{calls}");
    assert_contains(&calls, " start ");
    if docker.runs_our_shim() {
        // An option our shim cannot carry out (daemon.json's runtime "runrs-bad": runc's
        // ShimCgroup in the file its ConfigPath names) fails the run with the option's name,
        // without a container made (containerd's cleanup may still ask the runtime to delete
        // it); the same dockerd and shim go on running the others.
        let out = docker.run(&["run", "--rm", "--runtime", "runrs-bad", "bb:1", "true"]);
        assert_ne!(out.code, Some(0), "{out}");
        assert_contains(&out.stderr, "runtime option ShimCgroup is not supported");
        let after = docker.daemon.runtime_log();
        let made = after
            .lines()
            .filter(|l| l.contains("create --bundle "))
            .count();
        assert_eq!(made, creates, "{after}");
        let out = docker.run(&["run", "--rm", "--runtime", "runrs", "bb:1", "echo", "still"]);
        out.code(0);
        assert_eq!(out.stdout, "still\n");
    }
}

#[test]
fn docker_detached_container_lifecycle() {
    let Some(docker) = Docker::start("docker_life") else {
        return;
    };
    for rt in RUNTIMES {
        let name = format!("life-{rt}");
        let id = docker
            .run(&[
                "run",
                "-d",
                "--runtime",
                rt,
                "--name",
                &name,
                "bb:1",
                "sh",
                "-c",
                "trap 'echo got-TERM; exit 0' TERM; while :; do sleep 0.1; done",
            ])
            .ok()
            .trim()
            .to_owned();
        assert_eq!(id.len(), 64, "docker run -d printed {id:?}");
        if rt != "runc" && docker.runs_our_shim() {
            docker.assert_served_by_our_shim(&id);
        }

        let out = docker.run(&["exec", &name, "sh", "-c", "echo exec-$(id -u); exit 7"]);
        out.code(7);
        assert_eq!(out.stdout, "exec-0\n", "--runtime {rt}");
        let out = docker.run(&[
            "exec",
            "-u",
            "1000",
            "-w",
            "/tmp",
            "-e",
            "V=x",
            &name,
            "sh",
            "-c",
            "echo $(id -u) $(pwd) $V",
        ]);
        assert_eq!(out.ok(), "1000 /tmp x\n", "--runtime {rt}");
        assert_eq!(docker.run(&["exec", "-i", &name, "cat"]).ok(), "");

        let top = docker.run(&["top", &name]);
        assert_contains(top.ok(), "while :; do sleep 0.1; done");

        let stats = docker.run(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.MemUsage}} {{.PIDs}}",
            &name,
        ]);
        let stats = stats.ok().trim().to_owned();
        let fields: Vec<&str> = stats.split_whitespace().collect();
        assert_eq!(fields.first(), Some(&name.as_str()), "stats: {stats}");
        assert!(
            !stats.contains(" 0B /"),
            "no memory usage in stats: {stats}"
        );
        let pids: u32 = fields.last().and_then(|p| p.parse().ok()).unwrap_or(0);
        assert!(pids >= 1, "no pids in stats: {stats}");

        docker.run(&["pause", &name]).ok();
        let status = docker.run(&["inspect", "-f", "{{.State.Status}}", &name]);
        assert_eq!(status.ok().trim(), "paused", "--runtime {rt}");
        docker.run(&["unpause", &name]).ok();
        let status = docker.run(&["inspect", "-f", "{{.State.Status}}", &name]);
        assert_eq!(status.ok().trim(), "running", "--runtime {rt}");
        docker.run(&["exec", &name, "true"]).ok();

        // update: `update --resources - <id>` with the new limits on stdin.
        docker
            .run(&[
                "update",
                "--memory",
                "64m",
                "--memory-swap",
                "128m",
                "--pids-limit",
                "33",
                &name,
            ])
            .ok();
        let limits = docker.run(&["exec", &name, "sh", "-c", RESOURCE_FILES]);
        let limits = lines(limits.ok());
        assert_eq!(
            limits.first(),
            Some(&"67108864"),
            "--runtime {rt}: {limits:?}"
        );
        assert_eq!(limits.get(1), Some(&"33"), "--runtime {rt}: {limits:?}");

        // stop, graceful: SIGTERM and the trap exits 0, long before the timeout (a wide
        // one: an emulated guest beside other work took over 15 s for the whole stop).
        let started = Instant::now();
        docker.run(&["stop", "-t", "50", &name]).ok();
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "--runtime {rt}: stop waited for the timeout: SIGTERM did not reach the container"
        );
        let code = docker.run(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
        assert_eq!(code.ok().trim(), "0", "--runtime {rt}");
        assert_contains(docker.run(&["logs", &name]).ok(), "got-TERM");
        docker.run(&["rm", &name]).ok();
        assert_eq!(
            docker.run(&["ps", "-aq"]).ok().trim(),
            "",
            "rm left a container"
        );

        // stop, forced: SIGTERM is ignored, SIGKILL after the timeout.
        let name = format!("stubborn-{rt}");
        docker
            .run(&[
                "run",
                "-d",
                "--runtime",
                rt,
                "--name",
                &name,
                "bb:1",
                "sh",
                "-c",
                "trap '' TERM; while :; do sleep 0.1; done",
            ])
            .ok();
        docker.run(&["stop", "-t", "1", &name]).ok();
        let code = docker.run(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
        assert_eq!(code.ok().trim(), "137", "--runtime {rt}");
        docker.run(&["rm", &name]).ok();
    }
    let calls = docker.daemon.runtime_log();
    for call in [
        " pause ",
        " resume ",
        " update --resources - ",
        " kill ",
        " exec ",
    ] {
        assert_contains(&calls, call);
    }
}

#[test]
fn docker_run_flags_behave_as_with_runc() {
    let Some(docker) = Docker::start("docker_flags") else {
        return;
    };
    let shared = docker.env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("f"), "from-host\n").unwrap();
    let volume = format!("{}:/vol:ro", shared.display());
    let volume_flags = ["-v", volume.as_str()];
    let resources = if cgroup_v2() {
        "67108864\n50\n50000 100000\n"
    } else {
        "67108864\n50\n50000\n100000\n"
    };
    let cases: Vec<(&[&str], &str, &str)> = vec![
        (
            &["--read-only"],
            "touch /x 2>&1; touch /tmp/y 2>&1; true",
            "touch: /x: Read-only file system\ntouch: /tmp/y: Read-only file system\n",
        ),
        (
            &["--user", "1000:1000"],
            "id",
            "uid=1000(user) gid=1000(user) groups=1000(user)\n",
        ),
        (
            &["--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"],
            "grep -E '^Cap(Prm|Eff|Bnd|Amb)' /proc/self/status",
            "CapPrm:\t0000000000000400\nCapEff:\t0000000000000400\n\
             CapBnd:\t0000000000000400\nCapAmb:\t0000000000000000\n",
        ),
        (
            &["--memory", "64m", "--pids-limit", "50", "--cpus", "0.5"],
            RESOURCE_FILES,
            resources,
        ),
        (
            &volume_flags,
            "cat /vol/f; (echo x >/vol/g) 2>/dev/null || echo write-refused",
            "from-host\nwrite-refused\n",
        ),
        (
            &["--tmpfs", "/scratch:size=1m"],
            "grep ' /scratch ' /proc/mounts | cut -d' ' -f1-3; \
             grep ' /scratch ' /proc/mounts | grep -o size=1024k",
            "tmpfs /scratch tmpfs\nsize=1024k\n",
        ),
        (
            &["--security-opt", "no-new-privileges"],
            "grep NoNewPrivs /proc/self/status",
            "NoNewPrivs:\t1\n",
        ),
        (
            &[
                "--sysctl",
                "net.ipv4.ip_forward=1",
                "--sysctl",
                "kernel.shmmax=12345678",
            ],
            "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax",
            "1\n12345678\n",
        ),
        (
            &["--ulimit", "nofile=512:512", "--ulimit", "nproc=100:200"],
            "ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu",
            "512\n512\n100\n200\n",
        ),
        (
            &["--device", "/dev/null:/dev/mynull"],
            "stat -c '%F %t:%T' /dev/mynull; echo x >/dev/mynull && echo written",
            "character special file 1:3\nwritten\n",
        ),
        (&["--init"], "cat /proc/1/comm", "docker-init\n"),
    ];
    for rt in RUNTIMES {
        for (flags, script, expected) in &cases {
            let got = docker.sh(rt, flags, script);
            assert_eq!(
                got, *expected,
                "docker run --runtime {rt} {flags:?} bb:1 sh -c {script:?}"
            );
        }
    }
}

#[test]
fn docker_user_network_containers_reach_each_other_by_name() {
    let Some(docker) = Docker::start("docker_net") else {
        return;
    };
    docker.run(&["network", "create", "itnet"]).ok();
    for name in ["alpha", "beta"] {
        docker
            .run(&[
                "run",
                "-d",
                "--runtime",
                "runrs",
                "--network",
                "itnet",
                "--name",
                name,
                "bb:1",
                "sleep",
                "600",
            ])
            .ok();
    }
    for (from, to) in [("alpha", "beta"), ("beta", "alpha")] {
        let out = docker.run(&["exec", from, "ping", "-c", "1", "-W", "5", to]);
        assert_contains(out.ok(), "1 packets received");
    }
    // The name resolves through docker's embedded DNS, set up by the prestart hook.
    let resolv = docker.run(&["exec", "alpha", "cat", "/etc/resolv.conf"]);
    assert_contains(resolv.ok(), "nameserver 127.0.0.11");
    // Docker up to 27 configures the container's network from a libnetwork-setkey prestart
    // hook, which the runtime runs; Docker 28 does it itself and sets no hook.
    let version = docker.run(&["version", "-f", "{{.Server.Version}}"]);
    let major: u32 = (version.ok().trim().split('.').next())
        .and_then(|m| m.parse().ok())
        .expect("docker's server version");
    let id = docker.run(&["inspect", "-f", "{{.Id}}", "alpha"]);
    let config = docker.daemon.config_of(id.ok().trim());
    let hooks = config["hooks"]["prestart"].to_string();
    assert_eq!(
        hooks.contains("libnetwork-setkey"),
        major < 28,
        "Docker {major}: libnetwork-setkey prestart hook in {config}"
    );
    docker.run(&["rm", "-f", "alpha", "beta"]).ok();
}

/// `"live-restore": true`: dockerd SIGKILLed while containers run; a container that exits
/// while dockerd is down shows its exit code after the restart, and the one still running
/// is the same process, still managed (exec, stop).
#[test]
fn docker_live_restore_keeps_containers_across_a_dockerd_kill() {
    let Some(docker) = Docker::start_with("docker_live", true) else {
        return;
    };
    let ctl = docker.env.path("ctl");
    std::fs::create_dir(&ctl).unwrap();
    let volume = format!("{}:/ctl", ctl.display());
    let mut pids = Vec::new();
    let mut exiting = Vec::new();
    for rt in RUNTIMES {
        let keep = format!("keep-{rt}");
        let loop_ = "trap 'exit 0' TERM; while :; do sleep 0.1; done";
        let run = [
            "run",
            "-d",
            "--runtime",
            rt,
            "--name",
            &keep,
            "bb:1",
            "sh",
            "-c",
            loop_,
        ];
        docker.run(&run).ok();
        let pid = docker.run(&["inspect", "-f", "{{.State.Pid}}", &keep]);
        pids.push(pid.ok().trim().to_owned());
        let name = format!("exits-{rt}");
        let script = format!("until [ -e /ctl/go-{rt} ]; do sleep 0.1; done; exit 42");
        let run = [
            "run",
            "-d",
            "--runtime",
            rt,
            "-v",
            &volume,
            "--name",
            &name,
            "bb:1",
        ];
        let id = docker.run(&[&run[..], &["sh", "-c", &script]].concat());
        exiting.push((name, id.ok().trim().to_owned()));
    }

    docker.daemon.control("kill-dockerd", "dockerd-down");
    for rt in RUNTIMES {
        std::fs::write(ctl.join(format!("go-{rt}")), "").unwrap();
    }
    // containerd (still up) sees both exits while dockerd is down.
    let ctr_socket = docker.daemon.dir.join("containerd.sock");
    for (name, id) in &exiting {
        wait_until(&format!("{name} exited"), Duration::from_secs(60), || {
            let mut ctr = Command::new("ctr");
            ctr.arg("-a").arg(&ctr_socket);
            ctr.args(["-n", "runrs-it-docker", "task", "ls"]);
            let out = run_in(docker.env.dir(), ctr, None, CLIENT_TIMEOUT);
            out.stdout
                .lines()
                .any(|l| l.starts_with(id.as_str()) && l.contains("STOPPED"))
        });
    }
    docker.daemon.control("start-dockerd", "dockerd-up");

    for (i, rt) in RUNTIMES.iter().enumerate() {
        let keep = format!("keep-{rt}");
        let state = docker.run(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", &keep]);
        assert_eq!(
            state.ok().trim(),
            format!("running {}", pids[i]),
            "--runtime {rt}"
        );
        let out = docker.run(&["exec", &keep, "echo", "still-managed"]);
        assert_eq!(out.ok(), "still-managed\n", "--runtime {rt}");
        let name = &exiting[i].0;
        let state = docker.run(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            name,
        ]);
        assert_eq!(state.ok().trim(), "exited 42", "--runtime {rt}");
        docker.run(&["stop", "-t", "10", &keep]).ok();
        let code = docker.run(&["inspect", "-f", "{{.State.ExitCode}}", &keep]);
        assert_eq!(code.ok().trim(), "0", "--runtime {rt}");
        docker.run(&["rm", &keep, name]).ok();
    }
    assert_eq!(
        docker.run(&["ps", "-aq"]).ok().trim(),
        "",
        "rm left a container"
    );
}

/// `--restart on-failure:2`: dockerd starts a container that exits non-zero again, twice,
/// each time through the runtime (a new task on the same bundle), then leaves it exited with
/// its code; `--restart always` starts one that exited 0 again. As with docker's runc.
#[test]
fn docker_restart_policies_start_the_container_again() {
    let Some(docker) = Docker::start("docker_restart") else {
        return;
    };
    let runtimes = if docker.runs_our_shim() {
        vec!["runrs", "runc"]
    } else {
        RUNTIMES.to_vec()
    };
    for rt in runtimes {
        let start = |name: &str, policy: &str, script: &str| {
            let args = [
                "run",
                "-d",
                "--name",
                name,
                "--runtime",
                rt,
                "--restart",
                policy,
            ];
            let mut args = args.to_vec();
            args.extend(["bb:1", "sh", "-c", script]);
            docker.run(&args).code(0);
        };
        let inspect = |name: &str, format: &str| {
            let out = docker.run(&["inspect", "--format", format, name]);
            out.stdout.trim().to_string()
        };
        let wait_for = |what: &str, done: &dyn Fn() -> bool| {
            let deadline = std::time::Instant::now() + Duration::from_secs(180);
            while !done() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "--runtime {rt}: {what}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        };
        start("restart", "on-failure:2", "sleep 1; exit 3");
        wait_for("not restarted twice, then exited", &|| {
            inspect("restart", "{{.State.Status}} {{.RestartCount}}") == "exited 2"
        });
        assert_eq!(inspect("restart", "{{.State.ExitCode}}"), "3", "{rt}");
        docker.run(&["rm", "restart"]).code(0);
        // always: a container that exits 0 is started again too.
        start("always", "always", "sleep 2");
        wait_for("not started again after it exited 0", &|| {
            inspect("always", "{{.RestartCount}}")
                .parse::<u32>()
                .unwrap_or(0)
                >= 2
        });
        docker.run(&["rm", "--force", "always"]).code(0);
    }
    // The runtime under test made each start: three of the first container, at least two
    // of the second (dockerd counts a restart before it reaches the runtime; runc's
    // containers do not pass through it).
    let calls = docker.daemon.runtime_log();
    let creates = calls
        .lines()
        .filter(|l| l.contains("create --bundle "))
        .count();
    assert!(creates >= 5, "{creates} creates; runtime calls:\n{calls}");
}

/// dockerd's systemd cgroup driver, its default on a systemd host with cgroup v2: each
/// container is a `docker-<id>.scope` in the daemon's slice, with its limits as the unit's
/// properties. Docker sends a shim other than runc's no `SystemdCgroup`; ours goes by the
/// `slice:prefix:name` cgroupsPath. `docker rm` leaves no unit.
#[test]
fn docker_systemd_cgroup_driver_puts_containers_in_scopes() {
    if !Path::new("/run/systemd/system").is_dir() || !cgroup_v2() {
        eprintln!("skipped: needs systemd as PID 1 on cgroup v2 (hack/test-guest)");
        return;
    }
    let Some(docker) = Docker::start_in("docker_systemd", false, "systemd") else {
        return;
    };
    let slice = std::fs::read_to_string(docker.daemon.dir.join("cgroup-slice")).unwrap();
    let slice = slice.trim();
    let unit_property = |unit: &str, property: &str| {
        let out = Command::new("systemctl")
            .args(["show", "-p", property, "--value", unit])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    for rt in ["runrs", "runc"] {
        let name = format!("sd-{rt}");
        let out = docker.run(&[
            "run",
            "-d",
            "--name",
            &name,
            "--runtime",
            rt,
            "--memory",
            "64m",
            "bb:1",
            "sleep",
            "1000",
        ]);
        out.code(0);
        let id = out.stdout.trim().to_string();
        let unit = format!("docker-{id}.scope");
        assert_eq!(unit_property(&unit, "ActiveState"), "active", "{rt}");
        assert_eq!(unit_property(&unit, "Slice"), slice, "{rt}");
        assert_eq!(unit_property(&unit, "MemoryMax"), "67108864", "{rt}");
        // No PID namespace of the env's: dockerd's pid is the host's.
        let pid = docker.run(&["inspect", "--format", "{{.State.Pid}}", &name]);
        let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.stdout.trim()));
        assert_eq!(
            cgroup.unwrap().trim(),
            format!("0::/{slice}/{unit}"),
            "--runtime {rt}"
        );
        let out = docker.run(&["exec", &name, "echo", "in-scope"]);
        out.code(0);
        assert_eq!(out.stdout, "in-scope\n");
        docker.run(&["rm", "--force", &name]).code(0);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while unit_property(&unit, "LoadState") != "not-found" {
            assert!(std::time::Instant::now() < deadline, "{rt}: {unit} left");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    if docker.runs_our_shim() {
        // Our shim turned the runtime's systemd driver on by itself.
        let calls = docker.daemon.runtime_log();
        let create = calls.lines().find(|l| l.contains(" create ")).unwrap_or("");
        assert_contains(create, "--systemd-cgroup");
    }
}
