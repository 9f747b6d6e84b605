//! The runtime under test: which binary, and running its subcommands with a timeout.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one runtime command may take before the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The runtime binary under test: `RUNRS_TEST_RUNTIME` if set, else the workspace's
/// `target/{debug,release}/runrs` (the newer one when both exist).
pub fn runtime_path() -> PathBuf {
    if let Some(path) = std::env::var_os("RUNRS_TEST_RUNTIME") {
        let path = PathBuf::from(path);
        assert!(
            path.is_absolute() && path.is_file(),
            "RUNRS_TEST_RUNTIME={} is not an absolute path to a file",
            path.display()
        );
        return path;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join("runrs"))
        .filter_map(|p| {
            let modified = p.metadata().ok()?.modified().ok()?;
            Some((modified, p))
        })
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "no runtime binary: build runrs (cargo build -p runrs) or set RUNRS_TEST_RUNTIME \
                 (looked in {}/{{debug,release}}/runrs)",
                target.display()
            )
        })
}

/// Whether the runtime under test is runc (its file is named `runc`). Only for the
/// rare check where runc's behaviour is known to differ from what the issue asks.
pub fn is_runc() -> bool {
    runtime_path().file_name() == Some(OsStr::new("runc"))
}

/// The runc version under test (`runc --version`'s first line), `None` for runrs.
pub fn runc_version() -> Option<(u32, u32)> {
    if !is_runc() {
        return None;
    }
    runc_version_of(&runtime_path())
}

/// The version of the runc at `path` (`runc --version`'s first line).
pub fn runc_version_of(path: &std::path::Path) -> Option<(u32, u32)> {
    let out = std::process::Command::new(path)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next()?.split_whitespace().nth(2)?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// The cpu.weight (and systemd CPUWeight) the runtime under test gives `shares`: runc before
/// 1.3 mapped them linearly; runc 1.3, crun and runrs use the quadratic in log2 that keeps
/// the default shares (1024) at the default weight (100).
pub fn expected_cpu_weight(shares: u64) -> u64 {
    if runc_version().is_some_and(|v| v < (1, 3)) {
        return 1 + (shares - 2) * 9999 / 262142;
    }
    let l = (shares as f64).log2();
    10f64.powf((l * l + 125.0 * l) / 612.0 - 7.0 / 34.0).ceil() as u64
}

/// True, with one line saying the test is skipped, when the runtime under test is a runc
/// older than `since`, which does not have `what` (runrs has it, and so does the newer
/// reference runc of the Debian testing guest).
pub fn runc_lacks(what: &str, since: (u32, u32)) -> bool {
    match runc_version() {
        Some(v) if v < since => {
            eprintln!(
                "skipped: runc {}.{} has no {what} (runc {}.{}+ has)",
                v.0, v.1, since.0, since.1
            );
            true
        }
        _ => false,
    }
}

/// What one runtime command did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    /// The signal that killed the runtime, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Where stdout went: detached containers keep writing there after the runtime exits.
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    fn describe(&self) -> String {
        format!(
            "`{}` exited with {:?} (signal {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.signal, self.stdout, self.stderr
        )
    }

    /// Panics unless the command exited 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "expected success: {}", self.describe());
        self
    }

    /// Panics unless the command exited with `code`.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "wrong exit code: {}",
            self.describe()
        );
        self
    }

    /// Panics unless the command failed the way a runc-compatible runtime fails bad
    /// input: a non-zero exit (not a crash by signal), a short error on stderr (not a
    /// backtrace) that contains every one of `needles` (case-insensitive).
    #[track_caller]
    pub fn fails_with(&self, needles: &[&str]) -> &Self {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a non-zero exit: {}",
            self.describe()
        );
        let stderr = self.stderr.to_lowercase();
        assert!(
            !stderr.trim().is_empty(),
            "expected an error on stderr: {}",
            self.describe()
        );
        assert!(
            !stderr.contains("panicked at") && !stderr.contains("goroutine "),
            "the runtime crashed instead of reporting an error: {}",
            self.describe()
        );
        // runc prints its error on one line, sometimes after a warning or two.
        assert!(
            crate::lines(&self.stderr).len() <= 4,
            "expected a short error, not a wall of text: {}",
            self.describe()
        );
        for needle in needles {
            assert!(
                stderr.contains(&needle.to_lowercase()),
                "expected stderr to mention {needle:?}: {}",
                self.describe()
            );
        }
        self
    }

    /// Reads stdout again from its file (for what a detached container wrote since).
    pub fn stdout_now(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.describe()))
    }
}

/// The runtime binary with a `--root` of its own; cheap to clone.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub bin: PathBuf,
    pub root: PathBuf,
    /// Directory for the stdout/stderr files of each command.
    logs: PathBuf,
    seq: Arc<AtomicUsize>,
}

impl Runtime {
    /// `bin` with state under `root`; command output files go to `logs`.
    pub fn new(bin: PathBuf, root: PathBuf, logs: PathBuf) -> Self {
        std::fs::create_dir_all(&logs).expect("create log dir");
        Runtime {
            bin,
            root,
            logs,
            seq: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The same root and log dir with another binary (e.g. the original runtime to
    /// clean up after a test that ran a copy).
    pub fn with_bin(&self, bin: PathBuf) -> Runtime {
        Runtime {
            bin,
            ..self.clone()
        }
    }

    /// A command `<bin> --root <root> <args>`; `.run()` or `.spawn()` it.
    pub fn cmd<I, S>(&self, args: I) -> Invocation<'_>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<OsString> = vec!["--root".into(), self.root.clone().into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        Invocation {
            rt: self,
            args: all,
            timeout: DEFAULT_TIMEOUT,
            fds: Vec::new(),
            cwd: None,
            umask: None,
            env: Vec::new(),
        }
    }

    /// Runs `<bin> --root <root> <args>` to completion (or the default timeout).
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd(args).run()
    }

