//! What the runtime cannot honour: a CRI error naming the cause, nothing half made, and
//! the pod next to it unaffected.

use super::client::api;
use super::node::Node;
use std::collections::HashMap;

#[track_caller]
fn assert_names(err: &tonic::Status, what: &str) {
    assert!(
        err.message().contains(what),
        "error does not name {what:?}: {err}"
    );
}

pub fn bad_input(node: &mut Node, handler: &str) {
    let good = node.run_pod("good", handler);
    let c = good.start_sh("app", "sleep 1000");
    let shims = node.shims().len();

    let e = node
        .try_run_pod("no-such-handler", node.pod_config("nohandler", handler))
        .err()
        .expect("RunPodSandbox with an unknown handler");
    assert_names(&e, "no-such-handler");

    let mut config = node.pod_config("sysctl", handler);
    config.linux.as_mut().unwrap().sysctls = HashMap::from([("kernel.panic".into(), "5".into())]);
    let e = node
        .try_run_pod(handler, config)
        .err()
        .expect("RunPodSandbox with kernel.panic");
    assert_names(&e, "kernel.panic");

    let mut config = good.container_config("badmount", &["sleep", "1000"]);
    config.mounts = vec![api::Mount {
        container_path: "/data".into(),
        host_path: "/etc/hostname/not-a-dir".into(),
        ..Default::default()
    }];
    let e = good
        .try_create(config)
        .expect_err("CreateContainer with a bad host path");
    assert_names(&e, "/etc/hostname/not-a-dir");

    let pods = node.list_pods();
    assert_eq!(pods.len(), 1, "pods half made: {pods:?}");
    let containers = node.list_containers();
    assert_eq!(containers.len(), 1, "containers half made: {containers:?}");
    assert_eq!(node.shims().len(), shims, "shims left by the failures");
    let netns = std::fs::read_dir(node.path().join("run/netns"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(netns, 1, "network namespaces left by the failures");
    assert_eq!(good.sh(&c, "echo still-here").trim(), "still-here");
    good.remove();
}
