//! The process attributes of runtime-spec 1.2/1.3 that runc 1.3 honours: the scheduler
//! (`sched_setattr`), the I/O priority, the personality, the memory policy and the CPU
//! affinity of `exec`. Applied by the container's init and by every exec'd process, before
//! capabilities are dropped (a real-time policy needs CAP_SYS_NICE), in runc's order.

use super::errors::errno_err;
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{
    ExecCPUAffinity, IOPriorityClass, Linux, LinuxIOPriority, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Process,
    Scheduler,
};

/// The kernel's `struct sched_attr` (SCHED_ATTR_SIZE_VER1, 56 bytes).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// Scheduler, I/O priority, personality and memory policy, in runc's order.
pub fn apply(process: &Process, linux: Option<&Linux>) -> Result<()> {
    if let Some(s) = process.scheduler() {
        set_scheduler(s, linux)?;
    }
    if let Some(p) = process.io_priority() {
        set_io_priority(p)?;
    }
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        set_personality(p.domain())?;
    }
    if let Some(m) = linux.and_then(|l| l.memory_policy().as_ref()) {
        set_memory_policy(m.mode(), m.flags().as_deref(), m.nodes().as_deref())?;
    }
    Ok(())
}

/// The runtime-spec's names of two scheduler flags where oci-spec 0.10 spells them
/// otherwise (`SCHED_RESET_ON_FORK`, `SCHED_FLAG_D_L_OVERRUN`) and would refuse a valid
/// config; `process` is a `process` object as read.
pub fn spell_sched_flags_for_oci_spec(process: &mut serde_json::Value) {
    let flags = process
        .pointer_mut("/scheduler/flags")
        .and_then(|f| f.as_array_mut());
    for flag in flags.into_iter().flatten() {
        let renamed = match flag.as_str() {
            Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
            Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
            _ => continue,
        };
        *flag = serde_json::Value::from(renamed);
    }
}

/// Reject what the kernel would refuse only inside the init, with the field named, before
/// anything of the container is made.
pub fn check(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let process = spec.process().as_ref();
    if let Some(s) = process.and_then(|p| p.scheduler().as_ref()) {
        sched_attr(s)?;
    }
    if let Some(p) = process.and_then(|p| p.io_priority().as_ref()) {
        io_priority_value(p)?;
    }
    if let Some(a) = process.and_then(|p| p.exec_cpu_affinity().as_ref()) {
        exec_affinity_masks(a)?;
    }
    if let Some(l) = spec.linux() {
        if let Some(p) = l.personality() {
            if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
                // runc's warning: the spec names no flags any runtime implements.
                crate::logging::warn(&format!(
                    "ignoring unsupported personality flags: {:?} because personality flag has not supported at this time",
                    p.flags().as_ref().unwrap_or(&Vec::new())
                ));
            }
        }
        if let Some(m) = l.memory_policy() {
            if let Some(nodes) = m.nodes() {
                cpu_list(nodes).context("linux.memoryPolicy.nodes")?;
            }
        }
    }
    Ok(())
}

fn sched_attr(s: &Scheduler) -> Result<SchedAttr> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    // runc's checks and words.
    let nice = s.nice().unwrap_or(0);
    let name = serde_json::to_value(s.policy()).unwrap_or_default();
    let name = name.as_str().unwrap_or("");
    if matches!(policy, 0 | 3) && !(-20..=19).contains(&nice) {
        bail!("invalid scheduler.nice: {nice} when scheduler.policy is {name}");
    }
    let priority = s.priority().unwrap_or(0);
    if priority != 0 && !matches!(policy, 1 | 2) {
        bail!("scheduler.priority can only be specified for SchedFIFO or SchedRR policy");
    }
    let priority = u32::try_from(priority)
        .with_context(|| format!("invalid scheduler.priority: {priority}"))?;
    let deadline_params = [s.runtime(), s.deadline(), s.period()];
    if policy != 6 && deadline_params.iter().any(|p| p.unwrap_or(0) != 0) {
        bail!("scheduler runtime/deadline/period can only be specified for SchedDeadline policy");
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice,
        priority,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..SchedAttr::default()
    })
}

fn set_scheduler(s: &Scheduler, linux: Option<&Linux>) -> Result<()> {
    let attr = sched_attr(s)?;
    // SAFETY: sched_setattr reads a sched_attr of `size` bytes from a live struct.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } != 0 {
        let e = std::io::Error::last_os_error();
        let cpuset = linux
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.cpu().as_ref())
            .and_then(|c| c.cpus().as_ref())
            .is_some_and(|c| !c.is_empty());
        if e.raw_os_error() == Some(libc::EPERM) && cpuset {
            bail!("process scheduler can't be used together with AllowedCPUs");
        }
        return Err(errno_err("error setting scheduler"));
    }
    Ok(())
}

