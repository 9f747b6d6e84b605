//! The Task service RPCs (`containerd.task.v2.Task`), each mapped to the runtime binary
//! and the shim's own process table.

pub mod error;
pub mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runrs_proto::empty::Empty;
use runrs_proto::protobuf::well_known_types::any::Any;
use runrs_proto::protobuf::{EnumOrUnknown, Message};
use runrs_proto::runc_options::ProcessDetails;
use runrs_proto::shim::*;
use runrs_proto::task::{ProcessInfo, Status};
use runrs_proto::task_events::*;
use runrs_proto::ttrpc::{self, Code};

use crate::events::{timestamp, topic_of};
use crate::io::{ConsoleSocket, Io, ProcessStdio, StdioPaths};
use crate::log::log;
use crate::process::Proc;
use crate::runtime::{read_pid, Runtime, RuntimeConfig};
use crate::{cgroup, rootfs};
use error::{not_found, rpc_error, unknown, Result};
use state::{Container, Shim};

/// How long Wait lets output copying finish after an exit.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

pub struct TaskService(pub Arc<Shim>);

/// Starts a process's stdio: a console socket for a terminal, otherwise pipes.
fn prepare_io(paths: &StdioPaths) -> Result<(Option<ConsoleSocket>, Option<Io>, ProcessStdio)> {
    if paths.terminal {
        Ok((
            Some(ConsoleSocket::new().map_err(unknown)?),
            None,
            ProcessStdio::default(),
        ))
    } else {
        let (io, stdio) = Io::pipes(paths).map_err(unknown)?;
        Ok((None, Some(io), stdio))
    }
}

fn finish_io(socket: Option<ConsoleSocket>, io: Option<Io>, paths: &StdioPaths) -> Result<Arc<Io>> {
    match (socket, io) {
        (Some(s), _) => Io::console(&s, paths).map(Arc::new).map_err(unknown),
        (None, Some(io)) => Ok(Arc::new(io)),
        (None, None) => Err(unknown("no stdio prepared".into())),
    }
}

impl TaskService {
    fn runtime_of(&self, id: &str) -> Result<Runtime> {
        let c = self.0.lock();
        c.get(id)
            .map(|c| c.runtime.clone())
            .ok_or_else(|| not_found(id, ""))
    }

    fn do_create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        let shim = &self.0;
        if shim.lock().contains_key(&req.id) {
            return Err(rpc_error(
                Code::ALREADY_EXISTS,
                format!("container {:?} already exists", req.id),
            ));
        }
        let bundle = PathBuf::from(&req.bundle);
        let mut config = RuntimeConfig::defaults(&shim.namespace);
        if let Some(opts) = req.options.as_ref() {
            config.apply_options(opts).map_err(unknown)?;
        }
        config.save(&bundle).map_err(unknown)?;
        let runtime = Runtime::new(config, &bundle, Some(shim.reaper.clone()));

        let rootfs = bundle.join("rootfs");
        if !req.rootfs.is_empty() {
            std::fs::create_dir_all(&rootfs)
                .map_err(|e| unknown(format!("creating {}: {e}", rootfs.display())))?;
            rootfs::mount_rootfs(&req.rootfs, &rootfs).map_err(unknown)?;
        }
        let cleanup = |e: ttrpc::Error| {
            if !req.rootfs.is_empty() {
                let _ = rootfs::unmount_all(&rootfs);
            }
            e
        };
        let paths = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let (socket, io, stdio) = prepare_io(&paths).map_err(cleanup)?;
        let pid_file = bundle.join("init.pid");
        let mark = shim.reaper.mark();
        runtime
            .create(
                &req.id,
                &bundle,
                &pid_file,
                socket.as_ref().map(|s| s.path.as_path()),
                stdio,
            )
            .map_err(|e| cleanup(unknown(e)))?;
        let io = finish_io(socket, io, &paths).map_err(cleanup)?;
        let pid = read_pid(&pid_file).map_err(|e| cleanup(unknown(e)))?;

