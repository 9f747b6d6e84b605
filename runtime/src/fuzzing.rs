//! Entry points for `fuzz/` (cargo fuzz): each runs one parser of untrusted input the way the
//! runtime runs it, stopping before anything is made on the host. Not an API: hidden from
//! the docs and free to change with the fuzz targets.

use std::ffi::OsString;
use std::path::Path;

/// `config.json` → the spec → what `create` works out before its first change to the host:
/// validation (`bundle` must hold the `rootfs` the config names to get past it), the cgroup
/// path or systemd unit and properties, the namespaces, the seccomp program and the device
/// rules. (`create`'s `Plan::new` adds only the sealed-executable copy, a host change.)
pub fn config(data: &[u8], bundle: &Path) {
    let Ok((spec, _raw)) = crate::spec::parse_config(data) else {
        return;
    };
    if crate::spec::validate(&spec, bundle).is_err() {
        return;
    }
    let linux = spec.linux().as_ref();
    let cgroups_path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .and_then(|p| p.to_str());
    let _ = crate::cgroups::resolve_path(cgroups_path, "fuzz");
    if let Ok(unit) = crate::cgroups::systemd::Unit::parse(
        cgroups_path,
        "fuzz",
        crate::cgroups::systemd::Manager::System,
    ) {
        let _ = unit.cgroup_path();
    }
    let resources = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    for v1 in [false, true] {
        let _ = crate::cgroups::systemd::properties::from_resources(&resources, v1);
    }
    let annotations = spec.annotations().clone().unwrap_or_default();
    let _ =
        crate::cgroups::systemd::properties::from_annotations(&annotations.into_iter().collect());
    let rules =
        crate::cgroups::devices::with_defaults(resources.devices().as_deref().unwrap_or_default());
    let _ = crate::cgroups::devices::reduce(&rules);
    let namespaces = crate::namespaces::plan(&spec);
    let _ = namespaces.early_unshare_flags();
    let _ = crate::seccomp::of_spec(&spec);
}

/// A seccomp profile (`linux.seccomp` as JSON) → its BPF program.
pub fn seccomp_profile(data: &[u8]) {
    if let Ok(profile) = serde_json::from_slice::<oci_spec::runtime::LinuxSeccomp>(data) {
        let _ = crate::seccomp::compile(&profile);
    }
}

/// A command line (without the program name) through runc's flag rules.
pub fn command_line(args: &[OsString]) {
    crate::cli::parses(args);
}

/// `/proc/self/mountinfo`, then `/proc/<pid>/cgroup` against it (every hierarchy's
/// directories, as create and the shim find them).
pub fn proc_cgroups(mountinfo: &str, cgroup: &str) {
    let mounts = crate::mountinfo::parse(mountinfo);
    for h in crate::cgroups::parse_hierarchies(cgroup, &mounts) {
        let _ = h.dir_for(&h.own_path);
    }
}

/// `/proc/<pid>/stat` (state letter and start time: how a container's init is told from a
/// process that reuses its pid).
pub fn proc_stat(text: &str) {
    let _ = crate::state::parse_proc_stat(text);
}

/// `state.json` as every command after `create` reads it.
pub fn state_json(data: &[u8]) {
    let Ok(saved) = serde_json::from_slice::<crate::state::Saved>(data) else {
        return;
    };
    for status in [
        crate::state::Status::Creating,
        crate::state::Status::Created,
        crate::state::Status::Running,
        crate::state::Status::Paused,
        crate::state::Status::Stopped,
    ] {
        let _ = serde_json::to_vec(&saved.oci(status));
        let _ = saved.hook_state(status);
    }
    let container = crate::state::Container {
        dir: std::path::PathBuf::new(),
        saved,
    };
    let _ = container.hooks("poststop");
    let _ = container.spec();
}
