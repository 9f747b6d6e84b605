//! Delete: a stopped exec'd process, or the container with its runtime state and rootfs.

use std::time::Duration;

use runrs_proto::shim::*;
use runrs_proto::task_events::*;
use runrs_proto::ttrpc::Code;

use crate::events::{timestamp, topic_of};
use crate::log::log;
use crate::rootfs;

use super::error::{not_found, rpc_error, unknown, Result};
use super::state::Shim;

pub(super) fn delete(shim: &Shim, req: DeleteRequest) -> Result<DeleteResponse> {
    if req.exec_id.is_empty() {
        return delete_init(shim, &req.id);
    }
    let mut containers = shim.lock();
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

fn delete_init(shim: &Shim, id: &str) -> Result<DeleteResponse> {
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
    crate::fault::at("delete: before runtime delete");
    if let Err(e) = runtime.call(&["delete", "--force", id], None) {
        log(&format!("delete {id}: {e}"));
    }
    crate::fault::at("delete: runtime deleted");
    // A created-but-never-started init was just killed by delete --force.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut containers = shim.lock();
    // (An init created from a checkpoint and never started has no process: pid 0.)
    while containers
        .get(id)
        .is_some_and(|c| c.init.exit.is_none() && c.init.pid != 0)
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
