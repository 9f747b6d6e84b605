//! The container lifecycle from the host: create/start/state/kill/delete/run/list.

use runrs_integration::procfs::{self, pid_alive};
use runrs_integration::*;
use serde_json::json;
use std::time::Duration;

// Generous: the Debian guest runs under emulation (hack/vm), 20-50x slower than a host.
const WAIT: Duration = Duration::from_secs(30);

/// A container process that waits until `/tmp/go` exists, then prints and exits.
const WAIT_FOR_GO: &str = "while [ ! -e /tmp/go ]; do usleep 10000; done; echo finished";

/// A container process that records the signals it gets in /tmp/sigs.
const RECORD_SIGNALS: &str =
    "for s in TERM USR1 USR2 HUP; do trap \"echo $s >> /tmp/sigs\" $s; done; \
     touch /tmp/ready; while :; do usleep 20000; done";

fn pid_of(state: &serde_json::Value) -> i32 {
    let pid = state["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pid in {state}"));
    assert!(pid > 0, "pid {pid} in {state}");
    pid as i32
}

#[test]
fn create_start_exit_delete() {
    let env = TestEnv::new("lifecycle");
    let mut b = env.bundle();
    b.sh(WAIT_FOR_GO);
    let id = env.id();
    let mut guard = env.guard(&id);
    let pid_file = env.path("init.pid");
    let created = env.rt.run([
        "create",
        "--bundle",
        &arg(b.path()),
        "--pid-file",
        &arg(&pid_file),
        &id,
    ]);
    created.ok();

    let state = env.rt.state(&id);
    assert_eq!(state["status"], "created", "{state}");
    let pid = pid_of(&state);
    guard.record(pid);
    assert!(
        pid_alive(pid),
        "init {pid} of a created container is not running"
    );
    let from_file = std::fs::read_to_string(&pid_file).expect("--pid-file written");
    assert_eq!(from_file.trim(), pid.to_string(), "--pid-file content");
    assert!(
        !created.stdout_now().contains("finished"),
        "the process ran before start"
    );

    env.rt.run(["start", &id]).ok();
    assert_eq!(env.rt.status(&id).as_deref(), Some("running"));

    std::fs::write(b.host_path("/tmp/go"), "").unwrap();
    wait_until("status stopped", WAIT, || {
        env.rt.status(&id).as_deref() == Some("stopped")
    });
    assert_contains(&created.stdout_now(), "finished");
    assert!(!pid_alive(pid), "init still alive after stopped");

    env.rt.run(["delete", &id]).ok();
    // runc: `container does not exist`, exit 1.
    env.rt.run(["state", &id]).fails_with(&["does not exist"]);
    env.assert_no_trace(&id, &b);
}

/// exec.fifo is 0622 whatever the runtime's umask, so that an init that already became the
/// container's user can still open it at `start` (runc's mode).
#[test]
fn a_non_root_container_starts_under_a_strict_umask() {
    let env = TestEnv::new("umask");
    let mut b = env.bundle();
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.sh("id -u");
    let id = env.id();
    let mut guard = env.guard(&id);
    let created = env
        .rt
        .cmd(["create", "--bundle", &arg(b.path()), &id])
        .umask(0o077)
        .run();
    created.ok();
    guard.record(pid_of(&env.rt.state(&id)));
    let fifo = env.rt.root.join(&id).join("exec.fifo");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&fifo).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o622, "mode of {}", fifo.display());
    env.rt.run(["start", &id]).ok();
    wait_until("status stopped", WAIT, || {
        env.rt.status(&id).as_deref() == Some("stopped")
    });
    assert_eq!(created.stdout_now().trim(), "1000");
    env.rt.run(["delete", &id]).ok();
}

#[test]
fn run_exits_with_the_container_exit_code() {
    let env = TestEnv::new("run_exit");
    let mut b = env.bundle();
    b.sh("echo out; echo err >&2; exit 3");
    let out = env.run_bundle(&b);
    out.code(3);
    assert_eq!(out.stdout.trim(), "out");
    assert_contains(&out.stderr, "err");
    env.assert_no_trace("", &b);
}

