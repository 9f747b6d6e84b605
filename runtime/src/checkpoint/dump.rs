//! `runrs checkpoint`: the container's processes dumped by CRIU into the image directory,
//! then (unless `--leave-running` or `--pre-dump`) the container destroyed, as runc does.
//! Unlike runc 1.1, a dump that fails leaves the container as it was (runc destroys it).

use super::rpc::{CriuFeatures, CriuOpts, CriuReq, CriuReqType as ReqType};
use super::swrk::{self, Notify, Swrk};
use super::{base_opts, config_file, mounts, CriuOptions, Dirs, DESCRIPTORS};
use crate::state::{self, Container, Status};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// runc's first checks, before the image directory is made: the container exists and
/// runs (or is paused).
pub fn check_checkpointable(root: &Path, id: &str) -> Result<Container> {
    let c = state::load(root, id)?;
    let status = c.status();
    if matches!(status, Status::Created | Status::Stopped) {
        bail!(
            "Container cannot be checkpointed in {} state",
            status.as_str()
        );
    }
    Ok(c)
}

/// `runrs checkpoint ID`.
pub fn checkpoint(root: &Path, id: &str, o: &CriuOptions) -> Result<()> {
    let c = check_checkpointable(root, id)?;
    let _lock = state::lock(&c.dir)?;
    swrk::criu_path()?;
    let spec = c.spec()?;
    let (req, dirs) = request(&c, &spec, o)?;
    if o.pre_dump {
        check_feature(o, Feature::MemTrack)?;
    } else {
        write_descriptors(&o.image_path, c.saved.pid)?;
    }
    let mut status_fd = None;
    if o.lazy_pages {
        check_feature(o, Feature::LazyPages)?;
        status_fd = status_fd_of(o.status_fd)?;
    }
    crate::logging::mark("checkpoint: dump");
    let swrk = Swrk {
        log: dirs.log.clone(),
        extra_fds: Vec::new(),
        inherit_stdio: false,
        started: None,
    };
    swrk::run(req, swrk, &mut |n| on_notify(n, &mut status_fd))?;
    drop(dirs);
    if !(o.leave_running || o.pre_dump) {
        crate::container::destroy(&c, true)?;
    }
    Ok(())
}

/// The DUMP (or PRE_DUMP) request for the container, and the directories it names.
fn request(
    c: &Container,
    spec: &oci_spec::runtime::Spec,
    o: &CriuOptions,
) -> Result<(CriuReq, Dirs)> {
    let log = if o.pre_dump {
        "pre-dump.log"
    } else {
        "dump.log"
    };
    let (mut opts, dirs) = base_opts(o, log)?;
    opts.set_root(c.saved.rootfs.to_string_lossy().into_owned());
    opts.set_pid(c.saved.pid);
    opts.set_leave_running(o.leave_running);
    config_file(&mut opts, c.saved.annotations.get("org.criu.config"));
    mounts::dump_external_namespaces(&mut opts, spec)?;
    freeze_cgroup(&mut opts, c);
    if let Some(parent) = &o.parent_path {
        opts.set_parent_img(parent.clone());
        opts.set_track_mem(true);
    }
    let kind = if o.pre_dump {
        ReqType::PRE_DUMP
    } else {
        // No need to describe all this for a pre-dump (memory only).
        mounts::dump_ext_mounts(&mut opts, spec, c.saved.pid);
        // Only the hierarchies' names matter here, the same as in our own view.
        let view = crate::cgroups::MountView::of_self()?;
        mounts::dump_cgroup_binds(&mut opts, spec, &view.v1);
        ReqType::DUMP
    };
    let mut req = CriuReq::new();
    req.set_type(kind);
    req.opts = Some(opts).into();
    Ok((req, dirs))
}

