//! Start: the runtime's `start` for a container's init; an exec'd process in exec.rs.

use runrs_proto::shim::*;
use runrs_proto::task_events::*;

use crate::events::topic_of;

use super::error::{not_found, unknown, Result};
use super::exec::start_exec;
use super::state::Shim;

pub(super) fn start(shim: &Shim, req: StartRequest) -> Result<StartResponse> {
    if req.exec_id.is_empty() {
        start_init(shim, &req.id)
    } else {
        start_exec(shim, &req.id, &req.exec_id)
    }
}

fn start_init(shim: &Shim, id: &str) -> Result<StartResponse> {
    let restore_from = {
        let c = shim.lock();
        c.get(id)
            .ok_or_else(|| not_found(id, ""))?
            .restore_from
            .clone()
    };
    if let Some(image) = restore_from {
        return super::checkpoint::start_restored(shim, id, &image);
    }
    let runtime = shim.runtime_of(id)?;
    runtime.call(&["start", id], None).map_err(unknown)?;
    crate::fault::at("start: runtime started");
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
