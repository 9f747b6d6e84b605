//! The state directory `<root>/<id>/`: `state.json` (written atomically), `exec.fifo`, and the
//! status derived from the init's pid and start time (so a reused pid reads as stopped).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const OCI_VERSION: &str = "1.0.2-dev";
pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What `state.json` holds: the OCI state plus what later commands need.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Saved {
    pub id: String,
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` at create: tells our init from a process reusing its pid.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub owner: String,
    /// Cgroup directories of the container, one per hierarchy.
    #[serde(default)]
    pub cgroup_paths: Vec<PathBuf>,
    /// The scope unit that holds them, under the systemd cgroup driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// Whether that unit is the user's own systemd's (rootless), not the system's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub systemd_user: bool,
    /// The Intel RDT group the container is in (`linux.intelRdt`, `update
    /// --l3-cache-schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<crate::intelrdt::Group>,
    /// The config the container was created from (hooks, namespaces, process defaults),
    /// kept as text: most commands never look at it, and parsing it into a tree was most
    /// of the cost of reading state.json.
    pub config: Box<serde_json::value::RawValue>,
}

/// The OCI state as `runrs state` prints it and hooks receive it.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
    pub owner: &'a str,
}

impl Saved {
    pub fn oci(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: OCI_VERSION,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            annotations: &self.annotations,
            owner: &self.owner,
        }
    }

    /// The state JSON hooks read on stdin (the pid is kept even once stopped, as runc does).
    pub fn hook_state(&self, status: Status) -> Vec<u8> {
        let mut s = self.oci(status);
        s.pid = self.pid;
        serde_json::to_vec(&s).unwrap_or_default()
    }
}

/// A container's state directory.
pub struct Container {
    pub dir: PathBuf,
    pub saved: Saved,
}

pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// The runtime's state root, made (with its parents) where it is missing.
pub fn create_root(root: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("create root directory {}", root.display()))
}

/// Create the state directory for a new container; an existing one is runc's "exists" error.
pub fn create_dir(root: &Path, id: &str) -> Result<PathBuf> {
    create_root(root)?;
    let dir = container_dir(root, id);
    match fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!(
                "container {id:?} already exists (state in {})",
                dir.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("create state directory {}", dir.display())),
    }
}

/// Write `state.json` atomically (temp file + rename).
pub fn save(dir: &Path, saved: &Saved) -> Result<()> {
    write_pending(dir, saved)?;
    commit_pending(dir)
}

/// The first half of `save`: the state under a temporary name, which nothing reads.
pub fn write_pending(dir: &Path, saved: &Saved) -> Result<()> {
    // Written beside and renamed over the last one: a create killed while writing (the
    // crash test's `init: namespaces made`) must leave the previous pending state whole,
    // not an empty file that `delete --force` cannot read (the cgroups were left).
    let tmp = dir.join(PENDING_NEXT);
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("write {}", tmp.display()))?;
    // Straight to the file: the state of a huge config is not built in memory first.
    let mut w = std::io::BufWriter::new(f);
    serde_json::to_writer(&mut w, saved)?;
    w.flush()?;
    drop(w);
    fs::rename(&tmp, dir.join(PENDING_FILE))
        .with_context(|| format!("write {}", dir.join(PENDING_FILE).display()))
}

/// The second half of `save`: the pending state becomes `state.json`.
pub fn commit_pending(dir: &Path) -> Result<()> {
    fs::rename(dir.join(PENDING_FILE), dir.join(STATE_FILE)).context("save state.json")
}

const PENDING_FILE: &str = ".state.json.tmp";
const PENDING_NEXT: &str = ".state.json.tmp.next";

/// What an aborted `create` recorded before it died (its state never became `state.json`):
/// the cgroups and systemd unit it was making and, once cloned, its init.
pub fn load_pending(root: &Path, id: &str) -> Option<Container> {
    let dir = container_dir(root, id);
    let data = fs::read(dir.join(PENDING_FILE)).ok()?;
    let saved = serde_json::from_slice(&data).ok()?;
    Some(Container { dir, saved })
}

/// Load a container's state; a missing one is runc's "does not exist" error.
pub fn load(root: &Path, id: &str) -> Result<Container> {
    crate::spec::validate_id(id)?;
    let dir = container_dir(root, id);
    let data = match fs::read(dir.join(STATE_FILE)) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("container does not exist")
        }
        Err(e) => return Err(e).with_context(|| format!("read state of container {id}")),
    };
    let saved: Saved = serde_json::from_slice(&data)
        .with_context(|| format!("state of container {id} is corrupt"))?;
    Ok(Container { dir, saved })
}

