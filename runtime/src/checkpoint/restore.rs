//! `runrs restore`: a new container made from a bundle and a checkpoint's images. The steps,
//! as runc takes them: the images checked → the state directory → the cgroups (made, with
//! `linux.resources`, CRIU moved into them so that the restored tasks land there) → the
//! rootfs bind-mounted where CRIU wants its root → RESTORE over `criu swrk` (the restored
//! init becomes our child: `rst_sibling`) → `state.json` at `post-restore` → wait in the
//! foreground as `run` does, or return at once with `--detach`. [`RestoreGuard`] undoes
//! whatever was made should a step fail.

use super::rpc::{CgroupRoot, CriuOpts, CriuReq, CriuReqType as ReqType, InheritFd};
use super::swrk::{self, Notify, Swrk};
use super::{base_opts, config_file, mounts, CriuOptions, Dirs, DESCRIPTORS};
use crate::cgroups;
use crate::spec::{self, Bundle};
use crate::state::{self, Container, Saved, Status};
use anyhow::{bail, Context, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// `runrs restore`'s own flags (the CRIU ones are in [`CriuOptions`]).
#[derive(Debug, Default)]
pub struct RestoreFlags {
    pub bundle: PathBuf,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_subreaper: bool,
    /// The global `--systemd-cgroup`: the cgroup is a transient scope.
    pub systemd_cgroup: bool,
}

/// `runrs restore ID`: the container's exit code in the foreground, 0 detached.
pub fn restore(root: &Path, id: &str, f: &RestoreFlags, o: &CriuOptions) -> Result<i32> {
    spec::validate_id(id)?;
    let bundle = spec::load(&f.bundle)?;
    let descriptors = read_images(&o.image_path)?;
    crate::lsm::check_restore_profile(o.lsm_profile.as_deref(), bundle.spec.process().as_ref())?;
    swrk::criu_path()?;
    let console = match (&f.console_socket, is_terminal(&bundle)) {
        (Some(p), true) => Some(crate::console::connect_socket(p)?),
        (Some(_), false) => {
            bail!("cannot use console socket if runc will not detach or allocate tty")
        }
        (None, true) if f.detach => {
            bail!("cannot allocate tty if runc will detach without setting console socket")
        }
        _ => None,
    };
    let cgroups = super::cgroup::Plan::new(&bundle.spec, id, f.systemd_cgroup)?;
    std::env::set_current_dir(&bundle.path)
        .with_context(|| format!("chdir to bundle {}", bundle.path.display()))?;
    // The request, and whether this CRIU can carry it out, before anything is made.
    let prepared = request(&bundle, &descriptors, o, criu_root(root, id)?, &cgroups)?;
    swrk::refuse_too_old(&prepared.req)?;
    let mut guard = RestoreGuard::new(state::create_dir(root, id)?);
    let saved = initial_state(id, &bundle, &cgroups)?;
    let mut restored = Restored {
        saved,
        dir: guard.dir.clone(),
        pid_file: f.pid_file.clone(),
        console,
        master: None,
        spec: &bundle.spec,
    };
    // What a failure undoes (delete --force too, from the pending state): all of them.
    state::write_pending(&guard.dir, &restored.saved)?;
    guard.cgroups = cgroups.dirs().to_vec();
    guard.unit = cgroups.unit();
    guard.rdt = restored.saved.intel_rdt.clone();
    cgroups.make(&mut Vec::new())?;
    let pid = run_criu(&bundle, prepared, &cgroups, &mut restored, &mut guard)?;
    let dir = guard.disarm();
    let c = Container {
        dir,
        saved: restored.saved,
    };
    if f.detach {
        return Ok(0);
    }
    wait_foreground(&c, pid, restored.master)
}

fn is_terminal(b: &Bundle) -> bool {
    b.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true)
}

/// The image directory must hold a checkpoint: CRIU's `inventory.img` and runc's
/// `descriptors.json` (read here, before anything is made).
fn read_images(image: &Path) -> Result<Vec<String>> {
    let meta = std::fs::metadata(image).with_context(|| format!("open {}", image.display()))?;
    if !meta.is_dir() {
        bail!("open {}: not a directory", image.display());
    }
    if !image.join("inventory.img").exists() {
        bail!(
            "{} holds no checkpoint: no CRIU inventory.img in it",
            image.display()
        );
    }
    let path = image.join(DESCRIPTORS);
    let data = std::fs::read(&path).with_context(|| format!("open {}", path.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("{} is corrupt", path.display()))
}

fn initial_state(id: &str, bundle: &Bundle, cgroups: &super::cgroup::Plan) -> Result<Saved> {
    let config = serde_json::value::to_raw_value(&bundle.config)?;
    let annotations = bundle.spec.annotations().clone().unwrap_or_default();
    Ok(Saved {
        id: id.to_string(),
        pid: 0,
        start_time: 0,
        bundle: bundle.path.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::logging::rfc3339_now(true),
        annotations: annotations.into_iter().collect(),
        owner: String::new(),
        cgroup_paths: cgroups.dirs().to_vec(),
        systemd_unit: cgroups.unit(),
        systemd_user: false,
        intel_rdt: crate::intelrdt::group_for(id, &bundle.spec),
        config,
    })
}

/// What the notifications of a restore work with.
struct Restored<'a> {
    saved: Saved,
    dir: PathBuf,
    pid_file: Option<PathBuf>,
    /// `--console-socket`, where the restored terminal's master goes.
    console: Option<OwnedFd>,
    /// The master, kept for a foreground restore without a console socket.
    master: Option<OwnedFd>,
    spec: &'a oci_spec::runtime::Spec,
}

