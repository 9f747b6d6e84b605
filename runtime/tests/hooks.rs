//! Hooks: stdin state, args, env, output capture, runc's error wording, timeouts.

use oci_spec::runtime::Hook;
use std::time::{Duration, Instant};

fn hook(v: serde_json::Value) -> Hook {
    serde_json::from_value(v).expect("hook JSON")
}

fn sh(script: &str) -> Hook {
    hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script]}))
}

const STATE: &[u8] =
    br#"{"ociVersion":"1.2.0","id":"t","status":"creating","pid":1,"bundle":"/b"}"#;

#[test]
fn state_on_stdin_and_env_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdin");
    let env = dir.path().join("env");
    let h = hook(serde_json::json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", "cat > \"$OUT\"; /usr/bin/env > \"$ENVF\""],
        "env": [format!("OUT={}", out.display()), format!("ENVF={}", env.display())],
    }));
    runrs::hooks::run("prestart", &[h], STATE).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), STATE);
    let env = std::fs::read_to_string(&env).unwrap();
    assert!(env.contains("OUT="), "{env}");
    assert!(
        !env.contains("PATH="),
        "env must be exactly the hook's: {env}"
    );
}

#[test]
fn no_env_inherits_ours_like_runc() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    let h = sh(&format!("/usr/bin/env > {}", out.display()));
    runrs::hooks::run("prestart", &[h], STATE).unwrap();
    assert!(std::fs::read_to_string(&out).unwrap().contains("PATH="));
}

#[test]
fn empty_args_means_argv0_is_path() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hook.sh");
    let out = dir.path().join("argv0");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$0\" > {}\n", out.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Another test's fork may briefly hold the script open for writing (ETXTBSY on exec).
    std::thread::sleep(Duration::from_millis(200));
    let h = hook(serde_json::json!({"path": script}));
    runrs::hooks::run("poststart", &[h], STATE).unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        script.to_str().unwrap()
    );
}

#[test]
fn failure_has_runcs_wording_with_output() {
    let hooks = [sh("exit 0"), sh("echo out; echo err >&2; exit 3")];
    let e = runrs::hooks::run("prestart", &hooks, STATE).unwrap_err();
    assert_eq!(
        e.to_string(),
        "error running hook #1: error running hook: exit status 3, stdout: out\n, stderr: err\n"
    );
}

#[test]
fn stops_at_first_failure() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let hooks = [sh("exit 1"), sh(&format!("touch {}", marker.display()))];
    assert!(runrs::hooks::run("createRuntime", &hooks, STATE).is_err());
    assert!(!marker.exists());
}

#[test]
fn killed_by_signal() {
    let e = runrs::hooks::run("prestart", &[sh("kill -9 $$")], STATE).unwrap_err();
    assert_eq!(
        e.to_string(),
        "error running hook #0: error running hook: signal: killed, stdout: , stderr: "
    );
}

#[test]
fn missing_binary_is_a_fork_exec_error() {
    let h = hook(serde_json::json!({"path": "/nonexistent/hook"}));
    let e = runrs::hooks::run("prestart", &[h], STATE).unwrap_err();
    assert_eq!(
        e.to_string(),
        "error running hook #0: fork/exec /nonexistent/hook: no such file or directory"
    );
}

#[test]
fn timeout_kills_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("survived");
    let h = hook(serde_json::json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("sleep 3; touch {}", marker.display())],
        "timeout": 1,
    }));
    let t = Instant::now();
    let e = runrs::hooks::run("prestart", &[h], STATE).unwrap_err();
    assert_eq!(
        e.to_string(),
        "error running hook #0: hook ran past specified timeout of 1.0s"
    );
    assert!(t.elapsed() < Duration::from_millis(2500));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!marker.exists(), "the hook must be killed");
}

#[test]
fn hook_that_ignores_a_large_stdin_does_not_block() {
    let state = vec![b'x'; 300 * 1024];
    let t = Instant::now();
    runrs::hooks::run("prestart", &[sh("exit 0")], &state).unwrap();
    runrs::hooks::run(
        "prestart",
        &[hook(serde_json::json!({"path": "/bin/true"}))],
        &state,
    )
    .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn large_output_is_captured_whole() {
    let e = runrs::hooks::run(
        "prestart",
        &[sh("head -c 200000 /dev/zero | tr '\\0' a; exit 2")],
        STATE,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert_eq!(
        msg.matches('a').count(),
        200000
            + "error running hook #0: error running hook: exit status 2, stdout: "
                .matches('a')
                .count()
    );
}
