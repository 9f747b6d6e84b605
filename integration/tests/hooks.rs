//! OCI hooks: every kind runs, in order, with the state on stdin; failures and timeouts.

use runrs_integration::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

// Generous: the Debian guest runs under emulation (hack/vm), 20-50x slower than a host.
const WAIT: Duration = Duration::from_secs(30);

/// A hook that saves its stdin (the state) as `<dir>/<kind>.json`, its `HOOK_ENV`
/// variable and first argument in `<dir>/<kind>.env`, and appends `<kind>` to
/// `<dir>/order`.
fn add_recording_hook(b: &mut Bundle, kind: &str, dir: &str) {
    let script = format!(
        "cat > {dir}/{kind}.json; echo \"$HOOK_ENV $1\" > {dir}/{kind}.env; echo {kind} >> {dir}/order"
    );
    b.hook(kind, &["/bin/sh", "-c", &script, kind], None);
    let last = b
        .get(&format!("/hooks/{kind}"))
        .unwrap()
        .as_array()
        .unwrap()
        .len()
        - 1;
    b.push(
        &format!("/hooks/{kind}/{last}/env"),
        json!(format!("HOOK_ENV=env-of-{kind}")),
    );
    // `sh -c script arg0 arg1`: $0 is the kind, $1 the extra argument.
    b.set(
        &format!("/hooks/{kind}/{last}/args"),
        json!(["sh", "-c", script, kind, format!("arg-of-{kind}")]),
    );
}

fn read_state(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", path.display()))
}

#[test]
fn every_hook_kind_runs_in_order_with_the_state_on_stdin() {
    let env = TestEnv::new("hooks_all");
    let mut b = env.bundle();
    // Hooks that run in the runtime's mount namespace (or before pivot_root) write to
    // the rootfs through its host path; startContainer runs inside the container.
    let host_tmp = arg(&b.host_path("/tmp"));
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        add_recording_hook(&mut b, kind, &host_tmp);
    }
    add_recording_hook(&mut b, "startContainer", "/tmp");
    b.sh("echo main >> /tmp/order");
    let order = b.host_path("/tmp/order");
    let read_order = || -> Vec<String> {
        std::fs::read_to_string(&order)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };

    let id = env.id();
    let mut guard = env.guard(&id);
    env.rt.run(["create", "--bundle", &arg(b.path()), &id]).ok();
    let pid = env.rt.state(&id)["pid"].as_i64().unwrap();
    guard.record(pid as i32);
    // runc runs prestart before createRuntime, both before createContainer.
    let after_create = read_order();
    assert_eq!(
        after_create[..3],
        ["prestart", "createRuntime", "createContainer"]
    );
    if is_runc() {
        // runc 1.1 runs poststart hooks at `create` already (fixed in runc 1.2); the
        // spec, and so runrs, runs them after the container process started.
        assert!(after_create.len() <= 4, "{after_create:?}");
    } else {
        assert_eq!(
            after_create.len(),
            3,
            "poststart ran before start: {after_create:?}"
        );
    }

    env.rt.run(["start", &id]).ok();
    wait_until("container exited", WAIT, || {
        env.rt.status(&id).as_deref() == Some("stopped")
    });
    let after_start = read_order();
    assert_eq!(after_start.len(), 6, "{after_start:?}");
    let at = |kind: &str| {
        after_start
            .iter()
            .position(|k| k == kind)
            .unwrap_or(usize::MAX)
    };
    // poststart races with the container process; startContainer runs before it execs.
    assert!(at("startContainer") < at("main"), "{after_start:?}");
    assert!(
        at("poststart") >= 3 && at("poststart") < 6,
        "{after_start:?}"
    );

    env.rt.run(["delete", &id]).ok();
    let all = read_order();
    assert_eq!(all.last().map(String::as_str), Some("poststop"), "{all:?}");
    assert_eq!(all.len(), 7, "{all:?}");

    let tmp = b.host_path("/tmp");
    for (kind, status) in [
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("startContainer", "created"),
        ("poststop", "stopped"),
    ] {
        let state = read_state(&tmp.join(format!("{kind}.json")));
        assert_eq!(state["id"], id.as_str(), "{kind}: {state}");
        assert_eq!(state["status"], status, "{kind}: {state}");
        assert_eq!(state["bundle"], arg(b.path()).as_str(), "{kind}: {state}");
        assert!(state["ociVersion"].is_string(), "{kind}: {state}");
    }
    // The host-side hooks see the host pid of the container's init.
    for kind in ["prestart", "createRuntime", "poststart"] {
        let state = read_state(&tmp.join(format!("{kind}.json")));
        assert_eq!(state["pid"], pid, "{kind}: {state}");
    }
    // Hooks inside the container see its pid there (runc gives 1).
    for kind in ["createContainer", "startContainer"] {
        let state = read_state(&tmp.join(format!("{kind}.json")));
        assert!(state["pid"].as_i64().unwrap_or(0) > 0, "{kind}: {state}");
    }
    // runc 1.1 reports "created" to poststart; the spec's "running" is as good.
    let poststart = read_state(&tmp.join("poststart.json"));
    assert!(
        poststart["status"] == "created" || poststart["status"] == "running",
        "poststart: {poststart}"
    );
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let env_line = std::fs::read_to_string(tmp.join(format!("{kind}.env"))).unwrap();
        assert_eq!(
            env_line.trim(),
            format!("env-of-{kind} arg-of-{kind}"),
            "{kind}'s env and args"
        );
    }
    env.assert_no_trace(&id, &b);
}

