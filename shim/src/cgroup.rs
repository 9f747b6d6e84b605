//! For Stats, a container's cgroup files read into containerd's cgroup v1 or v2 Metrics
//! message, and the OOM watcher's source. The cgroup itself (its directories, found through
//! its init's /proc/<pid>/cgroup, and the backend that drives them) comes from the
//! runtime's cgroup interface, `runrs::cgroups`, as for every other command.

use std::path::Path;

use runrs::cgroups::running::{dirs_of, OomSource};
use runrs::cgroups::stats::flat_keyed;
use runrs::cgroups::{backend, v1::V1, Backend};
use runrs_proto::protobuf::well_known_types::any::Any;
use runrs_proto::protobuf::Message;
use runrs_proto::{metrics_v1 as v1, metrics_v2 as v2};

/// USER_HZ: cpuacct.stat counts in these ticks.
const TICKS_PER_SEC: u64 = 100;

/// The backend of the cgroup `pid` is in.
fn backend_of(pid: i32) -> Result<Backend, String> {
    let dirs = dirs_of(pid).map_err(|e| format!("cgroups of pid {pid}: {e:#}"))?;
    backend(&dirs).ok_or_else(|| format!("pid {pid} is in no cgroup this shim can read"))
}

/// Metrics of the cgroup of `pid`, packed as containerd's `Any`.
pub fn metrics(pid: i32) -> Result<Any, String> {
    match backend_of(pid)? {
        Backend::V1(b) => pack(&v1_metrics(&b), "io.containerd.cgroups.v1.Metrics"),
        Backend::V2(b) => pack(&v2_metrics(&b.dir), "io.containerd.cgroups.v2.Metrics"),
    }
}

/// Where the OOM kills of the cgroup of `pid` show.
pub fn oom_source(pid: i32) -> Result<OomSource, String> {
    backend_of(pid)?
        .oom_source()
        .ok_or_else(|| format!("pid {pid} is in no memory cgroup"))
}

/// Packs `m` as an `Any` of type `type_url` (spelled out: looking it up through
/// protobuf reflection would build descriptor tables worth ~100 kB in every shim).
fn pack<M: Message>(m: &M, type_url: &str) -> Result<Any, String> {
    let mut any = Any::new();
    any.type_url = type_url.to_string();
    any.value = m.write_to_bytes().map_err(|e| e.to_string())?;
    Ok(any)
}

fn read_u64(path: &Path) -> u64 {
    runrs::cgroups::read_u64(path).unwrap_or(0)
}

fn v1_metrics(b: &V1) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(d) = b.dir("pids") {
        m.pids = Some(v1_pids(d)).into();
    }
    if let Some(d) = b.dir("cpuacct") {
        m.cpu = Some(v1_cpu(d, b.dir("cpu"))).into();
    }
    if let Some(d) = b.dir("memory") {
        m.memory = Some(v1_memory(d)).into();
        m.memory_oom_control = Some(v1_oom_control(d)).into();
    }
    m
}

fn v1_pids(d: &Path) -> v1::PidsStat {
    let mut p = v1::PidsStat::new();
    p.current = read_u64(&d.join("pids.current"));
    p.limit = read_u64(&d.join("pids.max")); // "max" parses as 0: no limit
    p
}

