//! `runrs exec`: a new process inside a running container. A clone child joins the init's
//! namespaces (the pid namespace through the parent) and cgroups, then finishes like the init.

use crate::cgroups;
use crate::namespaces;
use crate::process::{self, msg, Channel};
use crate::state::{self, Status};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Capability, ExecCPUAffinity, LinuxNamespaceType, Process, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What `runrs exec` was asked for (runc's `exec` flags).
#[derive(Debug)]
pub struct ExecOptions {
    pub console_socket: Option<PathBuf>,
    /// `--pidfd-socket`: where a pidfd of the process is sent.
    pub pidfd_socket: Option<PathBuf>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    pub tty: bool,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    /// A process.json to run instead of the container's `process` with the options above.
    pub process: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    /// Accepted as runc does, not applied (no SELinux/AppArmor support).
    pub process_label: Option<String>,
    pub apparmor: Option<String>,
    pub no_new_privs: bool,
    pub cap: Vec<String>,
    pub preserve_fds: i32,
    /// `--cgroup`: sub-cgroups to run in, `[CONTROLLER[,CONTROLLER]:]PATH` each.
    pub cgroup: Vec<String>,
    pub ignore_paused: bool,
    /// `<container-id> <command> [args...]`
    pub args: Vec<String>,
}

/// `exec -p FILE`, checked as runc checks it: `cwd` and `args` must be given; an absent
/// `user` is root, as Go's zero value.
fn process_file(data: &[u8]) -> Result<Process> {
    let mut v: serde_json::Value = serde_json::from_slice(data)?;
    let Some(obj) = v.as_object_mut() else {
        bail!("process property must not be empty");
    };
    obj.entry("user")
        .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    process::spell_sched_flags_for_oci_spec(&mut v);
    let Some(obj) = v.as_object_mut() else {
        bail!("process property must not be empty");
    };
    match obj.get("cwd").and_then(|c| c.as_str()) {
        None | Some("") => bail!("Cwd property must not be empty"),
        Some(c) if !c.starts_with('/') => bail!("Cwd must be an absolute path"),
        Some(_) => {}
    }
    if obj
        .get("args")
        .and_then(|a| a.as_array())
        .is_none_or(|a| a.is_empty())
    {
        bail!("args must not be empty");
    }
    Ok(serde_json::from_value(v)?)
}

/// runc's `strconv.Atoi` of a `--user` part, in runc 1.3's words (1.1 said "parsing X as
/// int for uid failed: ..."); as runc, a negative id wraps.
fn atoi(s: &str, what: &str) -> Result<u32> {
    match s.parse::<i64>() {
        Ok(n) => Ok(n as u32),
        Err(e) => {
            let why = if matches!(
                e.kind(),
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
            ) {
                "value out of range"
            } else {
                "invalid syntax"
            };
            bail!("bad {what}: strconv.Atoi: parsing {s:?}: {why}")
        }
    }
}

/// `exec --cap`: each one into the bounding, effective and permitted sets (`CAP_` may be
/// left out); an unknown one is a warning, as runc's.
fn add_capabilities(p: &mut Process, names: &[String]) {
    let mut caps = p.capabilities().clone().unwrap_or_default();
    let mut unknown = Vec::new();
    for c in names {
        let name = if c.starts_with("CAP_") {
            c.clone()
        } else {
            format!("CAP_{c}")
        };
        let Ok(cap) = serde_json::from_value::<Capability>(serde_json::Value::String(name)) else {
            unknown.push(c.as_str());
            continue;
        };
        let add = |s: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = s.clone().unwrap_or_default();
            s.insert(cap);
            Some(s)
        };
        let (b, e, pm) = (
            add(caps.bounding()),
            add(caps.effective()),
            add(caps.permitted()),
        );
        caps.set_bounding(b).set_effective(e).set_permitted(pm);
    }
    p.set_capabilities(Some(caps));
    if !unknown.is_empty() {
        // runc's warning; the process runs without them.
        crate::logging::warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            unknown.join(" ")
        ));
    }
}

