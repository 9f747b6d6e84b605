//! The shim's ttrpc side: bytes from a client through the connection's frame reader (the
//! shim's own `server/conn.rs`, compiled in here: the shim is a binary), each request frame
//! as a `ttrpc.Request`, and its payload through every Task request decoder, with the
//! options `Any` of Create as the shim reads it.
#![no_main]

use std::io::Write;
use std::os::unix::net::UnixStream;

use libfuzzer_sys::fuzz_target;
use runrs_proto::protobuf::Message;
use runrs_proto::ttrpc::Request;
use runrs_proto::{runc_options, runtime_options, shim};

/// What `conn.rs` logs through (`crate::log::log`).
mod log {
    pub fn log(_: &str) {}
}

#[path = "../../shim/src/server/conn.rs"]
#[allow(dead_code)]
mod conn;

fn decode<M: Message>(payload: &[u8]) {
    let _ = M::parse_from_bytes(payload);
}

fn task_request(method: &str, payload: &[u8]) {
    match method {
        "Create" => {
            if let Ok(req) = shim::CreateTaskRequest::parse_from_bytes(payload) {
                if let Some(any) = req.options.as_ref() {
                    decode::<runc_options::Options>(&any.value);
                    decode::<runtime_options::Options>(&any.value);
                }
            }
        }
        "Start" => decode::<shim::StartRequest>(payload),
        "State" => decode::<shim::StateRequest>(payload),
        "Delete" => decode::<shim::DeleteRequest>(payload),
        "Pids" => decode::<shim::PidsRequest>(payload),
        "Pause" => decode::<shim::PauseRequest>(payload),
        "Resume" => decode::<shim::ResumeRequest>(payload),
        "Checkpoint" => decode::<shim::CheckpointTaskRequest>(payload),
        "Kill" => decode::<shim::KillRequest>(payload),
        "Exec" => {
            if let Ok(req) = shim::ExecProcessRequest::parse_from_bytes(payload) {
                if let Some(any) = req.spec.as_ref() {
                    let _ = serde_json::from_slice::<oci_spec::runtime::Process>(&any.value);
                }
            }
        }
        "ResizePty" => decode::<shim::ResizePtyRequest>(payload),
        "CloseIO" => decode::<shim::CloseIORequest>(payload),
        "Update" => {
            if let Ok(req) = shim::UpdateTaskRequest::parse_from_bytes(payload) {
                if let Some(any) = req.resources.as_ref() {
                    let _ = serde_json::from_slice::<oci_spec::runtime::LinuxResources>(&any.value);
                }
            }
        }
        "Wait" => decode::<shim::WaitRequest>(payload),
        "Stats" => decode::<shim::StatsRequest>(payload),
        "Connect" => decode::<shim::ConnectRequest>(payload),
        "Shutdown" => decode::<shim::ShutdownRequest>(payload),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // A socket buffer holds this much without a reader.
    if data.len() > 64 << 10 {
        return;
    }
    let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
    ours.set_nonblocking(true).expect("nonblocking");
    theirs.write_all(data).expect("write to the socket");
    drop(theirs);
    let mut c = conn::Conn::new(ours);
    c.read_available();
    while let Some(frame) = c.next_frame() {
        if frame.kind != conn::TYPE_REQUEST {
            continue;
        }
        let Ok(req) = Request::parse_from_bytes(&frame.payload) else {
            continue;
        };
        task_request(&req.method, &req.payload);
        // A payload sent to another method still goes through every decoder.
        for method in ["Create", "Exec", "Update", "Kill", "Checkpoint"] {
            task_request(method, &req.payload);
        }
    }
    c.release_input();
});
