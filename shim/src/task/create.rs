//! Create: the container's rootfs mounted, the runtime's `create`, its init in the table.

use std::collections::HashMap;
use std::path::PathBuf;

use runrs_proto::shim::*;
use runrs_proto::task_events::*;
use runrs_proto::ttrpc::{self, Code};

use crate::events::topic_of;
use crate::io::{finish_io, prepare_io, StdioPaths};
use crate::log::log;
use crate::process::Proc;
use crate::rootfs;
use crate::runtime::{read_pid, Runtime, RuntimeConfig};

use super::error::{rpc_error, unknown, Result};
use super::state::{Container, Shim};

pub(super) fn create(shim: &Shim, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
    if !req.checkpoint.is_empty() {
        return Err(rpc_error(
            Code::UNIMPLEMENTED,
            "restore from checkpoint is not supported by runrs yet",
        ));
    }
    do_create(shim, req)
}

fn do_create(shim: &Shim, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
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
    let (socket, io, stdio) = prepare_io(&paths).map_err(|e| cleanup(unknown(e)))?;
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
    let io = finish_io(socket, io, &paths).map_err(|e| cleanup(unknown(e)))?;
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
