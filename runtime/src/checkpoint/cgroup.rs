//! A restored container's cgroups, with either driver: worked out before anything is made,
//! then joined by CRIU itself before it restores a task (so every restored task is made in
//! them), as runc's cgroup manager Apply(criu's pid) does. cgroupfs: the directories made
//! and `linux.resources` written first, CRIU moved in. systemd: a transient scope started
//! with CRIU's pid in it (its properties from `linux.resources` and the annotations), v1
//! hierarchies systemd does not manage made and joined, the files written.

use crate::cgroups::{self, systemd, Planned};
use anyhow::{Context, Result};
use oci_spec::runtime::{LinuxResources, Spec};
use std::path::PathBuf;

/// What the restore's cgroups will be.
pub struct Plan {
    planned: Planned,
    /// The scope and its properties, under the systemd driver.
    scope: Option<(systemd::Unit, Vec<systemd::properties::Property>)>,
    resources: LinuxResources,
}

impl Plan {
    /// Checked as create checks it: the path (or unit) resolved, an existing cgroup empty.
    pub fn new(spec: &Spec, id: &str, systemd_driver: bool) -> Result<Plan> {
        let linux = spec.linux().as_ref();
        let path = linux
            .and_then(|l| l.cgroups_path().as_ref())
            .and_then(|p| p.to_str());
        let resources = (linux.and_then(|l| l.resources().clone())).unwrap_or_default();
        let (cgroup_path, scope) = if systemd_driver {
            systemd::check_booted()?;
            // CRIU restores as root: the system's manager.
            let unit = systemd::Unit::parse(path, id, systemd::Manager::System)?;
            let v1 = !cgroups::unified_mode();
            let mut props = systemd::properties::from_resources(&resources, v1)?;
            let annotations = spec.annotations().clone().unwrap_or_default();
            props.extend(systemd::properties::from_annotations(
                &annotations.into_iter().collect(),
            )?);
            (unit.cgroup_path(), Some((unit, props)))
        } else {
            (cgroups::resolve_path(path, id)?, None)
        };
        let planned = cgroups::plan(&cgroup_path)?;
        planned.check_reusable()?;
        Ok(Plan {
            planned,
            scope,
            resources,
        })
    }

    /// One directory per hierarchy (what state.json keeps).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.planned.dirs
    }

    /// The container's v1 hierarchies (names and directories), for its `/sys/fs/cgroup`.
    pub fn v1_dirs(&self) -> &[cgroups::V1Dir] {
        &self.planned.view.v1
    }

    /// The scope unit's name, under the systemd driver.
    pub fn unit(&self) -> Option<String> {
        self.scope.as_ref().map(|(u, _)| u.name.clone())
    }

    /// cgroupfs: the directories made (each added to `made` first) and the resources
    /// written, before CRIU starts. systemd makes the scope's own at [`Plan::join`].
    pub fn make(&self, made: &mut Vec<PathBuf>) -> Result<()> {
        if self.scope.is_some() {
            return Ok(());
        }
        self.planned.make(made, |_| true)?;
        self.planned.apply(&self.resources)
    }

    /// CRIU (`pid`) into the container's cgroups. The cgroup roots it is to restore into
    /// (`cg_root`), as `/proc/<pid>/cgroup` now says: each hierarchy's controllers and path,
    /// cgroup2's (alone, or beside v1 ones) as the empty controller, as runc hands them over.
    pub fn join(&self, pid: i32) -> Result<Vec<(String, String)>> {
        let dirs = &self.planned.dirs;
        match &self.scope {
            None => cgroups::move_into(dirs, pid).context("move criu into the cgroups")?,
            Some((unit, props)) => {
                systemd::Systemd::connect(unit.manager)?.start_scope(unit, pid, props.clone())?;
                if !self.planned.is_pure_v2() {
                    let mut made = Vec::new();
                    self.planned.make(&mut made, |h| !h.unified)?;
                    cgroups::move_into(dirs, pid).context("move criu into the cgroups")?;
                }
                self.planned.apply(&self.resources)?;
            }
        }
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        Ok(text.lines().filter_map(cg_root).collect())
    }
}

/// `ID:controllers:path` as (controllers, path), named the way CRIU names a hierarchy in its
/// images (and runc hands them over): `name=systemd` with its prefix, and cgroup2's line
/// (`0::`) as the empty controller. Stripped of `name=`, a root matched nothing and CRIU put
/// the restored tasks back into the dumped container's cgroups there.
fn cg_root(line: &str) -> Option<(String, String)> {
    let mut parts = line.splitn(3, ':');
    let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
    Some((ctrls.to_string(), path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_roots_from_proc_cgroup() {
        assert_eq!(
            cg_root("4:cpu,cpuacct:/a/b"),
            Some(("cpu,cpuacct".into(), "/a/b".into()))
        );
        assert_eq!(
            cg_root("1:name=systemd:/s"),
            Some(("name=systemd".into(), "/s".into()))
        );
        assert_eq!(cg_root("0::/unified"), Some(("".into(), "/unified".into())));
    }
}