/// Build the process to run from the options and the container's own `process`, as runc does.
fn build_process(f: &ExecOptions, base: Option<&Process>, cmd: &[String]) -> Result<Process> {
    if let Some(p) = &f.process {
        let data = std::fs::read(p)
            .map_err(|e| anyhow::anyhow!("open {}: {}", p.display(), process::io_msg(&e)))?;
        return process_file(&data);
    }
    if cmd.is_empty() {
        // runc 1.3's words (1.1 said "process args cannot be empty").
        bail!("exec args cannot be empty");
    }
    let mut p = base.cloned().unwrap_or_default();
    p.set_args(Some(cmd.to_vec()));
    p.set_terminal(Some(f.tty));
    if let Some(cwd) = &f.cwd {
        p.set_cwd(PathBuf::from(cwd));
    }
    if !f.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(f.env.iter().cloned());
        p.set_env(Some(env));
    }
    let mut user = p.user().clone();
    if let Some(u) = &f.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        // The gid first, as runc 1.3 reads them.
        if let Some(g) = gid {
            user.set_gid(atoi(g, "gid")?);
        }
        user.set_uid(atoi(uid, "uid")?);
    }
    if !f.additional_gids.is_empty() {
        user.set_additional_gids(Some(f.additional_gids.clone()));
    }
    p.set_user(user);
    if !f.cap.is_empty() {
        add_capabilities(&mut p, &f.cap);
    }
    if let Some(profile) = &f.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &f.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    if f.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// `runrs exec`: start `o`'s process in a running container; its exit code unless detached.
pub fn exec_cmd(root: &Path, o: ExecOptions) -> Result<i32> {
    let Some((id, cmd)) = o.args.split_first() else {
        bail!(
            "{}: \"exec\" requires a minimum of 1 argument(s)",
            crate::argv0()
        );
    };
    let c = load_running(root, id, o.ignore_paused)?;
    // The exec'd process is visible inside the container while it runs runtime code. Sealing
    // re-executes us: before anything that warns, or the warning shows twice.
    crate::logging::mark("exec: sealing");
    crate::selfexe::ensure_sealed()?;
    crate::logging::mark("exec: sealed");
    let mut cgroup_paths = cgroups::sub_cgroups(&c.saved.cgroup_paths, &o.cgroup)
        .context("unable to create new parent process")?;
    // The container's Intel RDT group, entered as a v1 cgroup is (its own `tasks`; first, the
    // freezer being last), where it still exists (runc's rule).
    if let Some(g) = &c.saved.intel_rdt {
        let dir = g.mon.as_ref().unwrap_or(&g.path);
        if dir.is_dir() {
            cgroup_paths.insert(0, dir.clone());
        }
    }
    let spec = c.spec()?;
    let process = build_process(&o, spec.process().as_ref(), cmd)?;
    crate::lsm::check(&process, None)?;
    let terminal = check_console_options(&o, &process)?;
    let seccomp = crate::seccomp::of_spec(&spec)?;
    crate::logging::mark("exec: process spec loaded");

    let mut ns = Namespaces::open(c.saved.pid, &spec)?;
    if !c.init_alive() {
        bail!("cannot exec in a stopped container");
    }
    crate::logging::mark("exec: namespaces opened");
    let (console_ours, console_theirs) = console_ends(terminal, o.console_socket.as_deref())?;
    let pidfd_socket = o
        .pidfd_socket
        .as_deref()
        .map(crate::console::connect_pidfd_socket)
        .transpose()?;
    ns.join_pid_and_time()?;
    crate::logging::mark("exec: pid namespace joined");
    let forwarder = if o.detach {
        None
    } else {
        Some(crate::signals::Forwarder::block()?)
    };
    let affinity = exec_affinity(&process, &spec)?;
    let child = Child {
        process: &process,
        linux: spec.linux().as_ref(),
        affinity,
        console: console_theirs,
        preserve_fds: o.preserve_fds,
        seccomp: seccomp.as_ref(),
        cgroups: &cgroup_paths,
    };
    crate::logging::mark("exec: clone");
    let (pid, chan) = clone_child(ns, child)?;
    let guard = KillOnDrop(Some(pid));
    crate::logging::mark("exec: cloned");
    chan.send(msg::GO, &[])?;
    crate::logging::mark("exec: go");
    let master = match &console_ours {
        Some(s) => Some(crate::console::recv_master(s.as_raw_fd())?),
        None => None,
    };
    serve_child(&c, pid, &spec, &chan)?;
    crate::logging::mark("exec: process executing");
    announce(pid, pidfd_socket.as_ref(), o.pid_file.as_deref())?;
    guard.disarm();
    crate::logging::mark("exec: started");
    if o.detach {
        return Ok(0);
    }
    let st = forwarder
        .expect("foreground exec has a forwarder")
        .wait_child(pid, master)?;
    Ok(crate::container::exit_code(st))
}

/// The exec's CPU affinity: its own `execCPUAffinity`, else the container's (runc's rule);
/// `initial` is taken by the runtime now, for the child to inherit.
fn exec_affinity<'a>(process: &'a Process, spec: &'a Spec) -> Result<Option<&'a ExecCPUAffinity>> {
    let affinity = process
        .exec_cpu_affinity()
        .as_ref()
        .or_else(|| spec.process().as_ref()?.exec_cpu_affinity().as_ref());
    process::set_initial_affinity(affinity)?;
    Ok(affinity)
}

