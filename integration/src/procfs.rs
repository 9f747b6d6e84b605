//! Reading the host's /proc and /sys/fs/cgroup: processes, mounts, cgroups, namespaces.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A process identified by pid and start time, so that a reused pid is never mistaken
/// for it (and never killed by a cleanup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcRef {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcRef {
    /// The process now running as `pid`, if any.
    pub fn of(pid: i32) -> Option<ProcRef> {
        let (_, start_time) = stat_fields(pid)?;
        Some(ProcRef { pid, start_time })
    }

    /// Whether this very process still exists and is not a zombie.
    pub fn alive(&self) -> bool {
        matches!(stat_fields(self.pid), Some((state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }

    /// SIGKILLs the process if it is still the one recorded.
    pub fn kill(&self) {
        if self.alive() {
            // SAFETY: kill(2) with a pid we recorded and checked is still that process.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// (state letter, start time) from /proc/<pid>/stat.
fn stat_fields(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of stat is the start time; `rest` starts at field 3.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Whether a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    matches!(stat_fields(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// Every live process whose environment contains exactly `entry` (`NAME=value`).
pub fn processes_with_env(entry: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == entry.as_bytes()))
                .unwrap_or(false)
        })
        .filter(|pid| pid_alive(*pid))
        .collect()
}

/// The cgroup directories named `name` anywhere under /sys/fs/cgroup.
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, name: &str, depth: usize, found: &mut Vec<PathBuf>) {
        if depth > 8 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if !kind.is_dir() {
                continue;
            }
            let path = entry.path();
            if entry.file_name().to_str() == Some(name) {
                found.push(path.clone());
            }
            walk(&path, name, depth + 1, found);
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, 0, &mut found);
    found
}

/// The mount points in the test's own mount namespace at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.by_ref().take(3).collect();
            if let Ok(n) = u8::from_str_radix(&digits, 8) {
                out.push(n as char);
                continue;
            }
            out.push(c);
            out.push_str(&digits);
        } else {
            out.push(c);
        }
    }
    out
}

/// Detaches every mount at or below `dir` (deepest first). Only for the test's own
/// temp dirs.
pub fn unmount_all_under(dir: &Path) {
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for mount in mounts {
        let Ok(c) = std::ffi::CString::new(mount.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: umount2 with a valid NUL-terminated path; failure is harmless here.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// The five capability masks (`CapInh`, `CapPrm`, `CapEff`, `CapBnd`, `CapAmb`) of a
/// /proc/<pid>/status text.
pub fn status_caps(status: &str) -> HashMap<String, u64> {
    status
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            if !key.starts_with("Cap") {
                return None;
            }
            Some((key.to_owned(), u64::from_str_radix(value.trim(), 16).ok()?))
        })
        .collect()
}

/// A `Key:\tvalue` field of a /proc/<pid>/status text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// The host's namespace links (`net:[4026531840]`), by namespace name.
pub fn host_namespaces() -> HashMap<String, String> {
    ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"]
        .iter()
        .filter_map(|ns| {
            let link = std::fs::read_link(format!("/proc/self/ns/{ns}")).ok()?;
            Some((ns.to_string(), link.to_string_lossy().into_owned()))
        })
        .collect()
}

/// One line of /proc/<pid>/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    /// The directory of the filesystem that is mounted (`/` for all of it).
    pub root: String,
    pub mount_point: String,
    /// Per-mount options (`rw,nosuid,...`).
    pub options: Vec<String>,
    /// Optional fields (`shared:3`, `master:1`).
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    /// Superblock options (`rw,size=1024k,mode=1777`).
    pub super_options: Vec<String>,
}

impl MountInfo {
    pub fn has_option(&self, option: &str) -> bool {
        self.options.iter().any(|o| o == option)
    }

    pub fn has_super_option(&self, option: &str) -> bool {
        self.super_options.iter().any(|o| o == option)
    }

    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }

    pub fn is_slave(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("master:"))
    }
}

