//! The cgroup of a process found from outside, as the shim knows a container: by its init's
//! pid. Its directories in every mounted hierarchy (from `/proc/<pid>/cgroup` and the mount
//! table, so mount roots and co-mounted controllers are read as create reads them), the
//! backend that drives them, and where its memory controller reports OOM kills.

use super::{parse_hierarchies, Backend};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// The directories of the cgroups `pid` is in, one per mounted hierarchy.
pub fn dirs_of(pid: i32) -> Result<Vec<PathBuf>> {
    let file = format!("/proc/{pid}/cgroup");
    let cgroups = crate::kernfs::read(&file).with_context(|| format!("read {file}"))?;
    let mounts = crate::mountinfo::read_mountinfo()?;
    Ok(parse_hierarchies(&cgroups, &mounts)
        .iter()
        .map(|h| h.dir_for(&h.own_path))
        .collect())
}

/// Where a cgroup's OOM kills show.
#[derive(Debug, PartialEq)]
pub enum OomSource {
    /// v1: the memory cgroup's directory; an eventfd registered in `cgroup.event_control`
    /// for `memory.oom_control` fires on each OOM.
    EventControl(PathBuf),
    /// v2: `memory.events`, whose `oom_kill` count grows (inotify sees it modified).
    Events(PathBuf),
}

impl Backend {
    /// Where this cgroup's OOM kills show; None without a memory controller.
    pub fn oom_source(&self) -> Option<OomSource> {
        match self {
            Backend::V1(b) => b
                .dir("memory")
                .map(|d| OomSource::EventControl(d.to_path_buf())),
            Backend::V2(b) => {
                let events = b.dir.join("memory.events");
                events.exists().then_some(OomSource::Events(events))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_cgroup_is_found_with_its_memory_controller() {
        let dirs = dirs_of(std::process::id() as i32).unwrap();
        assert!(!dirs.is_empty());
        assert!(dirs.iter().all(|d| d.join("cgroup.procs").exists()));
        let ours = std::process::id().to_string();
        let procs = crate::kernfs::read(dirs[0].join("cgroup.procs")).unwrap();
        assert!(procs.lines().any(|l| l == ours), "{dirs:?}");
        if let Some(b) = super::super::backend(&dirs) {
            match b.oom_source() {
                Some(OomSource::EventControl(d)) => {
                    assert!(d.join("memory.oom_control").exists())
                }
                Some(OomSource::Events(f)) => assert!(f.ends_with("memory.events")),
                None => {}
            }
        }
    }
}
