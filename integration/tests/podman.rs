//! Podman runs containers with the runtime: a private podman configuration
//! (hack/podman-env: storage, state, locks and events under a temp dir, inside own PID,
//! mount and network namespaces), `--runtime` = a wrapper that adds a private `--root`,
//! and `podman import`ed busybox as `bb:1`. conmon calls `create`, `exec --detach
//! [--tty --console-socket]`; podman calls `start`, `pause`, `resume`, `kill`, `delete`.
//!
//! Each check runs with the runtime under test and with runc, expecting the same result.
//!
//! `podman container checkpoint`/`restore` need a working CRIU: where `criu check` fails
//! (this project's host) that test says SKIPPED in one line; it runs in the Debian 13 guest
//! (`RUNRS_GUEST_SUITES=podman hack/test-guest`).

#[path = "fixtures/clients.rs"]
mod clients;

use clients::*;
use runrs_integration::*;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNC: &str = "/usr/sbin/runc";

struct Podman {
    // Dropped first: kills conmon and the containers before the temp dir goes.
    world: ClientEnv,
    env: TestEnv,
    cgroup_parent: String,
}

impl Podman {
    fn start(test: &str) -> Option<Podman> {
        Podman::start_with(test, "cgroupfs")
    }

    /// `manager`: podman's cgroup manager, `cgroupfs` or `systemd`.
    fn start_with(test: &str, manager: &str) -> Option<Podman> {
        if !installed(test, &["podman", "conmon", "unshare", "nsenter", "script"]) {
            return None;
        }
        let env = TestEnv::new(test);
        std::fs::write(env.path("cgroup-manager"), manager).unwrap();
        let world = ClientEnv::start("podman-env", env.dir(), &env.rt.bin);
        let cgroup_parent = std::fs::read_to_string(env.dir().join("cgroup-parent"))
            .expect("podman-env wrote cgroup-parent")
            .trim()
            .to_owned();
        let podman = Podman {
            world,
            env,
            cgroup_parent,
        };
        let tar = busybox_tar(&podman.env);
        podman.run(&["import", "--quiet", &arg(&tar), "bb:1"]).ok();
        Some(podman)
    }

    fn wrapper(&self) -> String {
        arg(&self.world.dir.join("podman"))
    }

    /// The `--runtime` values to check: the runtime under test (its logging wrapper),
    /// and runc when installed.
    fn runtimes(&self) -> Vec<String> {
        let mut runtimes = vec![arg(&self.world.dir.join("runtime-wrapper"))];
        if std::path::Path::new(RUNC).is_file() {
            runtimes.push(RUNC.to_owned());
        }
        runtimes
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_for(args, CLIENT_TIMEOUT)
    }

    fn run_for(&self, args: &[&str], timeout: Duration) -> Out {
        let mut command = Command::new(self.wrapper());
        command.args(args);
        run_in(self.env.dir(), command, None, timeout)
    }

    /// `podman run` flags common to every container: the runtime and the private cgroup
    /// parent.
    fn run_flags<'a>(&'a self, rt: &'a str) -> Vec<&'a str> {
        vec!["--runtime", rt, "--cgroup-parent", &self.cgroup_parent]
    }
}

