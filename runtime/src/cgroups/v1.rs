//! cgroup v1: one directory per hierarchy; each resource goes to the directory whose
//! hierarchy carries its controller (found by the controller's files, so co-mounts such as
//! `cpu,cpuacct` need no special case).

use super::{devices, read_u64, write_file};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use std::path::{Path, PathBuf};

/// The container's v1 directories.
pub struct V1 {
    dirs: Vec<PathBuf>,
    /// Each directory's controllers (`cpu,cpuacct`), where the hierarchies are known
    /// (`create` has read them): no file to look for.
    controllers: Option<Vec<String>>,
}

/// A file each cgroup of `controller` has whatever the kernel's configuration (the root
/// cgroup lacks some).
fn always_there(controller: &str) -> Option<&'static str> {
    Some(match controller {
        "cpu" => "cpu.shares",
        "cpuacct" => "cpuacct.usage",
        "cpuset" => "cpuset.cpus",
        "memory" => "memory.limit_in_bytes",
        "devices" => "devices.allow",
        "freezer" => "freezer.state",
        "pids" => "pids.max",
        "blkio" => "blkio.reset_stats",
        "net_cls" => "net_cls.classid",
        "net_prio" => "net_prio.ifpriomap",
        "rdma" => "rdma.max",
        _ => return None,
    })
}

/// `memory.limit_in_bytes` reads this when unlimited.
pub const UNLIMITED: u64 = 9223372036854771712;

impl V1 {
    pub fn new(dirs: Vec<PathBuf>) -> V1 {
        V1 {
            dirs,
            controllers: None,
        }
    }

