//! cgroup v2: one directory, values translated from the OCI (v1-shaped) resources the way
//! runc translates them. Works on any directory laid out like cgroupfs, so it is tested
//! against a temporary one. Devices (an eBPF program) are attached by the caller.

use super::{read_u64, write_file};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct V2 {
    pub dir: PathBuf,
}

/// cpu.shares (2..262144) → cpu.weight (1..10000) as runc 1.3 and crun 1.23+ convert it: a
/// quadratic in log2(shares) through (2, 1), (1024, 100) and (262144, 10000), so the default
/// shares give the default weight. runc 1.1's linear map gave 1024 → 39 (docs/cgroups.md).
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1 | 2 => 1,
        s if s >= 262_144 => 10_000,
        s => {
            let l = (s as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

/// runc's blkio.weight (10..1000) → io.weight (1..10000).
pub fn blkio_to_io_weight(w: u64) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + w.saturating_sub(10).saturating_mul(9999) / 990
}

/// OCI `memory.swap` is memory+swap (v1's memsw); v2's `memory.swap.max` is swap alone.
/// `None` means "leave it"; `Some(-1)` is "max".
pub fn swap_to_v2(swap: i64, memory: i64) -> Result<Option<i64>> {
    if memory == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    match swap {
        0 => return Ok(None),
        -1 => return Ok(Some(-1)),
        _ => {}
    }
    if memory == 0 || memory == -1 {
        bail!("unable to set swap limit without memory limit");
    }
    if memory < 0 {
        bail!("invalid memory value: {memory}");
    }
    if swap < memory {
        bail!("memory+swap limit ({swap}) should be >= memory limit ({memory})");
    }
    Ok(Some(swap - memory))
}

fn limit_str(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

impl V2 {
    pub fn new(dir: impl Into<PathBuf>) -> V2 {
        V2 { dir: dir.into() }
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        write_file(&self.dir, file, value).map_err(|e| {
            if super::is_errno(&e, libc::ENOENT) {
                let ctrl = file.split('.').next().unwrap_or(file);
                anyhow::anyhow!(
                    "cannot set {file}: the {ctrl} controller is not enabled for {} (see cgroup.controllers of its parent)",
                    self.dir.display()
                )
            } else {
                e
            }
        })
    }

    /// Apply every resource but devices.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(c) = r.cpu() {
            self.cpu(c)?;
        }
        if let Some(m) = r.memory() {
            self.memory(m)?;
        }
        if let Some(p) = r.pids() {
            if p.limit() != 0 {
                self.write("pids.max", &limit_str(p.limit()))?;
            }
        }
        if let Some(b) = r.block_io() {
            self.io(b)?;
        }
        for h in r.hugepage_limits().iter().flatten() {
            self.write(
                &format!("hugetlb.{}.max", h.page_size()),
                &h.limit().to_string(),
            )?;
        }
        for (dev, l) in r.rdma().iter().flatten() {
            self.write("rdma.max", &super::rdma_line(dev, l))?;
        }
        if r.network().is_some() {
            crate::logging::warn("linux.resources.network is not supported on cgroup v2: ignored");
        }
        let mut unified: Vec<_> = r.unified().iter().flatten().collect();
        unified.sort();
        for (k, v) in unified {
            if k.contains('/') || k.starts_with('.') || !k.contains('.') {
                bail!("linux.resources.unified: {k:?} is not a cgroup file name");
            }
            self.write(k, v)
                .with_context(|| format!("linux.resources.unified[{k:?}]"))?;
        }
        Ok(())
    }

    fn cpu(&self, c: &LinuxCpu) -> Result<()> {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            self.write("cpu.weight", &shares_to_weight(s).to_string())?;
        }
        if let Some(i) = c.idle() {
            self.write("cpu.idle", &i.to_string())?;
        }
        let quota = c.quota().unwrap_or(0);
        let period = c.period().unwrap_or(0);
        if quota != 0 || period != 0 {
            let mut v = if quota > 0 {
                quota.to_string()
            } else {
                "max".to_string()
            };
            if period != 0 {
                v.push_str(&format!(" {period}"));
            }
            self.write("cpu.max", &v)?;
        }
        if let Some(b) = c.burst() {
            self.write("cpu.max.burst", &b.to_string())?;
        }
        if c.realtime_period().is_some_and(|p| p != 0)
            || c.realtime_runtime().is_some_and(|r| r != 0)
        {
            bail!(
                "linux.resources.cpu.realtime*: realtime scheduling is not supported on cgroup v2"
            );
        }
        if let Some(v) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
            self.write("cpuset.cpus", v)?;
        }
        if let Some(v) = c.mems().as_deref().filter(|v| !v.is_empty()) {
            self.write("cpuset.mems", v)?;
        }
        Ok(())
    }

    fn memory(&self, m: &LinuxMemory) -> Result<()> {
        let limit = m.limit().unwrap_or(0);
        if let Some(swap) = swap_to_v2(m.swap().unwrap_or(0), limit)? {
            let v = limit_str(swap);
            if let Err(e) = self.write("memory.swap.max", &v) {
                // Without swap accounting, "max" and "0" mean what the kernel does anyway.
                if !(self.dir.join("memory.max").exists() && (v == "max" || v == "0")) {
                    return Err(e);
                }
            }
        }
        if limit != 0 {
            self.write("memory.max", &limit_str(limit))?;
        }
        if let Some(r) = m.reservation().filter(|r| *r != 0) {
            self.write("memory.low", &limit_str(r))?;
        }
        if m.swappiness().is_some() {
            crate::logging::warn("memory.swappiness is not supported on cgroup v2: ignored");
        }
        if m.disable_oom_killer() == Some(true) {
            crate::logging::warn("memory.disableOOMKiller is not supported on cgroup v2: ignored");
        }
        if m.kernel().is_some_and(|k| k != 0) || m.kernel_tcp().is_some_and(|k| k != 0) {
            crate::logging::warn("memory.kernel and kernelTCP do not exist on cgroup v2: ignored");
        }
        Ok(())
    }

    fn io(&self, b: &LinuxBlockIo) -> Result<()> {
        let bfq = self.dir.join("io.bfq.weight").exists();
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            if bfq {
                self.write("io.bfq.weight", &w.to_string())?;
            } else {
                self.write("io.weight", &blkio_to_io_weight(w.into()).to_string())?;
            }
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight().filter(|w| *w != 0) {
                if !bfq {
                    bail!("blockIO.weightDevice needs the BFQ I/O scheduler (io.bfq.weight) on cgroup v2");
                }
                self.write("io.bfq.weight", &format!("{}:{} {w}", d.major(), d.minor()))?;
            }
        }
        for (key, list) in [
            ("rbps", b.throttle_read_bps_device()),
            ("wbps", b.throttle_write_bps_device()),
            ("riops", b.throttle_read_iops_device()),
            ("wiops", b.throttle_write_iops_device()),
        ] {
            for t in list.iter().flatten() {
                let rate = if t.rate() == 0 {
                    "max".to_string()
                } else {
                    t.rate().to_string()
                };
                self.write(
                    "io.max",
                    &format!("{}:{} {key}={rate}", t.major(), t.minor()),
                )?;
            }
        }
        Ok(())
    }

    /// Freeze or thaw, waiting for `cgroup.events` to agree.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        self.write("cgroup.freeze", if frozen { "1" } else { "0" })?;
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ev = crate::kernfs::read(self.dir.join("cgroup.events")).unwrap_or_default();
            // No cgroup.events (old kernel or a stand-in directory): trust the write.
            if ev.is_empty() || ev.lines().any(|l| l.trim() == want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                if frozen {
                    let _ = self.write("cgroup.freeze", "0");
                }
                bail!(
                    "timed out waiting for {} to report {want}",
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn is_frozen(&self) -> bool {
        crate::kernfs::read(self.dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
    }

    /// SIGKILL everything in the cgroup at once (`cgroup.kill`, Linux 5.14); `false` when the
    /// kernel has no such file.
    pub fn kill(&self) -> Result<bool> {
        if !self.dir.join("cgroup.kill").exists() {
            return Ok(false);
        }
        self.write("cgroup.kill", "1")?;
        Ok(true)
    }

    /// Enable every available controller on the way from `mount_point` down to `dir`'s
    /// parent, so that `dir` gets the controllers' files (what runc does on create).
    pub fn enable_controllers(mount_point: &Path, dir: &Path) -> Result<()> {
        let Ok(rel) = dir.strip_prefix(mount_point) else {
            return Ok(());
        };
        let mut cur = mount_point.to_path_buf();
        let comps: Vec<_> = rel.components().collect();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            enable_here(&cur)?;
            cur.push(c);
        }
        enable_here(&cur)
    }

    pub fn memory_max(&self) -> Option<u64> {
        read_u64(&self.dir.join("memory.max"))
    }
}

fn enable_here(dir: &Path) -> Result<()> {
    let avail = crate::kernfs::read(dir.join("cgroup.controllers")).unwrap_or_default();
    let on = crate::kernfs::read(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let want: Vec<String> = avail
        .split_whitespace()
        .filter(|c| !on.split_whitespace().any(|o| o == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    // One at a time: a controller the kernel refuses here (e.g. a threaded one) must not
    // keep the others off.
    for w in want {
        if let Err(e) = write_file(dir, "cgroup.subtree_control", &w) {
            crate::logging::debug(&format!("{}: enable {w}: {e:#}", dir.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translations_match_runc() {
        // runc 1.3's values (opencontainers/cgroups' ConvertCPUSharesToCgroupV2Value).
        for (shares, weight) in [
            (2, 1),
            (3, 2),
            (100, 17),
            (256, 35),
            (512, 59),
            (1024, 100),
            (2048, 174),
            (4096, 303),
            (262143, 10000),
            (262144, 10000),
            (1 << 40, 10000),
        ] {
            assert_eq!(shares_to_weight(shares), weight, "shares {shares}");
        }
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(swap_to_v2(200, 100).unwrap(), Some(100));
        assert_eq!(swap_to_v2(-1, 100).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(0, 100).unwrap(), None);
        assert_eq!(swap_to_v2(0, -1).unwrap(), Some(-1));
        assert!(swap_to_v2(50, 100).is_err());
        assert!(swap_to_v2(50, 0).is_err());
    }
}
