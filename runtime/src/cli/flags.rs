//! Flags that more than one command takes, declared once so their help reads the same.

use super::parse::{Flag, Kind};

pub(super) const BUNDLE: Flag = Flag::new(
    &["bundle", "b"],
    Kind::Str,
    "path to the root of the bundle directory, defaults to the current directory",
);
pub(super) const CONSOLE_SOCKET: Flag = Flag::new(
    &["console-socket"],
    Kind::Str,
    "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal",
);
pub(super) const PIDFD_SOCKET: Flag = Flag::new(
    &["pidfd-socket"],
    Kind::Str,
    "path to an AF_UNIX socket which will receive a file descriptor referencing the init process",
);
pub(super) const PID_FILE: Flag = Flag::new(
    &["pid-file"],
    Kind::Str,
    "specify the file to write the process id to",
);
pub(super) const NO_SUBREAPER: Flag = Flag::new(
    &["no-subreaper"],
    Kind::Bool,
    "disable the use of the subreaper used to reap reparented processes",
);
pub(super) const NO_PIVOT: Flag = Flag::new(
    &["no-pivot"],
    Kind::Bool,
    "do not use pivot root to jail process inside rootfs",
);
pub(super) const NO_NEW_KEYRING: Flag = Flag::new(
    &["no-new-keyring"],
    Kind::Bool,
    "do not create a new session keyring for the container",
);
pub(super) const PRESERVE_FDS: Flag = Flag::new(
    &["preserve-fds"],
    Kind::Int32,
    "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)",
)
.default("0");
pub(super) const DETACH: Flag = Flag::new(
    &["detach", "d"],
    Kind::Bool,
    "detach from the container's process",
);
pub(super) const FORMAT: Flag =
    Flag::new(&["format", "f"], Kind::Str, "select one of: table or json").default("\"table\"");
