//! `runrs exec`'s flags, and the [`ExecOptions`] they make.

use super::flags::{CONSOLE_SOCKET, DETACH, PIDFD_SOCKET, PID_FILE, PRESERVE_FDS};
use super::parse::{Flag, Kind, Matches};
use crate::exec::ExecOptions;

/// runc's `exec` flags, in its order (the help shows them so).
pub(super) const EXEC_FLAGS: &[Flag] = &[
    CONSOLE_SOCKET,
    PIDFD_SOCKET,
    Flag::new(
        &["cwd"],
        Kind::Str,
        "current working directory in the container",
    ),
    Flag::new(&["env", "e"], Kind::StrList, "set environment variables"),
    Flag::new(&["tty", "t"], Kind::Bool, "allocate a pseudo-TTY"),
    Flag::new(&["user", "u"], Kind::Str, "UID (format: <uid>[:<gid>])"),
    Flag::new(&["additional-gids", "g"], Kind::IntList, "additional gids"),
    Flag::new(&["process", "p"], Kind::Str, "path to the process.json"),
    DETACH,
    PID_FILE,
    Flag::new(
        &["process-label"],
        Kind::Str,
        "set the asm process label for the process commonly used with selinux",
    ),
    Flag::new(
        &["apparmor"],
        Kind::Str,
        "set the apparmor profile for the process",
    ),
    Flag::new(
        &["no-new-privs"],
        Kind::Bool,
        "set the no new privileges value for the process",
    ),
    Flag::new(
        &["cap", "c"],
        Kind::StrList,
        "add a capability to the bounding set for the process",
    ),
    PRESERVE_FDS,
    Flag::new(
        &["cgroup"],
        Kind::StrList,
        "run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>.",
    ),
    Flag::new(
        &["ignore-paused"],
        Kind::Bool,
        "allow exec in a paused container",
    ),
];

/// From the parsed [`EXEC_FLAGS`]; an empty string counts as not given, as in runc.
pub(super) fn options(m: &Matches) -> Result<ExecOptions, String> {
    let additional_gids = m
        .ints("additional-gids")
        .into_iter()
        .map(|g| {
            if g < 0 {
                return Err(format!("additional-gids must be a positive number {g}"));
            }
            // Go's uint32(g).
            Ok(g as u32)
        })
        .collect::<Result<_, _>>()?;
    Ok(ExecOptions {
        console_socket: m.path("console-socket"),
        pidfd_socket: m.path("pidfd-socket"),
        cwd: m.string("cwd"),
        env: m.strings("env"),
        tty: m.bool("tty"),
        user: m.string("user"),
        additional_gids,
        process: m.path("process"),
        detach: m.bool("detach"),
        pid_file: m.path("pid-file"),
        process_label: m.string("process-label"),
        apparmor: m.string("apparmor"),
        no_new_privs: m.bool("no-new-privs"),
        cap: m.strings("cap"),
        preserve_fds: m.int("preserve-fds").unwrap_or(0) as i32,
        cgroup: m.strings("cgroup"),
        ignore_paused: m.bool("ignore-paused"),
        args: m.args(),
    })
}
