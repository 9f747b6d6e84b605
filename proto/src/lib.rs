//! containerd's API as the runrs shim speaks it: the Task service (`shim`, `shim_ttrpc`),
//! the events Forward service (`events`, `events_ttrpc`), task events (`task_events`),
//! mounts and process types, runtime options and cgroup v1/v2 metrics.
//!
//! Everything is generated at build time from `proto/*.proto` (see build.rs); package
//! names, message names and field numbers are containerd 1.6's, so the wire format and
//! the `Any` type URLs (`containerd.events.TaskExit`, ...) match containerd's.

include!(concat!(env!("OUT_DIR"), "/modules.rs"));

/// `google.protobuf.Empty`, where the generated ttrpc code looks for it.
pub mod empty {
    pub use protobuf::well_known_types::empty::Empty;
}

pub use protobuf;
pub use ttrpc;
