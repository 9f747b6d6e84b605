//! RunPodSandbox with CNI networking, containers sharing the pod's namespaces, one shim
//! per pod, and the states, exit codes and reasons of ContainerStatus.

use super::client::api;
use super::node::{Node, SUBNET};
use super::pod::*;
use std::time::Duration;

fn ns(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|l| l.display().to_string())
        .unwrap_or_else(|e| panic!("ns {kind} of {pid}: {e}"))
}

/// Network: an IP from host-local, the gateway answers, hostname and DNS as configured.
pub fn network(node: &mut Node, handler: &str) {
    let pod = node.run_pod("net", handler);
    let (status, _) = pod.sandbox_status();
    assert_eq!(status.state, api::PodSandboxState::SandboxReady as i32);
    assert_eq!(status.labels.get("app").map(String::as_str), Some("net"));
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    assert!(
        ip.starts_with(&format!("{SUBNET}.")),
        "pod IP {ip:?} not from host-local"
    );
    let c = pod.start_sh("app", "sleep 1000");
    assert!(pod
        .sh(c.as_str(), "ip -4 addr show eth0")
        .contains(&format!("inet {ip}/")));
    pod.sh(&c, &format!("ping -c1 -W5 {SUBNET}.1"));
    assert_eq!(pod.sh(&c, "hostname").trim(), format!("net-{handler}"));
    let resolv = pod.sh(&c, "cat /etc/resolv.conf");
    for line in [
        &format!("nameserver {SUBNET}.53"),
        "search runrs.test",
        "options ndots:2",
    ] {
        assert!(
            resolv.contains(line),
            "{line:?} not in resolv.conf:\n{resolv}"
        );
    }
    pod.remove();
}

/// Two containers in one pod: one shim serves all three; net/IPC/UTS shared, and the PID
/// namespace too when namespace_options.pid = POD.
pub fn shared_namespaces(node: &mut Node, handler: &str) {
    let mut config = node.pod_config("share", handler);
    let pod_ns = api::NamespaceOption {
        pid: api::NamespaceMode::Pod as i32,
        ..Default::default()
    };
    let sc = config
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap();
    sc.namespace_options = Some(pod_ns.clone());
    let pod = node.try_run_pod(handler, config).expect("RunPodSandbox");
    let mut shared = pod.container_config("shared", &["sleep", "1000"]);
    let csc = shared
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap();
    csc.namespace_options = Some(pod_ns);
    let a = pod.start(shared);
    let b = pod.start_sh("own", "sleep 1000");
    let shims = pod.shims();
    assert_eq!(shims.len(), 1, "shims serving the pod: {shims:?}");
    let (sandbox, pa, pb) = (pod.sandbox_pid(), pod.pid(&a), pod.pid(&b));
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(
            ns(pa, kind),
            ns(sandbox, kind),
            "{kind} of the POD-pid container"
        );
        assert_eq!(
            ns(pb, kind),
            ns(sandbox, kind),
            "{kind} of the other container"
        );
    }
    assert_eq!(
        ns(pa, "pid"),
        ns(sandbox, "pid"),
        "pid = POD shares the sandbox's"
    );
    assert_ne!(
        ns(pb, "pid"),
        ns(sandbox, "pid"),
        "pid = CONTAINER has its own"
    );
    assert_eq!(
        pod.sh(&a, "cat /proc/1/cmdline").trim_end_matches('\0'),
        "/pause"
    );
    assert_eq!(
        pod.sh(&b, "tr '\\0' ' ' < /proc/1/cmdline").trim(),
        "sleep 1000"
    );
    // The pod's /dev/shm (POSIX shared memory) is one for all its containers.
    pod.sh(&a, "echo shared > /dev/shm/marker");
    assert_eq!(pod.sh(&b, "cat /dev/shm/marker").trim(), "shared");
    pod.remove();
}

