//! Linux security modules: the AppArmor profile a process is confined by, and the SELinux
//! labels runrs does not apply. A label the host cannot enforce fails the create or exec,
//! as runc fails it, rather than running the process unconfined without a word.

use anyhow::{bail, Result};
use oci_spec::runtime::Process;

/// AppArmor is loaded and enabled (runc's test: securityfs has it and the module says `Y`).
pub fn apparmor_enabled() -> bool {
    std::path::Path::new("/sys/kernel/security/apparmor").exists()
        && crate::kernfs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.starts_with('Y'))
}

/// SELinux is enabled: selinuxfs is mounted where the kernel puts it.
pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Refuse, before anything is made, labels this host or runrs cannot enforce.
pub fn check(process: &Process, mount_label: Option<&str>) -> Result<()> {
    let set = |v: Option<&String>| v.is_some_and(|v| !v.is_empty());
    if let Some(profile) = process
        .apparmor_profile()
        .as_ref()
        .filter(|p| !p.is_empty())
    {
        if !apparmor_enabled() {
            bail!(
                "unable to apply apparmor profile: apparmor failed to apply profile {profile:?}: \
                 AppArmor is not enabled on this host"
            );
        }
    }
    for (label, what) in [
        (process.selinux_label().as_ref(), "selinux label"),
        (mount_label.map(str::to_string).as_ref(), "mount label"),
    ] {
        if !set(label) {
            continue;
        }
        if !selinux_enabled() {
            bail!("{what} is specified in config, but selinux is disabled or not supported");
        }
        bail!("{what} is specified in config: runrs does not apply SELinux labels yet");
    }
    Ok(())
}

/// The AppArmor profile a restore puts the processes in, `--lsm-profile apparmor:NAME` or
/// else the one the container ran in, must be loaded: CRIU's restorer cannot enter a profile
/// the kernel does not have, and CRIU (4.1) then hangs for good (it kills the restored init
/// and waits for it, while the init waits for a traced child only CRIU may reap); runc's
/// restore hangs with it. Refused before anything is made. Profiles this cannot look up
/// (hats, stacks, namespaces) are left to CRIU.
pub fn check_restore_profile(lsm_profile: Option<&str>, process: Option<&Process>) -> Result<()> {
    let name = match lsm_profile {
        Some(p) => p.strip_prefix("apparmor:"),
        None => process.and_then(|p| p.apparmor_profile().as_deref()),
    };
    let Some(name) = name.filter(|n| !n.is_empty() && *n != "unconfined") else {
        return Ok(());
    };
    if name.contains("//") || name.starts_with(':') || !apparmor_enabled() {
        return Ok(());
    }
    let Ok(loaded) = crate::kernfs::read("/sys/kernel/security/apparmor/profiles") else {
        return Ok(());
    };
    if loaded
        .lines()
        .any(|l| l.rsplit_once(" (").is_some_and(|(n, _)| n == name))
    {
        return Ok(());
    }
    bail!("cannot restore into AppArmor profile {name:?}: it is not loaded in the kernel (apparmor_parser loads it)")
}

/// Confine the program this process executes next by `profile` (AppArmor's change_onexec),
/// as runc does: `exec PROFILE` into the task's exec attribute.
pub fn apply_apparmor(profile: &str) -> Result<()> {
    let new = "/proc/self/attr/apparmor/exec";
    let path = if std::path::Path::new(new).exists() {
        new
    } else {
        "/proc/self/attr/exec"
    };
    std::fs::write(path, format!("exec {profile}")).map_err(|e| {
        // SAFETY: strerror returns a pointer to a static string.
        let why =
            unsafe { std::ffi::CStr::from_ptr(libc::strerror(e.raw_os_error().unwrap_or(0))) };
        anyhow::anyhow!(
            "unable to apply apparmor profile: apparmor failed to apply profile: write {path}: {}",
            why.to_string_lossy().to_lowercase()
        )
    })
}
