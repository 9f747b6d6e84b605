//! The Task service's errors, as ttrpc statuses.

use runrs_proto::ttrpc::{self, Code};

pub type Result<T> = ttrpc::Result<T>;

/// A ttrpc error with a gRPC status code containerd maps to its errdefs.
pub fn rpc_error(code: ttrpc::Code, msg: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
}

pub fn unknown(e: String) -> ttrpc::Error {
    rpc_error(Code::UNKNOWN, e)
}

pub fn not_found(id: &str, exec_id: &str) -> ttrpc::Error {
    if exec_id.is_empty() {
        rpc_error(
            Code::NOT_FOUND,
            format!("container {id:?} not found in this shim"),
        )
    } else {
        rpc_error(
            Code::NOT_FOUND,
            format!("process {exec_id:?} of container {id:?} not found"),
        )
    }
}
