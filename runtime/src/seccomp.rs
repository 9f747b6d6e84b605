//! OCI seccomp profiles: validate, compile to BPF (seccompiler for the argument tests, see
//! `bpf.rs` for why the rest is assembled here), load with seccomp(2), and hand the
//! user-notification fd to the `listenerPath` agent the way runc does.
//!
//! Call order: `check_supported` before anything is created, `compile` in the runtime before
//! the container's init is cloned (it allocates and probes the kernel), `apply` in the init as
//! its last step before `execve`, `send_listener` from the runtime once it holds the fd.

mod bpf;
#[cfg(test)]
mod differential;
mod syscalls;

use std::collections::BTreeMap;
use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator,
};
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

/// The actions `compile` understands (for `features`).
pub const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// The argument operators `compile` understands (for `features`).
pub const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// The filter flags a profile may ask for, with their seccomp(2) bits.
const FLAGS: &[(&str, libc::c_ulong)] = &[
    ("SECCOMP_FILTER_FLAG_TSYNC", libc::SECCOMP_FILTER_FLAG_TSYNC),
    ("SECCOMP_FILTER_FLAG_LOG", libc::SECCOMP_FILTER_FLAG_LOG),
    (
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    ),
    (
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    ),
];

/// Syscalls take at most six arguments (indexes 0-5).
const MAX_ARG_INDEX: usize = 5;

/// A profile compiled for this machine, ready for `apply` (no allocation needed there).
#[derive(Clone, Debug)]
pub struct Compiled {
    program: Vec<libc::sock_filter>,
    /// seccomp(2) flags, already reduced to those this kernel supports.
    flags: libc::c_ulong,
    listener: bool,
}

impl Compiled {
    /// Whether some rule is SCMP_ACT_NOTIFY: `apply` then returns the notification fd.
    pub fn needs_listener(&self) -> bool {
        self.listener
    }

    /// Length of the BPF program in instructions.
    pub fn instructions(&self) -> usize {
        self.program.len()
    }
}

/// Refuse, before anything is created, a profile this runtime or kernel cannot enforce.
pub fn check_supported(seccomp: Option<&LinuxSeccomp>) -> Result<()> {
    let Some(seccomp) = seccomp else {
        return Ok(());
    };
    if bpf::Target::native().is_none() {
        bail!(
            "linux.seccomp is not supported on {} (runrs filters x86_64 and aarch64)",
            std::env::consts::ARCH
        );
    }
    // Any architecture may be named (multi-arch profiles list ARM beside x86_64, as runc
    // accepts): only ours can make a syscall here, and the filter is ours (see `compile`).
    for flag in seccomp.flags().iter().flatten() {
        let name = flag.to_string();
        if !FLAGS.iter().any(|(known, _)| *known == name) {
            bail!("linux.seccomp.flags: unknown flag {name}");
        }
    }
    if seccomp.default_action() == LinuxSeccompAction::ScmpActNotify {
        bail!("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action");
    }
    let mut actions = vec![seccomp.default_action()];
    for (i, syscall) in seccomp.syscalls().iter().flatten().enumerate() {
        if syscall.names().iter().any(String::is_empty) {
            bail!("linux.seccomp.syscalls[{i}]: an empty string is not a syscall name");
        }
        if syscall.action() == LinuxSeccompAction::ScmpActNotify
            && syscall.names().iter().any(|name| name == "write")
        {
            // The runtime's own hand-off of the notify fd writes; it would wait on itself.
            bail!("linux.seccomp.syscalls[{i}]: SCMP_ACT_NOTIFY cannot be used for write");
        }
        for arg in syscall.args().iter().flatten() {
            if arg.index() > MAX_ARG_INDEX {
                bail!(
                    "linux.seccomp.syscalls[{i}]: argument index {} is out of range (0-{MAX_ARG_INDEX})",
                    arg.index()
                );
            }
        }
        actions.push(syscall.action());
    }
    for action in actions {
        let code = action_code(action, None) & libc::SECCOMP_RET_ACTION_FULL;
        if !kernel_has_action(code) {
            bail!("linux.seccomp: this kernel does not support the seccomp action {action}");
        }
    }
    Ok(())
}