#[test]
fn podman_runs_execs_pauses_and_stops_containers() {
    let Some(podman) = Podman::start("podman") else {
        return;
    };
    for rt in podman.runtimes() {
        let rt = rt.as_str();
        // run --rm: output and exit code.
        let mut args = vec!["run", "--rm"];
        args.extend(podman.run_flags(rt));
        args.extend(["bb:1", "sh", "-c", "echo hi; exit 3"]);
        let out = podman.run(&args);
        out.code(3);
        assert_eq!(out.stdout, "hi\n", "--runtime {rt}: {out}");

        // run -d, then exec, exec -t, top, pause/unpause, stop, rm.
        let name = "life";
        let mut args = vec!["run", "-d", "--name", name];
        args.extend(podman.run_flags(rt));
        args.extend([
            "bb:1",
            "sh",
            "-c",
            "trap 'echo got-TERM; exit 0' TERM; while :; do sleep 0.1; done",
        ]);
        podman.run(&args).ok();

        let out = podman.run(&["exec", name, "sh", "-c", "echo exec-$(id -u); exit 4"]);
        out.code(4);
        assert_eq!(out.stdout, "exec-0\n", "--runtime {rt}: {out}");

        let out = under_script(
            podman.env.dir(),
            &format!(
                "{} exec -t {name} sh -c 'tty; test -t 0 && test -t 1 && echo term-ok'",
                podman.wrapper()
            ),
            None,
        );
        assert_eq!(out.code, Some(0), "--runtime {rt}: {out}");
        assert_contains(&out.stdout, "/dev/pts/");
        assert_contains(&out.stdout, "term-ok");
        let out = under_script(
            podman.env.dir(),
            &format!("{} exec -it {name} sh", podman.wrapper()),
            Some("echo typed-$((6*7)); exit 6\n"),
        );
        assert_eq!(out.code, Some(6), "--runtime {rt}: {out}");
        assert_contains(&out.stdout, "typed-42");

        let top = podman.run(&["top", name]);
        assert_contains(top.ok(), "while :; do sleep 0.1; done");

        podman.run(&["pause", name]).ok();
        let status = podman.run(&["inspect", "-f", "{{.State.Status}}", name]);
        assert_eq!(status.ok().trim(), "paused", "--runtime {rt}");
        podman.run(&["unpause", name]).ok();
        let status = podman.run(&["inspect", "-f", "{{.State.Status}}", name]);
        assert_eq!(status.ok().trim(), "running", "--runtime {rt}");
        podman.run(&["exec", name, "true"]).ok();

        let started = Instant::now();
        podman.run(&["stop", "-t", "20", name]).ok();
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "--runtime {rt}: stop waited for the timeout: SIGTERM did not reach the container"
        );
        let code = podman.run(&["inspect", "-f", "{{.State.ExitCode}}", name]);
        assert_eq!(code.ok().trim(), "0", "--runtime {rt}");
        assert_contains(podman.run(&["logs", name]).ok(), "got-TERM");
        podman.run(&["rm", name]).ok();

        // stop, forced: SIGTERM ignored, SIGKILL after the timeout.
        let mut args = vec!["run", "-d", "--name", "stubborn"];
        args.extend(podman.run_flags(rt));
        args.extend([
            "bb:1",
            "sh",
            "-c",
            "trap '' TERM; while :; do sleep 0.1; done",
        ]);
        podman.run(&args).ok();
        podman.run(&["stop", "-t", "1", "stubborn"]).ok();
        let code = podman.run(&["inspect", "-f", "{{.State.ExitCode}}", "stubborn"]);
        assert_eq!(code.ok().trim(), "137", "--runtime {rt}");
        podman.run(&["rm", "stubborn"]).ok();
        assert_eq!(
            podman.run(&["ps", "-aq"]).ok().trim(),
            "",
            "rm left a container"
        );
    }
    let calls = podman.world.runtime_log();
    for call in [
        "create --bundle ",
        "exec --pid-file ",
        // conmon 2.1 says `--tty --console-socket`, 2.1.12 (Podman 5) `--console-socket`.
        "--console-socket ",
        "pause ",
        "resume ",
        "kill ",
        "delete --force ",
    ] {
        assert_contains(&calls, call);
    }
}

/// Whether systemd is PID 1 (podman's systemd cgroup manager needs it); says SKIPPED if not.
fn systemd_is_pid1(test: &str) -> bool {
    let comm = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    let yes = comm.trim() == "systemd";
    if !yes {
        eprintln!("SKIPPED {test}: PID 1 is not systemd");
    }
    yes
}

/// Podman's systemd cgroup manager (Podman 5's default on a systemd host): the runtime gets
/// `--systemd-cgroup` and a `slice:libpod:<id>` cgroups path, and the container's cgroup is
/// a `libpod-<id>.scope` under the slice, with the limits podman asked for.
#[test]
fn podman_with_the_systemd_cgroup_manager() {
    if !systemd_is_pid1("podman_with_the_systemd_cgroup_manager") {
        return;
    }
    let Some(podman) = Podman::start_with("podman_sd", "systemd") else {
        return;
    };
    let slice = podman.cgroup_parent.clone();
    for rt in podman.runtimes() {
        let rt = rt.as_str();
        let mut args = vec!["run", "--rm"];
        args.extend(podman.run_flags(rt));
        args.extend(["bb:1", "sh", "-c", "echo hi; exit 3"]);
        let out = podman.run(&args);
        out.code(3);
        assert_eq!(out.stdout, "hi\n", "--runtime {rt}: {out}");

        let mut args = vec![
            "run",
            "-d",
            "--name",
            "sd",
            "--memory",
            "64m",
            "--pids-limit",
            "40",
        ];
        args.extend(podman.run_flags(rt));
        args.extend(["bb:1", "sleep", "600"]);
        let id = podman.run(&args).ok().trim().to_owned();
        let cgroup = podman.run(&["exec", "sd", "cat", "/proc/self/cgroup"]);
        let pid = podman.run(&["inspect", "-f", "{{.State.Pid}}", "sd"]);
        let host_view = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.ok().trim()));
        let host_view = host_view.unwrap_or_default();
        let scope = format!("/{slice}/libpod-{id}.scope");
        assert_eq!(host_view.trim(), format!("0::{scope}"), "--runtime {rt}");
        assert!(
            cgroup.ok().starts_with("0::/"),
            "--runtime {rt}: {}",
            cgroup.stdout
        );
        let dir = format!("/sys/fs/cgroup{scope}");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).unwrap_or_default();
        assert_eq!(read("memory.max").trim(), "67108864", "--runtime {rt}");
        assert_eq!(read("pids.max").trim(), "40", "--runtime {rt}");
        let unit = format!("libpod-{id}.scope");
        let show = Command::new("systemctl")
            .args(["show", "-p", "ActiveState", "-p", "Slice", &unit])
            .output()
            .unwrap();
        let show = String::from_utf8_lossy(&show.stdout).into_owned();
        assert_contains(&show, "ActiveState=active");
        assert_contains(&show, &format!("Slice={slice}"));

        podman.run(&["stop", "-t", "1", "sd"]).ok();
        podman.run(&["rm", "sd"]).ok();
        let gone = wait_for(Duration::from_secs(20), || {
            !std::path::Path::new(&dir).exists()
        });
        assert!(gone, "--runtime {rt}: {dir} left after rm");
    }
    let calls = podman.world.runtime_log();
    assert_contains(&calls, "--systemd-cgroup");
}

