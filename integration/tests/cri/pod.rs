//! Pods and containers as the kubelet makes them (the same fields, the same order of
//! calls), and the loop that runs a test body once per runtime handler.

use super::client::{api, CALL};
use super::images::BUSYBOX;
use super::node::{Node, SUBNET};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};
use tonic::Status;

/// Our shim first, then the Go shim with runc as the reference.
pub const HANDLERS: [&str; 2] = ["runrs", "runc"];

pub const RUNNING: i32 = api::ContainerState::ContainerRunning as i32;
pub const EXITED: i32 = api::ContainerState::ContainerExited as i32;

/// Starts one node for `test` and runs `body` for each handler; every handler runs even
/// when one fails, then the test fails naming the handlers that failed and why.
pub fn each_handler(test: &str, body: impl Fn(&mut Node, &str)) {
    let missing = super::node::missing_tools();
    assert!(
        missing.is_empty(),
        "missing (hack/test installs them; cargo build makes the shim): {missing:?}"
    );
    let mut node = Node::start(test);
    let mut failed = Vec::new();
    for handler in HANDLERS {
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| body(&mut node, handler)));
        match result {
            Ok(()) => eprintln!("{test} [{handler}]: ok in {:?}", started.elapsed()),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("{test} [{handler}]: FAILED: {msg}");
                failed.push(format!("[{handler}] {msg}"));
            }
        }
        if node.cri.is_some() {
            node.remove_all_pods();
        }
    }
    assert!(
        failed.is_empty(),
        "{test} failed for {} handler(s):\n{}\n--- containerd log (tail) ---\n{}",
        failed.len(),
        failed.join("\n"),
        node.containerd_log()
    );
}

pub struct Pod<'a> {
    pub node: &'a Node,
    pub id: String,
    pub handler: String,
    pub config: api::PodSandboxConfig,
}

impl Node {
    /// The config the kubelet would send for pod `name` on `handler`.
    pub fn pod_config(&self, name: &str, handler: &str) -> api::PodSandboxConfig {
        let uid = format!("{name}-{handler}-uid");
        let logs = self.path().join("logs").join(&uid);
        std::fs::create_dir_all(&logs).unwrap();
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: format!("{name}-{handler}"),
                uid: uid.clone(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: format!("{name}-{handler}"),
            log_directory: logs.display().to_string(),
            dns_config: Some(api::DnsConfig {
                servers: vec![format!("{SUBNET}.53")],
                searches: vec!["runrs.test".into()],
                options: vec!["ndots:2".into()],
            }),
            labels: HashMap::from([("app".into(), name.into())]),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: format!("/{}/pod{uid}", self.cgroup_root),
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(own_pid_ns()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox with `config` on `handler`.
    pub fn try_run_pod(
        &self,
        handler: &str,
        config: api::PodSandboxConfig,
    ) -> Result<Pod<'_>, Status> {
        let req = api::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        };
        let resp = self.cri().call("RunPodSandbox", CALL, |mut c| async move {
            c.run_pod_sandbox(req).await
        })?;
        Ok(Pod {
            node: self,
            id: resp.pod_sandbox_id,
            handler: handler.into(),
            config,
        })
    }

    #[track_caller]
    pub fn run_pod(&self, name: &str, handler: &str) -> Pod<'_> {
        let config = self.pod_config(name, handler);
        self.try_run_pod(handler, config)
            .unwrap_or_else(|e| panic!("RunPodSandbox {name} on {handler}: {e}"))
    }

    pub fn list_pods(&self) -> Vec<api::PodSandbox> {
        self.cri()
            .call("ListPodSandbox", CALL, |mut c| async move {
                c.list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
                    .await
            })
            .expect("ListPodSandbox")
            .items
    }

    pub fn list_containers(&self) -> Vec<api::Container> {
        self.cri()
            .call("ListContainers", CALL, |mut c| async move {
                c.list_containers(api::ListContainersRequest { filter: None })
                    .await
            })
            .expect("ListContainers")
            .containers
    }

    /// Stops and removes every pod (best effort: used between handlers).
    pub fn remove_all_pods(&self) {
        let pods = self.cri().call("ListPodSandbox", CALL, |mut c| async move {
            c.list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
                .await
        });
        for pod in pods.map(|p| p.items).unwrap_or_default() {
            let _ = stop_and_remove_pod(self, &pod.id);
        }
    }
}

/// StopPodSandbox then RemovePodSandbox, as the kubelet does.
pub fn stop_and_remove_pod(node: &Node, id: &str) -> Result<(), Status> {
    let pod_sandbox_id = id.to_string();
    let req = api::StopPodSandboxRequest {
        pod_sandbox_id: pod_sandbox_id.clone(),
    };
    node.cri()
        .call("StopPodSandbox", CALL, |mut c| async move {
            c.stop_pod_sandbox(req).await
        })?;
    let req = api::RemovePodSandboxRequest { pod_sandbox_id };
    node.cri()
        .call("RemovePodSandbox", CALL, |mut c| async move {
            c.remove_pod_sandbox(req).await
        })?;
    Ok(())
}