/// The config's `linux.seccomp`, compiled, if it has one (create and exec).
pub fn of_spec(spec: &oci_spec::runtime::Spec) -> Result<Option<Compiled>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(compile)
        .transpose()
}

/// Compile `seccomp` for the native architecture. Unknown syscall names are skipped (runc
/// does the same: profiles list syscalls of every architecture and kernel).
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Compiled> {
    check_supported(Some(seccomp))?;
    let target = bpf::Target::native().context("seccomp is not supported on this architecture")?;
    let default = action_code(seccomp.default_action(), seccomp.default_errno_ret());

    let mut by_nr: BTreeMap<u32, SyscallRules> = BTreeMap::new();
    let mut listener = false;
    for syscall in seccomp.syscalls().iter().flatten() {
        let action = action_code(syscall.action(), syscall.errno_ret());
        if action == default {
            // runc skips such a rule as redundant (libseccomp refuses it), so it overrides
            // nothing: the syscall's other rules still apply.
            continue;
        }
        let matching = arg_rules(syscall.args().as_deref().unwrap_or_default())?;
        for name in syscall.names() {
            let Some(nr) = syscalls::number(name) else {
                continue;
            };
            let nr = u32::try_from(nr).context("syscall number out of range")?;
            let entry = by_nr.entry(nr).or_default();
            match &matching {
                Matching::Always => {
                    entry.always.get_or_insert(action);
                }
                Matching::AnyOf(rules) => {
                    entry
                        .conditional
                        .extend(rules.iter().map(|rule| (rule.clone(), action)));
                }
            }
            listener |= syscall.action() == LinuxSeccompAction::ScmpActNotify;
        }
    }

    let sections = by_nr
        .into_iter()
        .map(|(nr, rules)| bpf::Section {
            nr,
            conditional: match rules.always {
                Some(_) => Vec::new(),
                None => rules.conditional,
            },
            fallback: rules.always.unwrap_or(default),
        })
        .filter(|section| !section.conditional.is_empty() || section.fallback != default)
        .collect();
    // libseccomp's default for a foreign architecture, made process-wide.
    let bad_arch = libc::SECCOMP_RET_KILL_PROCESS;
    let program = bpf::assemble(target, sections, default, bad_arch)?;

    let requested: Vec<String> = seccomp
        .flags()
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    Ok(Compiled {
        program,
        flags: load_flags(&requested, listener),
        listener,
    })
}

/// Load the filter into the calling thread (all threads with TSYNC). Returns the user
/// notification fd when the profile has SCMP_ACT_NOTIFY rules.
///
/// Needs no_new_privs or CAP_SYS_ADMIN. Allocates nothing unless it fails.
pub fn apply(compiled: &Compiled) -> Result<Option<OwnedFd>> {
    let program = libc::sock_fprog {
        len: compiled.program.len() as libc::c_ushort,
        filter: compiled.program.as_ptr().cast_mut(),
    };
    // SAFETY: `program` points at `compiled.program`, alive for the whole call; the kernel
    // only reads (copies) it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            compiled.flags,
            &program as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        let err = std::io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::EACCES) => anyhow::anyhow!(
                "loading the seccomp filter needs no_new_privileges or CAP_SYS_ADMIN: {err}"
            ),
            Some(libc::ESRCH) => anyhow::anyhow!(
                "seccomp TSYNC: another thread of the process has a different filter: {err}"
            ),
            _ => anyhow::anyhow!("cannot load the seccomp filter: {err}"),
        });
    }
    if !compiled.listener {
        return Ok(None);
    }
    let fd = i32::try_from(ret).context("seccomp(2) returned an invalid listener fd")?;
    // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER the kernel returns a new fd that nothing
    // else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Send the notification fd to the seccomp agent listening on `listener_path`, as runc does:
