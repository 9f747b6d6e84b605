//! `hack/cri`: a small CRI client for people (no crictl on this machine), on the client of
//! the CRI tests. `--socket PATH` (default /run/containerd/containerd.sock), then:
//!   pods | containers                      list them
//!   run FILE                               a pod and its container from a JSON file:
//!       {"name": "web", "handler": "runrs", "image": "localhost/runrs-busybox:1",
//!        "command": ["sleep", "3600"], "namespace": "default", "log_dir": "/tmp/web-logs"}
//!   exec ID CMD...                         ExecSync: prints stdout/stderr, exits with its code
//!   logs ID                                the container's CRI log file
//!   rm POD_ID                              StopPodSandbox + RemovePodSandbox

#[path = "../tests/cri/client.rs"]
#[allow(dead_code)]
mod client;

use client::{api, Cri, CALL};
use std::collections::HashMap;
use std::io::Write;

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("cri: {msg}");
    std::process::exit(1)
}

fn pods(cri: &Cri) {
    let r = cri
        .call("ListPodSandbox", CALL, |mut c| async move {
            c.list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
                .await
        })
        .unwrap_or_else(|e| die(e));
    for p in r.items {
        let m = p.metadata.unwrap_or_default();
        let state = api::PodSandboxState::try_from(p.state).map_or("?", |s| s.as_str_name());
        println!(
            "{}  {:<24} {:<14} {}",
            &p.id[..13.min(p.id.len())],
            m.name,
            state,
            p.runtime_handler
        );
    }
}

fn containers(cri: &Cri) {
    let r = cri
        .call("ListContainers", CALL, |mut c| async move {
            c.list_containers(api::ListContainersRequest { filter: None })
                .await
        })
        .unwrap_or_else(|e| die(e));
    for c in r.containers {
        let m = c.metadata.unwrap_or_default();
        let state = api::ContainerState::try_from(c.state).map_or("?", |s| s.as_str_name());
        println!(
            "{}  {:<24} {:<18} pod {}",
            &c.id[..13.min(c.id.len())],
            m.name,
            state,
            &c.pod_sandbox_id[..13.min(c.pod_sandbox_id.len())]
        );
    }
}

/// The full id of a container or pod from a unique prefix.
fn full_id(cri: &Cri, prefix: &str, pods: bool) -> String {
    let ids: Vec<String> = if pods {
        let r = cri.call("ListPodSandbox", CALL, |mut c| async move {
            c.list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
                .await
        });
        r.map(|r| r.items.into_iter().map(|p| p.id).collect())
            .unwrap_or_default()
    } else {
        let r = cri.call("ListContainers", CALL, |mut c| async move {
            c.list_containers(api::ListContainersRequest { filter: None })
                .await
        });
        r.map(|r| r.containers.into_iter().map(|c| c.id).collect())
            .unwrap_or_default()
    };
    let found: Vec<_> = ids.into_iter().filter(|i| i.starts_with(prefix)).collect();
    match found.as_slice() {
        [one] => one.clone(),
        [] => die(format!(
            "no {} with id {prefix}",
            if pods { "pod" } else { "container" }
        )),
        _ => die(format!("id {prefix} is ambiguous")),
    }
}

fn run(cri: &Cri, file: &str) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| die(format!("{file}: {e}")));
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| die(format!("{file}: {e}")));
    let s = |k: &str, d: &str| v[k].as_str().unwrap_or(d).to_string();
    let name = s("name", "pod");
    let log_dir = s("log_dir", &format!("/tmp/cri-{name}-logs"));
    std::fs::create_dir_all(&log_dir).unwrap_or_else(|e| die(e));
    let pod = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.clone(),
            uid: format!("{name}-uid"),
            namespace: s("namespace", "default"),
            attempt: 0,
        }),
        hostname: name.clone(),
        log_directory: log_dir,
        linux: Some(api::LinuxPodSandboxConfig::default()),
        labels: HashMap::from([("app".into(), name.clone())]),
        ..Default::default()
    };
    let req = api::RunPodSandboxRequest {
        config: Some(pod.clone()),
        runtime_handler: s("handler", ""),
    };
    let pod_id = cri
        .call("RunPodSandbox", CALL, |mut c| async move {
            c.run_pod_sandbox(req).await
        })
        .unwrap_or_else(|e| die(e))
        .pod_sandbox_id;
    let command = v["command"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let config = api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.clone(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: s("image", "localhost/runrs-busybox:1"),
            ..Default::default()
        }),
        command,
        log_path: format!("{name}.log"),
        ..Default::default()
    };
    let req = api::CreateContainerRequest {
        pod_sandbox_id: pod_id.clone(),
        config: Some(config),
        sandbox_config: Some(pod),
    };
    let id = cri
        .call("CreateContainer", CALL, |mut c| async move {
            c.create_container(req).await
        })
        .unwrap_or_else(|e| die(e))
        .container_id;
    let req = api::StartContainerRequest {
        container_id: id.clone(),
    };
    cri.call("StartContainer", CALL, |mut c| async move {
        c.start_container(req).await
    })
    .unwrap_or_else(|e| die(e));
    println!("pod {pod_id}\ncontainer {id}");
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut socket = "/run/containerd/containerd.sock".to_string();
    if args.first().map(String::as_str) == Some("--socket") && args.len() > 1 {
        socket = args.remove(1);
        args.remove(0);
    }
    let cri = Cri::connect(std::path::Path::new(&socket)).unwrap_or_else(|e| die(e));
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["pods"] => pods(&cri),
        ["containers"] => containers(&cri),
        ["run", file] => run(&cri, file),
        ["exec", id, cmd @ ..] if !cmd.is_empty() => {
            let id = full_id(&cri, id, false);
            let r = cri.exec_sync(&id, cmd, 0).unwrap_or_else(|e| die(e));
            std::io::stdout().write_all(&r.stdout).unwrap();
            std::io::stderr().write_all(&r.stderr).unwrap();
            std::process::exit(r.exit_code);
        }
        ["logs", id] => {
            let container_id = full_id(&cri, id, false);
            let req = api::ContainerStatusRequest { container_id, verbose: false };
            let st = cri.call("ContainerStatus", CALL, |mut c| async move { c.container_status(req).await }).unwrap_or_else(|e| die(e));
            let path = st.status.map(|s| s.log_path).unwrap_or_default();
            print!("{}", std::fs::read_to_string(&path).unwrap_or_else(|e| die(format!("{path}: {e}"))));
        }
        ["rm", id] => {
            let pod_sandbox_id = full_id(&cri, id, true);
            let req = api::StopPodSandboxRequest { pod_sandbox_id: pod_sandbox_id.clone() };
            cri.call("StopPodSandbox", CALL, |mut c| async move { c.stop_pod_sandbox(req).await }).unwrap_or_else(|e| die(e));
            let req = api::RemovePodSandboxRequest { pod_sandbox_id };
            cri.call("RemovePodSandbox", CALL, |mut c| async move { c.remove_pod_sandbox(req).await }).unwrap_or_else(|e| die(e));
        }
        _ => die("usage: hack/cri [--socket PATH] pods | containers | run FILE | exec ID CMD... | logs ID | rm POD_ID"),
    }
}