/// A dump or a restore under emulation (the guest) takes many seconds.
const CRIU_TIMEOUT: Duration = Duration::from_secs(300);

/// Why CRIU cannot be used here (`criu check`), or None. In the guest, whose image is ours
/// (`RUNRS_REQUIRE_CLIENTS`), a CRIU that fails its check fails the test instead.
fn criu_unusable(test: &str) -> bool {
    let why = match Command::new("criu").arg("check").output() {
        Err(e) => format!("criu is not installed ({e})"),
        Ok(o) if !o.status.success() => {
            let text = String::from_utf8_lossy(&o.stderr).into_owned()
                + &String::from_utf8_lossy(&o.stdout);
            let last = text.lines().rev().find(|l| !l.trim().is_empty());
            format!("`criu check` fails: {}", last.unwrap_or("").trim())
        }
        Ok(_) => return false,
    };
    if std::env::var_os("RUNRS_REQUIRE_CLIENTS").is_some() {
        panic!("{test}: CRIU must work in this guest, but {why}");
    }
    eprintln!(
        "SKIPPED {test}: {why} (it runs in the guest: RUNRS_GUEST_SUITES=podman hack/test-guest)"
    );
    true
}

/// Counts on its stdout (podman's log), one number a tick.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i; usleep 100000; done";

impl Podman {
    /// The numbers container `name` has logged so far.
    fn counts(&self, name: &str) -> Vec<u64> {
        self.run(&["logs", name])
            .ok()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn last_count(&self, name: &str) -> u64 {
        self.counts(name).last().copied().unwrap_or(0)
    }

    #[track_caller]
    fn wait_count_past(&self, rt: &str, name: &str, n: u64) {
        let passed = wait_for(Duration::from_secs(120), || self.last_count(name) > n);
        assert!(
            passed,
            "--runtime {rt}: {name} did not count past {n}: {:?}",
            self.counts(name)
        );
    }

    fn status(&self, name: &str) -> String {
        let out = self.run(&["inspect", "-f", "{{.State.Status}}", name]);
        out.ok().trim().to_owned()
    }

    /// `podman container checkpoint|restore ARGS`, which must succeed.
    #[track_caller]
    fn criu(&self, rt: &str, args: &[&str]) {
        let mut all = vec!["container"];
        all.extend_from_slice(args);
        let out = self.run_for(&all, CRIU_TIMEOUT);
        assert_eq!(out.code, Some(0), "--runtime {rt}: {out}");
    }
}

/// Now, as `podman logs --since` takes it.
fn now_rfc3339() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .expect("run date");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The logged count went up by one each line from 1: it never started over.
#[track_caller]
fn assert_one_count(rt: &str, counts: &[u64]) {
    let broken = counts.windows(2).find(|w| w[1] != w[0] + 1);
    assert!(
        broken.is_none() && counts.first() == Some(&1),
        "--runtime {rt}: the count did not go on ({broken:?} in {counts:?})"
    );
}

/// A counting container `name` run with `rt`, checkpointed (it stops, the count with it,
/// podman says so) and restored under its name: running, its log going on from the dump.
fn checkpoint_and_restore(podman: &Podman, rt: &str, name: &str) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend(podman.run_flags(rt));
    args.extend(["bb:1", "sh", "-c", COUNTER]);
    podman.run(&args).ok();
    podman.wait_count_past(rt, name, 3);

