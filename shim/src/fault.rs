//! Crash injection for the drills (`tests/drills.rs`), in debug builds only (release builds
//! compile it out, as the runtime's `RUNRS_FAULT`): `RUNRS_SHIM_FAULT=<point>` SIGKILLs the
//! shim server when it reaches `at(<point>)`, e.g. `create: runtime created`. With
//! `RUNRS_SHIM_FAULT_ONCE=<file>` only the first to get there fires (it creates the file),
//! so a container of the same id can run afterwards under the same containerd.

/// The points, in the order a container passes them.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
pub const POINTS: [&str; 4] = [
    "create: runtime created",
    "start: runtime started",
    "delete: before runtime delete",
    "delete: runtime deleted",
];

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn at(_point: &str) {}

#[cfg(debug_assertions)]
pub fn at(point: &str) {
    debug_assert!(POINTS.contains(&point), "unknown fault point {point:?}");
    if std::env::var("RUNRS_SHIM_FAULT").ok().as_deref() != Some(point) {
        return;
    }
    if let Some(once) = std::env::var_os("RUNRS_SHIM_FAULT_ONCE") {
        let first = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(once)
            .is_ok();
        if !first {
            return;
        }
    }
    crate::log::log(&format!("fault injected at {point:?}: SIGKILL"));
    // SAFETY: kill(2) of this process.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
}
