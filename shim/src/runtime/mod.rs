//! Calls to the runc-compatible runtime binary (runrs, runc): every call gets
//! `--root R --log <bundle>/log.json --log-format json`, and a failed call's error is the
//! last `"level":"error"` line the call added to that log.

mod config;

use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::io::ProcessStdio;
use crate::process::reaper::Reaper;
pub use config::RuntimeConfig;

#[derive(Clone)]
pub struct Runtime {
    pub config: RuntimeConfig,
    log: PathBuf,
    /// Inside the shim server every child is reaped by the reaper; `shim delete` has none.
    reaper: Option<Arc<Reaper>>,
}

impl Runtime {
    pub fn new(config: RuntimeConfig, bundle: &Path, reaper: Option<Arc<Reaper>>) -> Self {
        Runtime {
            config,
            log: bundle.join("log.json"),
            reaper,
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.config.binary);
        cmd.arg("--root").arg(&self.config.root);
        cmd.arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"]);
        if self.config.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd
    }

    /// `create --bundle B --pid-file P [--console-socket S] ID` with the container's stdio.
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ProcessStdio,
    ) -> Result<(), String> {
        let mut cmd = self.command();
        cmd.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(s) = console_socket {
            cmd.arg("--console-socket").arg(s);
        }
        self.pivot_and_keyring(&mut cmd);
        cmd.arg(id);
        self.run_with_stdio(cmd, stdio, "create").map(|_| ())
    }

    /// `restore --detach --bundle B --image-path I --work-path W --pid-file P
    /// --no-subreaper [--console-socket S] ID` with the init's stdio (runc's shim's flags).
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &self,
        id: &str,
        bundle: &Path,
        image: &Path,
        work: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ProcessStdio,
    ) -> Result<(), String> {
        let mut cmd = self.command();
        cmd.args(["restore", "--detach", "--no-subreaper", "--bundle"])
            .arg(bundle)
            .arg("--image-path")
            .arg(image)
            .arg("--work-path")
            .arg(work)
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(s) = console_socket {
            cmd.arg("--console-socket").arg(s);
        }
        self.pivot_and_keyring(&mut cmd);
        cmd.arg(id);
        self.run_with_stdio(cmd, stdio, "restore").map(|_| ())
    }

    /// runc's shim options `NoPivotRoot` and `NoNewKeyring`, as runc's shim passes them.
    fn pivot_and_keyring(&self, cmd: &mut Command) {
        if self.config.no_pivot {
            cmd.arg("--no-pivot");
        }
        if self.config.no_new_keyring {
            cmd.arg("--no-new-keyring");
        }
    }

    /// `exec --process FILE --detach --pid-file P [--console-socket S] ID`.
    pub fn exec(
        &self,
        id: &str,
        process_file: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ProcessStdio,
    ) -> Result<(), String> {
        let mut cmd = self.command();
        cmd.arg("exec")
            .arg("--process")
            .arg(process_file)
            .arg("--detach");
        cmd.arg("--pid-file").arg(pid_file);
        if let Some(s) = console_socket {
            cmd.arg("--console-socket").arg(s);
        }
        cmd.arg(id);
        self.run_with_stdio(cmd, stdio, "exec").map(|_| ())
    }

    /// Runs `args` and returns its stdout; `input` goes to its stdin.
    pub fn call(&self, args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>, String> {
        let mut cmd = self.command();
        cmd.args(args);
        let what = args.first().copied().unwrap_or("call");
        let log_start = log_len(&self.log);
        let mark = self.mark();
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        if let (Some(mut stdin), Some(data)) = (child.stdin.take(), input) {
            let _ = stdin.write_all(data);
        }
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(mut s) = child.stdout.take() {
            let _ = s.read_to_end(&mut out);
        }
        if let Some(mut s) = child.stderr.take() {
            let _ = s.read_to_end(&mut err);
        }
        let status = self.wait(&mut child, mark);
        if status == 0 {
            return Ok(out);
        }
        Err(self.failure(what, log_start, status, &err))
    }

    fn run_with_stdio(
        &self,
        mut cmd: Command,
        stdio: ProcessStdio,
        what: &str,
    ) -> Result<(), String> {
        let to_stdio = |fd: Option<OwnedFd>| fd.map(Stdio::from).unwrap_or_else(Stdio::null);
        cmd.stdin(to_stdio(stdio.stdin));
        cmd.stdout(to_stdio(stdio.stdout));
        cmd.stderr(to_stdio(stdio.stderr));
        let log_start = log_len(&self.log);
        let mark = self.mark();
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        // Our copies of the container's stdio live in `cmd`: close them now.
        drop(cmd);
        let status = self.wait(&mut child, mark);
        if status == 0 {
            Ok(())
        } else {
            Err(self.failure(what, log_start, status, b""))
        }
    }

    fn mark(&self) -> u64 {
        self.reaper.as_ref().map_or(0, |r| r.mark())
    }

    /// Exit status of a runtime call (128 + signal for a signal death).
    fn wait(&self, child: &mut std::process::Child, mark: u64) -> u32 {
        use std::os::unix::process::ExitStatusExt;
        match &self.reaper {
            Some(r) => r.wait(child.id() as i32, mark).status,
            None => match child.wait() {
                Ok(s) => s
                    .code()
                    .map_or_else(|| 128 + s.signal().unwrap_or(0) as u32, |c| c as u32),
                Err(_) => 255,
            },
        }
    }

    fn spawn_error(&self, e: std::io::Error) -> String {
        format!("running runtime {:?}: {e} (set binary_name in the runtime options, or put runrs on PATH)", self.config.binary)
    }

    fn failure(&self, what: &str, log_start: u64, status: u32, stderr: &[u8]) -> String {
        let detail = last_error(&self.log, log_start)
            .or_else(|| {
                let s = String::from_utf8_lossy(stderr).trim().to_string();
                (!s.is_empty()).then_some(s)
            })
            .unwrap_or_else(|| format!("{} exited with status {status}", self.config.binary));
        format!("OCI runtime {what} failed: {detail}")
    }
}

fn log_len(log: &Path) -> u64 {
    fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// The `msg` of the last `"level":"error"` JSON line written after byte `from`.
pub fn last_error(log: &Path, from: u64) -> Option<String> {
    let text = fs::read(log).ok()?;
    let from = (from as usize).min(text.len());
    String::from_utf8_lossy(&text[from..])
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .and_then(|v| v["msg"].as_str().map(str::to_string))
}

/// Reads a `--pid-file`.
pub fn read_pid(path: &Path) -> Result<i32, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("bad pid {:?} in {}", text.trim(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_line_after_offset() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.json");
        let old = "{\"level\":\"error\",\"msg\":\"old failure\",\"time\":\"t\"}\n";
        let new = "{\"level\":\"info\",\"msg\":\"x\"}\n{\"level\":\"error\",\"msg\":\"exec: \\\"nope\\\": not found\",\"time\":\"t\"}\n{\"level\":\"warning\",\"msg\":\"w\"}\n";
        fs::write(&log, format!("{old}{new}")).unwrap();
        assert_eq!(
            last_error(&log, old.len() as u64).as_deref(),
            Some("exec: \"nope\": not found")
        );
        assert_eq!(last_error(&log, (old.len() + new.len()) as u64), None);
        assert_eq!(last_error(&dir.path().join("missing"), 0), None);
    }
}