    podman.criu(rt, &["checkpoint", name]);
    assert_eq!(podman.status(name), "exited", "--runtime {rt}");
    let checkpointed = podman.run(&["inspect", "-f", "{{.State.Checkpointed}}", name]);
    assert_eq!(checkpointed.ok().trim(), "true", "--runtime {rt}");
    let at_dump = podman.last_count(name);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        podman.last_count(name),
        at_dump,
        "--runtime {rt}: counted on after the checkpoint"
    );

    podman.criu(rt, &["restore", name]);
    assert_eq!(podman.status(name), "running", "--runtime {rt}");
    podman.wait_count_past(rt, name, at_dump + 3);
    assert_one_count(rt, &podman.counts(name));
}

/// `podman container checkpoint` and `restore` with the runtime (podman calls `checkpoint
/// --help` to probe it, then `checkpoint --image-path --work-path [--leave-running]` itself;
/// conmon calls `restore --bundle --pid-file --detach --image-path --work-path`, stdio on
/// its new pipes): a counting container is stopped by the
/// checkpoint, restored under its name, and counts on from where it was in the same log;
/// `--leave-running` keeps it counting; `--export` to a tar, `rm`, `restore --import` brings
/// it back under the same name, counting on from the export.
#[test]
fn podman_checkpoints_and_restores_a_counting_container() {
    let test = "podman_checkpoints_and_restores_a_counting_container";
    if criu_unusable(test) {
        return;
    }
    let Some(podman) = Podman::start("podman_ckpt") else {
        return;
    };
    let name = "counter";
    for rt in podman.runtimes() {
        let rt = rt.as_str();
        checkpoint_and_restore(&podman, rt, name);

        // --leave-running: checkpointed, and counting all along.
        podman.criu(rt, &["checkpoint", "--leave-running", name]);
        assert_eq!(podman.status(name), "running", "--runtime {rt}");
        let after = podman.last_count(name);
        podman.wait_count_past(rt, name, after + 3);
        assert_one_count(rt, &podman.counts(name));

        // --export to a tar, the container removed, then restore --import: the same name,
        // running, counting on from the export (its log is a new one).
        let tar = podman.env.path(&format!("export-{}.tar.gz", rt.len()));
        let export = format!("--export={}", arg(&tar));
        podman.criu(rt, &["checkpoint", &export, name]);
        let exported_at = podman.last_count(name);
        podman.run(&["rm", name]).ok();
        // Whether or not the import carries the old log, what is logged from now on is the
        // imported container's.
        let since = now_rfc3339();
        let import = format!("--import={}", arg(&tar));
        podman.criu(rt, &["restore", &import]);
        assert_eq!(podman.status(name), "running", "--runtime {rt}");
        podman.wait_count_past(rt, name, exported_at + 3);
        let logs = podman.run(&["logs", "--since", &since, name]);
        let counts: Vec<u64> = logs
            .ok()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        assert!(
            counts.first().is_some_and(|&c| c > 1),
            "--runtime {rt}: the imported container started over: {counts:?} (exported at {exported_at})"
        );
        assert!(
            counts.windows(2).all(|w| w[1] == w[0] + 1),
            "--runtime {rt}: the imported count broke: {counts:?}"
        );

        podman.run(&["rm", "--force", "--time", "0", name]).ok();
    }
    let calls = podman.world.runtime_log();
    for call in [
        "checkpoint --image-path ",
        " --leave-running ",
        "restore --bundle ",
        " --detach --image-path ",
    ] {
        assert_contains(&calls, call);
    }
}

/// Checkpoint and restore with podman's systemd cgroup manager (Podman 5's default): the
/// restored container counts on, and runs in its `libpod-<id>.scope` under podman's slice
/// again (the runtime's restore starts the scope with `--systemd-cgroup`).
#[test]
fn podman_checkpoint_with_the_systemd_cgroup_manager() {
    let test = "podman_checkpoint_with_the_systemd_cgroup_manager";
    if !systemd_is_pid1(test) {
        return;
    }
    if criu_unusable(test) {
        return;
    }
    let Some(podman) = Podman::start_with("podman_ckpt_sd", "systemd") else {
        return;
    };
    let slice = podman.cgroup_parent.clone();
    let name = "sdcounter";
    for rt in podman.runtimes() {
        let rt = rt.as_str();
        checkpoint_and_restore(&podman, rt, name);
        let id = podman.run(&["inspect", "-f", "{{.Id}}", name]);
        let id = id.ok().trim().to_owned();
        let pid = podman.run(&["inspect", "-f", "{{.State.Pid}}", name]);
        let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.ok().trim()));
        assert_eq!(
            cgroup.unwrap_or_default().trim(),
            format!("0::/{slice}/libpod-{id}.scope"),
            "--runtime {rt}: the restored container is not in its scope"
        );
        podman.run(&["rm", "--force", "--time", "0", name]).ok();
    }
    let calls = podman.world.runtime_log();
    assert!(
        calls
            .lines()
            .any(|l| l.contains("restore --bundle ") && l.contains("--systemd-cgroup")),
        "no restore with --systemd-cgroup in:\n{calls}"
    );
}
