//! Exec: a process added to a running container, started by Start (the runtime's `exec`).

use runrs_proto::empty::Empty;
use runrs_proto::shim::*;
use runrs_proto::task_events::*;
use runrs_proto::ttrpc::Code;

use crate::events::topic_of;
use crate::io::{finish_io, prepare_io, StdioPaths};
use crate::process::Proc;
use crate::runtime::read_pid;
use crate::sha256::sha256_hex;

use super::error::{not_found, rpc_error, unknown, Result};
use super::state::Shim;

pub(super) fn exec(shim: &Shim, req: ExecProcessRequest) -> Result<Empty> {
    let mut containers = shim.lock();
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
    shim.publisher.publish(topic_of::<TaskExecAdded>(), &ev);
    Ok(Empty::new())
}

pub(super) fn start_exec(shim: &Shim, id: &str, exec_id: &str) -> Result<StartResponse> {
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
        sha256_hex(exec_id.as_bytes()).get(..16).unwrap_or("x")
    );
    let process_file = bundle.join(format!("{tag}.json"));
    let pid_file = bundle.join(format!("{tag}.pid"));
    std::fs::write(&process_file, &spec)
        .map_err(|e| unknown(format!("writing {}: {e}", process_file.display())))?;
    let (socket, io, stdio) = prepare_io(&paths).map_err(unknown)?;
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
    let io = finish_io(socket, io, &paths).map_err(unknown)?;
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
