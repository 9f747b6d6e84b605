//! The five capability sets of `process.capabilities`.
//!
//! Capabilities the running kernel does not know are left out with runc's warning
//! (`ignoring unknown or unavailable capabilities: [CAP_FOO]`); names oci-spec cannot parse
//! must be taken out of the config before it is deserialized ([`strip_unknown`]).

use anyhow::{anyhow, bail, Result};
use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};
use std::sync::atomic::{AtomicU64, Ordering};

/// Every capability Linux defines, indexed by number (runc's `features` order).
pub const ALL: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Our bounding set before `drop_bounding`, so `apply` can say which set lacks a capability.
static RUNTIME_BOUNDING: AtomicU64 = AtomicU64::new(u64::MAX);
/// The bounding set `drop_bounding` left (u64::MAX: not known, read it).
static BOUNDING_NOW: AtomicU64 = AtomicU64::new(u64::MAX);

/// The number of a capability name (`CAP_CHOWN` → 0).
pub fn number(name: &str) -> Option<u32> {
    ALL.iter().position(|n| *n == name).map(|i| i as u32)
}

/// The name oci-spec's `cap` serializes to (`CAP_...`).
fn name_of(cap: &Capability) -> String {
    serde_json::to_value(cap)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{cap:?}"))
}

/// The highest capability number the running kernel knows (probed once per process).
pub fn last_cap() -> u32 {
    static LAST: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);
    match LAST.load(Ordering::Relaxed) {
        u32::MAX => {
            let last = probe_last_cap();
            LAST.store(last, Ordering::Relaxed);
            last
        }
        last => last,
    }
}

/// PR_CAPBSET_READ fails (EINVAL) exactly above the last capability: a binary search, six
/// calls instead of forty-odd.
fn probe_last_cap() -> u32 {
    // SAFETY: PR_CAPBSET_READ takes a capability number and touches no memory.
    let known =
        |n: u32| unsafe { libc::prctl(libc::PR_CAPBSET_READ, n as libc::c_ulong, 0, 0, 0) } >= 0;
    let (mut lo, mut hi) = (0u32, 64u32); // known(lo), !known(hi)
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if known(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The calling thread's bounding set as a mask.
fn bounding_mask() -> u64 {
    let mut mask = 0;
    for n in 0..=last_cap() {
        // SAFETY: PR_CAPBSET_READ takes a capability number and touches no memory.
        if unsafe { libc::prctl(libc::PR_CAPBSET_READ, n as libc::c_ulong, 0, 0, 0) } == 1 {
            mask |= 1 << n;
        }
    }
    mask
}

/// The mask of `set` over the capabilities this kernel knows, and the names it left out.
fn mask(set: Option<&Capabilities>, unknown: &mut Vec<String>) -> u64 {
    let last = last_cap();
    let mut m = 0;
    for cap in set.into_iter().flatten() {
        let name = name_of(cap);
        match number(&name) {
            Some(n) if n <= last => m |= 1u64 << n,
            _ => unknown.push(name),
        }
    }
    m
}

struct Masks {
    bounding: u64,
    effective: u64,
    permitted: u64,
    inheritable: u64,
    ambient: u64,
}

fn masks(caps: &LinuxCapabilities) -> Masks {
    let mut unknown = Vec::new();
    let m = Masks {
        bounding: mask(caps.bounding().as_ref(), &mut unknown),
        effective: mask(caps.effective().as_ref(), &mut unknown),
        permitted: mask(caps.permitted().as_ref(), &mut unknown),
        inheritable: mask(caps.inheritable().as_ref(), &mut unknown),
        ambient: mask(caps.ambient().as_ref(), &mut unknown),
    };
    if !unknown.is_empty() {
        unknown.sort();
        unknown.dedup();
        crate::logging::warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            unknown.join(" ")
        ));
    }
    m
}

fn names(mask: u64) -> Vec<&'static str> {
    (0..64)
        .filter(|n| mask & (1 << n) != 0)
        .map(|n| ALL.get(n).copied().unwrap_or("CAP_UNKNOWN"))
        .collect()
}

