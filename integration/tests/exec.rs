//! `exec` into a running container: args, --process, flags, tty, detach, exit codes.

use runrs_integration::procfs::{self, status_caps, status_field};
use runrs_integration::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

// Generous: the Debian guest runs under emulation (hack/vm), 20-50x slower than a host.
const WAIT: Duration = Duration::from_secs(30);

/// A started container whose init sleeps; configured by `tweak` first.
fn sleeper(env: &TestEnv, tweak: impl FnOnce(&mut Bundle)) -> (Bundle, String, ContainerGuard) {
    let mut b = env.bundle();
    b.set_args(&["sleep", "120"]);
    tweak(&mut b);
    let id = env.id();
    let mut guard = env.guard(&id);
    env.create_start(&b, &id);
    guard.record(env.rt.state(&id)["pid"].as_i64().unwrap() as i32);
    (b, id, guard)
}

fn exec(env: &TestEnv, id: &str, args: &[&str]) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    // `exec [flags] <id> <cmd...>`: the id goes after the flags.
    let split = all
        .iter()
        .position(|a| *a == "--")
        .expect("-- separates flags from the command");
    all[split] = id;
    env.rt.run(all)
}

#[test]
fn exec_runs_args_and_returns_their_exit_code() {
    let env = TestEnv::new("exec_args");
    let (_b, id, _guard) = sleeper(&env, |_| {});
    let out = exec(&env, &id, &["--", "echo", "hello", "world"]);
    assert_eq!(out.ok().stdout.trim(), "hello world");
    exec(&env, &id, &["--", "sh", "-c", "echo to-stderr >&2; exit 7"]).code(7);
    // The exec'd process is in the container: it sees the container's hostname.
    let out = exec(&env, &id, &["--", "hostname"]);
    assert_eq!(out.ok().stdout.trim(), "runc");
}

#[test]
fn exec_process_file() {
    let env = TestEnv::new("exec_process");
    let (_b, id, _guard) = sleeper(&env, |_| {});
    let process = env.path("process.json");
    std::fs::write(
        &process,
        json!({
            "terminal": false,
            "user": {"uid": 1000, "gid": 1000},
            "args": ["sh", "-c", "id -u; pwd; echo $FROM_FILE"],
            "env": ["PATH=/bin", "FROM_FILE=yes"],
            "cwd": "/tmp"
        })
        .to_string(),
    )
    .unwrap();
    let out = exec(&env, &id, &["--process", &arg(&process), "--"]);
    assert_eq!(lines(&out.ok().stdout), ["1000", "/tmp", "yes"]);
}

#[test]
fn exec_process_file_without_path_finds_only_paths() {
    let env = TestEnv::new("exec_no_path");
    let (_b, id, _guard) = sleeper(&env, |_| {});
    let process = env.path("process.json");
    let write = |args: Value| {
        std::fs::write(&process, json!({"args": args, "cwd": "/"}).to_string()).unwrap()
    };
    // No PATH in its environment: a bare name is not searched for anywhere (runc's LookPath).
    write(json!(["sh", "-c", "true"]));
    exec(&env, &id, &["--process", &arg(&process), "--"])
        .fails_with(&["sh", "executable file not found in $PATH"]);
    write(json!(["/bin/sh", "-c", "echo found"]));
    let out = exec(&env, &id, &["--process", &arg(&process), "--"]);
    assert_eq!(out.ok().stdout.trim(), "found");
}

#[test]
fn exec_env_and_cwd() {
    let env = TestEnv::new("exec_env");
    let (_b, id, _guard) = sleeper(&env, |_| {});
    let out = exec(
        &env,
        &id,
        &[
            "--env",
            "ONE=1",
            "--env",
            "TWO=two words",
            "--cwd",
            "/etc",
            "--",
            "sh",
            "-c",
            "echo $ONE; echo $TWO; pwd",
        ],
    );
    assert_eq!(lines(&out.ok().stdout), ["1", "two words", "/etc"]);
}

#[test]
fn exec_user_and_additional_gids() {
    let env = TestEnv::new("exec_user");
    let (_b, id, _guard) = sleeper(&env, |_| {});
    let out = exec(
        &env,
        &id,
        &[
            "--user",
            "1000:1000",
            "--additional-gids",
            "10",
            "--additional-gids",
            "20",
            "--",
            "sh",
            "-c",
            "id -u; id -g; id -G",
        ],
    );
    let out = out.ok().stdout.clone();
    let got = lines(&out);
    assert_eq!(got[..2], ["1000", "1000"]);
    let groups: BTreeSet<&str> = got[2].split_whitespace().collect();
    assert!(groups.contains("10") && groups.contains("20"), "{groups:?}");
    let out = exec(&env, &id, &["--user", "1000", "--", "id", "-u"]);
    assert_eq!(out.ok().stdout.trim(), "1000");
}