/// Exit codes and reasons: Completed, Error, OOMKilled; ListContainers agrees.
pub fn exit_reasons(node: &mut Node, handler: &str) {
    let pod = node.run_pod("reasons", handler);
    let ok = pod.start_sh("ok", "true");
    let err = pod.start_sh("err", "exit 3");
    let mut oom = pod.container_config(
        "oom",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
    );
    oom.linux.as_mut().unwrap().resources = Some(api::LinuxContainerResources {
        memory_limit_in_bytes: 32 << 20,
        ..Default::default()
    });
    let oom = pod.start(oom);
    let running = pod.start_sh("running", "sleep 1000");
    for (id, code, reason) in [
        (&ok, 0, "Completed"),
        (&err, 3, "Error"),
        (&oom, 137, "OOMKilled"),
    ] {
        let s = pod.wait_exited(id, Duration::from_secs(30));
        let got = (s.exit_code, s.reason.as_str());
        if handler == "runc" && id == &oom && got == (137, "Error") {
            // containerd's Go shim sends the OOM event from another goroutine than the exit:
            // under load the exit may reach the CRI first, and the reason is then "Error"
            // (seen in CI with a guest VM running beside it). Ours publishes an OOM before an
            // exit it sees at the same time.
            eprintln!("reasons [runc]: the OOM kill came as \"Error\": the Go shim's race");
            continue;
        }
        assert_eq!(got, (code, reason), "container {:?}", s.metadata);
        // Not finished_at >= started_at: containerd stamps started_at after the Start
        // call returned, which a process as short as `true` may not outlive.
        assert!(
            s.started_at > 0 && s.finished_at >= s.created_at,
            "times of {s:?}"
        );
    }
    let listed = node.list_containers();
    let state = |id: &str| listed.iter().find(|c| c.id == id).map(|c| c.state);
    assert_eq!(state(&running), Some(RUNNING));
    assert_eq!(state(&ok), Some(EXITED));
    assert_eq!(pod.status(&running).0.state, RUNNING);
    pod.remove();
}

/// The systemd driver as docs/kubernetes.md configures it (`SystemdCgroup = true` in the
/// handler's ConfigPath file for runrs, in runc's options for runc) and a kubelet-style
/// `.slice` parent: without systemd (this host) the pod is refused naming systemd and
/// nothing is left; with systemd, its processes run in a scope under that slice.
pub fn systemd_driver(node: &mut Node, handler: &str) {
    let mut config = node.pod_config("systemd", handler);
    let uid = config.metadata.as_ref().unwrap().uid.replace('-', "_");
    config.linux.as_mut().unwrap().cgroup_parent = format!("kubepods-besteffort-pod{uid}.slice");
    let systemd = std::path::Path::new("/run/systemd/system").exists();
    match node.try_run_pod(&format!("{handler}-systemd"), config) {
        Ok(pod) => {
            assert!(systemd, "a systemd pod ran on a host without systemd");
            let cgroup =
                std::fs::read_to_string(format!("/proc/{}/cgroup", pod.sandbox_pid())).unwrap();
            assert!(
                cgroup.contains(&format!("pod{uid}.slice/cri-containerd-{}.scope", pod.id)),
                "{cgroup}"
            );
            let slice = format!("kubepods-besteffort-pod{uid}.slice");
            let dir = std::path::Path::new("/sys/fs/cgroup/kubepods.slice")
                .join("kubepods-besteffort.slice")
                .join(&slice);
            let parents_were_there = dir.parent().is_some_and(|p| p.exists());
            pod.remove();
            let scopes: Vec<_> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".scope"))
                .map(|e| e.file_name())
                .collect();
            assert!(scopes.is_empty(), "scopes left under {slice}: {scopes:?}");
            // The pod's slice is the kubelet's to remove; so are its parents, where this
            // test made them.
            let mut slices = vec![slice];
            if !parents_were_there {
                slices.push("kubepods-besteffort.slice".into());
                slices.push("kubepods.slice".into());
            }
            for s in slices {
                let _ = std::process::Command::new("systemctl")
                    .args(["stop", &s])
                    .status();
            }
        }
        Err(e) => {
            assert!(!systemd, "the systemd driver failed with systemd: {e}");
            eprintln!("systemd [{handler}]: refused: {}", e.message());
            let m = e.message().to_lowercase();
            assert!(
                m.contains("systemd") || m.contains("dbus"),
                "error does not name systemd: {e}"
            );
            assert!(node.list_pods().is_empty(), "a refused pod is listed");
        }
    }
}