#[test]
fn run_killed_by_signal_exits_128_plus_signal() {
    let env = TestEnv::new("run_signal");
    let mut b = env.bundle();
    b.set_args(&["sleep", "60"]);
    let id = env.id();
    let _guard = env.guard(&id);
    let running = env.rt.cmd(["run", "--bundle", &arg(b.path()), &id]).spawn();
    wait_until("status running", WAIT, || {
        env.rt.status(&id).as_deref() == Some("running")
    });
    env.rt.run(["kill", &id, "KILL"]).ok();
    running.wait().code(128 + libc::SIGKILL);
    env.assert_no_trace(&id, &b);
}

#[test]
fn run_detach_returns_while_the_container_runs() {
    let env = TestEnv::new("run_detach");
    let mut b = env.bundle();
    b.set_args(&["sleep", "60"]);
    let id = env.id();
    let mut guard = env.guard(&id);
    let pid_file = env.path("pid");
    env.rt
        .run([
            "run",
            "-d",
            "--pid-file",
            &arg(&pid_file),
            "--bundle",
            &arg(b.path()),
            &id,
        ])
        .ok();
    let state = env.rt.state(&id);
    assert_eq!(state["status"], "running");
    let pid = pid_of(&state);
    guard.record(pid);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    env.rt.run(["delete", "--force", &id]).ok();
    assert!(!pid_alive(pid), "delete --force left the init running");
    env.assert_no_trace(&id, &b);
}

#[test]
fn run_keep_leaves_a_stopped_container() {
    let env = TestEnv::new("run_keep");
    let mut b = env.bundle();
    b.set_args(&["true"]);
    let id = env.id();
    let _guard = env.guard(&id);
    env.rt
        .run(["run", "--keep", "--bundle", &arg(b.path()), &id])
        .ok();
    assert_eq!(env.rt.status(&id).as_deref(), Some("stopped"));
    env.rt.run(["delete", &id]).ok();
    env.assert_no_trace(&id, &b);
}

#[test]
fn run_without_keep_deletes_the_container() {
    let env = TestEnv::new("run_nokeep");
    let mut b = env.bundle();
    b.set_args(&["true"]);
    let id = env.id();
    let _guard = env.guard(&id);
    env.rt.run(["run", "--bundle", &arg(b.path()), &id]).ok();
    env.rt.run(["state", &id]).fails_with(&["does not exist"]);
    env.assert_no_trace(&id, &b);
}

#[test]
fn state_json_has_every_field() {
    let env = TestEnv::new("state_fields");
    let mut b = env.bundle();
    b.set_args(&["sleep", "60"]);
    b.set("/annotations", json!({"org.example.key": "value"}));
    let id = env.id();
    let mut guard = env.guard(&id);
    env.rt.run(["create", "--bundle", &arg(b.path()), &id]).ok();
    let state = env.rt.state(&id);
    guard.record(pid_of(&state));
    assert!(
        state["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{state}"
    );
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["status"], "created");
    assert_eq!(state["bundle"], arg(b.path()).as_str());
    assert_eq!(state["rootfs"], arg(&b.rootfs()).as_str());
    let created = state["created"].as_str().expect("created");
    assert!(is_rfc3339(created), "created {created:?} is not RFC 3339");
    assert_eq!(state["annotations"], json!({"org.example.key": "value"}));
    assert!(state["owner"].is_string(), "owner in {state}");
}

#[test]
fn list_table_json_and_quiet() {
    let env = TestEnv::new("list");
    let mut b = env.bundle();
    b.set_args(&["sleep", "60"]);
    let id = env.id();
    let mut guard = env.guard(&id);
    env.rt.run(["create", "--bundle", &arg(b.path()), &id]).ok();
    let pid = pid_of(&env.rt.state(&id));
    guard.record(pid);

    let table = env.rt.run(["list"]);
    table.ok();
    let rows = lines(&table.stdout);
    let header: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );
    assert_eq!(rows.len(), 2, "{}", table.stdout);
    let row: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(
        row[..4],
        [id.as_str(), &pid.to_string(), "created", &arg(b.path())]
    );

    let listed = env.rt.run(["list", "--format", "json"]).ok().json();
    let entries = listed.as_array().expect("list --format json is an array");
    assert_eq!(entries.len(), 1, "{listed}");
    assert_eq!(entries[0]["id"], id.as_str());
    assert_eq!(entries[0]["pid"], pid);
    assert_eq!(entries[0]["status"], "created");
    assert_eq!(entries[0]["bundle"], arg(b.path()).as_str());

    let quiet = env.rt.run(["list", "-q"]);
    assert_eq!(lines(&quiet.ok().stdout), [id.as_str()]);
}