/// The RESTORE request, made (and CRIU's version checked) before the state directory.
struct Prepared {
    /// Where the rootfs is mounted for CRIU (`criu_root`).
    criu_root: PathBuf,
    req: CriuReq,
    dirs: Dirs,
    /// The external namespaces CRIU inherits.
    ns_fds: Vec<OwnedFd>,
}

/// The rootfs mounted for CRIU, the request run; the restored init's pid.
fn run_criu(
    bundle: &Bundle,
    p: Prepared,
    cgroups: &super::cgroup::Plan,
    r: &mut Restored<'_>,
    guard: &mut RestoreGuard,
) -> Result<i32> {
    let Prepared {
        criu_root,
        req,
        dirs,
        ns_fds,
    } = p;
    mount_root(&bundle.rootfs, &criu_root)?;
    guard.criu_root = Some(criu_root);
    mounts::make_mount_points(&bundle.spec, &bundle.rootfs)?;
    let rdt = r.saved.intel_rdt.clone();
    let mut join = |pid: i32, req: &mut CriuReq| {
        join_cgroups(cgroups, pid, req)?;
        // Before anything is restored: the restored tree inherits CRIU's group.
        match &rdt {
            Some(g) => crate::intelrdt::enter(&bundle.spec, g, pid),
            None => Ok(()),
        }
    };
    let swrk = Swrk {
        log: dirs.log.clone(),
        extra_fds: ns_fds,
        inherit_stdio: true,
        started: Some(&mut join),
    };
    crate::logging::mark("restore: criu");
    swrk::run(req, swrk, &mut |n| on_notify(r, n, guard))?;
    drop(dirs);
    if r.saved.pid == 0 {
        bail!("criu restored nothing: no post-restore notification came");
    }
    Ok(r.saved.pid)
}

/// runc's way to give CRIU a root: `<state dir>/criu-root`, a mount point whose parent is
/// not overmounted; the state root made if missing and resolved, as CRIU is told the path
/// before the state directory exists.
fn criu_root(root: &Path, id: &str) -> Result<PathBuf> {
    state::create_root(root)?;
    let root = std::fs::canonicalize(root)
        .with_context(|| format!("resolve root directory {}", root.display()))?;
    Ok(state::container_dir(&root, id).join("criu-root"))
}

/// The rootfs bind-mounted (recursively) on `root` (`criu_root`).
fn mount_root(rootfs: &Path, root: &Path) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    std::fs::create_dir(root).with_context(|| format!("mkdir {}", root.display()))?;
    mount(
        Some(rootfs),
        root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind mount {} on {}", rootfs.display(), root.display()))
}

/// The RESTORE request: runc's options, the mounts and namespaces, the stdio pipes.
fn request(
    bundle: &Bundle,
    descriptors: &[String],
    o: &CriuOptions,
    criu_root: PathBuf,
    cgroups: &super::cgroup::Plan,
) -> Result<Prepared> {
    let (mut opts, dirs) = base_opts(o, "restore.log")?;
    opts.set_evasive_devices(true);
    opts.set_rst_sibling(true);
    opts.set_root(criu_root.to_string_lossy().into_owned());
    if let Some(p) = &o.lsm_profile {
        opts.set_lsm_profile(p.clone());
    }
    if let Some(c) = &o.lsm_mount_context {
        opts.set_lsm_mount_context(c.clone());
    }
    let annotations = bundle.spec.annotations().clone().unwrap_or_default();
    config_file(&mut opts, annotations.get("org.criu.config"));
    let ns_fds = mounts::restore_namespaces(&mut opts, &bundle.spec)?;
    mounts::restore_ext_mounts(&mut opts, &bundle.spec, &bundle.path);
    mounts::restore_cgroup_binds(&mut opts, &bundle.spec, cgroups.v1_dirs());
    inherit_pipes(&mut opts, descriptors);
    let mut req = CriuReq::new();
    req.set_type(ReqType::RESTORE);
    req.opts = Some(opts).into();
    Ok(Prepared {
        criu_root,
        req,
        dirs,
        ns_fds,
    })
}

