//! Create: the container's rootfs mounted, the runtime's `create`, its init in the table.

use std::path::{Path, PathBuf};

use runrs_proto::mount::Mount;
use runrs_proto::protobuf::well_known_types::any::Any;
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

/// Create, in order: the runtime's config, the rootfs, the runtime's `create` with the
/// init's stdio (a failure there unmounts the rootfs again), the init in the table, then
/// TaskCreate.
pub(super) fn create(shim: &Shim, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
    if shim.lock().contains_key(&req.id) {
        return Err(rpc_error(
            Code::ALREADY_EXISTS,
            format!("container {:?} already exists", req.id),
        ));
    }
    if !req.parent_checkpoint.is_empty() {
        // A restore reads a dump's parent images through the `parent` link CRIU left in
        // the image directory; runc's restore has no --parent-path (runc's shim passes one
        // and fails at Start). Refused here, before anything is made.
        return Err(rpc_error(
            Code::INVALID_ARGUMENT,
            "parent_checkpoint is not supported: a restore finds the parent images through \
             the checkpoint's own `parent` link",
        ));
    }
    let bundle = PathBuf::from(&req.bundle);
    let runtime = runtime_for(shim, req.options.as_ref(), &bundle)?;
    let rootfs = bundle.join("rootfs");
    mount_rootfs(&req.rootfs, &rootfs)?;
    let cleanup = |e: ttrpc::Error| {
        if !req.rootfs.is_empty() {
            let _ = rootfs::unmount_all(&rootfs);
        }
        e
    };
    let paths = init_stdio(&req);
    if !req.checkpoint.is_empty() {
        // runc's shim: nothing runs until Start restores from the images.
        let mut init = Proc::new(paths.clone());
        init.mark = shim.reaper.mark();
        let mut c = Container::new(
            req.id.clone(),
            bundle,
            runtime,
            !req.rootfs.is_empty(),
            init,
        );
        c.restore_from = Some(req.checkpoint.clone());
        shim.lock().insert(req.id.clone(), c);
        publish_create(shim, &req, paths, 0);
        return Ok(CreateTaskResponse::new());
    }
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
    crate::fault::at("create: runtime created");
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
    let rootfs_mounted = !req.rootfs.is_empty();
    let container = Container::new(req.id.clone(), bundle, runtime, rootfs_mounted, init);
    containers.insert(req.id.clone(), container);
    publish_create(shim, &req, paths, pid);
    let mut resp = CreateTaskResponse::new();
    resp.pid = pid as u32;
    Ok(resp)
}

/// The runtime binary, root and flags from Create's options (else the defaults; an option
/// the shim cannot carry out is an INVALID_ARGUMENT naming it) and the bundle's cgroupsPath,
/// saved in the bundle for `shim delete`.
fn runtime_for(shim: &Shim, options: Option<&Any>, bundle: &Path) -> Result<Runtime> {
    let mut config = RuntimeConfig::defaults(&shim.namespace);
    if let Some(opts) = options {
        config
            .apply_options(opts)
            .map_err(|e| rpc_error(Code::INVALID_ARGUMENT, e))?;
    }
    config.follow_cgroups_path(cgroups_path(bundle).as_deref());
    config.save(bundle).map_err(unknown)?;
    Ok(Runtime::new(config, bundle, Some(shim.reaper.clone())))
}

/// `linux.cgroupsPath` of the bundle's config.json, if it has one. Only that field is kept:
/// the rest (megabytes of annotations, say) is skipped, never built up as a tree.
fn cgroups_path(bundle: &Path) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Config {
        linux: Option<Linux>,
    }
    #[derive(serde::Deserialize)]
    struct Linux {
        #[serde(rename = "cgroupsPath")]
        cgroups_path: Option<String>,
    }
    let text = std::fs::read(bundle.join("config.json")).ok()?;
    let config: Config = serde_json::from_slice(&text).ok()?;
    config.linux?.cgroups_path
}

/// Mounts Create's rootfs mounts onto `<bundle>/rootfs` (none: the bundle has its own).
fn mount_rootfs(mounts: &[Mount], rootfs: &Path) -> Result<()> {
    if !mounts.is_empty() {
        std::fs::create_dir_all(rootfs)
            .map_err(|e| unknown(format!("creating {}: {e}", rootfs.display())))?;
        rootfs::mount_rootfs(mounts, rootfs).map_err(unknown)?;
    }
    Ok(())
}

fn init_stdio(req: &CreateTaskRequest) -> StdioPaths {
    StdioPaths {
        stdin: req.stdin.clone(),
        stdout: req.stdout.clone(),
        stderr: req.stderr.clone(),
        terminal: req.terminal,
    }
}

fn publish_create(shim: &Shim, req: &CreateTaskRequest, paths: StdioPaths, pid: i32) {
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
}

#[cfg(test)]
mod tests {
    use super::cgroups_path;

    #[test]
    fn cgroups_path_is_read_from_the_bundles_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        let cases = [
            (
                r#"{"annotations":{"a":"b"},"linux":{"cgroupsPath":"system.slice:docker:x","namespaces":[]}}"#,
                Some("system.slice:docker:x"),
            ),
            (r#"{"linux":{"namespaces":[{"type":"pid"}]}}"#, None),
            (r#"{"process":{"args":["sh"]}}"#, None),
            ("not json", None),
        ];
        for (text, want) in cases {
            std::fs::write(&config, text).unwrap();
            assert_eq!(cgroups_path(dir.path()).as_deref(), want, "{text}");
        }
    }
}