        let mut init = Proc::new(paths.clone());
        init.pid = pid;
        init.mark = mark;
        init.io = Some(io);
        // Without OOM events the container still runs: note it and go on.
        if let Err(e) = shim.oom.watch(&req.id, pid) {
            log(&format!("no OOM events for {}: {e}", req.id));
        }
        let mut containers = shim.lock();
        if let Some(e) = shim.reaper.take(pid, mark) {
            shim.record_exit(&req.id, "", &mut init, e);
        }
        containers.insert(
            req.id.clone(),
            Container {
                id: req.id.clone(),
                bundle: bundle.clone(),
                runtime,
                rootfs_mounted: !req.rootfs.is_empty(),
                paused: false,
                init,
                execs: HashMap::new(),
            },
        );
        let mut ev = TaskCreate::new();
        ev.container_id = req.id.clone();
        ev.bundle = req.bundle.clone();
        ev.rootfs = req.rootfs.clone();
        let mut tio = TaskIO::new();
        tio.stdin = paths.stdin;
        tio.stdout = paths.stdout;
        tio.stderr = paths.stderr;
        tio.terminal = paths.terminal;
        ev.io = Some(tio).into();
        ev.pid = pid as u32;
        shim.publisher.publish(topic_of::<TaskCreate>(), &ev);
        let mut resp = CreateTaskResponse::new();
        resp.pid = pid as u32;
        Ok(resp)
    }

    fn start_init(&self, id: &str) -> Result<StartResponse> {
        let shim = &self.0;
        let runtime = self.runtime_of(id)?;
        runtime.call(&["start", id], None).map_err(unknown)?;
        let mut containers = shim.lock();
        let c = containers.get_mut(id).ok_or_else(|| not_found(id, ""))?;
        c.init.started = true;
        let mut ev = TaskStart::new();
        ev.container_id = id.to_string();
        ev.pid = c.init.pid as u32;
        shim.publisher.publish(topic_of::<TaskStart>(), &ev);
        // An exit that came during start is published after TaskStart.
        shim.publish_exit(id, "", &c.init);
        let mut resp = StartResponse::new();
        resp.pid = c.init.pid as u32;
        Ok(resp)
    }

    fn start_exec(&self, id: &str, exec_id: &str) -> Result<StartResponse> {
        let shim = &self.0;
        let (runtime, bundle, paths, spec) = {
            let c = shim.lock();
            let c = c.get(id).ok_or_else(|| not_found(id, ""))?;
            if c.init.exit.is_some() {
                return Err(rpc_error(
                    Code::FAILED_PRECONDITION,
                    format!("container {id:?} is stopped"),
                ));
            }
            let p = c.execs.get(exec_id).ok_or_else(|| not_found(id, exec_id))?;
            if p.pid != 0 {
                return Err(rpc_error(
                    Code::ALREADY_EXISTS,
                    format!("process {exec_id:?} already started"),
                ));
            }
            (
                c.runtime.clone(),
                c.bundle.clone(),
                p.stdio.clone(),
                p.spec.clone(),
            )
        };
        let tag = format!(
            "exec-{}",
            crate::sha256::sha256_hex(exec_id.as_bytes())
                .get(..16)
                .unwrap_or("x")
        );
        let process_file = bundle.join(format!("{tag}.json"));
        let pid_file = bundle.join(format!("{tag}.pid"));
        std::fs::write(&process_file, &spec)
            .map_err(|e| unknown(format!("writing {}: {e}", process_file.display())))?;
        let (socket, io, stdio) = prepare_io(&paths)?;
        let mark = shim.reaper.mark();
        let result = runtime.exec(
            id,
            &process_file,
            &pid_file,
            socket.as_ref().map(|s| s.path.as_path()),
            stdio,
        );
        let _ = std::fs::remove_file(&process_file);
        result.map_err(unknown)?;
        let io = finish_io(socket, io, &paths)?;
        let pid = read_pid(&pid_file).map_err(unknown)?;
        let _ = std::fs::remove_file(&pid_file);

        let mut containers = shim.lock();
        let c = containers.get_mut(id).ok_or_else(|| not_found(id, ""))?;
        let p = c
            .execs
            .get_mut(exec_id)
            .ok_or_else(|| not_found(id, exec_id))?;
        p.pid = pid;
        p.mark = mark;
        p.io = Some(io);
        p.started = true;
        let mut ev = TaskExecStarted::new();
        ev.container_id = id.to_string();
        ev.exec_id = exec_id.to_string();
        ev.pid = pid as u32;
        shim.publisher.publish(topic_of::<TaskExecStarted>(), &ev);
        if let Some(e) = shim.reaper.take(pid, mark) {
            shim.record_exit(id, exec_id, p, e);
        }
        let mut resp = StartResponse::new();
        resp.pid = pid as u32;
        Ok(resp)
    }

    fn delete_init(&self, id: &str) -> Result<DeleteResponse> {
        let shim = &self.0;
        let (runtime, bundle, mounted) = {
            let c = shim.lock();
            let c = c.get(id).ok_or_else(|| not_found(id, ""))?;
            if c.init.started && c.init.exit.is_none() {
                return Err(rpc_error(
                    Code::FAILED_PRECONDITION,
                    format!("container {id:?} is still running: kill it first"),
                ));
            }
            (c.runtime.clone(), c.bundle.clone(), c.rootfs_mounted)
        };
        shim.oom.forget(id);
        if let Err(e) = runtime.call(&["delete", "--force", id], None) {
            log(&format!("delete {id}: {e}"));
        }
        // A created-but-never-started init was just killed by delete --force.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut containers = shim.lock();
        while containers.get(id).is_some_and(|c| c.init.exit.is_none())
            && std::time::Instant::now() < deadline
        {
            containers = shim
                .changed
                .wait_timeout(containers, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let c = containers.remove(id).ok_or_else(|| not_found(id, ""))?;
        drop(containers);
        if mounted {
            rootfs::unmount_all(&bundle.join("rootfs")).map_err(unknown)?;
        }
        let (status, at) = c
            .init
            .exit
            .unwrap_or((128 + libc::SIGKILL as u32, std::time::SystemTime::now()));
        let mut ev = TaskDelete::new();
        ev.container_id = id.to_string();
        ev.pid = c.init.pid as u32;
        ev.exit_status = status;
        ev.exited_at = Some(timestamp(at)).into();
        shim.publisher.publish(topic_of::<TaskDelete>(), &ev);
        let mut resp = DeleteResponse::new();
        resp.pid = c.init.pid as u32;
        resp.exit_status = status;
        resp.exited_at = Some(timestamp(at)).into();
        Ok(resp)
    }
}

/// The Task RPCs; `call` decodes a request and encodes the reply (Wait: `poll_wait`).
impl TaskService {
    /// Runs RPC `method` of `containerd.task.v2.Task` on an encoded request.
    pub fn call(&self, method: &str, payload: &[u8]) -> Result<Vec<u8>> {
        macro_rules! rpc {
            ($f:ident) => {{
                let req = Message::parse_from_bytes(payload)
                    .map_err(|e| rpc_error(Code::INVALID_ARGUMENT, e))?;
                let resp = self.$f(req)?;
                resp.write_to_bytes().map_err(|e| unknown(e.to_string()))
            }};
        }
        match method {
            "Create" => rpc!(create),
            "Start" => rpc!(start),
            "State" => rpc!(state),
            "Delete" => rpc!(delete),
            "Pids" => rpc!(pids),
            "Pause" => rpc!(pause),
            "Resume" => rpc!(resume),
            "Checkpoint" => rpc!(checkpoint),
            "Kill" => rpc!(kill),
            "Exec" => rpc!(exec),
            "ResizePty" => rpc!(resize_pty),
            "CloseIO" => rpc!(close_io),
            "Update" => rpc!(update),
            "Stats" => rpc!(stats),
            "Connect" => rpc!(connect),
            "Shutdown" => rpc!(shutdown),
            _ => Err(rpc_error(
                Code::UNIMPLEMENTED,
                format!("/containerd.task.v2.Task/{method} is not implemented"),
            )),
        }
    }

    fn create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        if !req.checkpoint.is_empty() {
            return Err(rpc_error(
                Code::UNIMPLEMENTED,
                "restore from checkpoint is not supported by runrs yet",
            ));
        }
        self.do_create(req)
    }

    fn start(&self, req: StartRequest) -> Result<StartResponse> {
        if req.exec_id.is_empty() {
            self.start_init(&req.id)
        } else {
            self.start_exec(&req.id, &req.exec_id)
        }
    }

    fn state(&self, req: StateRequest) -> Result<StateResponse> {
        let containers = self.0.lock();
        let c = containers
            .get(&req.id)
            .ok_or_else(|| not_found(&req.id, ""))?;
        let p = c
            .proc(&req.exec_id)
            .ok_or_else(|| not_found(&req.id, &req.exec_id))?;
        let status = if p.exit.is_some() {
            Status::STOPPED
        } else if c.paused {
            Status::PAUSED
        } else if p.started {
            Status::RUNNING
        } else {
            Status::CREATED
        };
        let mut resp = StateResponse::new();
        resp.id = req.id.clone();
        resp.bundle = c.bundle.to_string_lossy().into_owned();
        resp.pid = p.pid as u32;
        resp.status = EnumOrUnknown::new(status);
        resp.stdin = p.stdio.stdin.clone();
        resp.stdout = p.stdio.stdout.clone();
        resp.stderr = p.stdio.stderr.clone();
        resp.terminal = p.stdio.terminal;
        if let Some((code, at)) = p.exit {
            resp.exit_status = code;
            resp.exited_at = Some(timestamp(at)).into();
        }
        resp.exec_id = req.exec_id;
        Ok(resp)
    }

    fn delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        if req.exec_id.is_empty() {
            return self.delete_init(&req.id);
        }
        let mut containers = self.0.lock();
        let c = containers
            .get_mut(&req.id)
            .ok_or_else(|| not_found(&req.id, ""))?;
        let p = c
            .execs
            .get(&req.exec_id)
            .ok_or_else(|| not_found(&req.id, &req.exec_id))?;
        if p.pid != 0 && p.exit.is_none() {
            return Err(rpc_error(
                Code::FAILED_PRECONDITION,
                format!("process {:?} is still running", req.exec_id),
            ));
        }
        let p = c.execs.remove(&req.exec_id).expect("checked above");
        let mut resp = DeleteResponse::new();
        resp.pid = p.pid as u32;
        if let Some((code, at)) = p.exit {
            resp.exit_status = code;
            resp.exited_at = Some(timestamp(at)).into();
        }
        Ok(resp)
    }

    fn pids(&self, req: PidsRequest) -> Result<PidsResponse> {
        let (runtime, exec_pids, stopped_init) = {
            let c = self.0.lock();
            let c = c.get(&req.id).ok_or_else(|| not_found(&req.id, ""))?;
            let execs: HashMap<u32, String> = c
                .execs
                .iter()
                .filter(|(_, p)| p.pid > 0)
                .map(|(k, p)| (p.pid as u32, k.clone()))
                .collect();
            let stopped = c.init.exit.is_some().then_some(c.init.pid as u32);
            (c.runtime.clone(), execs, stopped)
        };
        let listed = runtime
            .call(&["ps", "--format", "json", &req.id], None)
            .and_then(|out| {
                serde_json::from_slice::<Vec<u32>>(&out)
                    .map_err(|e| format!("runtime ps output: {e}"))
            });
        let mut pids = match (listed, stopped_init) {
            (Ok(pids), _) => pids,
            // A stopped container may have nothing left that the runtime can list.
            (Err(_), Some(_)) => Vec::new(),
            (Err(e), None) => return Err(unknown(e)),
        };
        // containerd 1.7+ reconnecting after a restart takes a shim whose task lists no
        // process for one leaked by an unfinished Create, and deletes the task: a stopped
        // task whose exit status nobody has collected yet keeps its init in the list.
        if let (true, Some(init)) = (pids.is_empty(), stopped_init) {
            pids.push(init);
        }
        let mut resp = PidsResponse::new();
        for pid in pids {
            let mut info = ProcessInfo::new();
            info.pid = pid;
            if let Some(exec_id) = exec_pids.get(&pid) {
                let mut d = ProcessDetails::new();
                d.exec_id = exec_id.clone();
                let mut any = Any::new();
                any.type_url = "containerd.runc.v1.ProcessDetails".into();
                any.value = d.write_to_bytes().map_err(|e| unknown(e.to_string()))?;
                info.info = Some(any).into();
            }
            resp.processes.push(info);
        }
        Ok(resp)
    }

    fn pause(&self, req: PauseRequest) -> Result<Empty> {
        let runtime = self.runtime_of(&req.id)?;
        runtime.call(&["pause", &req.id], None).map_err(unknown)?;
        if let Some(c) = self.0.lock().get_mut(&req.id) {
            c.paused = true;
        }
        let mut ev = TaskPaused::new();
        ev.container_id = req.id;
        self.0.publisher.publish(topic_of::<TaskPaused>(), &ev);
        Ok(Empty::new())
    }

    fn resume(&self, req: ResumeRequest) -> Result<Empty> {
        let runtime = self.runtime_of(&req.id)?;
        runtime.call(&["resume", &req.id], None).map_err(unknown)?;
        if let Some(c) = self.0.lock().get_mut(&req.id) {
            c.paused = false;
        }
        let mut ev = TaskResumed::new();
        ev.container_id = req.id;
        self.0.publisher.publish(topic_of::<TaskResumed>(), &ev);
        Ok(Empty::new())
    }

    fn checkpoint(&self, _req: CheckpointTaskRequest) -> Result<Empty> {
        Err(rpc_error(
            Code::UNIMPLEMENTED,
            "checkpoint is not supported by runrs yet (no CRIU support)",
        ))
    }

    fn kill(&self, req: KillRequest) -> Result<Empty> {
        let (runtime, pid, exited) = {
            let c = self.0.lock();
            let c = c.get(&req.id).ok_or_else(|| not_found(&req.id, ""))?;
            let p = c
                .proc(&req.exec_id)
                .ok_or_else(|| not_found(&req.id, &req.exec_id))?;
            (c.runtime.clone(), p.pid, p.exit.is_some())
        };
        if exited {
            return Err(rpc_error(
                Code::NOT_FOUND,
                format!("process {:?} already finished", req.id),
            ));
        }
        if req.exec_id.is_empty() {
            let sig = req.signal.to_string();
            let mut args = vec!["kill"];
            if req.all {
                args.push("--all");
            }
            args.extend([req.id.as_str(), sig.as_str()]);
            runtime.call(&args, None).map_err(unknown)?;
        } else {
            if pid <= 0 {
                return Err(rpc_error(
                    Code::FAILED_PRECONDITION,
                    format!("process {:?} is not started", req.exec_id),
                ));
            }
            // SAFETY: kill(2) on a pid this shim reaps (so not yet reused) and a signal number.
            if unsafe { libc::kill(pid, req.signal as i32) } != 0 {
                return Err(unknown(format!(
                    "kill {pid}: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        Ok(Empty::new())
    }

    fn exec(&self, req: ExecProcessRequest) -> Result<Empty> {
        let mut containers = self.0.lock();
        let c = containers
            .get_mut(&req.id)
            .ok_or_else(|| not_found(&req.id, ""))?;
        if c.execs.contains_key(&req.exec_id) {
            return Err(rpc_error(
                Code::ALREADY_EXISTS,
                format!("exec {:?} already exists", req.exec_id),
            ));
        }
        let mut p = Proc::new(StdioPaths {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            terminal: req.terminal,
        });
        p.spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        c.execs.insert(req.exec_id.clone(), p);
        let mut ev = TaskExecAdded::new();
        ev.container_id = req.id;
        ev.exec_id = req.exec_id;
        self.0.publisher.publish(topic_of::<TaskExecAdded>(), &ev);
        Ok(Empty::new())
    }

    fn resize_pty(&self, req: ResizePtyRequest) -> Result<Empty> {
        let io = {
            let c = self.0.lock();
            let c = c.get(&req.id).ok_or_else(|| not_found(&req.id, ""))?;
            c.proc(&req.exec_id)
                .ok_or_else(|| not_found(&req.id, &req.exec_id))?
                .io
                .clone()
        };
        if let Some(io) = io {
            io.resize(req.width, req.height).map_err(unknown)?;
        }
        Ok(Empty::new())
    }

    fn close_io(&self, req: CloseIORequest) -> Result<Empty> {
        let c = self.0.lock();
        let c = c.get(&req.id).ok_or_else(|| not_found(&req.id, ""))?;
        let p = c
            .proc(&req.exec_id)
            .ok_or_else(|| not_found(&req.id, &req.exec_id))?;
        if let (true, Some(io)) = (req.stdin, &p.io) {
            io.close_stdin();
        }
        Ok(Empty::new())
    }

    fn update(&self, req: UpdateTaskRequest) -> Result<Empty> {
        let runtime = self.runtime_of(&req.id)?;
        let resources = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_else(|| b"{}".to_vec());
        runtime
            .call(&["update", "--resources", "-", &req.id], Some(&resources))
            .map_err(unknown)?;
        Ok(Empty::new())
    }

    /// Wait without blocking: the reply once the process has exited and its output has
    /// been copied out (or OUTPUT_DRAIN after the exit was first seen), None until then.
    pub fn poll_wait(
        &self,
        req: &WaitRequest,
        exited: &mut Option<Instant>,
    ) -> Option<Result<WaitResponse>> {
        let containers = self.0.lock();
        let Some(c) = containers.get(&req.id) else {
            return Some(Err(not_found(&req.id, "")));
        };
        let Some(p) = c.proc(&req.exec_id) else {
            return Some(Err(not_found(&req.id, &req.exec_id)));
        };
        let (code, at) = p.exit?;
        let since = *exited.get_or_insert_with(Instant::now);
        let drained = p.io.as_ref().is_none_or(|io| io.output_done());
        if !drained && since.elapsed() < OUTPUT_DRAIN {
            return None;
        }
        let mut resp = WaitResponse::new();
        resp.exit_status = code;
        resp.exited_at = Some(timestamp(at)).into();
        Some(Ok(resp))
    }

    fn stats(&self, req: StatsRequest) -> Result<StatsResponse> {
        let pid = {
            let c = self.0.lock();
            c.get(&req.id)
                .ok_or_else(|| not_found(&req.id, ""))?
                .init
                .pid
        };
        let mut resp = StatsResponse::new();
        resp.stats = Some(cgroup::metrics(pid).map_err(unknown)?).into();
        Ok(resp)
    }

    fn connect(&self, req: ConnectRequest) -> Result<ConnectResponse> {
        let c = self.0.lock();
        let mut resp = ConnectResponse::new();
        resp.shim_pid = std::process::id();
        resp.task_pid = c.get(&req.id).map_or(0, |c| c.init.pid as u32);
        resp.version = env!("CARGO_PKG_VERSION").to_string();
        Ok(resp)
    }

    fn shutdown(&self, _req: ShutdownRequest) -> Result<Empty> {
        // The server exits once this reply is out.
        if self.0.lock().is_empty() {
            self.0.shutdown.store(true, Ordering::SeqCst);
        }
        Ok(Empty::new())
    }
}