/// Drop every capability not in the bounding set of `caps` from the bounding set. Runs while
/// still root (needs `CAP_SETPCAP`), before the uid change.
pub fn drop_bounding(caps: &LinuxCapabilities) -> Result<()> {
    let keep = masks(caps).bounding;
    let current = bounding_mask();
    RUNTIME_BOUNDING.store(current, Ordering::Relaxed);
    for n in 0..=last_cap() {
        if keep & (1 << n) != 0 || current & (1 << n) == 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, n as libc::c_ulong, 0, 0, 0) } < 0 {
            bail!(
                "drop {} from the bounding set: {}",
                ALL.get(n as usize).unwrap_or(&"capability"),
                Errno::last()
            );
        }
    }
    BOUNDING_NOW.store(current & keep, Ordering::Relaxed);
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// The calling thread's (effective, permitted, inheritable) masks.
fn capget() -> Result<(u64, u64, u64)> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two CapData (version 3) through valid pointers.
    if unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) } < 0 {
        bail!("capget: {}", Errno::last());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let split = |m: u64| (m as u32, (m >> 32) as u32);
    let (e, p, i) = (split(effective), split(permitted), split(inheritable));
    let data = [
        CapData {
            effective: e.0,
            permitted: p.0,
            inheritable: i.0,
        },
        CapData {
            effective: e.1,
            permitted: p.1,
            inheritable: i.1,
        },
    ];
    // SAFETY: capset reads a header and two CapData (version 3) from valid pointers.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Set effective, permitted and inheritable, then raise ambient. Runs after the uid change
/// (with `PR_SET_KEEPCAPS` set before it). A capability the runtime itself does not hold is
/// an error that names it.
pub fn apply(caps: &LinuxCapabilities) -> Result<()> {
    let m = masks(caps);
    let (_, have, _) = capget()?;
    let wanted = m.effective | m.permitted | m.inheritable;
    if let Some(name) = names(wanted & !have).first() {
        let bounding = match RUNTIME_BOUNDING.load(Ordering::Relaxed) {
            u64::MAX => bounding_mask(),
            b => b,
        };
        let set = if number(name).is_some_and(|n| bounding & (1 << n) == 0) {
            "bounding"
        } else {
            "permitted"
        };
        bail!("capability {name} is not in the runtime's {set} set: it cannot be granted");
    }
    // The kernel keeps inheritable within the bounding set (which drop_bounding has set).
    let bounding = match BOUNDING_NOW.load(Ordering::Relaxed) {
        u64::MAX => bounding_mask(),
        b => b,
    };
    if let Some(name) = names(m.inheritable & !bounding).first() {
        bail!("capability {name} is inheritable but not in the bounding set: it cannot be granted");
    }
    capset(m.effective, m.permitted, m.inheritable)
        .map_err(|e| anyhow!("unable to apply caps: {}", crate::hooks::go_errno_text(e)))?;
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no pointers.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    // As in runc, an ambient capability the kernel refuses (it must be both permitted and
    // inheritable) is skipped, not an error.
    for n in 0..64u64 {
        if m.ambient & (1 << n) != 0 {
            // SAFETY: PR_CAP_AMBIENT_RAISE takes a capability number and no pointers.
            unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    n as libc::c_ulong,
                    0,
                    0,
                )
            };
        }
    }
    Ok(())
}

/// Remove the capability names oci-spec would refuse from a raw `config.json` value
/// (`process.capabilities.*`), before deserializing it; returns them, sorted. The caller logs
/// runc's warning: `ignoring unknown or unavailable capabilities: [CAP_FOO]`.
pub fn strip_unknown(config: &mut serde_json::Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let Some(sets) = config
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return unknown;
    };
    for list in sets.values_mut().filter_map(|v| v.as_array_mut()) {
        list.retain(|v| {
            let ok = v.as_str().is_some_and(|s| {
                serde_json::from_value::<Capability>(v.clone()).is_ok() && !s.is_empty()
            });
            if !ok {
                unknown.push(v.as_str().map_or_else(|| v.to_string(), str::to_owned));
            }
            ok
        });
    }
    unknown.sort();
    unknown.dedup();
    unknown
}
