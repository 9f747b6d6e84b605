//! Bad input: a non-zero exit, a short error naming the problem, and nothing left behind
//! (no state dir, no cgroup named after the id, no process, no mount).
//!
//! The substrings asserted are what runc 1.1 prints and scripts match on. Each case
//! also prints `BAD-INPUT | case | exit code | stderr` (see with `--nocapture`).

use runrs_integration::procfs;
use runrs_integration::*;
use serde_json::json;
use std::time::Duration;

// Generous: the Debian guest runs under emulation (hack/vm), 20-50x slower than a host.
const WAIT: Duration = Duration::from_secs(30);

fn report(case: &str, out: &Output) {
    eprintln!(
        "BAD-INPUT | {case} | {:?} | {}",
        out.code,
        out.stderr.trim().replace('\n', " // ")
    );
}

/// `create` of `b` as `id` must fail mentioning every needle and leave nothing.
fn create_fails(env: &TestEnv, b: &Bundle, id: &str, case: &str, needles: &[&str]) {
    let _guard = env.guard(id);
    let out = env.rt.run(["create", "--bundle", &arg(b.path()), id]);
    report(case, &out);
    out.fails_with(needles);
    env.assert_no_trace(id, b);
}

#[test]
fn malformed_config_json() {
    let env = TestEnv::new("bad_json");
    let b = env.bundle();
    std::fs::write(b.path().join("config.json"), "{not json").unwrap();
    // runc: `invalid character 'n' looking for beginning of object key string`
    create_fails(&env, &b, &env.id(), "malformed config.json", &[]);
    std::fs::write(b.path().join("config.json"), "[]").unwrap();
    create_fails(&env, &b, &env.id(), "config.json is an array", &[]);
}

#[test]
fn missing_config_json() {
    let env = TestEnv::new("no_config");
    let b = env.bundle();
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    // runc: `JSON specification file config.json not found`
    create_fails(&env, &b, &env.id(), "no config.json", &["config.json"]);
}

#[test]
fn mount_without_destination() {
    let env = TestEnv::new("mount_nodest");
    let mut b = env.bundle();
    b.push("/mounts", json!({"type": "tmpfs", "source": "tmpfs"}));
    // runc warns `mount destination  is not absolute` then fails.
    create_fails(
        &env,
        &b,
        &env.id(),
        "mount without destination",
        &["destination"],
    );
}

#[test]
fn missing_process_or_args() {
    let env = TestEnv::new("no_process");
    let mut b = env.bundle();
    b.remove("/process");
    // runc: `process property must not be empty`
    create_fails(&env, &b, &env.id(), "no process", &["process"]);
    let mut b = env.bundle();
    b.set("/process/args", json!([]));
    // runc: `args must not be empty`
    create_fails(&env, &b, &env.id(), "empty process.args", &["args"]);
}

#[test]
fn missing_rootfs() {
    let env = TestEnv::new("no_rootfs");
    let b = env.bundle();
    std::fs::remove_dir_all(b.rootfs()).unwrap();
    // runc: `invalid rootfs: stat <bundle>/rootfs: no such file or directory`
    create_fails(&env, &b, &env.id(), "missing rootfs", &["rootfs"]);
}

#[test]
fn unknown_namespace_type() {
    let env = TestEnv::new("bad_ns");
    let mut b = env.bundle();
    b.push("/linux/namespaces", json!({"type": "bogus"}));
    // runc: `namespace {"bogus" ""} does not exist`
    create_fails(&env, &b, &env.id(), "unknown namespace", &["bogus"]);
}

#[test]
fn unknown_rlimit_type() {
    let env = TestEnv::new("bad_rlimit");
    let mut b = env.bundle();
    b.push(
        "/process/rlimits",
        json!({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}),
    );
    // runc: `wrong rlimit value: RLIMIT_BOGUS`
    create_fails(&env, &b, &env.id(), "unknown rlimit", &["RLIMIT_BOGUS"]);
}