/// `ioprio_set`'s value: class << 13 | level.
fn io_priority_value(p: &LinuxIOPriority) -> Result<libc::c_int> {
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = p.priority();
    if !(0..=7).contains(&level) {
        bail!("invalid ioPriority.Priority: {level}");
    }
    Ok((class << 13) | level as libc::c_int)
}

/// The I/O priority of this process, which every process it forks inherits. runc sets it
/// on the process group (IOPRIO_WHO_PGRP of its own group), which without a terminal is the
/// caller's group too (the shell's job, runc itself); the container's processes alone are
/// what the spec means.
fn set_io_priority(p: &LinuxIOPriority) -> Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    let value = io_priority_value(p)?;
    // SAFETY: ioprio_set with integer arguments only.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) } != 0 {
        return Err(errno_err("failed to set io priority"));
    }
    Ok(())
}

fn set_personality(domain: LinuxPersonalityDomain) -> Result<()> {
    let persona = match domain {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    // SAFETY: personality with an integer argument only.
    if unsafe { libc::personality(persona) } == -1 {
        return Err(errno_err("unable to set personality"));
    }
    Ok(())
}

fn set_memory_policy(
    mode: MemoryPolicyModeType,
    flags: Option<&[MemoryPolicyFlagType]>,
    nodes: Option<&str>,
) -> Result<()> {
    let mut value: libc::c_int = match mode {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    };
    for f in flags.unwrap_or_default() {
        value |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    let mask = match nodes {
        Some(n) if !n.is_empty() => cpu_list(n).context("linux.memoryPolicy.nodes")?,
        _ => Vec::new(),
    };
    let (ptr, maxnode) = if mask.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (mask.as_ptr(), mask.len() * 64 + 1)
    };
    // SAFETY: set_mempolicy reads maxnode-1 bits from a live mask (or none).
    if unsafe { libc::syscall(libc::SYS_set_mempolicy, value, ptr, maxnode) } != 0 {
        return Err(errno_err(&format!(
            "set_mempolicy for linux.memoryPolicy (nodes {:?})",
            nodes.unwrap_or_default()
        )));
    }
    Ok(())
}

/// A kernel list ("0-3,7") as a bit mask of 64-bit words.
pub fn cpu_list(list: &str) -> Result<Vec<u64>> {
    let mut mask: Vec<u64> = Vec::new();
    for part in list.split(',').map(str::trim) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let parse = |s: &str| -> Result<usize> {
            let n: usize = s
                .trim()
                .parse()
                .with_context(|| format!("invalid list {list:?}"))?;
            if n >= MAX_CPU {
                bail!("invalid list {list:?}: {n} is too large");
            }
            Ok(n)
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi {
            bail!("invalid list {list:?}: {lo}-{hi} is backwards");
        }
        for n in lo..=hi {
            if mask.len() <= n / 64 {
                mask.resize(n / 64 + 1, 0);
            }
            mask[n / 64] |= 1 << (n % 64);
        }
    }
    Ok(mask)
}

/// CPUs runc's masks cover (and the reset mask fills).
const MAX_CPU: usize = 8192;

/// A CPU mask in 64-bit words, CPU 0 in bit 0 of the first.
type CpuMask = Vec<u64>;

/// `execCPUAffinity` as masks: (initial, final).
fn exec_affinity_masks(a: &ExecCPUAffinity) -> Result<(Option<CpuMask>, Option<CpuMask>)> {
    let mask = |s: &Option<String>, what: &str| -> Result<Option<CpuMask>> {
        match s.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => cpu_list(s)
                .map(Some)
                .with_context(|| format!("bad CPUAffinity.{what}")),
        }
    };
    Ok((
        mask(a.initial(), "Initial")?,
        mask(a.cpu_affinity_final(), "Final")?,
    ))
}