#[test]
fn list_of_an_empty_root_prints_only_the_header() {
    let env = TestEnv::new("list_empty");
    let out = env.rt.run(["list"]);
    let rows = lines(&out.ok().stdout);
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    assert!(rows[0].starts_with("ID"), "{}", out.stdout);
    assert!(lines(&env.rt.run(["list", "-q"]).ok().stdout).is_empty());
}

/// Starts a container that records signals and waits until its traps are set.
fn signal_recorder(env: &TestEnv) -> (Bundle, String, ContainerGuard) {
    let mut b = env.bundle();
    b.sh(RECORD_SIGNALS);
    let id = env.id();
    let mut guard = env.guard(&id);
    env.create_start(&b, &id);
    guard.record(pid_of(&env.rt.state(&id)));
    wait_until("traps set", WAIT, || b.host_path("/tmp/ready").exists());
    (b, id, guard)
}

fn wait_for_signal_record(b: &Bundle, name: &str) {
    wait_until(&format!("{name} recorded"), WAIT, || {
        std::fs::read_to_string(b.host_path("/tmp/sigs"))
            .unwrap_or_default()
            .lines()
            .any(|l| l == name)
    });
}

#[test]
fn kill_sends_sigterm_by_default() {
    let env = TestEnv::new("kill_default");
    let (b, id, _guard) = signal_recorder(&env);
    env.rt.run(["kill", &id]).ok();
    wait_for_signal_record(&b, "TERM");
}

#[test]
fn kill_accepts_names_with_and_without_sig_and_numbers() {
    let env = TestEnv::new("kill_names");
    let (b, id, _guard) = signal_recorder(&env);
    env.rt.run(["kill", &id, "USR1"]).ok();
    wait_for_signal_record(&b, "USR1");
    env.rt.run(["kill", &id, "SIGHUP"]).ok();
    wait_for_signal_record(&b, "HUP");
    env.rt.run(["kill", &id, &libc::SIGUSR2.to_string()]).ok();
    wait_for_signal_record(&b, "USR2");
    assert_eq!(env.rt.status(&id).as_deref(), Some("running"));
}

#[test]
fn kill_with_sigkill_stops_the_container() {
    let env = TestEnv::new("kill_kill");
    for signal in ["KILL", "SIGKILL", "9"] {
        let mut b = env.bundle();
        b.set_args(&["sleep", "60"]);
        let id = env.id();
        let mut guard = env.guard(&id);
        env.create_start(&b, &id);
        let pid = pid_of(&env.rt.state(&id));
        guard.record(pid);
        env.rt.run(["kill", &id, signal]).ok();
        wait_until(&format!("stopped after kill {signal}"), WAIT, || {
            env.rt.status(&id).as_deref() == Some("stopped")
        });
        assert!(!pid_alive(pid));
        env.rt.run(["delete", &id]).ok();
        env.assert_no_trace(&id, &b);
    }
}

