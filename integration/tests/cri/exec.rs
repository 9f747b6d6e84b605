//! ExecSync as probes use it: output, exit code, the timeout, and hundreds of calls in a
//! row under load, each with its own deadline, so that a call that never answers fails
//! naming its iteration.

use super::client::api;
use super::node::Node;
use std::time::{Duration, Instant};

pub fn exec_sync(node: &mut Node, handler: &str) {
    let pod = node.run_pod("exec", handler);
    let c = pod.start_sh("app", "sleep 1000");
    let r = pod
        .exec(&c, &["sh", "-c", "echo out; echo err >&2; exit 7"], 10)
        .expect("ExecSync");
    assert_eq!(String::from_utf8_lossy(&r.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&r.stderr), "err\n");
    assert_eq!(r.exit_code, 7);
    let missing = pod.exec(&c, &["/no/such/binary"], 10);
    match missing {
        Ok(r) => assert_ne!(r.exit_code, 0, "a missing binary exited 0"),
        Err(e) => assert!(e.message().contains("no/such/binary"), "{e}"),
    }
    // A command that outlives its timeout: an error that says so, within seconds.
    let started = Instant::now();
    let r = pod.exec(&c, &["sleep", "30"], 2);
    let took = started.elapsed();
    let e = r.expect_err("ExecSync past its timeout answered as if it finished");
    assert!(e.message().contains("timeout"), "{e}");
    assert!(
        took < Duration::from_secs(15),
        "the timeout answered after {took:?}"
    );
    // Every exec's process is gone afterwards, the killed one included.
    let ps = pod.sh(&c, "ps -o args");
    assert!(
        !ps.contains("sleep 30"),
        "timed-out exec still running:\n{ps}"
    );
    pod.remove();
}

/// How many ExecSyncs in a row: 300, or `RUNRS_CRI_EXEC_ROUNDS` to hunt a rare hang.
fn rounds() -> usize {
    std::env::var("RUNRS_CRI_EXEC_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// `rounds()` ExecSyncs (`echo exec-ok-N`) in a pod whose other container burns CPU and
/// forks, each answered within its deadline with exactly its output.
pub fn exec_sync_repeated(node: &mut Node, handler: &str) {
    let pod = node.run_pod("execloop", handler);
    let c = pod.start_sh("app", "sleep 1000");
    pod.start_sh("load", "while :; do echo load > /dev/null; true; done");
    let rounds = rounds();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..rounds {
        let t = Instant::now();
        let word = format!("exec-ok-{i}");
        let r = pod.exec(&c, &["echo", &word], 10).unwrap_or_else(|e| {
            panic!(
                "ExecSync {i} of {rounds} ({handler}): {e} after {:?}",
                t.elapsed()
            )
        });
        assert_eq!(
            (r.exit_code, String::from_utf8_lossy(&r.stdout).trim()),
            (0, word.as_str()),
            "ExecSync {i}: stderr {:?}",
            String::from_utf8_lossy(&r.stderr)
        );
        slowest = slowest.max(t.elapsed());
    }
    eprintln!(
        "execloop [{handler}]: {rounds} ExecSync in {:?}, slowest {slowest:?}",
        started.elapsed()
    );
    pod.remove();
}

/// The probe's case from the issue: the first ExecSync right after StartContainer, on a
/// fresh container, many times; then four clients calling ExecSync at once.
pub fn first_exec_and_concurrent(node: &mut Node, handler: &str) {
    let pod = node.run_pod("execfirst", handler);
    for i in 0..15 {
        let c = pod.start_sh(&format!("fresh{i}"), "sleep 1000");
        let t = Instant::now();
        let r = pod.exec(&c, &["echo", "exec-ok"], 10).unwrap_or_else(|e| {
            panic!(
                "first ExecSync on fresh container {i}: {e} after {:?}",
                t.elapsed()
            )
        });
        assert_eq!(String::from_utf8_lossy(&r.stdout), "exec-ok\n");
        pod.stop_container(&c, 0).expect("StopContainer");
        pod.remove_container(&c).expect("RemoveContainer");
    }
    // The set-up: a fresh host-network pod, its first container, its first exec.
    for i in 0..5 {
        let mut config = node.pod_config(&format!("hostnet{i}"), handler);
        let sc = config
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap();
        sc.namespace_options.as_mut().unwrap().network = api::NamespaceMode::Node as i32;
        config.hostname.clear(); // the node's: the kubelet sends none for host network
        let host_pod = node.try_run_pod(handler, config).expect("RunPodSandbox");
        let c = host_pod.start_sh("app", "sleep 1000");
        let t = Instant::now();
        let r = host_pod
            .exec(&c, &["echo", "exec-ok"], 10)
            .unwrap_or_else(|e| {
                panic!(
                    "first ExecSync in host-network pod {i}: {e} after {:?}",
                    t.elapsed()
                )
            });
        assert_eq!(String::from_utf8_lossy(&r.stdout), "exec-ok\n");
        host_pod.remove();
    }
    let c = pod.start_sh("app", "sleep 1000");
    let socket = node.socket();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (socket, c) = (&socket, &c);
            s.spawn(move || {
                let cri = super::client::Cri::connect(socket).expect("connect");
                for i in 0..40 {
                    let want = format!("t{t}-{i}");
                    let r = cri
                        .exec_sync(c, &["echo", &want], 10)
                        .unwrap_or_else(|e| panic!("concurrent ExecSync {i} of client {t}: {e}"));
                    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), want);
                }
            });
        }
    });
    pod.remove();
}
