//! `runrs checkpoint` and `runrs restore`: runc 1.1's flags, in its order, and the
//! [`CriuOptions`] and [`RestoreFlags`] they make.

use super::flags::{BUNDLE, CONSOLE_SOCKET, DETACH, NO_PIVOT, NO_SUBREAPER, PID_FILE};
use super::parse::{Flag, Kind, Matches};
use crate::checkpoint::restore::RestoreFlags;
use crate::checkpoint::{self, CriuOptions};
use anyhow::Result;
use std::path::{Path, PathBuf};

const WORK_PATH: Flag = Flag::new(
    &["work-path"],
    Kind::Str,
    "path for saving work files and logs",
);
const TCP_ESTABLISHED: Flag = Flag::new(
    &["tcp-established"],
    Kind::Bool,
    "allow open tcp connections",
);
const TCP_SKIP_IN_FLIGHT: Flag = Flag::new(
    &["tcp-skip-in-flight"],
    Kind::Bool,
    "skip in-flight tcp connections",
);
const LINK_REMAP: Flag = Flag::new(
    &["link-remap"],
    Kind::Bool,
    "allow one to link unlinked files back when possible",
);
const EXT_UNIX_SK: Flag = Flag::new(&["ext-unix-sk"], Kind::Bool, "allow external unix sockets");
const SHELL_JOB: Flag = Flag::new(&["shell-job"], Kind::Bool, "allow shell jobs");
const LAZY_PAGES: Flag = Flag::new(
    &["lazy-pages"],
    Kind::Bool,
    "use userfaultfd to lazily restore memory pages",
);
const FILE_LOCKS: Flag = Flag::new(&["file-locks"], Kind::Bool, "handle file locks, for safety");
const MANAGE_CGROUPS_MODE: Flag = Flag::new(
    &["manage-cgroups-mode"],
    Kind::Str,
    "cgroups mode: soft|full|strict|ignore (default: soft)",
);
const EMPTY_NS: Flag = Flag::new(
    &["empty-ns"],
    Kind::StrList,
    "create a namespace, but don't restore its properties",
);
const AUTO_DEDUP: Flag = Flag::new(
    &["auto-dedup"],
    Kind::Bool,
    "enable auto deduplication of memory images",
);

pub(super) const CHECKPOINT_FLAGS: &[Flag] = &[
    Flag::new(
        &["image-path"],
        Kind::Str,
        "path for saving criu image files",
    ),
    WORK_PATH,
    Flag::new(
        &["parent-path"],
        Kind::Str,
        "path for previous criu image files in pre-dump",
    ),
    Flag::new(
        &["leave-running"],
        Kind::Bool,
        "leave the process running after checkpointing",
    ),
    TCP_ESTABLISHED,
    TCP_SKIP_IN_FLIGHT,
    LINK_REMAP,
    EXT_UNIX_SK,
    SHELL_JOB,
    LAZY_PAGES,
    Flag::new(
        &["status-fd"],
        Kind::Int32,
        "criu writes \\0 to this FD once lazy-pages is ready",
    )
    .default("-1"),
    Flag::new(
        &["page-server"],
        Kind::Str,
        "ADDRESS:PORT of the page server",
    ),
    FILE_LOCKS,
    Flag::new(
        &["pre-dump"],
        Kind::Bool,
        "dump container's memory information only, leave the container running after this",
    ),
    MANAGE_CGROUPS_MODE,
    EMPTY_NS,
    AUTO_DEDUP,
];

pub(super) const RESTORE_FLAGS: &[Flag] = &[
    CONSOLE_SOCKET,
    Flag::new(
        &["image-path"],
        Kind::Str,
        "path to criu image files for restoring",
    ),
    WORK_PATH,
    TCP_ESTABLISHED,
    EXT_UNIX_SK,
    SHELL_JOB,
    FILE_LOCKS,
    MANAGE_CGROUPS_MODE,
    BUNDLE,
    DETACH,
    PID_FILE,
    NO_SUBREAPER,
    NO_PIVOT,
    EMPTY_NS,
    AUTO_DEDUP,
    LAZY_PAGES,
    Flag::new(
        &["lsm-profile"],
        Kind::Str,
        "Specify an LSM profile to be used during restore in the form of TYPE:NAME.",
    ),
    Flag::new(
        &["lsm-mount-context"],
        Kind::Str,
        "Specify an LSM mount context to be used during restore.",
    ),
];

/// The CRIU flags of either command as given; checked (and the image directory made) only
/// when the command runs, as runc's criuOptions does.
#[derive(Debug, Default)]
pub struct CriuFlags {
    image_path: Option<PathBuf>,
    work_path: Option<PathBuf>,
    parent_path: Option<String>,
    bools: Vec<&'static str>,
    manage_cgroups_mode: Option<String>,
    empty_ns: Vec<String>,
    page_server: Option<String>,
    status_fd: i32,
    lsm_profile: Option<String>,
    lsm_mount_context: Option<String>,
}

