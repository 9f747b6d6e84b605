//! The RPCs that only read: a process's state, a container's pids and stats, the shim.

use std::collections::HashMap;

use runrs_proto::protobuf::well_known_types::any::Any;
use runrs_proto::protobuf::{EnumOrUnknown, Message};
use runrs_proto::runc_options::ProcessDetails;
use runrs_proto::shim::*;
use runrs_proto::task::{ProcessInfo, Status};

use crate::cgroup;
use crate::events::timestamp;

use super::error::{not_found, unknown, Result};
use super::state::Shim;

pub(super) fn state(shim: &Shim, req: StateRequest) -> Result<StateResponse> {
    let containers = shim.lock();
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

pub(super) fn pids(shim: &Shim, req: PidsRequest) -> Result<PidsResponse> {
    let (runtime, exec_pids, stopped_init) = {
        let c = shim.lock();
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
            serde_json::from_slice::<Vec<u32>>(&out).map_err(|e| format!("runtime ps output: {e}"))
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

pub(super) fn stats(shim: &Shim, req: StatsRequest) -> Result<StatsResponse> {
    let pid = {
        let c = shim.lock();
        c.get(&req.id)
            .ok_or_else(|| not_found(&req.id, ""))?
            .init
            .pid
    };
    let mut resp = StatsResponse::new();
    resp.stats = Some(cgroup::metrics(pid).map_err(unknown)?).into();
    Ok(resp)
}

pub(super) fn connect(shim: &Shim, req: ConnectRequest) -> Result<ConnectResponse> {
    let c = shim.lock();
    let mut resp = ConnectResponse::new();
    resp.shim_pid = std::process::id();
    resp.task_pid = c.get(&req.id).map_or(0, |c| c.init.pid as u32);
    resp.version = env!("CARGO_PKG_VERSION").to_string();
    Ok(resp)
}