/// cpuacct's usage, and the cpu controller's throttling if it is mounted.
fn v1_cpu(cpuacct: &Path, cpu_dir: Option<&Path>) -> v1::CPUStat {
    let mut usage = v1::CPUUsage::new();
    usage.total = read_u64(&cpuacct.join("cpuacct.usage"));
    usage.per_cpu = runrs::kernfs::read(cpuacct.join("cpuacct.usage_percpu"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let stat = flat_keyed(cpuacct, "cpuacct.stat");
    let ns = |ticks: u64| ticks * (1_000_000_000 / TICKS_PER_SEC);
    usage.user = ns(stat.get("user").copied().unwrap_or(0));
    usage.kernel = ns(stat.get("system").copied().unwrap_or(0));
    let mut cpu = v1::CPUStat::new();
    cpu.usage = Some(usage).into();
    if let Some(c) = cpu_dir {
        let s = flat_keyed(c, "cpu.stat");
        let mut t = v1::Throttle::new();
        t.periods = s.get("nr_periods").copied().unwrap_or(0);
        t.throttled_periods = s.get("nr_throttled").copied().unwrap_or(0);
        t.throttled_time = s.get("throttled_time").copied().unwrap_or(0);
        cpu.throttling = Some(t).into();
    }
    cpu
}

/// memory.stat, then the usage/limit/max/failcnt files of memory, memsw, kmem, kmem.tcp.
fn v1_memory(d: &Path) -> v1::MemoryStat {
    let s = flat_keyed(d, "memory.stat");
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    let mut mem = v1::MemoryStat::new();
    mem.cache = g("cache");
    mem.rss = g("rss");
    mem.rss_huge = g("rss_huge");
    mem.mapped_file = g("mapped_file");
    mem.dirty = g("dirty");
    mem.writeback = g("writeback");
    mem.pg_pg_in = g("pgpgin");
    mem.pg_pg_out = g("pgpgout");
    mem.pg_fault = g("pgfault");
    mem.pg_maj_fault = g("pgmajfault");
    mem.inactive_anon = g("inactive_anon");
    mem.active_anon = g("active_anon");
    mem.inactive_file = g("inactive_file");
    mem.active_file = g("active_file");
    mem.unevictable = g("unevictable");
    mem.hierarchical_memory_limit = g("hierarchical_memory_limit");
    mem.hierarchical_swap_limit = g("hierarchical_memsw_limit");
    mem.total_cache = g("total_cache");
    mem.total_rss = g("total_rss");
    mem.total_rss_huge = g("total_rss_huge");
    mem.total_mapped_file = g("total_mapped_file");
    mem.total_dirty = g("total_dirty");
    mem.total_writeback = g("total_writeback");
    mem.total_pg_pg_in = g("total_pgpgin");
    mem.total_pg_pg_out = g("total_pgpgout");
    mem.total_pg_fault = g("total_pgfault");
    mem.total_pg_maj_fault = g("total_pgmajfault");
    mem.total_inactive_anon = g("total_inactive_anon");
    mem.total_active_anon = g("total_active_anon");
    mem.total_inactive_file = g("total_inactive_file");
    mem.total_active_file = g("total_active_file");
    mem.total_unevictable = g("total_unevictable");
    mem.usage = Some(v1_memory_entry(d, "memory.")).into();
    mem.swap = Some(v1_memory_entry(d, "memory.memsw.")).into();
    mem.kernel = Some(v1_memory_entry(d, "memory.kmem.")).into();
    mem.kernel_tcp = Some(v1_memory_entry(d, "memory.kmem.tcp.")).into();
    mem
}

fn v1_memory_entry(d: &Path, prefix: &str) -> v1::MemoryEntry {
    let mut e = v1::MemoryEntry::new();
    e.usage = read_u64(&d.join(format!("{prefix}usage_in_bytes")));
    e.limit = read_u64(&d.join(format!("{prefix}limit_in_bytes")));
    e.max = read_u64(&d.join(format!("{prefix}max_usage_in_bytes")));
    e.failcnt = read_u64(&d.join(format!("{prefix}failcnt")));
    e
}

fn v1_oom_control(d: &Path) -> v1::MemoryOomControl {
    let oc = flat_keyed(d, "memory.oom_control");
    let mut oom = v1::MemoryOomControl::new();
    oom.oom_kill_disable = oc.get("oom_kill_disable").copied().unwrap_or(0);
    oom.under_oom = oc.get("under_oom").copied().unwrap_or(0);
    oom.oom_kill = oc.get("oom_kill").copied().unwrap_or(0);
    oom
}

fn v2_metrics(dir: &Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let mut pids = v2::PidsStat::new();
    pids.current = read_u64(&dir.join("pids.current"));
    pids.limit = read_u64(&dir.join("pids.max"));
    m.pids = Some(pids).into();
    let c = flat_keyed(dir, "cpu.stat");
    let g = |k: &str| c.get(k).copied().unwrap_or(0);
    let mut cpu = v2::CPUStat::new();
    cpu.usage_usec = g("usage_usec");
    cpu.user_usec = g("user_usec");
    cpu.system_usec = g("system_usec");
    cpu.nr_periods = g("nr_periods");
    cpu.nr_throttled = g("nr_throttled");
    cpu.throttled_usec = g("throttled_usec");
    m.cpu = Some(cpu).into();
    let s = flat_keyed(dir, "memory.stat");
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    let mut mem = v2::MemoryStat::new();
    mem.anon = g("anon");
    mem.file = g("file");
    mem.kernel_stack = g("kernel_stack");
    mem.slab = g("slab");
    mem.sock = g("sock");
    mem.shmem = g("shmem");
    mem.file_mapped = g("file_mapped");
    mem.file_dirty = g("file_dirty");
    mem.file_writeback = g("file_writeback");
    mem.inactive_anon = g("inactive_anon");
    mem.active_anon = g("active_anon");
    mem.inactive_file = g("inactive_file");
    mem.active_file = g("active_file");
    mem.unevictable = g("unevictable");
    mem.pgfault = g("pgfault");
    mem.pgmajfault = g("pgmajfault");
    mem.usage = read_u64(&dir.join("memory.current"));
    mem.usage_limit = read_u64(&dir.join("memory.max"));
    mem.swap_usage = read_u64(&dir.join("memory.swap.current"));
    mem.swap_limit = read_u64(&dir.join("memory.swap.max"));
    m.memory = Some(mem).into();
    let e = flat_keyed(dir, "memory.events");
    let mut ev = v2::MemoryEvents::new();
    ev.low = e.get("low").copied().unwrap_or(0);
    ev.high = e.get("high").copied().unwrap_or(0);
    ev.max = e.get("max").copied().unwrap_or(0);
    ev.oom = e.get("oom").copied().unwrap_or(0);
    ev.oom_kill = e.get("oom_kill").copied().unwrap_or(0);
    m.memory_events = Some(ev).into();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_metrics_pack() {
        let any = metrics(std::process::id() as i32).unwrap();
        assert!(any.type_url.starts_with("io.containerd.cgroups.v"));
    }
}
