//! `create` as a pipeline of named steps, in the order docs/architecture.md tells it:
//! validate → plan → state dir → cgroups → clone → init setup (with hooks) → state written →
//! wait for start. Every step that makes something records it in [`CreateGuard`], which
//! undoes all of it should a later step fail.

use super::{open_path, reap_status, write_pid_file};
use crate::cgroups::{self, systemd};
use crate::namespaces;
use crate::process::{self, msg, Channel, InitArgs};
use crate::spec;
use crate::state::{self, Container, Saved, Status, EXEC_FIFO};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxResources, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub struct CreateOpts<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub console_socket: Option<&'a Path>,
    /// `--pidfd-socket`: where a pidfd of the init is sent once it is set up.
    pub pidfd_socket: Option<&'a Path>,
    pub pid_file: Option<&'a Path>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    pub systemd_cgroup: bool,
    /// `--rootless`: cgroups only where this user may make them (`rootless.rs`).
    pub rootless: bool,
}

/// A container just created: its init waits on `exec.fifo`.
pub struct Created {
    pub pid: i32,
    pub container: Container,
    /// `exec.fifo`'s read end, opened during the create for `run` (see `create_from`).
    pub fifo_reader: Option<OwnedFd>,
}

/// `runrs create`: create, then leave the init waiting for `start`.
pub fn create_cmd(o: &CreateOpts) -> Result<()> {
    create(o, None, true).map(|_| ())
}

/// Create the container. `console` replaces `--console-socket` (used by a foreground `run`).
pub fn create(o: &CreateOpts, console: Option<OwnedFd>, detached: bool) -> Result<Created> {
    crate::logging::mark("create: begin");
    spec::validate_id(o.id)?;
    let bundle = spec::load(o.bundle)?;
    create_from(o, bundle, console, detached, false)
}

/// `create` with the bundle already loaded (`run` looks at it first). With `hold_fifo`,
/// `exec.fifo`'s read end is opened right after the clone: the init does not wait for
/// `start` but goes on to exec as soon as it is ready.
pub(super) fn create_from(
    o: &CreateOpts,
    mut bundle: spec::Bundle,
    console: Option<OwnedFd>,
    detached: bool,
    hold_fifo: bool,
) -> Result<Created> {
    crate::logging::mark("create: spec loaded");
    let mut plan = Plan::new(o, &bundle.spec, console.is_some(), detached)?;
    let console = connect_console(o, &plan, console)?;
    let pidfd_socket = o
        .pidfd_socket
        .map(crate::console::connect_pidfd_socket)
        .transpose()?;
    // Relative bind sources and hook paths are relative to the bundle, as in runc.
    std::env::set_current_dir(&bundle.path)
        .with_context(|| format!("chdir to bundle {}", bundle.path.display()))?;
    let mut guard = CreateGuard::new(state::create_dir(o.root, o.id)?);
    let fifo = make_exec_fifo(&guard.dir)?;
    crate::logging::mark("create: state dir");
    let resources = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref());
    let cgroups = plan.cgroups.plan(resources)?;
    let mut saved = initial_state(o, &mut bundle, &cgroups, &plan)?;
    // What `delete --force` undoes should this process die before state.json exists.
    state::write_pending(&guard.dir, &saved)?;
    make_cgroups_before_clone(&cgroups, &plan, &mut guard)?;
    crate::logging::mark("create: cgroups made");
    let init = clone_init(
        o,
        &mut bundle,
        &mut plan,
        &cgroups,
        &mut guard,
        fifo,
        console,
    )?;
    let (pid, chan) = (init.pid, &init.chan);
    // After the clone: the init must not hold a reader of its own fifo.
    let fifo_reader = if hold_fifo {
        Some(super::open_fifo(&guard.dir.join(EXEC_FIFO))?)
    } else {
        None
    };
    let spec = &bundle.spec;
    set_up_from_outside(spec, &init, &plan, &cgroups, &mut guard)?;
    enter_rdt_group(spec, saved.intel_rdt.as_ref(), pid, &mut guard)?;
    saved.pid = pid;
    let creating = saved.hook_state(Status::Creating);
    send_go(chan, pid, &creating, &mut guard)?;
    // While the init sets itself up: the state, under a name nothing reads until it is ready.
    saved.start_time = state::proc_stat(pid).map(|s| s.1).unwrap_or(0);
    state::write_pending(&guard.dir, &saved)?;
    serve_init_until_ready(spec, pid, chan, &creating)?;
    if let Some(sock) = &pidfd_socket {
        crate::console::send_pidfd(sock, pid, "standard")?;
    }
    state::commit_pending(&guard.dir)?;
    if let Some(p) = o.pid_file {
        write_pid_file(p, pid)?;
    }
    let dir = guard.disarm();
    crate::logging::mark("create: done");
    Ok(Created {
        pid,
        container: Container { dir, saved },
        fifo_reader,
    })
}

