//! Stopping (grace period, then SIGKILL), removal that leaves nothing behind, and
//! containerd killed and restarted under running pods.

use super::node::Node;
use super::pod::*;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn stop_grace_period(node: &mut Node, handler: &str) {
    let pod = node.run_pod("stop", handler);
    let stubborn = pod.start_sh("stubborn", "trap '' TERM; while :; do sleep 0.1; done");
    let polite = pod.start_sh("polite", "trap 'exit 0' TERM; while :; do sleep 0.1; done");
    wait_sigterm_disposition(&pod, &stubborn, "SigIgn");
    wait_sigterm_disposition(&pod, &polite, "SigCgt");
    let t = Instant::now();
    pod.stop_container(&polite, 30)
        .expect("StopContainer polite");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "SIGTERM honoured after {:?}",
        t.elapsed()
    );
    assert_eq!(pod.status(&polite).0.exit_code, 0);
    let t = Instant::now();
    pod.stop_container(&stubborn, 2)
        .expect("StopContainer stubborn");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "SIGKILL before the grace period: {took:?}"
    );
    assert!(
        took < Duration::from_secs(15),
        "SIGKILL came after {took:?}"
    );
    let s = pod.status(&stubborn).0;
    assert_eq!((s.state, s.exit_code), (EXITED, 137));
    pod.remove();
}

/// Waits until the container's shell has set its trap (SIGTERM in `field` of its
/// /proc status, `SigCgt` or `SigIgn`): a pid 1 drops a signal it has no handler for, so a
/// stop sent before the trap (a loaded machine) would wait out the whole grace period.
fn wait_sigterm_disposition(pod: &Pod, id: &str, field: &str) {
    let pid = pod.pid(id);
    let term = 1u64 << (libc::SIGTERM - 1);
    poll(
        &format!("{id} to set its SIGTERM trap"),
        Duration::from_secs(30),
        || {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let mask = runrs_integration::procfs::status_field(&status, field)
                .and_then(|v| u64::from_str_radix(v, 16).ok())?;
            (mask & term != 0).then_some(())
        },
    );
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Mounts in the node's mount namespace that belong to a container or pod.
fn pod_mounts(node: &Node) -> Vec<String> {
    let info = std::fs::read_to_string(format!("/proc/{}/mountinfo", node.holder_pid())).unwrap();
    let d = node.path().display().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| {
            m.starts_with(&d)
                && (m.contains("/rootfs") || m.contains("/netns/") || m.contains("/shm"))
        })
        .map(String::from)
        .collect()
}

/// Run a pod of two containers, remove it: no shim, mount, netns, cgroup or state left.
pub fn removal_leaves_nothing(node: &mut Node, handler: &str) {
    let pod = node.run_pod("remove", handler);
    let a = pod.start_sh("a", "sleep 1000");
    let b = pod.start_sh("b", "sleep 1000");
    let pids = [pod.sandbox_pid(), pod.pid(&a), pod.pid(&b)];
    let shims = pod.shims();
    assert_eq!(shims.len(), 1, "one shim per pod: {shims:?}");
    assert!(
        !pod_mounts(node).is_empty(),
        "no pod mounts seen while it runs"
    );
    let ids = [pod.id.clone(), a.clone(), b.clone()];
    // The runtime keeps its state where the handler's options said, under the namespace
    // (runrs: the ConfigPath file's `root`; runc: Root; each shim adds the namespace).
    let root = node.path().join(if handler == "runrs" {
        "runrs-root/k8s.io"
    } else {
        "runc-root/k8s.io"
    });
    assert!(
        entries(&root).contains(&a),
        "{a} not in the runtime root {root:?}"
    );
    pod.stop_container(&a, 1).expect("StopContainer");
    pod.remove_container(&a).expect("RemoveContainer");
    pod.remove();
    poll("the shim to exit", Duration::from_secs(10), || {
        (!runrs_integration::procfs::pid_alive(shims[0])).then_some(())
    });
    for p in pids {
        assert!(!runrs_integration::procfs::pid_alive(p), "process {p} left");
    }
    assert_eq!(pod_mounts(node), Vec::<String>::new(), "mounts left");
    assert_eq!(
        entries(&node.path().join("run/netns")),
        Vec::<String>::new(),
        "netns left"
    );
    let task_dir = node
        .path()
        .join("state/io.containerd.runtime.v2.task/k8s.io");
    for id in &ids {
        assert!(!entries(&task_dir).contains(id), "task state {id} left");
        assert!(
            !entries(&root).contains(id),
            "runtime state {id} left in {root:?}"
        );
        let cgroups: Vec<_> = node
            .cgroup_dirs()
            .into_iter()
            .filter(|d| d.ends_with(id))
            .collect();
        assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    }
    assert!(node.list_containers().is_empty() && node.list_pods().is_empty());
}

/// containerd SIGKILLed under a running pod; one container exits meanwhile; after the
/// restart the pod and both containers are listed right, exit code included.
pub fn containerd_restart(node: &mut Node, handler: &str) {
    let pod = node.run_pod("restart", handler);
    let (id, config) = (pod.id.clone(), pod.config.clone());
    let stays = pod.start_sh("stays", "sleep 1000");
    let exits = pod.start_sh("exits", "sleep 3; exit 5");
    drop(pod);
    let t = Instant::now();
    node.kill_containerd();
    std::thread::sleep(Duration::from_secs(5).saturating_sub(t.elapsed()));
    node.start_containerd();
    let pod = Pod {
        node,
        id,
        handler: handler.into(),
        config,
    };
    let (status, _) = pod.sandbox_status();
    assert_eq!(
        status.state,
        super::client::api::PodSandboxState::SandboxReady as i32
    );
    assert_eq!(pod.status(&stays).0.state, RUNNING);
    let s = pod.wait_exited(&exits, Duration::from_secs(20));
    let exit = (s.exit_code, s.reason.as_str());
    if handler == "runc" && super::node::containerd_major() >= 2 {
        // containerd 2.1 with its Go shim (containerd-shim-runc-v2) loses an exit that came
        // while containerd was down: 255 "Unknown" (Debian testing: containerd 2.1.9, runc
        // 1.3.6). Our shim keeps it; docs/clients.md.
        assert!(matches!(exit, (5, "Error") | (255, "Unknown")), "{exit:?}");
    } else {
        assert_eq!(exit, (5, "Error"));
    }
    assert_eq!(pod.sh(&stays, "echo alive").trim(), "alive");
    pod.remove();
}