/// Parses mountinfo text (as printed by `cat /proc/self/mountinfo`), skipping lines
/// that are not mountinfo.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            if fields.len() < 6 || fields[0].parse::<u64>().is_err() {
                return None;
            }
            let right: Vec<&str> = right.split(' ').collect();
            Some(MountInfo {
                root: unescape_mount_path(fields[3]),
                mount_point: unescape_mount_path(fields[4]),
                options: fields[5].split(',').map(str::to_owned).collect(),
                optional: fields[6..].iter().map(|s| s.to_string()).collect(),
                fs_type: right.first()?.to_string(),
                source: right.get(1).unwrap_or(&"").to_string(),
                super_options: right
                    .get(2)
                    .unwrap_or(&"")
                    .split(',')
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// The last (topmost) mount at `mount_point` in parsed mountinfo.
#[track_caller]
pub fn mount_at<'a>(mounts: &'a [MountInfo], mount_point: &str) -> &'a MountInfo {
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == mount_point)
        .unwrap_or_else(|| panic!("no mount at {mount_point} in {mounts:#?}"))
}

/// Mounts a fresh tmpfs on `dir` in the test's own mount namespace (TestEnv unmounts
/// it), optionally made shared so mounts below it propagate to its copies.
pub fn mount_tmpfs(dir: &Path, shared: bool) {
    let c = |s: &[u8]| std::ffi::CString::new(s).expect("no NUL");
    let target = c(dir.as_os_str().as_encoded_bytes());
    let tmpfs = c(b"tmpfs");
    let options = c(b"size=1m");
    // SAFETY: mount(2) with valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            tmpfs.as_ptr(),
            target.as_ptr(),
            tmpfs.as_ptr(),
            0,
            options.as_ptr().cast(),
        )
    };
    assert_eq!(
        rc,
        0,
        "mount tmpfs on {dir:?}: {}",
        std::io::Error::last_os_error()
    );
    if shared {
        // SAFETY: as above; only propagation flags change.
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_SHARED,
                std::ptr::null(),
            )
        };
        assert_eq!(
            rc,
            0,
            "make {dir:?} shared: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Whether this host (or guest) has only the unified hierarchy: cgroup2 on /sys/fs/cgroup.
pub fn pure_cgroup_v2() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(" - "))
        .any(|(pre, post)| {
            pre.split(' ').nth(4) == Some("/sys/fs/cgroup") && post.starts_with("cgroup2 ")
        })
}

/// The host directory of `pid`'s cgroup in the v1 hierarchy carrying `controller` (or in
/// the v2 tree for `""`), from `/proc/<pid>/cgroup` and the mount table.
pub fn cgroup_dir(pid: i32, controller: &str) -> PathBuf {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let wanted = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        if !wanted {
            continue;
        }
        for m in mountinfo.lines() {
            let (pre, post) = m.split_once(" - ").unwrap();
            let post: Vec<&str> = post.split(' ').collect();
            let pre: Vec<&str> = pre.split(' ').collect();
            let ok = if controller.is_empty() {
                post[0] == "cgroup2"
            } else {
                post[0] == "cgroup" && post[2].split(',').any(|o| o == controller)
            };
            if ok {
                let rel = path.strip_prefix(pre[3]).unwrap_or(path);
                return PathBuf::from(pre[4]).join(rel.trim_start_matches('/'));
            }
        }
    }
    panic!("no {controller:?} cgroup for pid {pid}");
}

/// The pids in `pid`'s cgroup (its pids hierarchy on v1, the v2 tree on a pure v2 host),
/// sorted; empty when the cgroup is gone.
pub fn cgroup_procs(pid: i32) -> Vec<i32> {
    let controller = if pure_cgroup_v2() { "" } else { "pids" };
    let dir = cgroup_dir(pid, controller);
    let mut pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    pids.sort();
    pids
}