    /// The directories of hierarchies whose controllers are known: (`cpu,cpuacct`, dir).
    pub fn known<'a>(hierarchies: impl Iterator<Item = (&'a str, &'a Path)>) -> V1 {
        let (controllers, dirs) = hierarchies
            .map(|(c, d)| (c.to_string(), d.to_path_buf()))
            .unzip();
        V1 {
            dirs,
            controllers: Some(controllers),
        }
    }

    /// The directory of the hierarchy that carries `controller`, if it is mounted: the one
    /// with a file every (non-root) cgroup of that controller has, else any `<controller>.*`.
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        if let Some(controllers) = &self.controllers {
            let carries = |c: &String| c.split(',').any(|c| c == controller);
            return controllers
                .iter()
                .position(carries)
                .map(|i| self.dirs[i].as_path());
        }
        let dirs = || self.dirs.iter().map(PathBuf::as_path);
        if let Some(found) =
            always_there(controller).and_then(|file| dirs().find(|d| d.join(file).exists()))
        {
            return Some(found);
        }
        let prefix = format!("{controller}.");
        dirs().find(|d| {
            std::fs::read_dir(d).is_ok_and(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            })
        })
    }

    /// Apply `r`. `devices` is false for `update`, which (as in runc) leaves device rules.
    pub fn apply(&self, r: &LinuxResources, with_devices: bool) -> Result<()> {
        if let Some(c) = r.cpu() {
            self.cpuset(c)?;
        }
        if with_devices {
            if let Some(dir) = self.dir("devices") {
                let rules = devices::with_defaults(r.devices().as_deref().unwrap_or(&[]));
                devices::write_v1(dir, &devices::reduce(&rules))?;
            }
        }
        if let Some(m) = r.memory() {
            self.memory(m)?;
        }
        if let Some(c) = r.cpu() {
            self.cpu(c)?;
        }
        if let Some(p) = r.pids() {
            if p.limit() != 0 {
                let v = if p.limit() > 0 {
                    p.limit().to_string()
                } else {
                    "max".into()
                };
                write_file(self.need("pids", "pids.limit")?, "pids.max", &v)?;
            }
        }
        if let Some(b) = r.block_io() {
            self.blkio(b)?;
        }
        for h in r.hugepage_limits().iter().flatten() {
            let dir = self.need("hugetlb", "hugepageLimits")?;
            let file = format!("hugetlb.{}.limit_in_bytes", h.page_size());
            write_file(dir, &file, &h.limit().to_string())?;
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                write_file(
                    self.need("net_cls", "network.classID")?,
                    "net_cls.classid",
                    &id.to_string(),
                )?;
            }
            for p in n.priorities().iter().flatten() {
                let line = format!("{} {}", p.name(), p.priority());
                write_file(
                    self.need("net_prio", "network.priorities")?,
                    "net_prio.ifpriomap",
                    &line,
                )?;
            }
        }
        for (dev, l) in r.rdma().iter().flatten() {
            write_file(
                self.need("rdma", "rdma")?,
                "rdma.max",
                &super::rdma_line(dev, l),
            )?;
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            bail!("invalid configuration: cannot use unified on cgroup v1");
        }
        Ok(())
    }

    fn need(&self, controller: &str, field: &str) -> Result<&Path> {
        self.dir(controller).with_context(|| {
            format!("linux.resources.{field} needs the {controller} cgroup controller, which is not mounted")
        })
    }

    fn cpuset(&self, c: &LinuxCpu) -> Result<()> {
        for (file, v) in [("cpuset.cpus", c.cpus()), ("cpuset.mems", c.mems())] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                write_file(self.need("cpuset", file)?, file, v)?;
            }
        }
        Ok(())
    }

    fn memory(&self, m: &LinuxMemory) -> Result<()> {
        let dir = self.need("memory", "memory")?;
        let has_swap = dir.join("memory.memsw.limit_in_bytes").exists();
        let limit = m.limit().unwrap_or(0);
        let mut swap = m.swap().unwrap_or(0);
        if limit == -1 && swap == 0 && has_swap {
            swap = -1;
        }
        let set_limit = |v: i64| -> Result<()> {
            if v == 0 {
                return Ok(());
            }
            write_file(dir, "memory.limit_in_bytes", &v.to_string()).map_err(|e| {
                if super::is_errno(&e, libc::EBUSY) {
                    let usage = read_u64(&dir.join("memory.usage_in_bytes")).unwrap_or(0);
                    let max = read_u64(&dir.join("memory.max_usage_in_bytes")).unwrap_or(0);
                    anyhow::anyhow!(
                        "unable to set memory limit to {v} (current usage: {usage}, peak usage: {max})"
                    )
                } else {
                    e
                }
            })
        };
        let set_swap = |v: i64| -> Result<()> {
            if v == 0 {
                return Ok(());
            }
            if !has_swap {
                if v != -1 {
                    crate::logging::warn(
                        "memory.swap ignored: swap accounting is off in this kernel",
                    );
                }
                return Ok(());
            }
            write_file(dir, "memory.memsw.limit_in_bytes", &v.to_string())
        };
        // The kernel wants memsw >= limit at every step: raise swap first when growing.
        let current = read_u64(&dir.join("memory.limit_in_bytes")).unwrap_or(UNLIMITED);
        if limit != 0 && swap != 0 && (swap == -1 || current < swap as u64) {
            set_swap(swap)?;
            set_limit(limit)?;
        } else {
            set_limit(limit)?;
            set_swap(swap)?;
        }
        if let Some(r) = m.reservation().filter(|r| *r != 0) {
            write_file(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
        }
        if m.kernel().is_some_and(|k| k != 0) {
            crate::logging::warn("memory.kernel is deprecated and not supported: ignored");
        }
        if let Some(k) = m.kernel_tcp().filter(|k| *k != 0) {
            write_file(dir, "memory.kmem.tcp.limit_in_bytes", &k.to_string())?;
        }
        if m.disable_oom_killer() == Some(true) {
            write_file(dir, "memory.oom_control", "1")?;
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                bail!("invalid memory swappiness value: {s} (valid range is 0-100)");
            }
            write_file(dir, "memory.swappiness", &s.to_string())?;
        }
        Ok(())
    }

    fn cpu(&self, c: &LinuxCpu) -> Result<()> {
        let needs_cpu = c.shares().is_some_and(|s| s != 0)
            || c.quota().is_some_and(|q| q != 0)
            || c.period().is_some_and(|p| p != 0)
            || c.burst().is_some()
            || c.realtime_period().is_some_and(|p| p != 0)
            || c.realtime_runtime().is_some_and(|r| r != 0)
            || c.idle().is_some();
        if !needs_cpu {
            return Ok(());
        }
        let dir = self.need("cpu", "cpu")?;
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            write_file(dir, "cpu.shares", &s.to_string())?;
            // The kernel clamps silently: tell the user what was refused.
            let got = read_u64(&dir.join("cpu.shares")).unwrap_or(s);
            if s > got {
                bail!("the maximum allowed cpu-shares is {got}");
            } else if s < got {
                bail!("the minimum allowed cpu-shares is {got}");
            }
        }
        let quota = c.quota().unwrap_or(0);
        let mut period_later = None;
        if let Some(p) = c.period().filter(|p| *p != 0) {
            if let Err(e) = write_file(dir, "cpu.cfs_period_us", &p.to_string()) {
                // A new period can be refused against the old quota: retry after the quota.
                if quota != 0 && super::is_errno(&e, libc::EINVAL) {
                    period_later = Some(p);
                } else {
                    return Err(e);
                }
            }
        }
        if quota != 0 {
            write_file(dir, "cpu.cfs_quota_us", &quota.to_string())?;
        }
        if let Some(p) = period_later {
            write_file(dir, "cpu.cfs_period_us", &p.to_string())?;
        }
        if let Some(b) = c.burst() {
            write_file(dir, "cpu.cfs_burst_us", &b.to_string())?;
        }
        if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
            write_file(dir, "cpu.rt_period_us", &p.to_string())?;
        }
        if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
            write_file(dir, "cpu.rt_runtime_us", &r.to_string())?;
        }
        if let Some(i) = c.idle() {
            write_file(dir, "cpu.idle", &i.to_string())?;
        }
        Ok(())
    }

    fn blkio(&self, b: &LinuxBlockIo) -> Result<()> {
        let Some(dir) = self.dir("blkio") else {
            bail!(
                "linux.resources.blockIO needs the blkio cgroup controller, which is not mounted"
            );
        };
        // BFQ's files replace CFQ's when present (runc's rule).
        let bfq = dir.join("blkio.bfq.weight").exists();
        let (weight, weight_dev) = if bfq {
            ("blkio.bfq.weight", "blkio.bfq.weight_device")
        } else {
            ("blkio.weight", "blkio.weight_device")
        };
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            write_file(dir, weight, &w.to_string())?;
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            write_file(dir, "blkio.leaf_weight", &w.to_string())?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight().filter(|w| *w != 0) {
                write_file(dir, weight_dev, &format!("{}:{} {w}", d.major(), d.minor()))?;
            }
            if let Some(w) = d.leaf_weight().filter(|w| *w != 0) {
                let line = format!("{}:{} {w}", d.major(), d.minor());
                write_file(dir, "blkio.leaf_weight_device", &line)?;
            }
        }
        for (file, list) in [
            (
                "blkio.throttle.read_bps_device",
                b.throttle_read_bps_device(),
            ),
            (
                "blkio.throttle.write_bps_device",
                b.throttle_write_bps_device(),
            ),
            (
                "blkio.throttle.read_iops_device",
                b.throttle_read_iops_device(),
            ),
            (
                "blkio.throttle.write_iops_device",
                b.throttle_write_iops_device(),
            ),
        ] {
            for t in list.iter().flatten() {
                write_file(
                    dir,
                    file,
                    &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                )?;
            }
        }
        Ok(())
    }

    /// Freeze (`true`) or thaw, waiting until the kernel reports the new state.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let dir = self
            .dir("freezer")
            .context("the freezer cgroup controller is not mounted")?;
        let want = if frozen { "FROZEN" } else { "THAWED" };
        for i in 0..2000 {
            // Writing FROZEN again nudges a freeze stuck behind a task in a vfork.
            if i % 50 == 0 {
                write_file(dir, "freezer.state", want)?;
            }
            let now = crate::kernfs::read(dir.join("freezer.state")).unwrap_or_default();
            if now.trim() == want {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if frozen {
            let _ = write_file(dir, "freezer.state", "THAWED");
        }
        bail!("timed out waiting for the freezer to report {want}")
    }
}