/// `key=value` pairs in the verbose info's "info" JSON (pid, runtimeType, ...).
pub fn verbose_info(info: &HashMap<String, String>) -> serde_json::Value {
    info.get("info")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Polls `f` until it returns Some, or panics naming `what`.
#[track_caller]
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn busybox_image() -> api::ImageSpec {
    api::ImageSpec {
        image: BUSYBOX.into(),
        ..Default::default()
    }
}

impl Pod<'_> {
    /// A busybox container `name` running `cmd`, logging to `<name>.log`.
    pub fn container_config(&self, name: &str, cmd: &[&str]) -> api::ContainerConfig {
        api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(busybox_image()),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            labels: HashMap::from([("container".into(), name.into())]),
            linux: Some(api::LinuxContainerConfig {
                security_context: Some(api::LinuxContainerSecurityContext {
                    namespace_options: Some(own_pid_ns()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn try_create(&self, config: api::ContainerConfig) -> Result<String, Status> {
        let req = api::CreateContainerRequest {
            pod_sandbox_id: self.id.clone(),
            config: Some(config),
            sandbox_config: Some(self.config.clone()),
        };
        let resp = self
            .node
            .cri()
            .call("CreateContainer", CALL, |mut c| async move {
                c.create_container(req).await
            })?;
        Ok(resp.container_id)
    }

    pub fn try_start(&self, id: &str) -> Result<(), Status> {
        let req = api::StartContainerRequest {
            container_id: id.into(),
        };
        self.node
            .cri()
            .call("StartContainer", CALL, |mut c| async move {
                c.start_container(req).await
            })
            .map(drop)
    }

    /// CreateContainer + StartContainer, panicking (naming the handler) on an error.
    #[track_caller]
    pub fn start(&self, config: api::ContainerConfig) -> String {
        let name = config.metadata.as_ref().map(|m| m.name.clone());
        let id = self
            .try_create(config)
            .unwrap_or_else(|e| panic!("CreateContainer {name:?} on {}: {e}", self.handler));
        self.try_start(&id)
            .unwrap_or_else(|e| panic!("StartContainer {name:?} on {}: {e}", self.handler));
        id
    }

    /// Starts a container `name` that runs `sh -c script`.
    #[track_caller]
    pub fn start_sh(&self, name: &str, script: &str) -> String {
        self.start(self.container_config(name, &["sh", "-c", script]))
    }

    /// ExecSync with a CRI timeout of `timeout_s` (0: none) and a client deadline past it.
    pub fn exec(
        &self,
        id: &str,
        cmd: &[&str],
        timeout_s: i64,
    ) -> Result<api::ExecSyncResponse, Status> {
        self.node.cri().exec_sync(id, cmd, timeout_s)
    }

    /// The stdout of `sh -c script` run in container `id`, which must exit 0.
    #[track_caller]
    pub fn sh(&self, id: &str, script: &str) -> String {
        let r = self
            .exec(id, &["sh", "-c", script], 30)
            .unwrap_or_else(|e| panic!("ExecSync {script:?}: {e}"));
        assert_eq!(
            r.exit_code,
            0,
            "{script:?} exited {}: {}{}",
            r.exit_code,
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        String::from_utf8_lossy(&r.stdout).into_owned()
    }

    pub fn status(&self, id: &str) -> (api::ContainerStatus, serde_json::Value) {
        let req = api::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        };
        let r = self
            .node
            .cri()
            .call("ContainerStatus", CALL, |mut c| async move {
                c.container_status(req).await
            })
            .expect("ContainerStatus");
        (r.status.expect("a status"), verbose_info(&r.info))
    }

    /// The host pid of container `id` (from the verbose status).
    pub fn pid(&self, id: &str) -> i32 {
        let pid = self.status(id).1["pid"].as_i64().unwrap_or(0) as i32;
        assert!(pid > 0, "no pid for container {id}");
        pid
    }

    /// The container's status once it has exited.
    #[track_caller]
    pub fn wait_exited(&self, id: &str, timeout: Duration) -> api::ContainerStatus {
        poll(&format!("container {id} to exit"), timeout, || {
            let s = self.status(id).0;
            (s.state == EXITED).then_some(s)
        })
    }

    pub fn sandbox_status(&self) -> (api::PodSandboxStatus, serde_json::Value) {
        let req = api::PodSandboxStatusRequest {
            pod_sandbox_id: self.id.clone(),
            verbose: true,
        };
        let r = self
            .node
            .cri()
            .call("PodSandboxStatus", CALL, |mut c| async move {
                c.pod_sandbox_status(req).await
            })
            .expect("PodSandboxStatus");
        (r.status.expect("a sandbox status"), verbose_info(&r.info))
    }

    pub fn sandbox_pid(&self) -> i32 {
        self.sandbox_status().1["pid"].as_i64().unwrap_or(0) as i32
    }

    pub fn stop_container(&self, id: &str, timeout_s: i64) -> Result<(), Status> {
        let req = api::StopContainerRequest {
            container_id: id.into(),
            timeout: timeout_s,
        };
        let deadline = Duration::from_secs(timeout_s.max(0) as u64 + 60);
        self.node
            .cri()
            .call("StopContainer", deadline, |mut c| async move {
                c.stop_container(req).await
            })
            .map(drop)
    }

    pub fn remove_container(&self, id: &str) -> Result<(), Status> {
        let req = api::RemoveContainerRequest {
            container_id: id.into(),
        };
        self.node
            .cri()
            .call("RemoveContainer", CALL, |mut c| async move {
                c.remove_container(req).await
            })
            .map(drop)
    }

    /// StopPodSandbox + RemovePodSandbox.
    #[track_caller]
    pub fn remove(self) {
        stop_and_remove_pod(self.node, &self.id)
            .unwrap_or_else(|e| panic!("removing pod on {}: {e}", self.handler));
    }

    /// The shim processes serving this pod (their command line names the sandbox id).
    pub fn shims(&self) -> Vec<i32> {
        self.node
            .shims()
            .into_iter()
            .filter(|(pid, _)| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&self.id))
            })
            .map(|(pid, _)| pid)
            .collect()
    }
}

/// The kubelet's default namespaces: the pod's network and IPC, the container's own PID.
pub fn own_pid_ns() -> api::NamespaceOption {
    api::NamespaceOption {
        pid: api::NamespaceMode::Container as i32,
        ..Default::default()
    }
}
