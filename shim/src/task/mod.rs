//! The Task service (`containerd.task.v2.Task`): `call` hands each RPC to its file
//! (create, start, exec, delete, wait, control, query), which maps it to the runtime
//! binary and the shim's own process table; they share `state` (the containers, the
//! shim's state) and `error`.

mod checkpoint;
mod control;
mod create;
mod delete;
pub mod error;
mod exec;
mod query;
mod start;
pub mod state;
mod wait;

use std::sync::Arc;
use std::time::Instant;

use runrs_proto::protobuf::Message;
use runrs_proto::shim::{WaitRequest, WaitResponse};
use runrs_proto::ttrpc::Code;

use error::{rpc_error, unknown, Result};
use state::Shim;

pub struct TaskService(pub Arc<Shim>);

/// The Task RPCs; `call` decodes a request and encodes the reply (Wait: `poll_wait`).
impl TaskService {
    /// Runs RPC `method` of `containerd.task.v2.Task` on an encoded request.
    pub fn call(&self, method: &str, payload: &[u8]) -> Result<Vec<u8>> {
        macro_rules! rpc {
            ($f:path) => {{
                let req = Message::parse_from_bytes(payload)
                    .map_err(|e| rpc_error(Code::INVALID_ARGUMENT, e))?;
                let resp = $f(&self.0, req)?;
                resp.write_to_bytes().map_err(|e| unknown(e.to_string()))
            }};
        }
        match method {
            "Create" => rpc!(create::create),
            "Start" => rpc!(start::start),
            "State" => rpc!(query::state),
            "Delete" => rpc!(delete::delete),
            "Pids" => rpc!(query::pids),
            "Pause" => rpc!(control::pause),
            "Resume" => rpc!(control::resume),
            "Checkpoint" => rpc!(checkpoint::checkpoint),
            "Kill" => rpc!(control::kill),
            "Exec" => rpc!(exec::exec),
            "ResizePty" => rpc!(control::resize_pty),
            "CloseIO" => rpc!(control::close_io),
            "Update" => rpc!(control::update),
            "Stats" => rpc!(query::stats),
            "Connect" => rpc!(query::connect),
            "Shutdown" => rpc!(control::shutdown),
            _ => Err(rpc_error(
                Code::UNIMPLEMENTED,
                format!("/containerd.task.v2.Task/{method} is not implemented"),
            )),
        }
    }

    /// Wait without blocking: the reply once the process has exited and its output has
    /// been copied out, None until then (see `wait`).
    pub fn poll_wait(
        &self,
        req: &WaitRequest,
        exited: &mut Option<Instant>,
    ) -> Option<Result<WaitResponse>> {
        wait::poll_wait(&self.0, req, exited)
    }
}