/// The exec'd process is running: its pidfd to `--pidfd-socket`, its pid to `--pid-file`.
fn announce(pid: i32, pidfd_socket: Option<&OwnedFd>, pid_file: Option<&Path>) -> Result<()> {
    if let Some(sock) = pidfd_socket {
        crate::console::send_pidfd(sock, pid, "setns")?;
    }
    if let Some(p) = pid_file {
        crate::container::write_pid_file(p, pid)?;
        crate::logging::mark("exec: pid file written");
    }
    Ok(())
}

/// The container `id`, refused when stopped, or paused unless `ignore_paused`.
fn load_running(root: &Path, id: &str, ignore_paused: bool) -> Result<state::Container> {
    let c = state::load(root, id)?;
    match c.status() {
        Status::Stopped => bail!("cannot exec in a stopped container"),
        Status::Paused if !ignore_paused => {
            bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        _ => {}
    }
    Ok(c)
}

/// runc's rules for a terminal and a console socket; returns whether there is a terminal.
fn check_console_options(o: &ExecOptions, process: &Process) -> Result<bool> {
    let terminal = process.terminal() == Some(true);
    if terminal && o.detach && o.console_socket.is_none() {
        bail!("cannot allocate tty if runc will detach without setting console socket");
    }
    if !terminal && o.console_socket.is_some() {
        bail!("cannot use console socket if runc will not detach or allocate tty");
    }
    Ok(terminal)
}

/// The console's two ends: ours to receive the pty master on (a foreground terminal), and
/// the one the child sends it to (ours, or the console socket).
fn console_ends(
    terminal: bool,
    console_socket: Option<&Path>,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    Ok(if !terminal {
        (None, None)
    } else if let Some(p) = console_socket {
        (None, Some(crate::console::connect_socket(p)?))
    } else {
        let (ours, theirs) = crate::console::local_pair()?;
        (Some(ours), Some(theirs))
    })
}

/// The namespaces of the container's init that the exec'd process enters.
struct Namespaces {
    init: i32,
    /// Every namespace type of the container.
    types: Vec<LinuxNamespaceType>,
    /// The ones the child joins with setns, in order (user first, mount last).
    files: Vec<(LinuxNamespaceType, std::fs::File)>,
    in_user: bool,
    /// The init's root, to chroot into when the container has no mount namespace to join
    /// (runc's exec would run on the host's root filesystem then).
    root: Option<std::fs::File>,
}

impl Namespaces {
    /// Open every namespace now, while the init is known to be ours.
    fn open(init: i32, spec: &Spec) -> Result<Namespaces> {
        let types: Vec<LinuxNamespaceType> = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .iter()
            .map(|n| n.typ())
            .collect();
        let mut joins: Vec<(LinuxNamespaceType, PathBuf)> = types
            .iter()
            .filter(|t| !matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Time))
            .map(|t| (*t, ns_path(init, *t)))
            .collect();
        joins.sort_by_key(|(t, _)| match t {
            LinuxNamespaceType::User => 0,
            LinuxNamespaceType::Mount => 2,
            _ => 1,
        });
        let in_user = types.contains(&LinuxNamespaceType::User);
        let files = joins
            .iter()
            .map(|(t, p)| {
                std::fs::File::open(p)
                    .map(|f| (*t, f))
                    .with_context(|| format!("open {}", p.display()))
            })
            .collect::<Result<_>>()?;
        let root = if types.contains(&LinuxNamespaceType::Mount) {
            None
        } else {
            let path = format!("/proc/{init}/root");
            let dir = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
            Some(dir)
        };
        Ok(Namespaces {
            init,
            types,
            files,
            in_user,
            root,
        })
    }

    /// The pid and time namespaces are joined by the runtime itself: they apply to its
    /// children, so the child is born in them. Rootless, the user namespace that owns them
    /// first (only there has the user the capability to join them); the child is in it then.
    fn join_pid_and_time(&mut self) -> Result<()> {
        // SAFETY: geteuid has no preconditions.
        if self.in_user && unsafe { libc::geteuid() } != 0 {
            if let Some(i) = self
                .files
                .iter()
                .position(|(t, _)| *t == LinuxNamespaceType::User)
            {
                let (_, file) = self.files.remove(i);
                // SAFETY: setns on a file we hold, restricted to a user namespace.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWUSER) } != 0 {
                    return Err(std::io::Error::last_os_error())
                        .context("join the container's user namespace");
                }
            }
        }
        for t in [LinuxNamespaceType::Pid, LinuxNamespaceType::Time] {
            if self.types.contains(&t) {
                namespaces::join(t, &ns_path(self.init, t))?;
            }
        }
        Ok(())
    }
}