/// one message carrying the OCI container process state (JSON) and the fd (SCM_RIGHTS).
///
/// `state_json` is the container's OCI state (`ociVersion`, `id`, `status`, `pid`, `bundle`,
/// `annotations`), `metadata` the profile's `listenerMetadata`.
pub fn send_listener(
    listener_path: &Path,
    notify_fd: OwnedFd,
    pid: i32,
    state_json: &[u8],
    metadata: Option<&str>,
) -> Result<()> {
    let payload = process_state(pid, state_json, metadata)?;
    let stream = UnixStream::connect(listener_path).with_context(|| {
        format!(
            "cannot connect to the seccomp agent at {} (linux.seccomp.listenerPath)",
            listener_path.display()
        )
    })?;
    let fds = [notify_fd.as_raw_fd()];
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&payload)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .with_context(|| format!("cannot send the seccomp fd to {}", listener_path.display()))?;
    (&stream)
        .write_all(&payload[sent..])
        .context("cannot send the container state to the seccomp agent")?;
    Ok(())
}

/// The OCI `ContainerProcessState` message (runtime spec, config-linux.md "listenerPath").
/// `pid` is the filtered process (the init, or an exec'd process), as runc sends it.
fn process_state(pid: i32, state_json: &[u8], metadata: Option<&str>) -> Result<Vec<u8>> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ContainerProcessState<'a> {
        oci_version: &'a str,
        fds: [&'a str; 1],
        pid: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata: Option<&'a str>,
        state: &'a serde_json::Value,
    }
    let mut state: serde_json::Value =
        serde_json::from_slice(state_json).context("the container state is not valid JSON")?;
    // The agent gets the bare OCI state, as runc sends it.
    if let Some(o) = state.as_object_mut() {
        o.retain(|k, _| {
            matches!(
                k.as_str(),
                "ociVersion" | "id" | "status" | "pid" | "bundle" | "annotations"
            )
        });
    }
    let pid = i64::from(pid);
    let oci_version = state
        .get("ociVersion")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("1.0.2");
    Ok(serde_json::to_vec(&ContainerProcessState {
        oci_version,
        fds: ["seccompFd"],
        pid,
        metadata: metadata.filter(|m| !m.is_empty()),
        state: &state,
    })?)
}

/// Flag names this kernel accepts, for `features`.
pub fn supported_flags() -> Vec<&'static str> {
    FLAGS
        .iter()
        .filter(|(_, bit)| kernel_has_flags(with_prerequisites(*bit)))
        .map(|(name, _)| *name)
        .collect()
}

/// Architecture names accepted in `linux.seccomp.architectures`: every one the OCI spec
/// (and libseccomp) names. The program filters the native architecture's syscalls; any
/// other ABI, the native one's compat ABIs included, gets the bad-arch action.
pub fn accepted_architectures() -> Vec<String> {
    [
        Arch::ScmpArchNative,
        Arch::ScmpArchX86,
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX32,
        Arch::ScmpArchArm,
        Arch::ScmpArchAarch64,
        Arch::ScmpArchMips,
        Arch::ScmpArchMips64,
        Arch::ScmpArchMips64n32,
        Arch::ScmpArchMipsel,
        Arch::ScmpArchMipsel64,
        Arch::ScmpArchMipsel64n32,
        Arch::ScmpArchPpc,
        Arch::ScmpArchPpc64,
        Arch::ScmpArchPpc64le,
        Arch::ScmpArchS390,
        Arch::ScmpArchS390x,
        Arch::ScmpArchRiscv64,
    ]
    .into_iter()
    .map(|arch| arch.to_string())
    .collect()
}

/// What the profile says about one syscall number.
#[derive(Default)]
struct SyscallRules {
    /// Rules with argument tests, in profile order, with their `SECCOMP_RET_*` values.
    conditional: Vec<(SeccompRule, u32)>,
    /// The action of the first rule without argument tests. It overrides every rule with
    /// tests of the syscall, before or after it, as libseccomp (so runc) makes it.
    always: Option<u32>,
}

/// How one profile entry's `args` match: always, or any of these rules (each an AND of tests).
enum Matching {
    Always,
    AnyOf(Vec<SeccompRule>),
}

