//! runc-compatible command line: flags, subcommands, usage errors and exit codes. No logic.
//!
//! runc 1.1 parses with urfave/cli v1 on Go's `flag` package; `parse()` does the same from
//! static tables: global flags only before the command, the command's flags anywhere
//! (except for `exec` and `ps`, where everything after the container id is the process's),
//! usage errors printed as "Incorrect Usage" plus the command's help on stdout and the error
//! through the log, exit 1.

mod checkpoint;
mod exec;
mod flags;
mod parse;
mod update;

use crate::container::{self, CreateOpts};
use crate::exec::ExecOptions;
use crate::logging::{self, Format};
use crate::resources::{self, UpdateOptions};
use anyhow::Context;
use flags::{
    BUNDLE, CONSOLE_SOCKET, DETACH, FORMAT, NO_NEW_KEYRING, NO_PIVOT, NO_SUBREAPER, PIDFD_SOCKET,
    PID_FILE, PRESERVE_FDS,
};
use parse::{Flag, Kind, Matches};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

/// runc's global flags, in its order (`--criu` aside).
const GLOBAL_FLAGS: &[Flag] = &[
    Flag::new(&["debug"], Kind::Bool, "enable debug logging"),
    Flag::new(
        &["log"],
        Kind::Str,
        "set the log file to write runrs logs to (default is '/dev/stderr')",
    ),
    Flag::new(
        &["log-format"],
        Kind::Str,
        "set the log format ('text' (default), or 'json')",
    )
    .default("\"text\""),
    Flag::new(
        &["root"],
        Kind::Str,
        "root directory for storage of container state (this should be located in tmpfs)",
    )
    .default("\"/run/runrs\""),
    Flag::new(
        &["systemd-cgroup"],
        Kind::Bool,
        "enable systemd cgroup support, expects cgroupsPath to be of form \"slice:prefix:name\" for e.g. \"system.slice:runc:434234\"",
    ),
    Flag::new(
        &["rootless"],
        Kind::Str,
        "ignore cgroup permission errors ('true', 'false', or 'auto')",
    ),
    Flag::new(&["help", "h"], Kind::Bool, "show help"),
    Flag::new(&["version", "v"], Kind::Bool, "print the version"),
];

/// How many arguments a command takes (runc's checkArgs).
#[derive(Clone, Copy)]
enum Nargs {
    Exact(usize),
    Min(usize),
    MinMax(usize, usize),
}

/// One subcommand: what its help shows and how its arguments are parsed.
struct Command {
    name: &'static str,
    usage: &'static str,
    /// After `runrs NAME [command options]` in the help.
    args_usage: &'static str,
    flags: &'static [Flag],
    /// urfave's arg reordering (off for `exec` and `ps`: SkipArgReorder).
    reorder: bool,
    nargs: Nargs,
}

const fn command(
    name: &'static str,
    usage: &'static str,
    args_usage: &'static str,
    flags: &'static [Flag],
    nargs: Nargs,
) -> Command {
    Command {
        name,
        usage,
        args_usage,
        flags,
        reorder: true,
        nargs,
    }
}

const ID: &str = "<container-id>";

/// runc's commands, in the order of its help.
const COMMANDS: &[Command] = &[
    command(
        "checkpoint",
        "checkpoint a running container",
        ID,
        checkpoint::CHECKPOINT_FLAGS,
        Nargs::Exact(1),
    ),
    command(
        "create",
        "create a container",
        ID,
        &[
            BUNDLE,
            CONSOLE_SOCKET,
            PIDFD_SOCKET,
            PID_FILE,
            NO_PIVOT,
            NO_NEW_KEYRING,
            PRESERVE_FDS,
        ],
        Nargs::Exact(1),
    ),
    command(
        "delete",
        "delete any resources held by the container often used with detached container",
        ID,
        &[Flag::new(
            &["force", "f"],
            Kind::Bool,
            "Forcibly deletes the container if it is still running (uses SIGKILL)",
        )],
        Nargs::Exact(1),
    ),
    command(
        "events",
        "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
        ID,
        &[
            Flag::new(
                &["interval"],
                Kind::Duration,
                "set the stats collection interval",
            )
            .default("5s"),
            Flag::new(
                &["stats"],
                Kind::Bool,
                "display the container's stats then exit",
            ),
        ],
        Nargs::Exact(1),
    ),
    Command {
        reorder: false,
        ..command(
            "exec",
            "execute new process inside the container",
            "<container-id> <command> [command options]  || -p process.json <container-id>",
            exec::EXEC_FLAGS,
            Nargs::Min(1),
        )
    },
    command(
        "kill",
        "kill sends the specified signal (default: SIGTERM) to the container's init process",
        "<container-id> [signal]",
        &[Flag::new(
            &["all", "a"],
            Kind::Bool,
            "send the specified signal to all processes inside the container",
        )],
        Nargs::MinMax(1, 2),
    ),
    command(
        "list",
        "lists containers started by runrs with the given root",
        "",
        &[
            FORMAT,
            Flag::new(&["quiet", "q"], Kind::Bool, "display only container IDs"),
        ],
        Nargs::Exact(0),
    ),
    command(
        "pause",
        "pause suspends all processes inside the container",
        ID,
        &[],
        Nargs::Exact(1),
    ),
    Command {
        reorder: false,
        ..command(
            "ps",
            "ps displays the processes running inside a container",
            "<container-id> [ps options]",
            &[FORMAT],
            Nargs::Min(1),
        )
    },
    command(
        "restore",
        "restore a container from a previous checkpoint",
        ID,
        checkpoint::RESTORE_FLAGS,
        Nargs::Exact(1),
    ),
    command(
        "resume",
        "resumes all processes that have been previously paused",
        ID,
        &[],
        Nargs::Exact(1),
    ),
    command(
        "run",
        "create and run a container",
        ID,
        &[
            BUNDLE,
            CONSOLE_SOCKET,
            PIDFD_SOCKET,
            DETACH,
            Flag::new(
                &["keep"],
                Kind::Bool,
                "do not delete the container after it exits",
            ),
            PID_FILE,
            NO_SUBREAPER,
            NO_PIVOT,
            NO_NEW_KEYRING,
            PRESERVE_FDS,
        ],
        Nargs::Exact(1),
    ),
    command(
        "spec",
        "create a new specification file",
        "[arguments...]",
        &[
            Flag::new(
                &["bundle", "b"],
                Kind::Str,
                "path to the root of the bundle directory",
            ),
            Flag::new(
                &["rootless"],
                Kind::Bool,
                "generate a configuration for a rootless container",
            ),
        ],
        Nargs::Exact(0),
    ),
    command(
        "start",
        "executes the user defined process in a created container",
        ID,
        &[],
        Nargs::Exact(1),
    ),
    command(
        "state",
        "output the state of a container",
        ID,
        &[],
        Nargs::Exact(1),
    ),
    command(
        "update",
        "update container resource constraints",
        ID,
        update::UPDATE_FLAGS,
        Nargs::Exact(1),
    ),
    command(
        "features",
        "show the enabled features",
        "[arguments...]",
        &[],
        Nargs::Exact(0),
    ),
];

