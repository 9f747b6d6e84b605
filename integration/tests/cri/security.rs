//! Security contexts as the kubelet sends them: read-only rootfs, users and groups,
//! capabilities, no_new_privs, the RuntimeDefault seccomp profile, privileged.

use super::client::api;
use super::node::Node;
use super::pod::*;
use runrs_integration::{cap_mask, host_capabilities, procfs};

fn status_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap()
}

fn secured(
    pod: &Pod,
    name: &str,
    edit: impl FnOnce(&mut api::LinuxContainerSecurityContext),
) -> String {
    let mut config = pod.container_config(name, &["sleep", "1000"]);
    edit(
        config
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap(),
    );
    pod.start(config)
}

pub fn users_and_readonly_rootfs(node: &mut Node, handler: &str) {
    let pod = node.run_pod("users", handler);
    let c = secured(&pod, "user", |sc| {
        sc.readonly_rootfs = true;
        sc.run_as_user = Some(api::Int64Value { value: 1000 });
        sc.run_as_group = Some(api::Int64Value { value: 3000 });
        sc.supplemental_groups = vec![4000, 5000];
    });
    assert_eq!(pod.sh(&c, "id -u").trim(), "1000");
    assert_eq!(pod.sh(&c, "id -g").trim(), "3000");
    let groups = pod.sh(&c, "id -G");
    for g in ["4000", "5000"] {
        assert!(
            groups.split_whitespace().any(|x| x == g),
            "group {g} not in {groups}"
        );
    }
    let r = pod.exec(&c, &["touch", "/written"], 10).expect("ExecSync");
    assert_ne!(r.exit_code, 0, "wrote to a read-only rootfs");
    assert!(String::from_utf8_lossy(&r.stderr).contains("Read-only file system"));
    pod.remove();
}

pub fn capabilities_nnp_seccomp(node: &mut Node, handler: &str) {
    let pod = node.run_pod("caps", handler);
    let c = secured(&pod, "caps", |sc| {
        sc.capabilities = Some(api::Capability {
            add_capabilities: vec!["NET_ADMIN".into()],
            drop_capabilities: vec!["CHOWN".into()],
            ..Default::default()
        });
        sc.no_new_privs = true;
        sc.seccomp = Some(api::SecurityProfile {
            profile_type: api::security_profile::ProfileType::RuntimeDefault as i32,
            ..Default::default()
        });
    });
    let status = status_of(pod.pid(&c));
    let eff = procfs::status_caps(&status)["CapEff"];
    assert_ne!(eff & cap_mask(&["CAP_NET_ADMIN"]), 0, "NET_ADMIN not added");
    assert_eq!(eff & cap_mask(&["CAP_CHOWN"]), 0, "CHOWN not dropped");
    assert_eq!(procfs::status_field(&status, "NoNewPrivs"), Some("1"));
    assert_eq!(procfs::status_field(&status, "Seccomp"), Some("2"));
    // The profile denies unshare to a process without CAP_SYS_ADMIN; unconfined, it works.
    let r = pod
        .exec(&c, &["unshare", "-U", "true"], 10)
        .expect("ExecSync");
    assert_ne!(r.exit_code, 0, "unshare allowed under RuntimeDefault");
    let open = pod.start_sh("unconfined", "sleep 1000");
    assert_eq!(
        procfs::status_field(&status_of(pod.pid(&open)), "Seccomp"),
        Some("0")
    );
    pod.sh(&open, "unshare -U true");
    pod.remove();
}

pub fn privileged(node: &mut Node, handler: &str) {
    let mut config = node.pod_config("priv", handler);
    let sc = config
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap();
    sc.privileged = true;
    let pod = node
        .try_run_pod(handler, config)
        .expect("RunPodSandbox privileged");
    let c = secured(&pod, "priv", |sc| sc.privileged = true);
    let plain = pod.start_sh("plain", "sleep 1000");
    let eff = procfs::status_caps(&status_of(pod.pid(&c)))["CapEff"];
    assert_eq!(
        eff,
        cap_mask(&host_capabilities()),
        "a privileged container has every capability"
    );
    let devices = |id: &str| pod.sh(id, "ls /dev").split_whitespace().count();
    let (all, few) = (devices(&c), devices(&plain));
    assert!(
        all > few + 10,
        "privileged sees {all} entries in /dev, unprivileged {few}"
    );
    pod.sh(&c, "test -c /dev/kmsg");
    pod.remove();
}
