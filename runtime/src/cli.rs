//! runc-compatible command line: flags, subcommands, usage errors and exit codes. No logic.

use crate::container::{self, CreateOpts};
use crate::logging::{self, Format};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "runrs",
    about = "Open Container Initiative runtime",
    disable_version_flag = true,
    disable_help_subcommand = true
)]
struct Cli {
    /// root directory for storage of container state (this should be located in tmpfs)
    #[arg(long, default_value = "/run/runrs")]
    root: PathBuf,
    /// set the log file to write runrs logs to (default is '/dev/stderr')
    #[arg(long)]
    log: Option<String>,
    /// set the log format ('text' (default), or 'json')
    #[arg(long = "log-format", default_value = "text")]
    log_format: String,
    /// enable debug logging
    #[arg(long)]
    debug: bool,
    /// enable systemd cgroup support (not supported yet: an error when a container needs it)
    #[arg(long = "systemd-cgroup")]
    systemd_cgroup: bool,
    /// ignore cgroup permission errors ('true', 'false', or 'auto')
    #[arg(long)]
    rootless: Option<String>,
    /// print the version
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Args, Debug, Default)]
struct CreateFlags {
    /// path to the root of the bundle directory, defaults to the current directory
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// specify the file to write the process id to
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// do not use pivot root to jail process inside rootfs
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// do not create a new session keyring for the container
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
}

impl CreateFlags {
    fn make_absolute(&mut self) {
        self.bundle = absolute(&self.bundle);
        self.pid_file = self.pid_file.as_deref().map(absolute);
        self.console_socket = self.console_socket.as_deref().map(absolute);
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// create a container
    Create {
        #[command(flatten)]
        flags: CreateFlags,
        /// the container id
        #[arg(value_name = "CONTAINER_ID")]
        id: Vec<String>,
    },
    /// executes the user defined process in a created container
    Start {
        /// the container id
        #[arg(value_name = "CONTAINER_ID")]
        id: Vec<String>,
    },
    /// create and run a container
    Run {
        #[command(flatten)]
        flags: CreateFlags,
        /// detach from the container's process
        #[arg(short = 'd', long)]
        detach: bool,
        /// do not delete the container after it exits
        #[arg(long)]
        keep: bool,
        /// disable the use of the subreaper used to reap reparented processes
        #[arg(long = "no-subreaper")]
        no_subreaper: bool,
        /// the container id
        #[arg(value_name = "CONTAINER_ID")]
        id: Vec<String>,
    },
    /// output the state of a container
    State {
        /// the container id
        #[arg(value_name = "CONTAINER_ID")]
        id: Vec<String>,
    },
    /// kill sends the specified signal (default: SIGTERM) to the container's init process
    Kill {
        /// send the specified signal to all processes inside the container
        #[arg(short = 'a', long)]
        all: bool,
        /// <container-id> [signal]: a name (KILL, SIGKILL) or number; default SIGTERM
        #[arg(value_name = "ARGS")]
        args: Vec<String>,
    },
    /// delete any resources held by the container often used with detached container
    Delete {
        /// Forcibly deletes the container if it is still running (uses SIGKILL)
        #[arg(short = 'f', long)]
        force: bool,
        /// the container id
        #[arg(value_name = "CONTAINER_ID")]
        id: Vec<String>,
    },
    /// lists containers started by runrs with the given root
    List {
        /// select one of: table or json
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        /// display only container IDs
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// execute new process inside the container
    Exec(crate::exec::ExecFlags),
    /// create a new specification file
    Spec {
        /// path to the root of the bundle directory
        #[arg(short = 'b', long)]
        bundle: Option<PathBuf>,
        /// generate a configuration for a rootless container
        #[arg(long)]
        rootless: bool,
    },
    /// show the enabled features
    Features,
    /// pause suspends all processes inside the container
    Pause { id: Vec<String> },
    /// resumes all processes that have been previously paused
    Resume { id: Vec<String> },
    /// update container resource constraints
    Update(crate::resources::UpdateFlags),
    /// ps displays the processes running inside a container
    Ps {
        /// select one of: table or json
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        id: String,
        /// options for ps (default: -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// display container events such as OOM notifications, cpu, memory, and IO usage statistics
    Events {
        /// set the stats collection interval
        #[arg(long, default_value = "5s")]
        interval: String,
        /// display the container's stats then exit
        #[arg(long)]
        stats: bool,
        /// the container id
        #[arg(value_name = "CONTAINER_ID")]
        id: Vec<String>,
    },
}

/// Parse, run, and return the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => 1,
            };
            let _ = e.print();
            return code;
        }
    };
    let format = match cli.log_format.as_str() {
        "text" => Format::Text,
        "json" => Format::Json,
        other => {
            eprintln!("unknown log-format {other:?}");
            return 1;
        }
    };
    if let Err(e) = logging::init(cli.log.as_deref(), format, cli.debug) {
        eprintln!("{e:#}");
        return 1;
    }
    if cli.version {
        print!("{}", version_text());
        return 0;
    }
    let Some(cmd) = cli.cmd else {
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        return 0;
    };
    let global = Global {
        root: absolute(&cli.root),
        systemd_cgroup: cli.systemd_cgroup,
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
        anyhow::bail!("runrs: {cmd:?} requires exactly 1 argument(s)");
    }
    Ok(ids.into_iter().next().expect("one id"))
}