/// urfave's `help` command (alias `h`).
const HELP_COMMAND: Command = command(
    "help",
    "Shows a list of commands or help for one command",
    "[command]",
    &[],
    Nargs::Min(0),
);

#[derive(Debug, Default)]
struct CreateFlags {
    bundle: PathBuf,
    console_socket: Option<PathBuf>,
    pidfd_socket: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    no_pivot: bool,
    no_new_keyring: bool,
    preserve_fds: i32,
}

impl CreateFlags {
    fn from_matches(m: &Matches) -> CreateFlags {
        CreateFlags {
            bundle: m.path("bundle").unwrap_or_else(|| PathBuf::from(".")),
            console_socket: m.path("console-socket"),
            pidfd_socket: m.path("pidfd-socket"),
            pid_file: m.path("pid-file"),
            no_pivot: m.bool("no-pivot"),
            no_new_keyring: m.bool("no-new-keyring"),
            preserve_fds: m.int("preserve-fds").unwrap_or(0) as i32,
        }
    }

    fn make_absolute(&mut self) {
        self.bundle = absolute(&self.bundle);
        self.pid_file = self.pid_file.as_deref().map(absolute);
        self.console_socket = self.console_socket.as_deref().map(absolute);
        self.pidfd_socket = self.pidfd_socket.as_deref().map(absolute);
    }
}

#[derive(Debug)]
enum Cmd {
    Checkpoint {
        criu: checkpoint::CriuFlags,
        id: Vec<String>,
    },
    Restore {
        flags: crate::checkpoint::restore::RestoreFlags,
        criu: checkpoint::CriuFlags,
        id: Vec<String>,
    },
    Create {
        flags: CreateFlags,
        id: Vec<String>,
    },
    Start {
        id: Vec<String>,
    },
    Run {
        flags: CreateFlags,
        detach: bool,
        keep: bool,
        /// Accepted as runc does; runrs needs no subreaper.
        #[allow(dead_code)]
        no_subreaper: bool,
        id: Vec<String>,
    },
    State {
        id: Vec<String>,
    },
    Kill {
        all: bool,
        /// `<container-id> [signal]`
        args: Vec<String>,
    },
    Delete {
        force: bool,
        id: Vec<String>,
    },
    List {
        format: String,
        quiet: bool,
    },
    Exec(ExecOptions),
    Spec {
        bundle: Option<PathBuf>,
        rootless: bool,
    },
    Features,
    Pause {
        id: Vec<String>,
    },
    Resume {
        id: Vec<String>,
    },
    Update(UpdateOptions),
    Ps {
        format: String,
        id: String,
        ps_args: Vec<String>,
    },
    Events {
        interval: String,
        stats: bool,
        id: Vec<String>,
    },
}

/// The global flags and what follows them.
#[derive(Debug)]
struct Cli {
    root: PathBuf,
    log: Option<String>,
    log_format: String,
    debug: bool,
    systemd_cgroup: bool,
    /// `--rootless` as given (`true`, `false`, `auto`).
    rootless: Option<String>,
    /// The command, or how the command line ends without running one; reported only after
    /// the log is set up, as runc does in its `Before`.
    cmd: Result<Cmd, Exit>,
}

/// How an invocation ends without running a command.
#[derive(Debug, PartialEq, Eq)]
enum Exit {
    /// Help or version on stdout, exit 0.
    Print(String),
    /// A usage error: `out` (Incorrect Usage and the help) on stdout, `err` to the log, exit 1.
    Usage { out: String, err: String },
    /// An error for the log and an exit code.
    Fail { err: String, code: i32 },
}

impl Exit {
    fn report(self) -> i32 {
        match self {
            Exit::Print(text) => {
                stdout(&text);
                0
            }
            Exit::Usage { out, err } => {
                stdout(&out);
                error(&err);
                1
            }
            Exit::Fail { err, code } => {
                error(&err);
                code
            }
        }
    }
}

fn stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// [`fatal`] for a message (runc's "No help topic" keeps its newline, as logrus shows it).
fn error(msg: &str) {
    logging::error(msg);
    if logging::to_file() {
        eprintln!("{}", msg.trim_end_matches('\n'));
    }
}

/// The global help (urfave's app help template).
fn app_help() -> String {
    let version = version_text();
    let version = version.strip_prefix("runrs version ").unwrap_or(&version);
    let mut s = String::with_capacity(2048);
    s.push_str("NAME:\n   runrs - Open Container Initiative runtime\n\nUSAGE:\n   ");
    s.push_str("runrs [global options] command [command options] [arguments...]\n\nVERSION:\n   ");
    s.push_str(version.trim_end());
    s.push_str("\n\nCOMMANDS:\n");
    let names = |c: &Command| {
        if c.name == "help" {
            "help, h"
        } else {
            c.name
        }
    };
    let all = || COMMANDS.iter().chain(std::iter::once(&HELP_COMMAND));
    let width = all().map(|c| names(c).len()).max().unwrap_or(0) + 2;
    for c in all() {
        s.push_str(&format!("   {:width$}{}\n", names(c), c.usage));
    }
    s.push_str("\nGLOBAL OPTIONS:\n");
    parse::flag_lines(GLOBAL_FLAGS, &mut s);
    s
}