#[test]
fn kill_all_signals_every_process_of_the_container() {
    let env = TestEnv::new("kill_all");
    let mut b = env.bundle();
    // In the host's pid namespace, killing the init would not take its children along:
    // only `kill --all` reaches them.
    b.without_namespace("pid");
    b.sh(
        "sleep 60 & echo $! >> /tmp/pids; sleep 60 & echo $! >> /tmp/pids; touch /tmp/ready; wait",
    );
    let id = env.id();
    let mut guard = env.guard(&id);
    env.create_start(&b, &id);
    guard.record(pid_of(&env.rt.state(&id)));
    wait_until("children started", WAIT, || {
        b.host_path("/tmp/ready").exists()
    });
    let children: Vec<i32> = std::fs::read_to_string(b.host_path("/tmp/pids"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(children.len(), 2);
    for pid in &children {
        guard.record(*pid);
        assert!(pid_alive(*pid));
    }
    env.rt.run(["kill", "--all", &id, "KILL"]).ok();
    wait_until("every process killed", WAIT, || {
        children.iter().all(|p| !pid_alive(*p))
    });
    wait_until("status stopped", WAIT, || {
        env.rt.status(&id).as_deref() == Some("stopped")
    });
    env.rt.run(["delete", &id]).ok();
    env.assert_no_trace(&id, &b);
}

#[test]
fn delete_force_kills_a_running_container() {
    let env = TestEnv::new("delete_force");
    let mut b = env.bundle();
    b.sh("sleep 60 & sleep 60");
    let id = env.id();
    let mut guard = env.guard(&id);
    env.create_start(&b, &id);
    let pid = pid_of(&env.rt.state(&id));
    guard.record(pid);
    env.rt.run(["delete", "--force", &id]).ok();
    assert!(!pid_alive(pid));
    env.rt.run(["state", &id]).fails_with(&["does not exist"]);
    env.assert_no_trace(&id, &b);
}

#[test]
fn delete_force_of_a_created_container() {
    let env = TestEnv::new("delete_created");
    let mut b = env.bundle();
    b.set_args(&["sleep", "60"]);
    let id = env.id();
    let mut guard = env.guard(&id);
    env.rt.run(["create", "--bundle", &arg(b.path()), &id]).ok();
    let pid = pid_of(&env.rt.state(&id));
    guard.record(pid);
    env.rt.run(["delete", "--force", &id]).ok();
    assert!(!pid_alive(pid));
    env.assert_no_trace(&id, &b);
}

#[test]
fn state_survives_in_the_root_dir_across_commands() {
    // Two containers in one root are listed and addressed independently.
    let env = TestEnv::new("two_containers");
    let mut guards = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut b = env.bundle();
        b.set_args(&["sleep", "60"]);
        let id = env.id();
        let mut guard = env.guard(&id);
        env.create_start(&b, &id);
        guard.record(pid_of(&env.rt.state(&id)));
        guards.push((guard, b));
        ids.push(id);
    }
    let mut listed = lines(&env.rt.run(["list", "-q"]).ok().stdout)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    env.rt.run(["kill", &ids[0], "KILL"]).ok();
    wait_until("first stopped", WAIT, || {
        env.rt.status(&ids[0]).as_deref() == Some("stopped")
    });
    assert_eq!(env.rt.status(&ids[1]).as_deref(), Some("running"));
}

/// The state records the init's start time: once the pid belongs to another process (here:
/// the recorded start time no longer matches), the container reads as stopped and `kill`
/// does not signal that process.
#[test]
fn a_reused_pid_reads_as_stopped_and_is_not_signalled() {
    let env = TestEnv::new("pid_reuse");
    let mut b = env.bundle();
    b.set_args(&["sleep", "60"]);
    let id = env.id();
    let mut guard = env.guard(&id);
    env.rt
        .run(["run", "-d", "--bundle", &arg(b.path()), &id])
        .ok();
    let pid = pid_of(&env.rt.state(&id));
    guard.record(pid);
    let state_file = env.rt.root.join(&id).join("state.json");
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    // runrs keeps `start_time`, runc `init_process_start`.
    let key = ["start_time", "init_process_start"]
        .into_iter()
        .find(|k| saved.get(*k).is_some())
        .unwrap_or_else(|| panic!("no start time in {saved}"));
    let start = saved[key].as_u64().expect("numeric start time");
    saved[key] = json!(start + 1);
    std::fs::write(&state_file, serde_json::to_vec(&saved).unwrap()).unwrap();

    assert_eq!(env.rt.state(&id)["status"], "stopped");
    let kill = env.rt.run(["kill", &id, "KILL"]);
    assert_ne!(kill.code, Some(0), "kill signalled a reused pid");
    assert!(
        pid_alive(pid),
        "kill signalled a process that is not the container's"
    );
    // End the process first, so that delete can remove the cgroups with either runtime.
    procfs::ProcRef::of(pid).expect("still alive").kill();
    wait_until("the process is gone", WAIT, || !pid_alive(pid));
    env.rt.run(["delete", "--force", &id]).ok();
    env.assert_no_trace(&id, &b);
}