#[test]
fn rlimit_above_what_the_host_allows() {
    let env = TestEnv::new("rlimit_eperm");
    let mut b = env.bundle();
    // Raising a hard limit needs CAP_SYS_RESOURCE, which this machine's bounding set
    // lacks; the current hard limit is the most that can be set.
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) };
    let can_raise = host_capabilities().contains(&"CAP_SYS_RESOURCE");
    if can_raise || hard.rlim_max == libc::RLIM_INFINITY {
        eprintln!("skipped: this machine can raise RLIMIT_NOFILE");
        return;
    }
    let too_high = hard.rlim_max + 1000;
    b.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": too_high, "hard": too_high}]),
    );
    // runc: `error setting rlimit type 7: operation not permitted`
    create_fails(
        &env,
        &b,
        &env.id(),
        "rlimit above the hard limit",
        &["rlimit", "not permitted"],
    );
}

#[test]
fn invalid_mount_option() {
    let env = TestEnv::new("bad_mount_opt");
    let mut b = env.bundle();
    b.mount("/x", "tmpfs", "tmpfs", &["size=notanumber"]);
    // runc: `error mounting "tmpfs" to rootfs at "/x": ... invalid argument`
    create_fails(&env, &b, &env.id(), "tmpfs size=notanumber", &["/x"]);
}

#[test]
fn nonexistent_binary_is_reported_by_create_and_run() {
    let env = TestEnv::new("no_binary");
    let mut b = env.bundle();
    b.set_args(&["/nonexistent-binary"]);
    // runc: `exec: "/nonexistent-binary": stat /nonexistent-binary: no such file or directory`
    create_fails(
        &env,
        &b,
        &env.id(),
        "create: absolute binary missing",
        &["/nonexistent-binary"],
    );
    let id = env.id();
    let _guard = env.guard(&id);
    let out = env.rt.run(["run", "--bundle", &arg(b.path()), &id]);
    report("run: absolute binary missing", &out);
    out.fails_with(&["/nonexistent-binary"]);
    env.assert_no_trace(&id, &b);

    let mut b = env.bundle();
    b.set_args(&["no-such-command"]);
    // runc: `exec: "no-such-command": executable file not found in $PATH`
    create_fails(
        &env,
        &b,
        &env.id(),
        "create: command not in PATH",
        &["no-such-command", "not found"],
    );
}

#[test]
fn invalid_container_ids() {
    let env = TestEnv::new("bad_ids");
    let b = env.bundle();
    // runc: `container id cannot be empty`
    create_fails(&env, &b, "", "id ''", &["empty"]);
    for id in [
        ".",
        "..",
        "a/b",
        "../escape",
        "a b",
        "a:b",
        "a$b",
        "a@b",
        "caf\u{e9}",
        "a\\b",
    ] {
        // runc: `invalid container ID format`
        create_fails(
            &env,
            &b,
            id,
            &format!("id {id:?}"),
            &["invalid container id format"],
        );
    }
    assert!(!env.dir().join("escape").exists());
}

#[test]
fn ids_with_every_allowed_character_work() {
    let env = TestEnv::new("good_ids");
    let mut b = env.bundle();
    b.set_args(&["true"]);
    let id = format!("Az09_.+-{}", std::process::id());
    let _guard = env.guard(&id);
    env.rt.run(["run", "--bundle", &arg(b.path()), &id]).ok();
    env.assert_no_trace(&id, &b);
}

/// A created (not started) container that sleeps once started.
fn created(env: &TestEnv) -> (Bundle, String, ContainerGuard) {
    let mut b = env.bundle();
    b.set_args(&["sleep", "60"]);
    let id = env.id();
    let mut guard = env.guard(&id);
    env.rt.run(["create", "--bundle", &arg(b.path()), &id]).ok();
    guard.record(env.rt.state(&id)["pid"].as_i64().unwrap() as i32);
    (b, id, guard)
}