fn create_opts<'a>(g: &'a Global, id: &'a str, f: &'a CreateFlags) -> CreateOpts<'a> {
    CreateOpts {
        root: &g.root,
        id,
        bundle: &f.bundle,
        console_socket: f.console_socket.as_deref(),
        pid_file: f.pid_file.as_deref(),
        no_pivot: f.no_pivot,
        no_new_keyring: f.no_new_keyring,
        preserve_fds: f.preserve_fds,
        systemd_cgroup: g.systemd_cgroup,
    }
}

fn dispatch(g: &Global, cmd: Cmd) -> anyhow::Result<i32> {
    match cmd {
        Cmd::Create { mut flags, id } => {
            let id = one_id("create", id)?;
            flags.make_absolute();
            container::create_cmd(&create_opts(g, &id, &flags))?;
            Ok(0)
        }
        Cmd::Start { id } => {
            container::start(&g.root, &one_id("start", id)?)?;
            Ok(0)
        }
        Cmd::Run {
            mut flags,
            detach,
            keep,
            no_subreaper: _,
            id,
        } => {
            let id = one_id("run", id)?;
            flags.make_absolute();
            container::run(&create_opts(g, &id, &flags), detach, keep)
        }
        Cmd::State { id } => {
            let id = one_id("state", id)?;
            println!("{}", container::state_json(&g.root, &id)?);
            Ok(0)
        }
        Cmd::Kill { all, args } => {
            if args.is_empty() || args.len() > 2 {
                anyhow::bail!(
                    "runrs: \"kill\" requires a minimum of 1 and a maximum of 2 arguments"
                );
            }
            let sig = args.get(1).map(String::as_str).unwrap_or("SIGTERM");
            container::kill(&g.root, &args[0], sig, all)?;
            Ok(0)
        }
        Cmd::Delete { force, id } => {
            container::delete(&g.root, &one_id("delete", id)?, force)?;
            Ok(0)
        }
        Cmd::List { format, quiet } => {
            print!("{}", crate::list::list(&g.root, &format, quiet)?);
            Ok(0)
        }
        // runc prefixes every exec error and exits 255 for it.
        Cmd::Exec(flags) => match crate::exec::exec_cmd(g, flags) {
            Ok(code) => Ok(code),
            Err(e) => {
                fatal(&e.context("exec failed"));
                Ok(255)
            }
        },
        Cmd::Spec { bundle, rootless } => {
            let dir = bundle.unwrap_or_else(|| PathBuf::from("."));
            container::write_spec(&dir, rootless)?;
            Ok(0)
        }
        Cmd::Features => {
            println!("{}", crate::features::json());
            Ok(0)
        }
        Cmd::Pause { id } => {
            crate::resources::pause(&g.root, &one_id("pause", id)?)?;
            Ok(0)
        }
        Cmd::Resume { id } => {
            crate::resources::resume(&g.root, &one_id("resume", id)?)?;
            Ok(0)
        }
        Cmd::Update(flags) => {
            crate::resources::update(&g.root, &flags)?;
            Ok(0)
        }
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => {
            print!("{}", crate::resources::ps(&g.root, &id, &format, &ps_args)?);
            Ok(0)
        }
        Cmd::Events {
            interval,
            stats,
            id,
        } => {
            crate::resources::events(&g.root, &one_id("events", id)?, stats, &interval)?;
            Ok(0)
        }
    }
}