/// Everything worked out from the config before anything is made: bad input fails here and
/// leaves nothing behind.
struct Plan {
    terminal: bool,
    cgroups: CgroupDriver,
    namespaces: namespaces::Plan,
    seccomp: Option<crate::seccomp::Compiled>,
    /// New namespaces the init makes itself after the clone (`Plan::early_unshare_flags`).
    early: libc::c_int,
    /// `linux.netDevices`: host name and name in the container of each (`netdev.rs`).
    netdevs: Vec<(String, String)>,
}

impl Plan {
    fn new(o: &CreateOpts, spec: &Spec, have_console: bool, detached: bool) -> Result<Plan> {
        let process = spec
            .process()
            .as_ref()
            .context("process must be specified")?;
        let terminal = process.terminal() == Some(true);
        if terminal && o.console_socket.is_none() && !have_console && detached {
            bail!("cannot allocate tty if runc will detach without setting console socket");
        }
        if !terminal && o.console_socket.is_some() {
            bail!("cannot use console socket if runc will not detach or allocate tty");
        }
        let cgroups = CgroupDriver::choose(o, spec)?;
        let namespaces = namespaces::plan(spec);
        let seccomp = crate::seccomp::of_spec(spec)?;
        if namespaces.clone_flags & libc::CLONE_NEWPID == 0 {
            // Without a pid namespace of its own, container processes can see our init while
            // it runs runtime code: run from a sealed copy so `/proc/<pid>/exe` cannot reach us.
            crate::selfexe::ensure_sealed()?;
        }
        let netdevs = crate::netdev::check(spec, o.rootless)?;
        crate::rootfs::check_rootless_idmapped_mounts(spec, o.rootless)?;
        let mut early = namespaces.early_unshare_flags();
        if !netdevs.is_empty() {
            // The devices go into the network namespace right after the clone: the clone
            // makes it, not the init later.
            early &= !libc::CLONE_NEWNET;
        }
        Ok(Plan {
            terminal,
            cgroups,
            namespaces,
            seccomp,
            early,
            netdevs,
        })
    }
}

fn connect_console(
    o: &CreateOpts,
    plan: &Plan,
    console: Option<OwnedFd>,
) -> Result<Option<OwnedFd>> {
    Ok(match (console, o.console_socket) {
        (Some(c), _) => Some(c),
        (None, Some(p)) if plan.terminal => Some(crate::console::connect_socket(p)?),
        _ => None,
    })
}

/// `exec.fifo`, mode 0622 as runc makes it (writable by the container's user) whatever our
/// umask: cleared around the mkfifo, which is cheaper than a chmod of the new inode.
fn make_exec_fifo(dir: &Path) -> Result<OwnedFd> {
    let fifo_path = dir.join(EXEC_FIFO);
    let umask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let made = nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o622));
    nix::sys::stat::umask(umask);
    made.with_context(|| format!("create {}", fifo_path.display()))?;
    open_path(&fifo_path)
}