/// A command's help (urfave's command help template).
fn command_help(c: &Command) -> String {
    let mut s = format!(
        "NAME:\n   runrs {} - {}\n\nUSAGE:\n   runrs {}",
        c.name, c.usage, c.name
    );
    if !c.flags.is_empty() {
        s.push_str(" [command options]");
    }
    if !c.args_usage.is_empty() {
        s.push(' ');
        s.push_str(c.args_usage);
    }
    s.push('\n');
    if !c.flags.is_empty() {
        s.push_str("\nOPTIONS:\n");
        parse::flag_lines(c.flags, &mut s);
        s.push_str("   \n");
    }
    s
}

fn no_help_topic(name: &str) -> Exit {
    Exit::Fail {
        err: format!("No help topic for '{name}'\n"),
        code: 3,
    }
}

/// Parse the whole command line (without the program name), as runc 1.1 does.
fn parse(args: &[OsString]) -> Result<Cli, Exit> {
    let (m, err) = parse::parse(GLOBAL_FLAGS, false, args, false);
    if let Some(e) = m.two_forms() {
        return Err(Exit::Usage {
            out: format!("{e}\n{}", app_help()),
            err: e,
        });
    }
    if let Some(e) = err {
        return Err(Exit::Usage {
            out: format!("Incorrect Usage. {e}\n\n{}", app_help()),
            err: e,
        });
    }
    if m.help() {
        return Err(Exit::Print(app_help()));
    }
    if m.bool("version") {
        return Err(Exit::Print(version_text()));
    }
    Ok(Cli {
        root: m
            .os("root")
            .map(PathBuf::from)
            .unwrap_or_else(crate::rootless::default_root),
        log: m.string("log"),
        log_format: m.raw("log-format").unwrap_or_else(|| "text".into()),
        debug: m.bool("debug"),
        systemd_cgroup: m.bool("systemd-cgroup"),
        rootless: m.string("rootless"),
        cmd: parse_command(&m.args),
    })
}

fn parse_command(args: &[OsString]) -> Result<Cmd, Exit> {
    let Some(first) = args.first() else {
        return Err(Exit::Print(app_help()));
    };
    let name = first.to_string_lossy();
    if name == "help" || name == "h" {
        let m = parse_flags(&HELP_COMMAND, &args[1..])?;
        return Err(match m.args.first().map(|a| a.to_string_lossy()) {
            None => Exit::Print(app_help()),
            Some(t) if t == "help" || t == "h" => Exit::Print(command_help(&HELP_COMMAND)),
            Some(t) => match COMMANDS.iter().find(|c| c.name == t) {
                Some(c) => Exit::Print(command_help(c)),
                None => no_help_topic(&t),
            },
        });
    }
    let Some(c) = COMMANDS.iter().find(|c| c.name == name) else {
        return Err(no_help_topic(&name));
    };
    let m = parse_flags(c, &args[1..])?;
    let n = m.args.len();
    let count = match c.nargs {
        Nargs::Exact(k) if n != k => Some(format!("exactly {k} argument(s)")),
        Nargs::Min(k) | Nargs::MinMax(k, _) if n < k => {
            Some(format!("a minimum of {k} argument(s)"))
        }
        Nargs::MinMax(_, k) if n > k => Some(format!("a maximum of {k} argument(s)")),
        _ => None,
    };
    if let Some(count) = count {
        return Err(Exit::Usage {
            out: format!("Incorrect Usage.\n\n{}", command_help(c)),
            err: format!("{}: {:?} requires {count}", crate::argv0(), c.name),
        });
    }
    build(c, &m)
}

/// A command's flags, with urfave's usage errors and `--help`.
fn parse_flags(c: &Command, args: &[OsString]) -> Result<Matches, Exit> {
    let (m, err) = parse::parse(c.flags, true, args, c.reorder);
    if let Some(e) = err.or_else(|| m.two_forms()) {
        return Err(Exit::Usage {
            out: format!("Incorrect Usage: {e}\n\n{}", command_help(c)),
            err: e,
        });
    }
    if m.help() {
        return Err(Exit::Print(command_help(c)));
    }
    Ok(m)
}

fn build(c: &Command, m: &Matches) -> Result<Cmd, Exit> {
    let id = m.args();
    Ok(match c.name {
        "checkpoint" => Cmd::Checkpoint {
            criu: checkpoint::CriuFlags::from_matches(m, true),
            id,
        },
        "restore" => Cmd::Restore {
            flags: checkpoint::restore_flags(m),
            criu: checkpoint::CriuFlags::from_matches(m, false),
            id,
        },
        "create" => Cmd::Create {
            flags: CreateFlags::from_matches(m),
            id,
        },
        "delete" => Cmd::Delete {
            force: m.bool("force"),
            id,
        },
        "events" => Cmd::Events {
            interval: m.raw("interval").unwrap_or_else(|| "5s".into()),
            stats: m.bool("stats"),
            id,
        },
        "exec" => Cmd::Exec(exec::options(m).map_err(|e| Exit::Fail {
            err: format!("exec failed: {e}"),
            code: 255,
        })?),
        "kill" => Cmd::Kill {
            all: m.bool("all"),
            args: id,
        },
        "list" => Cmd::List {
            format: m.raw("format").unwrap_or_else(|| "table".into()),
            quiet: m.bool("quiet"),
        },
        "pause" => Cmd::Pause { id },
        "ps" => {
            let mut args = id.into_iter();
            Cmd::Ps {
                format: m.raw("format").unwrap_or_else(|| "table".into()),
                id: args.next().unwrap_or_default(),
                ps_args: args.collect(),
            }
        }
        "resume" => Cmd::Resume { id },
        "run" => Cmd::Run {
            flags: CreateFlags::from_matches(m),
            detach: m.bool("detach"),
            keep: m.bool("keep"),
            no_subreaper: m.bool("no-subreaper"),
            id,
        },
        "spec" => Cmd::Spec {
            bundle: m.path("bundle"),
            rootless: m.bool("rootless"),
        },
        "start" => Cmd::Start { id },
        "state" => Cmd::State { id },
        "update" => Cmd::Update(update::options(m).map_err(|err| Exit::Fail { err, code: 1 })?),
        "features" => Cmd::Features,
        other => unreachable!("command {other} has no builder"),
    })
}

