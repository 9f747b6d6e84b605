//! The RPCs that act on a task or process: pause, resume, signals, its terminal and
//! stdin, resources, and the shim's own shutdown.

use std::sync::atomic::Ordering;

use runrs_proto::empty::Empty;
use runrs_proto::shim::*;
use runrs_proto::task_events::*;
use runrs_proto::ttrpc::Code;

use crate::events::topic_of;

use super::error::{not_found, rpc_error, unknown, Result};
use super::state::Shim;

pub(super) fn pause(shim: &Shim, req: PauseRequest) -> Result<Empty> {
    let runtime = shim.runtime_of(&req.id)?;
    runtime.call(&["pause", &req.id], None).map_err(unknown)?;
    if let Some(c) = shim.lock().get_mut(&req.id) {
        c.paused = true;
    }
    let mut ev = TaskPaused::new();
    ev.container_id = req.id;
    shim.publisher.publish(topic_of::<TaskPaused>(), &ev);
    Ok(Empty::new())
}

pub(super) fn resume(shim: &Shim, req: ResumeRequest) -> Result<Empty> {
    let runtime = shim.runtime_of(&req.id)?;
    runtime.call(&["resume", &req.id], None).map_err(unknown)?;
    if let Some(c) = shim.lock().get_mut(&req.id) {
        c.paused = false;
    }
    let mut ev = TaskResumed::new();
    ev.container_id = req.id;
    shim.publisher.publish(topic_of::<TaskResumed>(), &ev);
    Ok(Empty::new())
}

pub(super) fn kill(shim: &Shim, req: KillRequest) -> Result<Empty> {
    let (runtime, pid, exited) = {
        let c = shim.lock();
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

pub(super) fn resize_pty(shim: &Shim, req: ResizePtyRequest) -> Result<Empty> {
    let io = {
        let c = shim.lock();
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

pub(super) fn close_io(shim: &Shim, req: CloseIORequest) -> Result<Empty> {
    let c = shim.lock();
    let c = c.get(&req.id).ok_or_else(|| not_found(&req.id, ""))?;
    let p = c
        .proc(&req.exec_id)
        .ok_or_else(|| not_found(&req.id, &req.exec_id))?;
    if let (true, Some(io)) = (req.stdin, &p.io) {
        io.close_stdin();
    }
    Ok(Empty::new())
}

pub(super) fn update(shim: &Shim, req: UpdateTaskRequest) -> Result<Empty> {
    let runtime = shim.runtime_of(&req.id)?;
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

pub(super) fn shutdown(shim: &Shim, _req: ShutdownRequest) -> Result<Empty> {
    // The server exits once this reply is out.
    if shim.lock().is_empty() {
        shim.shutdown.store(true, Ordering::SeqCst);
    }
    Ok(Empty::new())
}