fn set_affinity(pid: libc::pid_t, mask: &[u64]) -> std::io::Result<()> {
    // SAFETY: sched_setaffinity reads len bytes from a live mask.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid,
            std::mem::size_of_val(mask),
            mask.as_ptr(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Before an exec'd process is cloned: the runtime itself takes `initial`, which the child
/// inherits until it has joined the container's cgroups.
pub fn set_initial_affinity(a: Option<&ExecCPUAffinity>) -> Result<()> {
    if let Some((Some(initial), _)) = a.map(exec_affinity_masks).transpose()? {
        set_affinity(0, &initial).context("error setting initial CPU affinity")?;
    }
    Ok(())
}

/// In the container's cgroups: `final` for an exec'd process; with no affinity asked for,
/// every CPU, so that the container's cpuset alone decides and nothing inherits the affinity
/// of whoever ran the runtime (a pinned shim or `taskset`), as runc 1.2.7+/1.3.1+ do.
pub fn set_final_affinity(a: Option<&ExecCPUAffinity>) -> Result<()> {
    let (initial, last) = match a {
        Some(a) => exec_affinity_masks(a)?,
        None => (None, None),
    };
    match (initial, last) {
        (_, Some(last)) => set_affinity(0, &last).context("error setting final CPU affinity"),
        (Some(_), None) => Ok(()),
        (None, None) => {
            // Best effort: the kernel clamps the mask to the CPUs it has.
            let _ = set_affinity(0, &[u64::MAX; MAX_CPU / 64]);
            Ok(())
        }
    }
}

/// `create`'s runtime and init work side by side from the clone to GO: the runtime makes and
/// configures the cgroups while the init makes its namespaces (~0.5 ms of the kernel's). A
/// scheduler that keeps a new child on its parent's CPU until that one is idle (as one that
/// packs work onto few virtual CPUs does) runs them one after the other instead; so the
/// runtime moves the init off its own CPU right after the clone, and the init takes the
/// runtime's CPUs back once told GO (its final affinity comes later, in `finalize`).
#[derive(Clone, Copy)]
pub struct SideBySide(libc::cpu_set_t);

impl SideBySide {
    /// The runtime's CPUs, before the clone; `None` with fewer than two (or more than
    /// `cpu_set_t` holds).
    pub fn new() -> Option<SideBySide> {
        // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            (libc::sched_getaffinity(0, size, &mut set) == 0 && libc::CPU_COUNT(&set) >= 2)
                .then_some(SideBySide(set))
        }
    }

    /// The runtime, right after the clone: the init may run on any of its CPUs but the one
    /// it runs on itself. Best effort (a cpuset without those CPUs refuses it: no matter).
    pub fn move_off_our_cpu(&self, init: libc::pid_t) {
        let mut others = self.0;
        // SAFETY: sched_getcpu has no preconditions; the set is ours and of the size given.
        unsafe {
            let cpu = libc::sched_getcpu();
            if cpu < 0 || cpu as usize >= libc::CPU_SETSIZE as usize {
                return;
            }
            libc::CPU_CLR(cpu as usize, &mut others);
            libc::sched_setaffinity(init, std::mem::size_of::<libc::cpu_set_t>(), &others);
        }
    }

    /// The init, once told GO: every CPU the runtime had (the kernel keeps it within its
    /// cpuset). Best effort.
    pub fn restore(&self) {
        // SAFETY: the set is ours and of the size given.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list("0").unwrap(), vec![1]);
        assert_eq!(cpu_list("0-3,7").unwrap(), vec![0b1000_1111]);
        assert_eq!(cpu_list("64").unwrap(), vec![0, 1]);
        assert!(cpu_list("3-1").is_err());
        assert!(cpu_list("x").is_err());
        assert!(cpu_list("8192").is_err());
    }

    #[test]
    fn io_priority_is_class_and_level() {
        let p: LinuxIOPriority =
            serde_json::from_str(r#"{"class": "IOPRIO_CLASS_IDLE", "priority": 4}"#).unwrap();
        assert_eq!(io_priority_value(&p).unwrap(), 3 << 13 | 4);
        let p: LinuxIOPriority =
            serde_json::from_str(r#"{"class": "IOPRIO_CLASS_BE", "priority": 8}"#).unwrap();
        assert!(io_priority_value(&p).is_err());
    }

    #[test]
    fn sched_attr_is_the_kernels() {
        assert_eq!(std::mem::size_of::<SchedAttr>(), 56);
        let s: serde_json::Value = serde_json::from_str(
            r#"{"policy": "SCHED_BATCH", "nice": 5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}"#,
        )
        .unwrap();
        let mut process = serde_json::json!({"scheduler": s});
        spell_sched_flags_for_oci_spec(&mut process);
        let s: Scheduler = serde_json::from_value(process["scheduler"].take()).unwrap();
        let a = sched_attr(&s).unwrap();
        assert_eq!((a.policy, a.nice, a.flags), (3, 5, 1));
    }
}