/// The parser alone, for `fuzz/`: whether `args` (without the program name) name a command.
#[doc(hidden)]
pub fn parses(args: &[OsString]) -> bool {
    matches!(parse(args), Ok(Cli { cmd: Ok(_), .. }))
}

/// Parse, run, and return the exit code.
pub fn main() -> i32 {
    logging::mark("main");
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let cli = match parse(&args) {
        Ok(c) => c,
        Err(exit) => return exit.report(),
    };
    let format = match cli.log_format.as_str() {
        "" | "text" => Format::Text,
        "json" => Format::Json,
        other => {
            error(&format!("invalid log-format: {other}"));
            return 1;
        }
    };
    if let Err(e) = logging::init(cli.log.as_deref(), format, cli.debug) {
        fatal(&e);
        return 1;
    }
    let cmd = match cli.cmd {
        Ok(cmd) => cmd,
        Err(exit) => return exit.report(),
    };
    let rootless = match crate::rootless::parse_flag(cli.rootless.as_deref(), cli.systemd_cgroup) {
        Ok(r) => r,
        Err(e) => {
            fatal(&e);
            return 1;
        }
    };
    let global = Global {
        root: absolute(&cli.root),
        systemd_cgroup: cli.systemd_cgroup,
        rootless,
    };
    match dispatch(&global, cmd) {
        Ok(code) => code,
        Err(e) => {
            fatal(&e);
            1
        }
    }
}

/// Report an error the way runc does: to the log, and to stderr when the log is a file.
pub fn fatal(e: &anyhow::Error) {
    let msg = format!("{e:#}");
    logging::error(&msg);
    if logging::to_file() {
        eprintln!("{msg}");
    }
}

pub fn version_text() -> String {
    format!(
        "runrs version {}\ncommit: {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("RUNRS_COMMIT").unwrap_or("unknown"),
        crate::state::OCI_VERSION
    )
}

pub struct Global {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// `--rootless` resolved: cgroups only where the user may make them.
    pub rootless: bool,
}

/// Paths the user gave relative to where runrs started (create changes into the bundle).
pub fn absolute(p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn one_id(cmd: &str, ids: Vec<String>) -> anyhow::Result<String> {
    if ids.len() != 1 {
        anyhow::bail!("{}: {cmd:?} requires exactly 1 argument(s)", crate::argv0());
    }
    Ok(ids.into_iter().next().expect("one id"))
}

fn create_opts<'a>(g: &'a Global, id: &'a str, f: &'a CreateFlags) -> CreateOpts<'a> {
    CreateOpts {
        root: &g.root,
        id,
        bundle: &f.bundle,
        console_socket: f.console_socket.as_deref(),
        pidfd_socket: f.pidfd_socket.as_deref(),
        pid_file: f.pid_file.as_deref(),
        no_pivot: f.no_pivot,
        no_new_keyring: f.no_new_keyring,
        preserve_fds: f.preserve_fds,
        systemd_cgroup: g.systemd_cgroup,
        rootless: g.rootless,
    }
}

/// Run the command; its exit code.
fn dispatch(g: &Global, cmd: Cmd) -> anyhow::Result<i32> {
    let root = &g.root;
    match cmd {
        Cmd::Checkpoint { criu, id } => {
            let id = one_id("checkpoint", id)?;
            crate::checkpoint::dump::check_checkpointable(root, &id)?;
            crate::checkpoint::dump::checkpoint(root, &id, &criu.options(true)?).map(|()| 0)
        }
        Cmd::Restore {
            mut flags,
            criu,
            id,
        } => {
            let id = one_id("restore", id)?;
            flags.systemd_cgroup = g.systemd_cgroup;
            crate::checkpoint::restore::restore(root, &id, &flags, &criu.options(false)?)
        }
        Cmd::Create { flags, id } => create(g, flags, id).map(|()| 0),
        Cmd::Start { id } => container::start(root, &one_id("start", id)?).map(|()| 0),
        Cmd::Run {
            flags,
            detach,
            keep,
            no_subreaper: _,
            id,
        } => run(g, flags, id, detach, keep),
        Cmd::State { id } => {
            // Without a newline at the end, as runc prints it.
            print!("{}", container::state_json(root, &one_id("state", id)?)?);
            Ok(0)
        }
        Cmd::Kill { all, args } => kill(root, &args, all).map(|()| 0),
        Cmd::Delete { force, id } => {
            container::delete(root, &one_id("delete", id)?, force).map(|()| 0)
        }
        Cmd::List { format, quiet } => {
            print!("{}", crate::list::list(root, &format, quiet)?);
            Ok(0)
        }
        Cmd::Exec(options) => Ok(exec_exit_code(root, options)),
        Cmd::Spec { bundle, rootless } => {
            let dir = bundle.unwrap_or_else(|| PathBuf::from("."));
            container::write_spec(&dir, rootless).map(|()| 0)
        }
        Cmd::Features => {
            println!("{}", crate::features::json());
            Ok(0)
        }
        Cmd::Pause { id } => resources::pause(root, &one_id("pause", id)?).map(|()| 0),
        Cmd::Resume { id } => resources::resume(root, &one_id("resume", id)?).map(|()| 0),
        Cmd::Update(options) => resources::update(root, &options).map(|()| 0),
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => {
            print!("{}", resources::ps(root, &id, &format, &ps_args)?);
            Ok(0)
        }
        Cmd::Events {
            interval,
            stats,
            id,
        } => resources::events(root, &one_id("events", id)?, stats, &interval).map(|()| 0),
    }
}

fn create(g: &Global, mut flags: CreateFlags, id: Vec<String>) -> anyhow::Result<()> {
    let id = one_id("create", id)?;
    flags.make_absolute();
    // runc words every error of a create so (the argument check above aside).
    container::create_cmd(&create_opts(g, &id, &flags)).context("runrs create failed")
}