/// The init's stdio pipes at the dump, replaced by ours (CRIU's fds 0-2, which it shares).
fn inherit_pipes(opts: &mut CriuOpts, descriptors: &[String]) {
    for (i, d) in descriptors.iter().enumerate().take(3) {
        if d.contains("pipe:") {
            let mut f = InheritFd::new();
            f.set_key(d.clone());
            f.set_fd(i as i32);
            opts.inherit_fd.push(f);
        }
    }
}

/// CRIU joins the container's cgroups before it restores anything, and is told them as the
/// roots to restore into (`cg_root`): each v1 controller's, or on cgroup v2 the one for all
/// (no controller named), so that the dumped cgroup becomes this container's even while the
/// dumped container still has it (a lazy migration, a restore into a new id).
fn join_cgroups(cgroups: &super::cgroup::Plan, criu_pid: i32, req: &mut CriuReq) -> Result<()> {
    let roots = cgroups.join(criu_pid)?;
    let opts = req.opts.mut_or_insert_default();
    for (ctrl, path) in roots {
        let mut root = CgroupRoot::new();
        root.set_ctrl(ctrl);
        root.set_path(path);
        opts.cg_root.push(root);
    }
    Ok(())
}

fn on_notify(r: &mut Restored<'_>, n: Notify, guard: &mut RestoreGuard) -> Result<()> {
    match n.script.as_str() {
        "setup-namespaces" => run_hooks(r, n.pid),
        "post-restore" => {
            guard.pid = Some(n.pid);
            r.saved.pid = n.pid;
            r.saved.start_time = state::proc_stat(n.pid).map(|s| s.1).unwrap_or(0);
            r.saved.created = crate::logging::rfc3339_now(true);
            state::save(&r.dir, &r.saved)?;
            if let Some(p) = &r.pid_file {
                crate::container::write_pid_file(p, n.pid)?;
            }
            Ok(())
        }
        "orphan-pts-master" => {
            let master = n.fd.context("orphan-pts-master came without an fd")?;
            match &r.console {
                Some(s) => crate::console::send_master(s.as_raw_fd(), &master),
                None => {
                    r.master = Some(master);
                    Ok(())
                }
            }
        }
        _ => Ok(()),
    }
}

/// runc runs the prestart and createRuntime hooks once CRIU has made the namespaces.
fn run_hooks(r: &Restored<'_>, pid: i32) -> Result<()> {
    let Some(hooks) = r.spec.hooks() else {
        return Ok(());
    };
    let mut saved = r.saved.clone();
    saved.pid = pid;
    let st = saved.hook_state(Status::Creating);
    #[allow(deprecated)]
    let prestart = hooks.prestart();
    for (kind, list) in [
        ("prestart", prestart),
        ("createRuntime", hooks.create_runtime()),
    ] {
        if let Some(list) = list {
            crate::hooks::run(kind, list, &st)?;
        }
    }
    Ok(())
}

/// A foreground restore waits like `run`: signals forwarded, the exit code returned, the
/// container deleted once it exits.
fn wait_foreground(c: &Container, pid: i32, master: Option<OwnedFd>) -> Result<i32> {
    let fwd = crate::signals::Forwarder::block()?;
    let st = fwd.wait_child(pid, master);
    crate::container::destroy(c, true)?;
    Ok(crate::container::exit_code(st?))
}

/// Undoes a half-made restore: kills a restored init, unmounts CRIU's root, removes the
/// cgroups and the state directory. Disarmed, it still unmounts CRIU's root.
struct RestoreGuard {
    dir: PathBuf,
    armed: bool,
    cgroups: Vec<PathBuf>,
    unit: Option<String>,
    criu_root: Option<PathBuf>,
    pid: Option<i32>,
    /// The Intel RDT group (its own is removed; a shared one stays).
    rdt: Option<crate::intelrdt::Group>,
}

impl RestoreGuard {
    fn new(dir: PathBuf) -> RestoreGuard {
        RestoreGuard {
            dir,
            armed: true,
            cgroups: Vec::new(),
            unit: None,
            criu_root: None,
            pid: None,
            rdt: None,
        }
    }

    fn unmount_root(&mut self) {
        if let Some(root) = self.criu_root.take() {
            let _ = nix::mount::umount2(&root, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&root);
        }
    }

    fn disarm(mut self) -> PathBuf {
        self.unmount_root();
        self.armed = false;
        std::mem::take(&mut self.dir)
    }
}

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        self.unmount_root();
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            crate::process::kill_and_reap(pid);
        }
        let cg = cgroups::Cgroup {
            paths: &self.cgroups,
            scope: self.unit.as_deref().map(|unit| cgroups::Scope {
                unit,
                manager: cgroups::systemd::Manager::System,
            }),
        };
        cg.kill_remaining();
        cg.destroy();
        if let Some(g) = &self.rdt {
            crate::intelrdt::remove(g);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
