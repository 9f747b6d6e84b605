//! `process.rlimits`.

use anyhow::{bail, Result};
use nix::errno::Errno;
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

/// The `RLIMIT_*` name of a limit, as in `config.json`.
pub fn name(t: PosixRlimitType) -> &'static str {
    match t {
        PosixRlimitType::RlimitAs => "RLIMIT_AS",
        PosixRlimitType::RlimitCore => "RLIMIT_CORE",
        PosixRlimitType::RlimitCpu => "RLIMIT_CPU",
        PosixRlimitType::RlimitData => "RLIMIT_DATA",
        PosixRlimitType::RlimitFsize => "RLIMIT_FSIZE",
        PosixRlimitType::RlimitLocks => "RLIMIT_LOCKS",
        PosixRlimitType::RlimitMemlock => "RLIMIT_MEMLOCK",
        PosixRlimitType::RlimitMsgqueue => "RLIMIT_MSGQUEUE",
        PosixRlimitType::RlimitNice => "RLIMIT_NICE",
        PosixRlimitType::RlimitNofile => "RLIMIT_NOFILE",
        PosixRlimitType::RlimitNproc => "RLIMIT_NPROC",
        PosixRlimitType::RlimitRss => "RLIMIT_RSS",
        PosixRlimitType::RlimitRtprio => "RLIMIT_RTPRIO",
        PosixRlimitType::RlimitRttime => "RLIMIT_RTTIME",
        PosixRlimitType::RlimitSigpending => "RLIMIT_SIGPENDING",
        PosixRlimitType::RlimitStack => "RLIMIT_STACK",
    }
}

/// The kernel's resource number for a limit.
fn resource(t: PosixRlimitType) -> libc::c_int {
    let r = match t {
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
    };
    r as libc::c_int
}

fn show(v: u64) -> String {
    if v == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        v.to_string()
    }
}

/// Apply each rlimit to the calling process. An error names the limit and, when the hard
/// limit cannot be raised, says so.
pub fn apply(rlimits: &[PosixRlimit]) -> Result<()> {
    for rl in rlimits {
        let (t, soft, hard) = (rl.typ(), rl.soft(), rl.hard());
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: an all-zero rlimit is a valid value to be overwritten.
        let mut old: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: prlimit on ourselves (pid 0) reads `new` and writes `old`, both valid.
        if unsafe { libc::prlimit(0, resource(t) as _, &new, &mut old) } == 0 {
            continue;
        }
        let errno = Errno::last();
        let what = format!(
            "error setting rlimit type {} (soft {}, hard {})",
            name(t),
            show(soft),
            show(hard)
        );
        // SAFETY: getrlimit writes an rlimit through a valid pointer.
        unsafe { libc::getrlimit(resource(t) as _, &mut old) };
        let nr_open = crate::kernfs::read("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        match errno {
            Errno::EPERM
                if t == PosixRlimitType::RlimitNofile && nr_open.is_some_and(|n| hard > n) =>
            {
                bail!(
                    "{what}: operation not permitted: the limit is above the kernel's maximum \
                     of {} (/proc/sys/fs/nr_open)",
                    show(nr_open.unwrap_or(0))
                )
            }
            Errno::EPERM => bail!(
                "{what}: operation not permitted: the hard limit cannot be raised above the \
                 current {} without CAP_SYS_RESOURCE",
                show(old.rlim_max)
            ),
            Errno::EINVAL if soft > hard => {
                bail!("{what}: invalid argument: the soft limit is above the hard limit")
            }
            e => bail!("{what}: {}", crate::hooks::go_errno_text(e)),
        }
    }
    Ok(())
}

/// runc's check of limit names in a raw `config.json` value (`process.rlimits[].type`), for
/// use before deserializing it: `wrong rlimit value: RLIMIT_FOO`.
pub fn check_names(config: &serde_json::Value) -> Result<()> {
    let Some(list) = config
        .pointer("/process/rlimits")
        .and_then(|v| v.as_array())
    else {
        return Ok(());
    };
    for rl in list {
        let t = rl.get("type").cloned().unwrap_or(serde_json::Value::Null);
        if serde_json::from_value::<PosixRlimitType>(t.clone()).is_err() {
            bail!(
                "wrong rlimit value: {}",
                t.as_str().unwrap_or(&t.to_string())
            );
        }
    }
    Ok(())
}
