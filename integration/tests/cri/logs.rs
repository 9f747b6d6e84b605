//! What the kubelet reads back: CRI-format logs (with partial lines and reopening),
//! stats that move, and resource updates that reach the cgroup.

use super::client::{api, CALL};
use super::node::Node;
use super::pod::*;
use std::path::PathBuf;
use std::time::Duration;

fn log_path(pod: &Pod, name: &str) -> PathBuf {
    PathBuf::from(&pod.config.log_directory).join(format!("{name}.log"))
}

/// `<RFC3339Nano> <stream> <P|F> <text>` lines: (stream, tag, text).
fn parse_log(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let (ts, stream, tag) = (
                f.next().unwrap(),
                f.next().unwrap_or(""),
                f.next().unwrap_or(""),
            );
            assert!(runrs_integration::is_rfc3339(ts), "bad timestamp in {l:?}");
            (stream.into(), tag.into(), f.next().unwrap_or("").into())
        })
        .collect()
}

pub fn logs(node: &mut Node, handler: &str) {
    let pod = node.run_pod("logs", handler);
    // 40000 bytes without a newline: more than max_container_log_line_size (16384).
    let script = "echo first; echo oops >&2; head -c 40000 /dev/zero | tr '\\0' x; echo; echo last";
    let c = pod.start_sh("once", script);
    pod.wait_exited(&c, Duration::from_secs(30));
    let path = log_path(&pod, "once");
    let lines = parse_log(&std::fs::read_to_string(&path).expect("read the container log"));
    let stdout: Vec<_> = lines.iter().filter(|l| l.0 == "stdout").collect();
    assert_eq!((stdout[0].1.as_str(), stdout[0].2.as_str()), ("F", "first"));
    assert!(lines
        .iter()
        .any(|l| l.0 == "stderr" && l.1 == "F" && l.2 == "oops"));
    let long: Vec<_> = stdout[1..stdout.len() - 1].iter().collect();
    assert!(
        long.len() >= 3,
        "a 40000-byte line in {} records",
        long.len()
    );
    assert!(
        long[..long.len() - 1].iter().all(|l| l.1 == "P"),
        "partial records tagged P"
    );
    assert_eq!(long.last().unwrap().1, "F");
    let joined: String = long.iter().map(|l| l.2.as_str()).collect();
    assert_eq!(joined, "x".repeat(40000));
    assert_eq!(stdout.last().unwrap().2, "last");
    // ReopenContainerLog: after a rotation the container writes to a new file.
    let c = pod.start_sh(
        "ticker",
        "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    );
    let path = log_path(&pod, "ticker");
    poll("ticks in the log", Duration::from_secs(10), || {
        std::fs::read_to_string(&path)
            .ok()
            .filter(|t| t.contains("tick 2"))
            .map(drop)
    });
    let rotated = path.with_extension("log.1");
    std::fs::rename(&path, &rotated).unwrap();
    let req = api::ReopenContainerLogRequest {
        container_id: c.clone(),
    };
    node.cri()
        .call("ReopenContainerLog", CALL, |mut cl| async move {
            cl.reopen_container_log(req).await
        })
        .expect("ReopenContainerLog");
    poll("ticks in the reopened log", Duration::from_secs(10), || {
        std::fs::read_to_string(&path)
            .ok()
            .filter(|t| t.contains(" F tick "))
            .map(drop)
    });
    pod.remove();
}

fn stats(node: &Node, id: &str) -> (u64, u64) {
    let req = api::ContainerStatsRequest {
        container_id: id.into(),
    };
    let s = node
        .cri()
        .call("ContainerStats", CALL, |mut c| async move {
            c.container_stats(req).await
        })
        .expect("ContainerStats")
        .stats
        .expect("stats");
    let cpu = s
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map_or(0, |v| v.value);
    let mem = s
        .memory
        .and_then(|m| m.working_set_bytes)
        .map_or(0, |v| v.value);
    (cpu, mem)
}

pub fn stats_move(node: &mut Node, handler: &str) {
    let pod = node.run_pod("stats", handler);
    let c = pod.start_sh("busy", "while :; do :; done");
    let (cpu0, mem0) = stats(node, &c);
    assert!(mem0 > 0, "working set 0");
    // 50 ms of CPU for a busy loop: within seconds even on a loaded machine.
    poll("CPU usage to grow", Duration::from_secs(20), || {
        (stats(node, &c).0 > cpu0 + 50_000_000).then_some(())
    });
    let req = api::ListContainerStatsRequest { filter: None };
    let all = node
        .cri()
        .call("ListContainerStats", CALL, |mut cl| async move {
            cl.list_container_stats(req).await
        })
        .expect("ListContainerStats");
    assert!(all
        .stats
        .iter()
        .any(|s| s.attributes.as_ref().is_some_and(|a| a.id == c)));
    pod.remove();
}

/// The container's cgroup dir in a v1 hierarchy (`memory`, `cpu`).
fn cgroup_file(node: &Node, pod: &Pod, id: &str, controller: &str, file: &str) -> String {
    let dir = runrs_integration::procfs::cgroup_dir(pod.pid(id), controller);
    assert!(
        dir.display().to_string().contains(&node.cgroup_root),
        "cgroup {dir:?}"
    );
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{dir:?}/{file}: {e}"))
        .trim()
        .into()
}

pub fn update_resources(node: &mut Node, handler: &str) {
    let pod = node.run_pod("update", handler);
    let c = pod.start_sh("app", "sleep 1000");
    let linux = api::LinuxContainerResources {
        memory_limit_in_bytes: 96 << 20,
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 512,
        ..Default::default()
    };
    let req = api::UpdateContainerResourcesRequest {
        container_id: c.clone(),
        linux: Some(linux),
        ..Default::default()
    };
    node.cri()
        .call("UpdateContainerResources", CALL, |mut cl| async move {
            cl.update_container_resources(req).await
        })
        .expect("UpdateContainerResources");
    if runrs_integration::procfs::pure_cgroup_v2() {
        assert_eq!(
            cgroup_file(node, &pod, &c, "", "memory.max"),
            (96u64 << 20).to_string()
        );
        assert_eq!(cgroup_file(node, &pod, &c, "", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(
            cgroup_file(node, &pod, &c, "memory", "memory.limit_in_bytes"),
            (96u64 << 20).to_string()
        );
        assert_eq!(
            cgroup_file(node, &pod, &c, "cpu", "cpu.cfs_quota_us"),
            "50000"
        );
        assert_eq!(cgroup_file(node, &pod, &c, "cpu", "cpu.shares"), "512");
    }
    let (status, _) = pod.status(&c);
    let res = status
        .resources
        .and_then(|r| r.linux)
        .expect("resources in the status");
    assert_eq!(res.memory_limit_in_bytes, 96 << 20);
    pod.remove();
}