/// CRIU freezes the container through its freezer cgroup (v1 `freezer`, or the v2
/// directory, CRIU 3.14+) instead of ptrace-stopping each task.
fn freeze_cgroup(opts: &mut CriuOpts, c: &Container) {
    let paths = &c.saved.cgroup_paths;
    let dir = if crate::cgroups::unified_mode() {
        paths.first()
    } else {
        paths
            .iter()
            .find(|p| p.components().any(|x| x.as_os_str() == "freezer"))
    };
    if let Some(d) = dir {
        opts.set_freeze_cgroup(d.to_string_lossy().into_owned());
    }
}

/// What a dump may need of CRIU beyond a plain dump.
#[derive(Clone, Copy)]
enum Feature {
    /// Soft-dirty bits, for `--pre-dump`.
    MemTrack,
    /// userfaultfd, for `--lazy-pages`.
    LazyPages,
}

/// Asked of CRIU before the dump, as runc does.
fn check_feature(o: &CriuOptions, feature: Feature) -> Result<()> {
    // The log of the dump the feature is for.
    let log = match feature {
        Feature::MemTrack => "pre-dump.log",
        Feature::LazyPages => "dump.log",
    };
    let (opts, dirs) = base_opts(o, log)?;
    let mut req = CriuReq::new();
    req.set_type(ReqType::FEATURE_CHECK);
    req.opts = Some(opts).into();
    let mut want = CriuFeatures::new();
    match feature {
        Feature::MemTrack => want.set_mem_track(true),
        Feature::LazyPages => want.set_lazy_pages(true),
    }
    req.features = Some(want).into();
    let swrk = Swrk {
        log: dirs.log.clone(),
        extra_fds: Vec::new(),
        inherit_stdio: false,
        started: None,
    };
    let resp = swrk::run(req, swrk, &mut |_| Ok(())).context("CRIU feature check failed")?;
    let got = resp.features.as_ref();
    match feature {
        Feature::MemTrack if !got.is_some_and(|f| f.mem_track()) => {
            bail!("CRIU is missing features: memory tracking (needed by --pre-dump)")
        }
        Feature::LazyPages if !got.is_some_and(|f| f.lazy_pages()) => {
            bail!("CRIU is missing features: lazy pages (userfaultfd, needed by --lazy-pages)")
        }
        _ => Ok(()),
    }
}

/// `--status-fd N`, checked as runc checks it: an open descriptor we can write to.
fn status_fd_of(fd: i32) -> Result<Option<std::fs::File>> {
    if fd == -1 {
        return Ok(None);
    }
    // SAFETY: F_GETFL only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags == -1 {
        let e = crate::hooks::go_errno_text(nix::errno::Errno::last());
        bail!("invalid --status-fd argument {fd}: {e}");
    }
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        bail!("invalid --status-fd argument {fd}: not writable");
    }
    // SAFETY: the descriptor was given to us to write to and close; nothing else owns it.
    Ok(Some(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }))
}

/// `descriptors.json`: where the init's stdio pointed at the dump (`pipe:[123]`,
/// `/dev/null`, ...), so that a restore can hand it new pipes for the old ones.
fn write_descriptors(image: &Path, pid: i32) -> Result<()> {
    let fds: Vec<String> = (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let path = image.join(DESCRIPTORS);
    std::fs::write(&path, serde_json::to_vec(&fds)?)
        .with_context(|| format!("write {}", path.display()))
}

/// `status-ready` (a lazy dump's page server listens): a NUL byte on `--status-fd`, which is
/// then closed, as runc does. The rest only needs an answer (runc's network lock is for
/// networks it made, and runrs makes none).
fn on_notify(n: Notify, status_fd: &mut Option<std::fs::File>) -> Result<()> {
    crate::logging::debug(&format!("checkpoint: criu at {}", n.script));
    if n.script == "status-ready" {
        if let Some(mut f) = status_fd.take() {
            use std::io::Write;
            if let Err(e) = f.write_all(&[0]) {
                crate::logging::warn(&format!("can't write \\0 to status fd: {e}"));
            }
        }
    }
    Ok(())
}