/// Bool flags both commands take; `checkpoint` adds the last four.
const BOOLS: &[&str] = &[
    "tcp-established",
    "ext-unix-sk",
    "shell-job",
    "file-locks",
    "auto-dedup",
    "lazy-pages",
    "leave-running",
    "pre-dump",
    "tcp-skip-in-flight",
    "link-remap",
];

impl CriuFlags {
    pub(super) fn from_matches(m: &Matches, checkpoint: bool) -> CriuFlags {
        let bools = if checkpoint { BOOLS } else { &BOOLS[..6] };
        CriuFlags {
            image_path: m.path("image-path").map(|p| super::absolute(&p)),
            work_path: m.path("work-path").map(|p| super::absolute(&p)),
            parent_path: checkpoint.then(|| m.string("parent-path")).flatten(),
            bools: bools.iter().copied().filter(|b| m.bool(b)).collect(),
            manage_cgroups_mode: m.string("manage-cgroups-mode"),
            empty_ns: m.strings("empty-ns"),
            page_server: checkpoint.then(|| m.string("page-server")).flatten(),
            status_fd: checkpoint
                .then(|| m.int("status-fd"))
                .flatten()
                .map_or(-1, |fd| fd as i32),
            lsm_profile: (!checkpoint).then(|| m.string("lsm-profile")).flatten(),
            lsm_mount_context: (!checkpoint)
                .then(|| m.string("lsm-mount-context"))
                .flatten(),
        }
    }

    /// The options, checked; for a checkpoint the image directory is made.
    pub(super) fn options(&self, checkpoint: bool) -> Result<CriuOptions> {
        let page_server = match &self.page_server {
            Some(s) => Some(parse_page_server(s)?),
            None => None,
        };
        // runc's default: ./checkpoint.
        let image =
            (self.image_path.clone()).unwrap_or_else(|| super::absolute(Path::new("checkpoint")));
        let (image_path, parent_path) = if checkpoint {
            checkpoint::prepare_image_paths(image, self.parent_path.clone())?
        } else {
            (image, None)
        };
        let manage_cgroups_mode = match &self.manage_cgroups_mode {
            Some(s) => Some(checkpoint::parse_cgroups_mode(s)?),
            None => None,
        };
        let has = |name: &str| self.bools.contains(&name);
        Ok(CriuOptions {
            image_path,
            work_path: self.work_path.clone(),
            parent_path,
            leave_running: has("leave-running"),
            tcp_established: has("tcp-established"),
            ext_unix_sk: has("ext-unix-sk"),
            shell_job: has("shell-job"),
            file_locks: has("file-locks"),
            pre_dump: has("pre-dump"),
            auto_dedup: has("auto-dedup"),
            lazy_pages: has("lazy-pages"),
            tcp_skip_in_flight: has("tcp-skip-in-flight"),
            link_remap: has("link-remap"),
            status_fd: self.status_fd,
            lsm_profile: self.lsm_profile.clone(),
            lsm_mount_context: self.lsm_mount_context.clone(),
            manage_cgroups_mode,
            empty_ns: checkpoint::empty_ns_mask(&self.empty_ns)?,
            page_server,
        })
    }
}

/// `restore`'s own flags.
pub(super) fn restore_flags(m: &Matches) -> RestoreFlags {
    RestoreFlags {
        bundle: super::absolute(&m.path("bundle").unwrap_or_else(|| PathBuf::from("."))),
        detach: m.bool("detach"),
        pid_file: m.path("pid-file").map(|p| super::absolute(&p)),
        console_socket: m.path("console-socket").map(|p| super::absolute(&p)),
        no_pivot: m.bool("no-pivot"),
        no_subreaper: m.bool("no-subreaper"),
        // The global flag: set where the command runs.
        systemd_cgroup: false,
    }
}

/// `--page-server ADDRESS:PORT` (an IPv6 address in brackets), in runc's words when it is
/// not one.
fn parse_page_server(s: &str) -> Result<(String, i32)> {
    let usage = || anyhow::anyhow!("Use --page-server ADDRESS:PORT to specify page server");
    let (host, port) = s.rsplit_once(':').ok_or_else(usage)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || port.is_empty() || (host.contains(':') && !s.starts_with('[')) {
        return Err(usage());
    }
    let port: i32 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("Invalid port number"))?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod page_server_tests {
    use super::parse_page_server;

    #[test]
    fn page_server_addresses_as_runc_reads_them() {
        assert_eq!(
            parse_page_server("10.0.0.2:27000").unwrap(),
            ("10.0.0.2".to_string(), 27000)
        );
        assert_eq!(
            parse_page_server("[::1]:27000").unwrap(),
            ("::1".to_string(), 27000)
        );
        for bad in ["10.0.0.2", ":27000", "host:", "::1:27000"] {
            let e = parse_page_server(bad).unwrap_err().to_string();
            assert_eq!(
                e, "Use --page-server ADDRESS:PORT to specify page server",
                "{bad}"
            );
        }
        let e = parse_page_server("host:http").unwrap_err().to_string();
        assert_eq!(e, "Invalid port number");
    }
}