#[test]
fn duplicate_id_is_refused_and_the_first_container_is_untouched() {
    let env = TestEnv::new("dup_id");
    let (_b, id, _guard) = created(&env);
    let before = env.rt.state(&id);
    let other = env.bundle();
    let out = env.rt.run(["create", "--bundle", &arg(other.path()), &id]);
    report("duplicate id", &out);
    // runc: `container with given ID already exists`
    out.fails_with(&["already exists"]);
    let after = env.rt.state(&id);
    assert_eq!(before, after, "the existing container changed");
    assert!(procfs::processes_with_env(&other.mark()).is_empty());
}

#[test]
fn unknown_signal_is_refused() {
    let env = TestEnv::new("bad_signal");
    let (_b, id, _guard) = created(&env);
    env.rt.run(["start", &id]).ok();
    for signal in ["FOO", "SIGFOO", "-5", "999"] {
        let out = env.rt.run(["kill", &id, signal]);
        report(&format!("kill {signal}"), &out);
        if signal.contains("FOO") {
            // runc: `unknown signal "FOO"`
            out.fails_with(&["unknown signal", signal]);
        } else {
            out.fails_with(&[]);
        }
    }
    assert_eq!(env.rt.status(&id).as_deref(), Some("running"));
}

#[test]
fn start_of_a_running_or_stopped_container_fails() {
    let env = TestEnv::new("start_twice");
    let (_b, id, _guard) = created(&env);
    env.rt.run(["start", &id]).ok();
    let out = env.rt.run(["start", &id]);
    report("start of a running container", &out);
    // runc: `cannot start an already running container`
    out.fails_with(&["already running"]);
    assert_eq!(env.rt.status(&id).as_deref(), Some("running"));
    env.rt.run(["kill", &id, "KILL"]).ok();
    wait_until("stopped", WAIT, || {
        env.rt.status(&id).as_deref() == Some("stopped")
    });
    let out = env.rt.run(["start", &id]);
    report("start of a stopped container", &out);
    // runc: `cannot start a container that has stopped`
    out.fails_with(&["stopped"]);
}

#[test]
fn delete_of_a_running_container_without_force_fails() {
    let env = TestEnv::new("delete_running");
    let (b, id, _guard) = created(&env);
    env.rt.run(["start", &id]).ok();
    let out = env.rt.run(["delete", &id]);
    report("delete of a running container", &out);
    // runc: `cannot delete container <id> that is not stopped: running`
    out.fails_with(&["not stopped", "running"]);
    assert_eq!(env.rt.status(&id).as_deref(), Some("running"));
    env.rt.run(["delete", "--force", &id]).ok();
    env.assert_no_trace(&id, &b);
}

#[test]
fn delete_of_a_created_container_needs_no_force() {
    // runc deletes a created (never started) container without --force: it kills the
    // waiting init.
    let env = TestEnv::new("delete_created_noforce");
    let (b, id, _guard) = created(&env);
    env.rt.run(["delete", &id]).ok();
    env.assert_no_trace(&id, &b);
}

#[test]
fn exec_into_a_stopped_container_fails() {
    let env = TestEnv::new("exec_stopped_bad");
    let mut b = env.bundle();
    b.set_args(&["true"]);
    let id = env.id();
    let _guard = env.guard(&id);
    env.create_start(&b, &id);
    wait_until("stopped", WAIT, || {
        env.rt.status(&id).as_deref() == Some("stopped")
    });
    let out = env.rt.run(["exec", &id, "true"]);
    report("exec into a stopped container", &out);
    // runc: `exec failed: cannot exec in a stopped container`, exit 255
    out.fails_with(&["stopped"]);
}

#[test]
fn commands_on_a_container_that_does_not_exist() {
    let env = TestEnv::new("no_such");
    let id = env.id();
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id],
        vec!["delete", &id],
        vec!["exec", &id, "true"],
    ] {
        let out = env.rt.run(&args);
        report(&format!("{} of a missing container", args[0]), &out);
        // runc: `container does not exist`
        out.fails_with(&["does not exist"]);
    }
    // `delete --force` of a missing container succeeds quietly (containerd's shim
    // relies on it when cleaning up).
    env.rt.run(["delete", "--force", &id]).ok();
    assert!(env.rt_root_entries().is_empty());
}
