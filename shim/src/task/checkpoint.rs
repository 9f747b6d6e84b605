//! Checkpoint and restore through the runtime's `checkpoint` and `restore` (CRIU), as
//! containerd's runc shim does them: `Checkpoint` dumps the init's container into the path
//! containerd gives (the container exits with `exit`, else it keeps running); a `Create`
//! with `checkpoint` set only records the image path, and `Start` restores from it.

use std::path::{Path, PathBuf};

use runrs_proto::empty::Empty;
use runrs_proto::protobuf::Message;
use runrs_proto::runc_options::CheckpointOptions;
use runrs_proto::shim::*;
use runrs_proto::task_events::*;

use crate::events::topic_of;
use crate::io::{finish_io, prepare_io};
use crate::runtime::read_pid;

use super::error::{not_found, unknown, Result};
use super::state::Shim;

/// `containerd.runc.v1.CheckpointOptions` from the request, if it carries them.
fn options(req: &CheckpointTaskRequest) -> Result<CheckpointOptions> {
    match req.options.as_ref() {
        Some(any) if any.type_url.ends_with("CheckpointOptions") => {
            CheckpointOptions::parse_from_bytes(&any.value)
                .map_err(|e| unknown(format!("bad containerd.runc.v1.CheckpointOptions: {e}")))
        }
        _ => Ok(CheckpointOptions::new()),
    }
}

/// The runtime's `checkpoint` flags for the options (runc's shim's mapping).
fn checkpoint_args(o: &CheckpointOptions, image: &str, work: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "checkpoint".into(),
        "--image-path".into(),
        image.into(),
        "--work-path".into(),
        work.to_string_lossy().into_owned(),
    ];
    let flags = [
        (!o.exit, "--leave-running"),
        (o.open_tcp, "--tcp-established"),
        (o.external_unix_sockets, "--ext-unix-sk"),
        (o.terminal, "--shell-job"),
        (o.file_locks, "--file-locks"),
    ];
    args.extend(
        flags
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| f.to_string()),
    );
    for ns in &o.empty_namespaces {
        args.extend(["--empty-ns".into(), ns.clone()]);
    }
    if !o.cgroups_mode.is_empty() {
        args.extend(["--manage-cgroups-mode".into(), o.cgroups_mode.clone()]);
    }
    if !o.parent_path.is_empty() {
        args.extend(["--parent-path".into(), o.parent_path.clone()]);
    }
    args
}

pub(super) fn checkpoint(shim: &Shim, req: CheckpointTaskRequest) -> Result<Empty> {
    let o = options(&req)?;
    let (runtime, bundle) = {
        let c = shim.lock();
        let c = c.get(&req.id).ok_or_else(|| not_found(&req.id, ""))?;
        (c.runtime.clone(), c.bundle.clone())
    };
    let image = if o.image_path.is_empty() {
        req.path.clone()
    } else {
        o.image_path.clone()
    };
    // runc's shim keeps CRIU's work dir only when one is asked for.
    let (work, keep_work) = match o.work_path.as_str() {
        "" => (bundle.join("criu-work"), false),
        w => (PathBuf::from(w), true),
    };
    let mut args = checkpoint_args(&o, &image, &work);
    args.push(req.id.clone());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = runtime.call(&argv, None);
    if let Err(e) = result {
        // containerd's runc shim leaves CRIU's log beside the bundle for the error to name.
        let dump_log = bundle.join("criu-dump.log");
        let _ = std::fs::copy(work.join("dump.log"), &dump_log);
        if !keep_work {
            let _ = std::fs::remove_dir_all(&work);
        }
        return Err(unknown(format!("{e} path= {}", dump_log.display())));
    }
    if !keep_work {
        let _ = std::fs::remove_dir_all(&work);
    }
    let mut ev = TaskCheckpointed::new();
    ev.container_id = req.id;
    shim.publisher.publish(topic_of::<TaskCheckpointed>(), &ev);
    Ok(Empty::new())
}

/// `Start` of an init created from a checkpoint: `restore --detach` with the init's stdio,
/// its pid from `--pid-file`.
pub(super) fn start_restored(shim: &Shim, id: &str, image: &str) -> Result<StartResponse> {
    let (runtime, bundle, paths) = {
        let c = shim.lock();
        let c = c.get(id).ok_or_else(|| not_found(id, ""))?;
        (c.runtime.clone(), c.bundle.clone(), c.init.stdio.clone())
    };
    let pid_file = bundle.join("init.pid");
    let (socket, io, stdio) = prepare_io(&paths).map_err(unknown)?;
    let mark = shim.reaper.mark();
    let work = bundle.join("criu-work");
    runtime
        .restore(
            id,
            &bundle,
            Path::new(image),
            &work,
            &pid_file,
            socket.as_ref().map(|s| s.path.as_path()),
            stdio,
        )
        .map_err(unknown)?;
    let io = finish_io(socket, io, &paths).map_err(unknown)?;
    let pid = read_pid(&pid_file).map_err(unknown)?;
    let mut containers = shim.lock();
    let c = containers.get_mut(id).ok_or_else(|| not_found(id, ""))?;
    c.restore_from = None;
    c.init.pid = pid;
    c.init.mark = mark;
    c.init.io = Some(io);
    c.init.started = true;
    if let Err(e) = shim.oom.watch(id, pid) {
        crate::log::log(&format!("no OOM events for {id}: {e}"));
    }
    let mut ev = TaskStart::new();
    ev.container_id = id.to_string();
    ev.pid = pid as u32;
    shim.publisher.publish(topic_of::<TaskStart>(), &ev);
    if let Some(e) = shim.reaper.take(pid, mark) {
        shim.record_exit(id, "", &mut c.init, e);
    }
    let mut resp = StartResponse::new();
    resp.pid = pid as u32;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_map_to_runc_flags() {
        let mut o = CheckpointOptions::new();
        o.open_tcp = true;
        o.terminal = true;
        o.empty_namespaces = vec!["network".into()];
        o.cgroups_mode = "soft".into();
        o.parent_path = "../pre".into();
        let args = checkpoint_args(&o, "/img", Path::new("/w"));
        let want = "checkpoint --image-path /img --work-path /w --leave-running \
                    --tcp-established --shell-job --empty-ns network --manage-cgroups-mode soft \
                    --parent-path ../pre";
        assert_eq!(args.join(" "), want);
        o.exit = true;
        assert!(!checkpoint_args(&o, "/img", Path::new("/w")).contains(&"--leave-running".into()));
    }
}