/// runc's reading of `args`: all tests on one rule (AND), except when an argument index
/// appears twice, where each test becomes a rule of its own (OR), as libseccomp cannot AND two
/// tests of one argument.
fn arg_rules(args: &[LinuxSeccompArg]) -> Result<Matching> {
    if args.is_empty() {
        return Ok(Matching::Always);
    }
    let mut seen = [false; MAX_ARG_INDEX + 1];
    let repeated = args
        .iter()
        .any(|arg| std::mem::replace(&mut seen[arg.index().min(MAX_ARG_INDEX)], true));
    let groups: Vec<&[LinuxSeccompArg]> = if repeated {
        args.chunks(1).collect()
    } else {
        vec![args]
    };
    let rules = groups
        .into_iter()
        .map(|group| {
            let conditions = group.iter().map(condition).collect::<Result<Vec<_>>>()?;
            Ok(SeccompRule::new(conditions)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Matching::AnyOf(rules))
}

/// One argument test, compared on all 64 bits. MASKED_EQ compares `arg & value` with
/// `valueTwo & value`: libseccomp masks the datum too, so a `valueTwo` with bits outside the
/// mask still matches (runc's filters do).
fn condition(arg: &LinuxSeccompArg) -> Result<SeccompCondition> {
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|index| usize::from(*index) <= MAX_ARG_INDEX)
        .with_context(|| format!("seccomp argument index {} is out of range", arg.index()))?;
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let mask = arg.value();
            (
                SeccompCmpOp::MaskedEq(mask),
                arg.value_two().unwrap_or(0) & mask,
            )
        }
    };
    Ok(SeccompCondition::new(
        index,
        SeccompCmpArgLen::Qword,
        op,
        value,
    )?)
}

/// The `SECCOMP_RET_*` value of an action; ERRNO and TRACE carry `errnoRet` (default EPERM,
/// as runc).
fn action_code(action: LinuxSeccompAction, errno_ret: Option<u32>) -> u32 {
    let data = errno_ret.unwrap_or(libc::EPERM as u32) & libc::SECCOMP_RET_DATA;
    let action = match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(data),
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(data),
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        // seccompiler has no user notification.
        LinuxSeccompAction::ScmpActNotify => return libc::SECCOMP_RET_USER_NOTIF,
    };
    u32::from(action)
}

/// The seccomp(2) flags to load with: the requested ones this kernel has, plus NEW_LISTENER.
fn load_flags(requested: &[String], listener: bool) -> libc::c_ulong {
    let mut flags = 0;
    for (name, bit) in FLAGS {
        if !requested.iter().any(|r| r == name) {
            continue;
        }
        if *bit == libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV && !listener {
            continue; // the kernel refuses it without a listener
        }
        if kernel_has_flags(with_prerequisites(*bit)) {
            flags |= bit;
        }
    }
    if listener {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            // TSYNC and NEW_LISTENER together need TSYNC_ESRCH (Linux 5.7).
            let both = libc::SECCOMP_FILTER_FLAG_TSYNC | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
            if kernel_has_flags(both) {
                flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
            } else {
                flags &= !libc::SECCOMP_FILTER_FLAG_TSYNC;
            }
        }
    }
    flags
}

/// WAIT_KILLABLE_RECV is only valid together with NEW_LISTENER.
fn with_prerequisites(bit: libc::c_ulong) -> libc::c_ulong {
    if bit == libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV {
        bit | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        bit
    }
}

/// Probe as libseccomp does: with a NULL program the kernel answers EFAULT for flags it knows
/// and EINVAL for the others, without loading anything.
fn kernel_has_flags(flags: libc::c_ulong) -> bool {
    // SAFETY: a NULL program is never dereferenced: the kernel validates flags first and then
    // fails to copy from NULL.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    ret < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// SECCOMP_GET_ACTION_AVAIL (Linux 4.14); an older kernel has only the original actions.
fn kernel_has_action(action: u32) -> bool {
    // SAFETY: the kernel reads one u32 from a pointer to a live local.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    };
    if ret == 0 {
        return true;
    }
    let original = [
        libc::SECCOMP_RET_KILL_THREAD,
        libc::SECCOMP_RET_TRAP,
        libc::SECCOMP_RET_ERRNO,
        libc::SECCOMP_RET_TRACE,
        libc::SECCOMP_RET_ALLOW,
    ];
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
        && original.contains(&action)
}
