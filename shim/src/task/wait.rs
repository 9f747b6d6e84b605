//! Wait, answered by the server once it may: the process has exited and its output is out.

use std::time::{Duration, Instant};

use runrs_proto::shim::*;

use crate::events::timestamp;

use super::error::{not_found, Result};
use super::state::Shim;

/// How long Wait lets output copying finish after an exit.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// Wait without blocking: the reply once the process has exited and its output has
/// been copied out (or OUTPUT_DRAIN after the exit was first seen), None until then.
pub(super) fn poll_wait(
    shim: &Shim,
    req: &WaitRequest,
    exited: &mut Option<Instant>,
) -> Option<Result<WaitResponse>> {
    let containers = shim.lock();
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