fn ns_path(init: i32, t: LinuxNamespaceType) -> PathBuf {
    PathBuf::from(format!("/proc/{init}/ns/{}", namespaces::proc_name(t)))
}

/// What the child needs besides the namespaces and cgroups.
struct Child<'a> {
    process: &'a Process,
    /// The container's `linux` (personality, memory policy) and the exec's CPU affinity.
    linux: Option<&'a oci_spec::runtime::Linux>,
    affinity: Option<&'a ExecCPUAffinity>,
    console: Option<OwnedFd>,
    preserve_fds: i32,
    seccomp: Option<&'a crate::seccomp::Compiled>,
    /// The container's cgroups, or the sub-cgroups `--cgroup` named.
    cgroups: &'a [PathBuf],
}

/// Clone the child (into the container's cgroup2 directory when the kernel allows) and
/// let it go its way; returns its pid and our end of the sync channel.
fn clone_child(ns: Namespaces, child: Child) -> Result<(i32, Channel)> {
    let (parent_chan, child_chan) = Channel::pair()?;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let cgroup_join = cgroups::SelfJoin::open(child.cgroups)?;
    let (pid, in_cgroup2) = process::clone_into(0, cgroup_join.cgroup2_fd())?;
    if pid == 0 {
        drop(parent_chan);
        exec_child(&child_chan, parent, (cgroup_join, in_cgroup2), &ns, child);
    }
    drop(child_chan);
    drop(child.console);
    drop(ns);
    drop(cgroup_join);
    Ok((pid, parent_chan))
}

/// Until the child execs (its end of the channel closes): pass its seccomp listener on,
/// or report why it failed.
fn serve_child(c: &state::Container, pid: i32, spec: &Spec, chan: &Channel) -> Result<()> {
    loop {
        match chan.recv()? {
            Some((msg::ERROR, e)) => bail!(
                "unable to start container process: {}",
                String::from_utf8_lossy(&e)
            ),
            Some((msg::SECCOMP_FD, fd)) => {
                let st = c.saved.hook_state(Status::Running);
                process::forward_seccomp_fd(pid, &fd, spec, &st, chan)?;
            }
            Some(_) => bail!("unexpected message from the exec'd process"),
            None => return Ok(()),
        }
    }
}

struct KillOnDrop(Option<i32>);

impl KillOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            crate::process::kill_and_reap(pid);
        }
    }
}

fn exec_child(
    chan: &Channel,
    parent: i32,
    (cgroups, in_cgroup2): (cgroups::SelfJoin, bool),
    ns: &Namespaces,
    child: Child,
) -> ! {
    process::child_guard(parent);
    let Child {
        process,
        linux,
        affinity,
        console,
        preserve_fds,
        seccomp,
        ..
    } = child;
    let r = (|| -> Result<process::ExecTarget> {
        match chan.recv()? {
            Some((msg::GO, _)) => {}
            _ => bail!("runtime went away during exec"),
        }
        crate::logging::mark("exec child: go");
        // Into the container's cgroups before entering anything of the container.
        cgroups.join(in_cgroup2)?;
        crate::logging::mark("exec child: in cgroups");
        for (t, file) in &ns.files {
            // SAFETY: setns on an fd we hold, restricted to its namespace type.
            if unsafe { libc::setns(file.as_raw_fd(), namespaces::clone_flag(*t)) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("join {} namespace", namespaces::proc_name(*t)));
            }
        }
        if let Some(root) = &ns.root {
            nix::unistd::fchdir(root.as_raw_fd()).context("chdir to the container's root")?;
            nix::unistd::chroot(".").context("chroot into the container's root")?;
        }
        crate::logging::mark("exec child: namespaces joined");
        if ns.in_user {
            // SAFETY: plain integer syscalls.
            unsafe {
                if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                    bail!("become root in the container's user namespace");
                }
            }
        }
        if let Some(sock) = &console {
            let (master, slave) = crate::console::open_pty()?;
            process::set_console_size(&slave, process)?;
            crate::console::send_master(sock.as_raw_fd(), &master)?;
            drop(master);
            crate::console::set_controlling_tty(&slave)?;
        }
        drop(console);
        process::finalize(process, linux, affinity, preserve_fds, seccomp, chan)
    })();
    let err = match r {
        Ok(target) => {
            crate::logging::mark("exec child: finalized");
            process::child_detach();
            process::reset_signals();
            let e = target.exec();
            anyhow::anyhow!(
                "exec {:?}: {}",
                target.path.to_string_lossy(),
                process::io_msg(&e)
            )
        }
        Err(e) => e,
    };
    let _ = chan.send(msg::ERROR, format!("{err:#}").as_bytes());
    // SAFETY: leave without running destructors of the parent's state.
    unsafe { libc::_exit(255) }
}