/// With `early` namespaces the init makes them itself while we make its v1 cgroups, which it
/// then opens and enters itself; only the cgroup2 directory it is cloned into must exist
/// before the clone. Without (a user namespace: the init could not open them), all are made
/// now. Under systemd, systemd makes the scope's directory once the init exists.
fn make_cgroups_before_clone(
    cgroups: &cgroups::Planned,
    plan: &Plan,
    guard: &mut CreateGuard,
) -> Result<()> {
    let systemd = plan.cgroups.systemd.is_some();
    let early = plan.early;
    cgroups.make_fresh(&mut guard.cgroups, |h| {
        !systemd && (early == 0 || h.unified)
    })
}

/// The directories the init enters itself after `CGROUPS_MADE`: those not made before the
/// clone (none without early namespaces or on a cgroup2-only host). Under systemd, the v1
/// ones: systemd puts the init in its scope only in the hierarchies it manages (and with a
/// user namespace, where the init could not, the runtime moves it instead).
fn cgroups_made_after_clone(
    cgroups: &cgroups::Planned,
    plan: &Plan,
    guard: &CreateGuard,
) -> Vec<PathBuf> {
    let unified = cgroups.view.unified.as_ref();
    if plan.cgroups.systemd.is_some() {
        if plan.early == 0 {
            return Vec::new();
        }
        return (cgroups.dirs.iter())
            .filter(|d| Some(*d) != unified)
            .cloned()
            .collect();
    }
    (cgroups.dirs.iter())
        .filter(|d| !guard.cgroups.contains(d))
        .cloned()
        .collect()
}

/// The state to save. The annotations and the config JSON move into it (nothing needs them
/// in the bundle after this): a huge config is not held twice more.
fn initial_state(
    o: &CreateOpts,
    bundle: &mut spec::Bundle,
    cgroups: &cgroups::Planned,
    plan: &Plan,
) -> Result<Saved> {
    let config = serde_json::value::to_raw_value(&std::mem::take(&mut bundle.config))?;
    let annotations = bundle.spec.annotations_mut().take().unwrap_or_default();
    Ok(Saved {
        id: o.id.to_string(),
        pid: 0,
        start_time: 0,
        bundle: bundle.path.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::logging::rfc3339_now(true),
        annotations: annotations.into_iter().collect(),
        owner: String::new(),
        cgroup_paths: cgroups.dirs.clone(),
        systemd_unit: plan.cgroups.systemd.as_ref().map(|(u, _)| u.name.clone()),
        systemd_user: (plan.cgroups.systemd.as_ref())
            .is_some_and(|(u, _)| u.manager == systemd::Manager::User),
        intel_rdt: crate::intelrdt::group_for(o.id, &bundle.spec),
        config,
    })
}

/// The init into its Intel RDT group, with the config's schemata (runc's order: after the
/// cgroups).
fn enter_rdt_group(
    spec: &Spec,
    group: Option<&crate::intelrdt::Group>,
    pid: i32,
    guard: &mut CreateGuard,
) -> Result<()> {
    let Some(g) = group else { return Ok(()) };
    guard.rdt = Some(g.clone());
    crate::intelrdt::enter(spec, g, pid)
}

/// The container's init, as the runtime sees it after the clone.
struct Init {
    pid: i32,
    chan: Channel,
    /// The cgroups made after the clone, which it enters once sent `CGROUPS_MADE`.
    later: Vec<PathBuf>,
}