#[test]
fn exec_cap_adds_a_capability() {
    let env = TestEnv::new("exec_cap");
    let (_b, id, _guard) = sleeper(&env, |_| {});
    let sys_admin = cap_mask(&["CAP_SYS_ADMIN"]);
    let without = status_caps(
        &exec(&env, &id, &["--", "cat", "/proc/self/status"])
            .ok()
            .stdout,
    );
    assert_eq!(without["CapEff"] & sys_admin, 0, "{without:x?}");
    let with = status_caps(
        &exec(
            &env,
            &id,
            &["--cap", "CAP_SYS_ADMIN", "--", "cat", "/proc/self/status"],
        )
        .ok()
        .stdout,
    );
    for set in ["CapBnd", "CapEff", "CapPrm"] {
        assert_ne!(
            with[set] & sys_admin,
            0,
            "{set} lacks CAP_SYS_ADMIN: {with:x?}"
        );
    }
    // The config's capabilities are still there.
    assert_ne!(with["CapEff"] & cap_mask(&["CAP_KILL"]), 0, "{with:x?}");
}

#[test]
fn exec_no_new_privs() {
    let env = TestEnv::new("exec_nnp");
    let (_b, id, _guard) = sleeper(&env, |b| {
        b.set("/process/noNewPrivileges", json!(false));
    });
    let plain = exec(&env, &id, &["--", "cat", "/proc/self/status"]);
    assert_eq!(status_field(&plain.ok().stdout, "NoNewPrivs"), Some("0"));
    let nnp = exec(
        &env,
        &id,
        &["--no-new-privs", "--", "cat", "/proc/self/status"],
    );
    assert_eq!(status_field(&nnp.ok().stdout, "NoNewPrivs"), Some("1"));
}

#[test]
fn exec_tty_with_console_socket() {
    let env = TestEnv::new("exec_tty");
    let (_b, id, _guard) = sleeper(&env, |_| {});
    let socket = ConsoleSocket::bind(&env.path("console.sock"));
    let console = arg(socket.path());
    exec(
        &env,
        &id,
        &[
            "--detach",
            "--tty",
            "--console-socket",
            &console,
            "--",
            "sh",
            "-c",
            "tty; echo done",
        ],
    )
    .ok();
    let master = socket.receive_master(WAIT);
    let seen = console::read_until(&master, "done", WAIT);
    let tty = lines(&seen)
        .first()
        .map(|s| s.to_string())
        .unwrap_or_default();
    assert!(
        tty.strip_prefix("/dev/pts/")
            .is_some_and(|n| n.parse::<u32>().is_ok()),
        "tty printed {tty:?}; all output {seen:?}"
    );
}

#[test]
fn exec_detach_writes_the_pid_file_and_joins_the_container() {
    let env = TestEnv::new("exec_detach");
    let (_b, id, mut guard) = sleeper(&env, |_| {});
    let init = env.rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let pid_file = env.path("exec.pid");
    exec(
        &env,
        &id,
        &["-d", "--pid-file", &arg(&pid_file), "--", "sleep", "120"],
    )
    .ok();
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    guard.record(pid);
    assert!(
        procfs::pid_alive(pid),
        "exec'd process {pid} is not running"
    );
    for ns in ["pid", "net", "mnt", "ipc", "uts"] {
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap(),
            std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap(),
            "exec'd process is not in the container's {ns} namespace"
        );
    }
    // delete --force takes the exec'd process along.
    env.rt.run(["delete", "--force", &id]).ok();
    wait_until("exec'd process killed", WAIT, || !procfs::pid_alive(pid));
}

#[test]
fn exec_into_a_stopped_container_fails() {
    let env = TestEnv::new("exec_stopped");
    let mut b = env.bundle();
    b.set_args(&["true"]);
    let id = env.id();
    let _guard = env.guard(&id);
    env.create_start(&b, &id);
    wait_until("stopped", WAIT, || {
        env.rt.status(&id).as_deref() == Some("stopped")
    });
    // runc: `exec failed: cannot exec in a stopped container`, exit 255.
    exec(&env, &id, &["--", "true"]).fails_with(&["stopped"]);
    env.rt.run(["delete", &id]).ok();
    env.assert_no_trace(&id, &b);
}