fn run(
    g: &Global,
    mut flags: CreateFlags,
    id: Vec<String>,
    detach: bool,
    keep: bool,
) -> anyhow::Result<i32> {
    let id = one_id("run", id)?;
    flags.make_absolute();
    container::run(&create_opts(g, &id, &flags), detach, keep).context("runrs run failed")
}

/// `kill <container-id> [signal]`, SIGTERM by default.
fn kill(root: &std::path::Path, args: &[String], all: bool) -> anyhow::Result<()> {
    if args.is_empty() || args.len() > 2 {
        anyhow::bail!(
            "{}: \"kill\" requires a minimum of 1 and a maximum of 2 arguments",
            crate::argv0()
        );
    }
    let sig = args.get(1).map(String::as_str).unwrap_or("SIGTERM");
    container::kill(root, &args[0], sig, all)
}

/// runc prefixes every exec error and exits 255 for it.
fn exec_exit_code(root: &std::path::Path, options: ExecOptions) -> i32 {
    match crate::exec::exec_cmd(root, options) {
        Ok(code) => code,
        Err(e) => {
            fatal(&e.context("exec failed"));
            255
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Cli, Exit> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args)
    }

    /// The command, panicking on any other outcome.
    fn cmd(args: &[&str]) -> Cmd {
        match parse_args(args) {
            Ok(Cli { cmd: Ok(c), .. }) => c,
            Ok(Cli { cmd: Err(e), .. }) | Err(e) => panic!("{args:?}: {e:?}"),
        }
    }

    /// How the command line ends, whether before or after the global flags.
    fn exit(args: &[&str]) -> Exit {
        match parse_args(args) {
            Ok(Cli { cmd: Err(e), .. }) | Err(e) => e,
            Ok(Cli { cmd: Ok(c), .. }) => panic!("{args:?} parsed as {c:?}"),
        }
    }

    /// A usage error: (stdout, logged error).
    fn usage(args: &[&str]) -> (String, String) {
        match exit(args) {
            Exit::Usage { out, err } => (out, err),
            other => panic!("{args:?}: not a usage error: {other:?}"),
        }
    }

    fn help_of(name: &str) -> String {
        command_help(COMMANDS.iter().find(|c| c.name == name).unwrap())
    }

    #[test]
    fn global_flags_take_one_or_two_dashes() {
        for args in [
            &["-root", "/x", "list"][..],
            &["--root", "/x", "list"],
            &["--root=/x", "list"],
            &["-root=/x", "list"],
        ] {
            let cli = parse_args(args).unwrap();
            assert_eq!(cli.root, PathBuf::from("/x"), "{args:?}");
            assert!(matches!(cli.cmd, Ok(Cmd::List { .. })));
        }
        let cli = parse_args(&["list"]).unwrap();
        assert_eq!(cli.root, PathBuf::from("/run/runrs"));
        assert_eq!(cli.log_format, "text");
        assert!(!cli.debug && !cli.systemd_cgroup && cli.log.is_none());
        let cli = parse_args(&[
            "--debug",
            "--log",
            "/l",
            "-log-format=json",
            "--systemd-cgroup=true",
            "--rootless",
            "auto",
            "state",
            "x",
        ])
        .unwrap();
        assert!(cli.debug && cli.systemd_cgroup);
        assert_eq!(
            (cli.log.as_deref(), cli.log_format.as_str()),
            (Some("/l"), "json")
        );
    }

    #[test]
    fn global_flags_only_before_the_command() {
        let (out, err) = usage(&["list", "--root", "/x"]);
        assert_eq!(err, "flag provided but not defined: -root");
        assert!(out.starts_with(
            "Incorrect Usage: flag provided but not defined: -root\n\nNAME:\n   runrs list - "
        ));
    }

    #[test]
    fn global_usage_errors_show_the_global_help() {
        let (out, err) = usage(&["--bogus", "list"]);
        assert_eq!(err, "flag provided but not defined: -bogus");
        assert_eq!(
            out,
            format!(
                "Incorrect Usage. flag provided but not defined: -bogus\n\n{}",
                app_help()
            )
        );
        assert_eq!(usage(&["--root"]).1, "flag needs an argument: -root");
        assert_eq!(
            usage(&["-dt", "list"]).1,
            "flag provided but not defined: -dt"
        );
        assert_eq!(
            usage(&["--debug=yes"]).1,
            "invalid boolean value \"yes\" for -debug: parse error"
        );
        let (out, err) = usage(&["-v", "--version"]);
        assert_eq!(err, "Cannot use two forms of the same flag: v version");
        assert_eq!(out, format!("{err}\n{}", app_help()));
    }

    #[test]
    fn help_and_version() {
        let app = Exit::Print(app_help());
        for args in [
            &[][..],
            &["-h"],
            &["--help"],
            &["-help"],
            &["--help", "create"],
            &["help"],
            &["h"],
            &["--version=false"],
            &["-v", "-h"],
        ] {
            assert_eq!(exit(args), app, "{args:?}");
        }
        assert_eq!(exit(&["-v"]), Exit::Print(version_text()));
        assert_eq!(exit(&["--version", "list"]), Exit::Print(version_text()));
        for args in [
            &["help", "create"][..],
            &["h", "create"],
            &["create", "--help"],
            &["create", "-h"],
            &["create", "-help"],
            &["create", "x", "--help"],
            &["create", "--help=true", "x", "y"],
        ] {
            assert_eq!(exit(args), Exit::Print(help_of("create")), "{args:?}");
        }
        assert_eq!(
            exit(&["help", "help"]),
            Exit::Print(command_help(&HELP_COMMAND))
        );
        // --help=false is no help.
        assert!(matches!(
            cmd(&["create", "--help=false", "x"]),
            Cmd::Create { .. }
        ));
        // For exec, --help after the container id is the process's.
        assert!(matches!(cmd(&["exec", "x", "--help"]), Cmd::Exec(_)));
        assert_eq!(exit(&["exec", "--help", "x"]), Exit::Print(help_of("exec")));
    }

    #[test]
    fn unknown_commands_and_help_topics_exit_3() {
        for args in [&["bogus"][..], &["help", "bogus"], &["--", "bogus"]] {
            assert_eq!(
                exit(args),
                Exit::Fail {
                    err: "No help topic for 'bogus'\n".into(),
                    code: 3
                },
                "{args:?}"
            );
        }
        assert_eq!(
            usage(&["help", "--bogus"]).1,
            "flag provided but not defined: -bogus"
        );
    }

    #[test]
    fn wrong_argument_counts() {
        for (args, err) in [
            (
                &["create"][..],
                "runrs: \"create\" requires exactly 1 argument(s)",
            ),
            (
                &["run", "a", "b"],
                "runrs: \"run\" requires exactly 1 argument(s)",
            ),
            (
                &["start"],
                "runrs: \"start\" requires exactly 1 argument(s)",
            ),
            (
                &["state", "a", "b"],
                "runrs: \"state\" requires exactly 1 argument(s)",
            ),
            (
                &["delete"],
                "runrs: \"delete\" requires exactly 1 argument(s)",
            ),
            (
                &["pause"],
                "runrs: \"pause\" requires exactly 1 argument(s)",
            ),
            (
                &["resume"],
                "runrs: \"resume\" requires exactly 1 argument(s)",
            ),
            (
                &["update"],
                "runrs: \"update\" requires exactly 1 argument(s)",
            ),
            (
                &["events"],
                "runrs: \"events\" requires exactly 1 argument(s)",
            ),
            (
                &["list", "x"],
                "runrs: \"list\" requires exactly 0 argument(s)",
            ),
            (
                &["spec", "x"],
                "runrs: \"spec\" requires exactly 0 argument(s)",
            ),
            (
                &["features", "x"],
                "runrs: \"features\" requires exactly 0 argument(s)",
            ),
            (
                &["kill"],
                "runrs: \"kill\" requires a minimum of 1 argument(s)",
            ),
            (
                &["kill", "a", "b", "c"],
                "runrs: \"kill\" requires a maximum of 2 argument(s)",
            ),
            (
                &["exec"],
                "runrs: \"exec\" requires a minimum of 1 argument(s)",
            ),
            (
                &["exec", "-t"],
                "runrs: \"exec\" requires a minimum of 1 argument(s)",
            ),
            (&["ps"], "runrs: \"ps\" requires a minimum of 1 argument(s)"),
            // An unknown flag after an argument is an argument (not reordered).
            (
                &["delete", "x", "--bogus"],
                "runrs: \"delete\" requires exactly 1 argument(s)",
            ),
            // A value flag last takes the argument moved behind it.
            (
                &["run", "x", "-b"],
                "runrs: \"run\" requires exactly 1 argument(s)",
            ),
            (
                &["list", "--", "-q"],
                "runrs: \"list\" requires exactly 0 argument(s)",
            ),
        ] {
            let name = args[0];
            assert_eq!(
                usage(args),
                (
                    format!("Incorrect Usage.\n\n{}", help_of(name)),
                    err.replace("runrs:", &format!("{}:", crate::argv0()))
                ),
                "{args:?}"
            );
        }
    }

    #[test]
    fn command_usage_errors_show_the_command_help() {
        for (args, err) in [
            (
                &["create", "--bogus", "x"][..],
                "flag provided but not defined: -bogus",
            ),
            (&["run", "-dt", "x"], "flag provided but not defined: -dt"),
            (&["create", "-b"], "flag needs an argument: -b"),
            (&["list", "--format"], "flag needs an argument: -format"),
            (&["list", "---x"], "bad flag syntax: ---x"),
            (
                &["delete", "--force=yes", "x"],
                "invalid boolean value \"yes\" for -force: parse error",
            ),
            (
                &["delete", "-f", "--force", "x"],
                "Cannot use two forms of the same flag: f force",
            ),
            (
                &["start", "-h", "--help"],
                "Cannot use two forms of the same flag: h help",
            ),
            (
                &["create", "--preserve-fds", "abc", "x"],
                "invalid value \"abc\" for flag -preserve-fds: parse error",
            ),
            (
                &["run", "--preserve-fds=99999999999", "x"],
                "invalid value \"99999999999\" for flag -preserve-fds: value out of range",
            ),
            (
                &["events", "--interval", "abc", "x"],
                "invalid value \"abc\" for flag -interval: parse error",
            ),
            (
                &["update", "--blkio-weight", "abc", "x"],
                "invalid value \"abc\" for flag -blkio-weight: parse error",
            ),
            (
                &["update", "--pids-limit", "1.5", "x"],
                "invalid value \"1.5\" for flag -pids-limit: parse error",
            ),
            (
                &["exec", "-g", "x", "c", "id"],
                "invalid value \"x\" for flag -g: strconv.ParseInt: parsing \"x\": invalid syntax",
            ),
            (
                &["exec", "-e", "A=1", "--env", "B=2", "c", "env"],
                "Cannot use two forms of the same flag: e env",
            ),
            (&["exec", "-p"], "flag needs an argument: -p"),
            (
                &["update", "--cpu-share", "1", "--cpu-shares", "2", "x"],
                "Cannot use two forms of the same flag: cpu-shares cpu-share",
            ),
        ] {
            assert_eq!(
                usage(args),
                (
                    format!("Incorrect Usage: {err}\n\n{}", help_of(args[0])),
                    err.to_owned()
                ),
                "{args:?}"
            );
        }
    }

    #[test]
    fn create_and_run_flags() {
        let Cmd::Run {
            flags,
            detach,
            keep,
            no_subreaper,
            id,
        } = cmd(&[
            "run",
            "-b",
            "/b",
            "--console-socket=/s",
            "-pid-file",
            "/p",
            "--no-pivot",
            "--no-new-keyring=1",
            "--preserve-fds",
            "0x2",
            "-d",
            "--keep",
            "--no-subreaper",
            "ctr",
        ])
        else {
            panic!("not run")
        };
        assert_eq!(id, ["ctr"]);
        assert!(detach && keep && no_subreaper);
        assert_eq!(flags.bundle, PathBuf::from("/b"));
        assert_eq!(flags.console_socket, Some(PathBuf::from("/s")));
        assert_eq!(flags.pid_file, Some(PathBuf::from("/p")));
        assert!(flags.no_pivot && flags.no_new_keyring);
        assert_eq!(flags.preserve_fds, 2);
        // Defaults, and flags after the id (urfave reorders).
        let Cmd::Create { flags, id } = cmd(&["create", "ctr", "--pid-file", ""]) else {
            panic!("not create")
        };
        assert_eq!(id, ["ctr"]);
        assert_eq!(flags.bundle, PathBuf::from("."));
        assert_eq!(flags.pid_file, None);
        assert_eq!(flags.preserve_fds, 0);
        let Cmd::Run { detach, id, .. } = cmd(&["run", "ctr", "-d", "--bundle", "/b"]) else {
            panic!("not run")
        };
        assert!(detach);
        assert_eq!(id, ["ctr"]);
    }

    #[test]
    fn flags_after_arguments_and_double_dash() {
        let Cmd::Delete { force, id } = cmd(&["delete", "ctr", "--force"]) else {
            panic!()
        };
        assert!(force);
        assert_eq!(id, ["ctr"]);
        let Cmd::Delete { force, id } = cmd(&["delete", "--", "-ctr"]) else {
            panic!()
        };
        assert!(!force);
        assert_eq!(id, ["-ctr"]);
        let Cmd::Kill { all, args } = cmd(&["kill", "ctr", "KILL", "-a"]) else {
            panic!()
        };
        assert!(all);
        assert_eq!(args, ["ctr", "KILL"]);
        // urfave's reordering takes the argument after a bool flag along, as runc does.
        let Cmd::Kill { args, .. } = cmd(&["kill", "ctr", "--all", "KILL"]) else {
            panic!()
        };
        assert_eq!(args, ["KILL", "ctr"]);
        let Cmd::List { format, quiet } = cmd(&["list", "-q", "--format", "json"]) else {
            panic!()
        };
        assert!(quiet);
        assert_eq!(format, "json");
        let Cmd::List { format, quiet } = cmd(&["list"]) else {
            panic!()
        };
        assert!(!quiet);
        assert_eq!(format, "table");
        let Cmd::Events {
            interval,
            stats,
            id,
        } = cmd(&["events", "ctr", "--stats", "--interval=1s"])
        else {
            panic!()
        };
        assert!(stats);
        assert_eq!((interval.as_str(), id), ("1s", vec!["ctr".to_owned()]));
        let Cmd::Spec { bundle, rootless } = cmd(&["spec", "--rootless", "-b", "/b"]) else {
            panic!()
        };
        assert!(rootless);
        assert_eq!(bundle, Some(PathBuf::from("/b")));
        assert!(matches!(cmd(&["features"]), Cmd::Features));
        assert!(matches!(cmd(&["pause", "c"]), Cmd::Pause { id } if id == ["c"]));
        assert!(matches!(cmd(&["resume", "c"]), Cmd::Resume { id } if id == ["c"]));
        assert!(matches!(cmd(&["start", "c"]), Cmd::Start { id } if id == ["c"]));
        assert!(matches!(cmd(&["state", "-", ][..]), Cmd::State { id } if id == ["-"]));
    }

    #[test]
    fn ps_and_exec_do_not_reorder() {
        let Cmd::Ps {
            format,
            id,
            ps_args,
        } = cmd(&["ps", "-f", "json", "ctr", "-f", "x", "--", "-e"])
        else {
            panic!()
        };
        assert_eq!((format.as_str(), id.as_str()), ("json", "ctr"));
        assert_eq!(ps_args, ["-f", "x", "--", "-e"]);
        let Cmd::Ps {
            format, ps_args, ..
        } = cmd(&["ps", "--", "ctr"])
        else {
            panic!()
        };
        assert_eq!(format, "table");
        assert!(ps_args.is_empty());

        let Cmd::Exec(f) = cmd(&["exec", "ctr", "-t", "sh", "--", "-c"]) else {
            panic!()
        };
        let f = format!("{f:?}");
        assert!(f.contains("tty: false"), "{f}");
        assert!(
            f.contains(r#"args: ["ctr", "-t", "sh", "--", "-c"]"#),
            "{f}"
        );
    }

    #[test]
    fn exec_flags() {
        let Cmd::Exec(f) = cmd(&[
            "exec",
            "--console-socket",
            "/s",
            "--cwd=/tmp",
            "-e",
            "A=1",
            "-e",
            "B=2",
            "-t",
            "-u",
            "1000:1000",
            "-g",
            "1",
            "-g=010",
            "-g",
            "4294967297",
            "-d",
            "--pid-file",
            "/p",
            "--process-label",
            "l",
            "--apparmor",
            "a",
            "--no-new-privs",
            "-c",
            "CAP_KILL",
            "-c",
            "NET_ADMIN",
            "--preserve-fds",
            "3",
            "--cgroup",
            "g",
            "--ignore-paused",
            "--",
            "ctr",
            "true",
        ]) else {
            panic!()
        };
        let f = format!("{f:?}");
        for field in [
            r#"console_socket: Some("/s")"#,
            r#"cwd: Some("/tmp")"#,
            r#"env: ["A=1", "B=2"]"#,
            "tty: true",
            r#"user: Some("1000:1000")"#,
            "additional_gids: [1, 10, 1]",
            "process: None",
            "detach: true",
            r#"pid_file: Some("/p")"#,
            r#"process_label: Some("l")"#,
            r#"apparmor: Some("a")"#,
            "no_new_privs: true",
            r#"cap: ["CAP_KILL", "NET_ADMIN"]"#,
            "preserve_fds: 3",
            r#"cgroup: ["g"]"#,
            "ignore_paused: true",
            r#"args: ["ctr", "true"]"#,
        ] {
            assert!(f.contains(field), "{field} not in {f}");
        }
        let Cmd::Exec(f) = cmd(&["exec", "-p", "/proc.json", "ctr"]) else {
            panic!()
        };
        let f = format!("{f:?}");
        assert!(f.contains(r#"process: Some("/proc.json")"#), "{f}");
        assert!(
            f.contains("env: []") && f.contains("additional_gids: []"),
            "{f}"
        );
        assert_eq!(
            exit(&["exec", "-g", "-1", "ctr", "id"]),
            Exit::Fail {
                err: "exec failed: additional-gids must be a positive number -1".into(),
                code: 255
            }
        );
    }

    #[test]
    fn update_flags() {
        let Cmd::Update(f) = cmd(&[
            "update",
            "-r",
            "-",
            "--blkio-weight",
            "70000",
            "--cpu-period",
            "100000",
            "--cpu-quota=-1",
            "--cpu-burst",
            "5",
            "--cpu-shares",
            "512",
            "--cpu-rt-period",
            "7",
            "--cpu-rt-runtime",
            "-8",
            "--cpuset-cpus",
            "0-1",
            "--cpuset-mems",
            "0",
            "--kernel-memory",
            "1m",
            "--kernel-memory-tcp",
            "2m",
            "--memory",
            "64m",
            "--memory-reservation",
            "",
            "--memory-swap",
            "-1",
            "--pids-limit",
            "-1",
            "--l3-cache-schema",
            "L3:0=f",
            "--mem-bw-schema",
            "MB:0=70",
            "ctr",
        ]) else {
            panic!()
        };
        assert_eq!(f.resources.as_deref(), Some("-"));
        assert_eq!(f.blkio_weight, Some(70000u32 as u16));
        assert_eq!(f.cpu_period, Some(100000));
        assert_eq!(f.cpu_quota, Some(-1));
        assert_eq!(f.cpu_burst, Some(5));
        assert_eq!(f.cpu_share, Some(512));
        assert_eq!(f.cpu_rt_period, Some(7));
        assert_eq!(f.cpu_rt_runtime, Some(-8));
        assert_eq!(f.cpuset_cpus.as_deref(), Some("0-1"));
        assert_eq!(f.cpuset_mems.as_deref(), Some("0"));
        assert_eq!(f.kernel_memory.as_deref(), Some("1m"));
        assert_eq!(f.kernel_memory_tcp.as_deref(), Some("2m"));
        assert_eq!(f.memory.as_deref(), Some("64m"));
        assert_eq!(f.memory_reservation, None);
        assert_eq!(f.memory_swap.as_deref(), Some("-1"));
        assert_eq!(f.pids_limit, Some(-1));
        assert_eq!(f.l3_cache_schema.as_deref(), Some("L3:0=f"));
        assert_eq!(f.mem_bw_schema.as_deref(), Some("MB:0=70"));
        assert_eq!(f.id, ["ctr"]);
        let Cmd::Update(f) = cmd(&["update", "ctr", "--blkio-weight=0", "--pids-limit=0x20"])
        else {
            panic!()
        };
        assert_eq!(
            (f.blkio_weight, f.pids_limit, f.cpu_share),
            (None, Some(32), None)
        );
        for (args, err) in [
            (
                &["update", "--cpu-period", "abc", "c"][..],
                "invalid value for cpu-period: strconv.ParseUint: parsing \"abc\": invalid syntax",
            ),
            (
                &["update", "--cpu-quota", "1x", "--cpu-share", "-1", "c"],
                "invalid value for cpu-share: strconv.ParseUint: parsing \"-1\": invalid syntax",
            ),
            (
                &["update", "--cpu-rt-runtime", "99999999999999999999", "c"],
                "invalid value for cpu-rt-runtime: strconv.ParseInt: parsing \"99999999999999999999\": value out of range",
            ),
        ] {
            assert_eq!(
                exit(args),
                Exit::Fail {
                    err: err.into(),
                    code: 1
                },
                "{args:?}"
            );
        }
    }

    #[test]
    fn every_flag_of_every_command_parses_and_shows_in_its_help() {
        for c in COMMANDS {
            let mut args = vec![c.name.to_owned()];
            for f in c.flags {
                let value = match f.kind {
                    Kind::Bool => "true",
                    Kind::Duration => "1s",
                    // "1" is also a good string for every string flag.
                    Kind::Int32 | Kind::Int64 | Kind::IntList | Kind::Str | Kind::StrList => "1",
                };
                args.push(format!("--{}={value}", f.names[0]));
            }
            args.extend(["--".to_owned(), "id".to_owned()]);
            let n = match c.nargs {
                Nargs::Exact(n) => n,
                Nargs::Min(n) | Nargs::MinMax(n, _) => n,
            };
            args.truncate(args.len() - 1 + n);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cmd(&args);
            let help = command_help(c);
            assert!(help.starts_with(&format!("NAME:\n   runrs {} - {}\n", c.name, c.usage)));
            for f in c.flags {
                for n in f.names {
                    let dashes = if n.len() == 1 { "-" } else { "--" };
                    assert!(help.contains(&format!("{dashes}{n}")), "{n} in {help}");
                }
            }
            assert!(app_help().contains(&format!("\n   {:12}{}\n", c.name, c.usage)));
        }
    }

    #[test]
    fn help_layout() {
        assert_eq!(
            help_of("kill"),
            "NAME:\n   runrs kill - kill sends the specified signal (default: SIGTERM) to the container's init process\n\n\
             USAGE:\n   runrs kill [command options] <container-id> [signal]\n\n\
             OPTIONS:\n   --all, -a  send the specified signal to all processes inside the container\n   \n"
        );
        assert_eq!(
            help_of("start"),
            "NAME:\n   runrs start - executes the user defined process in a created container\n\n\
             USAGE:\n   runrs start <container-id>\n"
        );
        let app = app_help();
        assert!(app.starts_with(
            "NAME:\n   runrs - Open Container Initiative runtime\n\n\
             USAGE:\n   runrs [global options] command [command options] [arguments...]\n\n\
             VERSION:\n   "
        ));
        assert!(app.contains("\n   help, h     Shows a list of commands or help for one command\n"));
        assert!(app.contains("\nGLOBAL OPTIONS:\n   --debug             enable debug logging\n"));
        assert!(app.ends_with("   --version, -v       print the version\n"));
    }
}