fn failing_hook_fails_create(kind: &str) {
    let env = TestEnv::new(&format!("hook_fail_{kind}"));
    let mut b = env.bundle();
    b.hook(
        kind,
        &["/bin/sh", "-c", "echo hook-says-no >&2; exit 4"],
        None,
    );
    b.set_args(&["sleep", "60"]);
    let id = env.id();
    let _guard = env.guard(&id);
    let out = env.rt.run(["create", "--bundle", &arg(b.path()), &id]);
    // runc: `error running hook #0: error running hook: exit status 4, stdout: , stderr: hook-says-no`
    out.fails_with(&["hook"]);
    env.assert_no_trace(&id, &b);
}

#[test]
fn failing_prestart_hook_fails_create_and_leaves_nothing() {
    failing_hook_fails_create("prestart");
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    failing_hook_fails_create("createRuntime");
}

#[test]
fn failing_create_container_hook_fails_create_and_leaves_nothing() {
    failing_hook_fails_create("createContainer");
}

#[test]
fn failing_prestart_hook_fails_run_too() {
    let env = TestEnv::new("hook_fail_run");
    let mut b = env.bundle();
    b.hook("prestart", &["/bin/false"], None);
    b.sh("echo SHOULD-NOT-RUN");
    let id = env.id();
    let _guard = env.guard(&id);
    let out = env.rt.run(["run", "--bundle", &arg(b.path()), &id]);
    out.fails_with(&["hook"]);
    assert_not_contains(&out.stdout, "SHOULD-NOT-RUN");
    env.assert_no_trace(&id, &b);
}

#[test]
fn hook_timeout_is_enforced() {
    let env = TestEnv::new("hook_timeout");
    let mut b = env.bundle();
    b.hook("prestart", &["/bin/sleep", "30"], Some(1));
    b.set_args(&["sleep", "60"]);
    let id = env.id();
    let _guard = env.guard(&id);
    let started = Instant::now();
    let out = env
        .rt
        .cmd(["create", "--bundle", &arg(b.path()), &id])
        .timeout(Duration::from_secs(20))
        .run();
    // runc: `error running hook #0: hook ran past specified timeout of 1.0s`
    out.fails_with(&["timeout"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "create took {:?} with a 1s hook timeout",
        started.elapsed()
    );
    // The hook's sleep carries the bundle's marker: it must be gone too.
    env.assert_no_trace(&id, &b);
}

#[test]
fn failing_poststop_hook_does_not_block_delete() {
    let env = TestEnv::new("hook_poststop_fail");
    let mut b = env.bundle();
    b.hook("poststop", &["/bin/false"], None);
    b.set_args(&["true"]);
    let id = env.id();
    let _guard = env.guard(&id);
    env.rt.run(["run", "--bundle", &arg(b.path()), &id]).ok();
    env.assert_no_trace(&id, &b);
}

/// JSON lets a key be written with escapes (`"\u0068ooks"` is `"hooks"`): such a config's
/// poststop hook still runs when `run` deletes the container. (The saved config is read for
/// hooks only where `"hooks"` is in its text: state.json must keep the config re-written,
/// not as config.json spelled it.)
#[test]
fn hooks_under_an_escaped_key_still_run() {
    let env = TestEnv::new("hooks_escaped");
    let mut b = env.bundle();
    let host_tmp = arg(&b.host_path("/tmp"));
    add_recording_hook(&mut b, "poststop", &host_tmp);
    b.set_args(&["true"]);
    b.save();
    let config = b.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\"hooks\""), "{text}");
    std::fs::write(&config, text.replace("\"hooks\"", "\"\\u0068ooks\"")).unwrap();
    let id = env.id();
    let _guard = env.guard(&id);
    env.rt.run(["run", "--bundle", &arg(b.path()), &id]).ok();
    let state = read_state(&b.host_path("/tmp/poststop.json"));
    assert_eq!(state["id"], json!(id));
    env.assert_no_trace(&id, &b);
}