/// clone3 the init (into its cgroup2 directory where there is one to clone into); the child
/// goes on in `process::init` and never returns here.
fn clone_init(
    o: &CreateOpts,
    bundle: &mut spec::Bundle,
    plan: &mut Plan,
    cgroups: &cgroups::Planned,
    guard: &mut CreateGuard,
    fifo: OwnedFd,
    console: Option<OwnedFd>,
) -> Result<Init> {
    let (parent_chan, child_chan) = Channel::pair()?;
    if let Some(p) = &plan.namespaces.pid_join {
        namespaces::join(oci_spec::runtime::LinuxNamespaceType::Pid, p)?;
    }
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let listen = socket_activation_fds();
    crate::logging::mark("create: clone");
    let cgroup_join = cgroups::SelfJoin::open(&guard.cgroups)?;
    let later = cgroups_made_after_clone(cgroups, plan, guard);
    crate::logging::mark("create: cgroups opened");
    // Bind sources are cloned here: the init, root of a user namespace, may not reach them.
    let bind_sources = crate::rootfs::open_bind_sources(&bundle.spec, plan.namespaces.any_user)?;
    let flags = plan.namespaces.clone_flags & !plan.early;
    let cpus = process::SideBySide::new();
    let (pid, in_cgroup2) = process::clone_into(flags, cgroup_join.cgroup2_fd())?;
    crate::logging::mark("create: cloned");
    if pid == 0 {
        drop(parent_chan);
        // The child owns its copy of everything: move, not clone (a clone touched new pages).
        let mut spec = std::mem::take(&mut bundle.spec);
        let (namespaces, seccomp) = (std::mem::take(&mut plan.namespaces), plan.seccomp.take());
        if listen > 0 {
            pass_socket_activation(&mut spec, listen);
        }
        process::init(InitArgs {
            id: o.id.to_string(),
            spec,
            rootfs: bundle.rootfs.clone(),
            plan: namespaces,
            chan: child_chan,
            fifo: fifo.as_raw_fd(),
            console,
            no_pivot: o.no_pivot,
            no_new_keyring: o.no_new_keyring,
            preserve_fds: o.preserve_fds + listen,
            parent,
            seccomp,
            cgroup_join: Some((cgroup_join, in_cgroup2)),
            early_unshare: plan.early,
            join_later: later,
            cgroup_view: cgroups.view.clone(),
            bind_sources,
            cpus,
        });
    }
    guard.pid = Some(pid);
    if let Some(cpus) = &cpus {
        cpus.move_off_our_cpu(pid);
    }
    Ok(Init {
        pid,
        chan: parent_chan,
        later,
    })
}

/// systemd socket activation passes through, as in runc.
fn pass_socket_activation(spec: &mut Spec, listen: i32) {
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.push(format!("LISTEN_FDS={listen}"));
        env.push("LISTEN_PID=1".to_string());
        p.set_env(Some(env));
    }
}

/// What the runtime does for the init while it waits for GO (no container process runs
/// yet): id maps, the systemd scope, the cgroups made after the clone, `linux.resources`
/// (before any device node is made), `oomScoreAdj`.
fn set_up_from_outside(
    spec: &Spec,
    init: &Init,
    plan: &Plan,
    cgroups: &cgroups::Planned,
    guard: &mut CreateGuard,
) -> Result<()> {
    let pid = init.pid;
    if plan.namespaces.new_user {
        namespaces::write_id_maps(pid, spec)?;
    }
    crate::netdev::move_all(&plan.netdevs, pid)?;
    if let Some((unit, props)) = &plan.cgroups.systemd {
        start_systemd_scope(unit, props, pid, plan, cgroups, guard)?;
    }
    if !init.later.is_empty() {
        // Meanwhile the init makes its namespaces. Under systemd the init is in its scope's
        // directories already (those in the hierarchies systemd manages).
        if plan.cgroups.systemd.is_some() {
            cgroups.make(&mut guard.cgroups, |h| !h.unified)?;
        } else {
            cgroups.make_fresh(&mut guard.cgroups, |h| !h.unified)?;
        }
        // It enters them while we configure them, through their `tasks` files opened here
        // (each open walks a path: work the init need not do after its namespaces). A failed
        // send shows as the init's error or exit at GO.
        let join = cgroups::SelfJoin::open(&init.later)?;
        let _ = init.chan.send_fds(msg::CGROUPS_MADE, &join.fds());
        crate::logging::mark("create: cgroups made after the clone");
    }
    // No linux.resources still means runc's default device rules.
    let resources: LinuxResources = (spec.linux().as_ref())
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    if !plan.cgroups.rootless {
        cgroups.apply(&resources)?;
    } else if !guard.cgroups.is_empty() {
        // Device rules need no cgroup of the user's (and a user may not load the BPF
        // program of cgroup v2's): the limits alone, as runc's rootless manager. The files
        // only: a user's systemd scope got its properties when it was made.
        cgroups::update(&guard.cgroups, &resources)?;
    }
    let process = spec
        .process()
        .as_ref()
        .context("process must be specified")?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string()).map_err(|e| {
            anyhow::anyhow!(
                "set oomScoreAdj {adj}: {} (lowering it needs CAP_SYS_RESOURCE)",
                process::io_msg(&e)
            )
        })?;
    }
    Ok(())
}