    /// `state <id>` parsed, panicking if it fails.
    #[track_caller]
    pub fn state(&self, id: &str) -> serde_json::Value {
        self.run(["state", id]).ok().json()
    }

    /// The `status` field of `state <id>`, or `None` when `state` fails.
    pub fn status(&self, id: &str) -> Option<String> {
        let out = self.run(["state", id]);
        if !out.success() {
            return None;
        }
        out.json()["status"].as_str().map(str::to_owned)
    }

    fn next_log_paths(&self) -> (PathBuf, PathBuf) {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        (
            self.logs.join(format!("cmd-{n}.out")),
            self.logs.join(format!("cmd-{n}.err")),
        )
    }
}

/// One runtime command being prepared.
pub struct Invocation<'a> {
    rt: &'a Runtime,
    args: Vec<OsString>,
    timeout: Duration,
    /// Extra fds the runtime inherits: (fd number in the runtime, fd to pass).
    fds: Vec<(RawFd, OwnedFd)>,
    cwd: Option<PathBuf>,
    umask: Option<libc::mode_t>,
    env: Vec<(OsString, OsString)>,
}

impl Invocation<'_> {
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Lets the runtime inherit `fd` as fd number `target` (not close-on-exec).
    pub fn pass_fd(mut self, target: RawFd, fd: OwnedFd) -> Self {
        self.fds.push((target, fd));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets an environment variable for the runtime.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the runtime with this umask instead of the test's.
    pub fn umask(mut self, mask: libc::mode_t) -> Self {
        self.umask = Some(mask);
        self
    }

    /// Starts the command in the background.
    #[track_caller]
    pub fn spawn(self) -> Running {
        self.try_spawn().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the command in the background, or says why it could not be.
    pub fn try_spawn(self) -> Result<Running, String> {
        let (out_path, err_path) = self.rt.next_log_paths();
        let stdout = File::create(&out_path).map_err(|e| format!("create {out_path:?}: {e}"))?;
        let stderr = File::create(&err_path).map_err(|e| format!("create {err_path:?}: {e}"))?;
        let mut command = Command::new(&self.rt.bin);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        // Move every fd to be passed above any target number first, so that one dup2
        // cannot clobber the source of the next.
        let high: Vec<(RawFd, OwnedFd)> = self
            .fds
            .iter()
            .map(|(target, fd)| {
                // SAFETY: F_DUPFD_CLOEXEC on an fd we own returns a new fd or -1.
                let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200) };
                assert!(dup >= 0, "dup fd: {}", std::io::Error::last_os_error());
                // SAFETY: `dup` is a fresh fd that nothing else owns.
                (*target, unsafe { OwnedFd::from_raw_fd(dup) })
            })
            .collect();
        let pairs: Vec<(RawFd, RawFd)> = high
            .iter()
            .map(|(target, fd)| (*target, fd.as_raw_fd()))
            .collect();
        let umask = self.umask;
        if !pairs.is_empty() || umask.is_some() {
            // SAFETY: the closure runs in the forked child before exec and only calls
            // umask/dup2, which are async-signal-safe; the fds it names stay open in the
            // parent (owned by `self.fds`) until spawn returns.
            unsafe {
                command.pre_exec(move || {
                    if let Some(mask) = umask {
                        libc::umask(mask);
                    }
                    for (target, fd) in &pairs {
                        if libc::dup2(*fd, *target) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let command_line = std::iter::once(self.rt.bin.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start `{command_line}`: {e}"))?;
        drop(high);
        Ok(Running {
            child: Some(child),
            command: command_line,
            deadline: Instant::now() + self.timeout,
            timeout: self.timeout,
            out_path,
            err_path,
        })
    }

    /// Runs the command to completion; panics (after killing it) when it overruns its
    /// timeout.
    #[track_caller]
    pub fn run(self) -> Output {
        self.try_run().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs the command to completion, or says why it did not complete (never panics:
    /// for cleanup code).
    pub fn try_run(self) -> Result<Output, String> {
        self.try_spawn()?.try_wait()
    }
}

/// A runtime command running in the background; killed if dropped unwaited.
pub struct Running {
    child: Option<Child>,
    command: String,
    deadline: Instant,
    timeout: Duration,
    out_path: PathBuf,
    err_path: PathBuf,
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// What it has written to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        std::fs::read_to_string(&self.out_path).unwrap_or_default()
    }

    /// Whether it has exited (without reaping the result away: `wait` still works).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(Some(_))),
            None => true,
        }
    }

    /// Waits for it to exit; on timeout kills it and panics.
    #[track_caller]
    pub fn wait(self) -> Output {
        self.try_wait().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for it to exit; on timeout kills it and says so.
    pub fn try_wait(mut self) -> Result<Output, String> {
        let mut child = self.child.take().ok_or("waited twice")?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < self.deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "`{}` did not finish within {:?}; killed it\n--- stderr ---\n{}",
                        self.command,
                        self.timeout,
                        std::fs::read_to_string(&self.err_path).unwrap_or_default()
                    ));
                }
                Err(e) => return Err(format!("waiting for `{}`: {e}", self.command)),
            }
        };
        Ok(Output {
            command: self.command.clone(),
            code: status.code(),
            signal: status.signal(),
            stdout: std::fs::read_to_string(&self.out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.err_path).unwrap_or_default(),
            stdout_path: self.out_path.clone(),
            stderr_path: self.err_path.clone(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A pipe: (read end, write end), both close-on-exec.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}