/// Every container id under `root` (directories with a state.json), sorted.
pub fn list(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(e).with_context(|| format!("read {}", root.display())),
    };
    for ent in rd.flatten() {
        if ent.path().join(STATE_FILE).exists() {
            if let Some(n) = ent.file_name().to_str() {
                ids.push(n.to_string());
            }
        }
    }
    ids.sort();
    Ok(ids)
}

/// Hold an exclusive lock on the state directory of a loaded container for the life of the
/// returned fd. A container deleted since it was loaded (a `delete` that won the race for
/// the lock) is runc's "does not exist", as if it had been gone at the load.
pub fn lock(dir: &Path) -> Result<OwnedFd> {
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("container does not exist"),
        Err(e) => return Err(e).with_context(|| format!("open {}", dir.display())),
    };
    // SAFETY: flock on an fd we own; no memory is involved.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!(
            "lock {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
    }
    if !dir.join(STATE_FILE).exists() {
        bail!("container does not exist");
    }
    Ok(f.into())
}

/// Field 22 (starttime) of `/proc/<pid>/stat`, and the state letter.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = crate::kernfs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&s)
}

/// The state letter and starttime of a `/proc/<pid>/stat` line.
pub(crate) fn parse_proc_stat(s: &str) -> Option<(char, u64)> {
    // The command name may hold spaces and parentheses: parse after the last ')'.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3; starttime is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

impl Container {
    /// The container's cgroup, as its driver made it.
    pub fn cgroup(&self) -> crate::cgroups::Cgroup<'_> {
        crate::cgroups::Cgroup {
            paths: &self.saved.cgroup_paths,
            scope: (self.saved.systemd_unit.as_deref()).map(|unit| crate::cgroups::Scope {
                unit,
                manager: if self.saved.systemd_user {
                    crate::cgroups::systemd::Manager::User
                } else {
                    crate::cgroups::systemd::Manager::System
                },
            }),
        }
    }

    /// Is our init still alive (and not a zombie)?
    pub fn init_alive(&self) -> bool {
        matches!(proc_stat(self.saved.pid), Some((st, start))
            if start == self.saved.start_time && st != 'Z' && st != 'X')
    }

    pub fn status(&self) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if self.cgroup().is_frozen() {
            return Status::Paused;
        }
        Status::Running
    }

    /// One kind of hooks from the saved config, without deserializing all of it (`start` and
    /// `delete` need nothing else).
    pub fn hooks(&self, kind: &str) -> Result<Option<Vec<oci_spec::runtime::Hook>>> {
        /// The config's `hooks`; serde skips everything else without building it.
        #[derive(Deserialize)]
        struct HooksOnly {
            #[serde(default)]
            hooks: Option<serde_json::Map<String, serde_json::Value>>,
        }
        let text = self.saved.config.get();
        // Most configs have no hooks, and then nothing needs parsing. The saved config was
        // written by serde_json from the parsed one, so a `hooks` key is spelled `"hooks"`
        // (not with the escapes config.json may use).
        if !text.contains("\"hooks\"") {
            return Ok(None);
        }
        let corrupt = || format!("{kind} hooks in state.json are corrupt");
        let only: HooksOnly = serde_json::from_str(text).with_context(corrupt)?;
        match only.hooks.and_then(|mut h| h.remove(kind)) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v).map(Some).with_context(corrupt),
        }
    }

    pub fn spec(&self) -> Result<oci_spec::runtime::Spec> {
        serde_json::from_str(self.saved.config.get()).context("config in state.json is corrupt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_stat_is_parsed() {
        let (st, start) = proc_stat(std::process::id() as i32).expect("own stat");
        assert!("RS".contains(st), "{st}");
        assert!(start > 0);
    }

    #[test]
    fn a_stat_line_cut_after_the_name_is_no_panic() {
        // Found by fuzz/ (proc): slicing past the end or into a character panicked.
        assert_eq!(parse_proc_stat("1 (sh)"), None);
        assert_eq!(parse_proc_stat("1 (sh) "), None);
        assert_eq!(parse_proc_stat("1 (sh)\u{20ac} S"), None);
        let line = "1 (a) b) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4242 0 0";
        assert_eq!(parse_proc_stat(line), Some(('S', 4242)));
    }

    #[test]
    fn duplicate_dir_is_runc_exists_error() {
        let tmp = tempfile::tempdir().unwrap();
        create_dir(tmp.path(), "a").unwrap();
        let err = create_dir(tmp.path(), "a").unwrap_err().to_string();
        assert!(err.contains("\"a\" already exists"), "{err}");
    }
}