/// systemd makes the scope with the init in it: the init's cgroup namespace, made after GO,
/// is rooted there. On a v1 host systemd manages only some hierarchies; the init enters the
/// others itself (`CGROUPS_MADE`), or, in a user namespace where it could not, is moved.
fn start_systemd_scope(
    unit: &systemd::Unit,
    props: &[systemd::properties::Property],
    pid: i32,
    plan: &Plan,
    cgroups: &cgroups::Planned,
    guard: &mut CreateGuard,
) -> Result<()> {
    crate::logging::mark("create: systemd connect");
    systemd::Systemd::connect(unit.manager)?.start_scope(unit, pid, props.to_vec())?;
    guard.unit = Some(unit.name.clone());
    guard.manager = unit.manager;
    guard.cgroups = cgroups.dirs.clone();
    crate::logging::mark("create: systemd scope started");
    if plan.early == 0 && !cgroups.is_pure_v2() {
        cgroups.make(&mut guard.cgroups, |h| !h.unified)?;
        cgroups::move_into(&cgroups.dirs, pid)?;
    }
    Ok(())
}

/// GO: the init sets itself up now. If it is gone, say why.
fn send_go(chan: &Channel, pid: i32, creating: &[u8], guard: &mut CreateGuard) -> Result<()> {
    crate::logging::mark("create: go");
    match chan.send(msg::GO, creating) {
        Ok(()) => return Ok(()),
        // Not a closed channel: the init is still there, waiting for GO.
        Err(e) if !is_closed_channel(&e) => return Err(e),
        Err(_) => {}
    }
    // It may have said why before it went (an early namespace it could not make).
    if let Ok(Some((msg::ERROR, e))) = chan.recv() {
        bail!(
            "unable to start container process: {}",
            String::from_utf8_lossy(&e)
        );
    }
    guard.pid = None;
    bail!(
        "container init exited before it was set up ({})",
        reap_status(pid)
    );
}

/// EPIPE / ECONNRESET: the other end of the sync channel is gone.
fn is_closed_channel(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::raw_os_error)
        .is_some_and(|n| n == libc::EPIPE || n == libc::ECONNRESET)
}

/// Answer the init's requests (prestart and createRuntime hooks, a seccomp listener fd)
/// until it is ready.
fn serve_init_until_ready(spec: &Spec, pid: i32, chan: &Channel, creating: &[u8]) -> Result<()> {
    loop {
        match chan.recv()? {
            Some((msg::HOOKS, _)) => {
                crate::logging::mark("create: hooks");
                if let Some(h) = spec.hooks().as_ref() {
                    if let Some(v) = h.prestart() {
                        crate::hooks::run("prestart", v, creating)?;
                    }
                    if let Some(v) = h.create_runtime() {
                        crate::hooks::run("createRuntime", v, creating)?;
                    }
                }
                chan.send(msg::HOOKS_DONE, &[])?;
            }
            Some((msg::SECCOMP_FD, fd)) => {
                process::forward_seccomp_fd(pid, &fd, spec, creating, chan)?
            }
            Some((msg::READY, _)) => {
                crate::logging::mark("create: ready");
                return Ok(());
            }
            Some((msg::ERROR, e)) => bail!(
                "unable to start container process: {}",
                String::from_utf8_lossy(&e)
            ),
            Some(_) => bail!("unexpected message from the container's init"),
            None => bail!(
                "container init exited before it was set up ({})",
                reap_status(pid)
            ),
        }
    }
}

