//! runrs: an OCI container runtime with runc's command line.
//!
//! One module per concern; see `docs/architecture.md` and `../shared/DESIGN.md`.

pub mod capabilities;
pub mod cgroups;
pub mod checkpoint;
pub mod cli;
pub mod console;
pub mod container;
pub mod default_spec;
pub mod exec;
pub mod fault;
pub mod features;
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
pub mod intelrdt;
pub mod kernfs;
pub mod list;
pub mod logging;
pub mod lsm;
mod mountinfo;
pub mod namespaces;
pub mod netdev;
pub mod process;
pub mod resources;
pub mod rlimits;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod selfexe;
pub mod signals;
pub mod spec;
pub mod state;
pub mod std_start;

/// The name this program was run by, as given (`/usr/sbin/runc` in runc's usage errors).
pub fn argv0() -> String {
    std::env::args_os()
        .next()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "runrs".to_string())
}