/// Undoes a half-made create: kills the init, stops the systemd unit, removes cgroups and
/// the state directory.
struct CreateGuard {
    dir: PathBuf,
    armed: bool,
    cgroups: Vec<PathBuf>,
    unit: Option<String>,
    manager: systemd::Manager,
    pid: Option<i32>,
    /// The Intel RDT group entered (a shared one stays, as in runc).
    rdt: Option<crate::intelrdt::Group>,
}

impl CreateGuard {
    fn new(dir: PathBuf) -> CreateGuard {
        CreateGuard {
            dir,
            armed: true,
            cgroups: Vec::new(),
            unit: None,
            manager: systemd::Manager::System,
            pid: None,
            rdt: None,
        }
    }

    fn cgroup(&self) -> cgroups::Cgroup<'_> {
        cgroups::Cgroup {
            paths: &self.cgroups,
            scope: self.unit.as_deref().map(|unit| cgroups::Scope {
                unit,
                manager: self.manager,
            }),
        }
    }

    /// The create went through: keep everything; the state directory.
    fn disarm(mut self) -> PathBuf {
        self.armed = false;
        std::mem::take(&mut self.dir)
    }
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            crate::process::kill_and_reap(pid);
        }
        self.cgroup().destroy();
        if let Some(g) = &self.rdt {
            crate::intelrdt::remove(g);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cgroup driver of a create, chosen once from `--systemd-cgroup`, with everything about
/// it checked before anything is made.
#[derive(Clone)]
struct CgroupDriver {
    /// The cgroup path from the hierarchy root (systemd) or as runc resolves it.
    path: String,
    /// The scope unit and its properties, under the systemd driver.
    systemd: Option<(systemd::Unit, Vec<systemd::properties::Property>)>,
    /// `--rootless`: only the cgroups this user may make; no device rules.
    rootless: bool,
}

impl CgroupDriver {
    fn choose(o: &CreateOpts, spec: &Spec) -> Result<CgroupDriver> {
        let linux = spec.linux().as_ref();
        let path = linux
            .and_then(|l| l.cgroups_path().as_ref())
            .and_then(|p| p.to_str());
        if !o.systemd_cgroup {
            return Ok(CgroupDriver {
                path: cgroups::resolve_path(path, o.id)?,
                systemd: None,
                rootless: o.rootless,
            });
        }
        use systemd::{properties, Manager, Unit};
        systemd::check_booted()?;
        // Rootless: the user's own systemd, on cgroup v2 only (runc's words).
        let manager = if o.rootless {
            if !cgroups::unified_mode() {
                bail!("cannot use rootless systemd cgroups manager on cgroup v1");
            }
            Manager::User
        } else {
            Manager::System
        };
        let mut unit = Unit::parse(path, o.id, manager)?;
        if manager == Manager::User {
            unit.locate(&systemd::Systemd::connect(manager)?)?;
        }
        // No linux.resources still means runc's default device rules, as a property too.
        let resources = linux
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        let mut props = properties::from_resources(&resources, !cgroups::unified_mode())?;
        let annotations = spec.annotations().clone().unwrap_or_default();
        props.extend(properties::from_annotations(
            &annotations.into_iter().collect(),
        )?);
        Ok(CgroupDriver {
            path: unit.cgroup_path(),
            systemd: Some((unit, props)),
            rootless: o.rootless,
        })
    }

    /// The container's directories; rootless, only those the user may make, and `resources`
    /// must not need the others. Those systemd makes are checked empty and not frozen
    /// (runc's rules) now; ours when they are made (`Planned::make_fresh`).
    fn plan(&self, resources: Option<&LinuxResources>) -> Result<cgroups::Planned> {
        let mut planned = cgroups::plan(&self.path)?;
        if self.rootless {
            let dropped = planned.keep_writable();
            crate::rootless::check_resources(resources, dropped)?;
        }
        if self.systemd.is_some() {
            planned.check_reusable()?;
        }
        Ok(planned)
    }
}

/// `$LISTEN_FDS` when `$LISTEN_PID` is us (systemd socket activation), else 0.
fn socket_activation_fds() -> i32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if !ours {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
