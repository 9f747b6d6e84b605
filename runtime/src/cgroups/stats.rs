//! Resource usage in the shape of runc's `events --stats` (`types.Stats`): cpu, memory,
//! pids, blkio, hugetlb. Zero values are left out where runc's `omitempty` leaves them out.

use super::{read_u64, Backend};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn read(dir: &Path, file: &str) -> Option<u64> {
    read_u64(&dir.join(file))
}

/// `max` reads as u64::MAX, as runc reports an unlimited value.
fn read_limit(dir: &Path, file: &str) -> u64 {
    match crate::kernfs::read(dir.join(file)) {
        Ok(s) if s.trim() == "max" => u64::MAX,
        Ok(s) => s.trim().parse().unwrap_or(0),
        Err(_) => 0,
    }
}

/// `key value` lines (memory.stat, cpu.stat, memory.events).
pub fn flat_keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    crate::kernfs::read(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Drop zero numbers and empty lists (Go's `omitempty` on runc's fields), except the fields
/// runc always prints; structs stay (Go never omits them), the `raw` map goes when empty.
fn omit_empty(v: Value) -> Value {
    const KEEP: [&str; 4] = ["limit", "failcnt", "kernel", "user"];
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    if k == "raw" {
                        (k, v)
                    } else {
                        (k, omit_empty(v))
                    }
                })
                .filter(|(k, v)| {
                    KEEP.contains(&k.as_str())
                        || !(v.as_u64() == Some(0)
                            || (k == "raw" && v.as_object().is_some_and(Map::is_empty))
                            || v.as_array().is_some_and(Vec::is_empty))
                })
                .collect(),
        ),
        other => other,
    }
}

fn entry(dir: &Path, prefix: &str) -> Value {
    json!({
        "limit": read(dir, &format!("{prefix}.limit_in_bytes")).unwrap_or(0),
        "usage": read(dir, &format!("{prefix}.usage_in_bytes")).unwrap_or(0),
        "max": read(dir, &format!("{prefix}.max_usage_in_bytes")).unwrap_or(0),
        "failcnt": read(dir, &format!("{prefix}.failcnt")).unwrap_or(0),
    })
}

fn per_cpu(dir: &Path, file: &str) -> Vec<u64> {
    crate::kernfs::read(dir.join(file))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Page sizes as the hugetlb files name them: `2MB`, `1GB`.
fn hugepage_sizes() -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(kb) = n
            .strip_prefix("hugepages-")
            .and_then(|s| s.strip_suffix("kB"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        out.push(match kb {
            kb if kb >= 1 << 20 => format!("{}GB", kb >> 20),
            kb if kb >= 1 << 10 => format!("{}MB", kb >> 10),
            kb => format!("{kb}KB"),
        });
    }
    out
}

fn blkio_entries(dir: &Path, file: &str) -> Vec<Value> {
    crate::kernfs::read(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, op, v) = (f.next()?, f.next()?, f.next()?);
            let (ma, mi) = dev.split_once(':')?;
            Some(
                json!({"major": ma.parse::<u64>().ok()?, "minor": mi.parse::<u64>().ok()?,
                        "op": op, "value": v.parse::<u64>().ok()?}),
            )
        })
        .collect()
}

fn v1(b: &super::v1::V1) -> Value {
    let mut data = Map::new();
    if let Some(d) = b.dir("cpuacct") {
        // cpuacct.stat counts USER_HZ ticks.
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let st = flat_keyed(d, "cpuacct.stat");
        let ns = |k: &str| st.get(k).copied().unwrap_or(0) * 1_000_000_000 / hz;
        data.insert(
            "cpu".into(),
            json!({"usage": {
                "total": read(d, "cpuacct.usage").unwrap_or(0),
                "percpu": per_cpu(d, "cpuacct.usage_percpu"),
                "percpu_kernel": per_cpu(d, "cpuacct.usage_percpu_sys"),
                "percpu_user": per_cpu(d, "cpuacct.usage_percpu_user"),
                "kernel": ns("system"),
                "user": ns("user"),
            }}),
        );
    }
    if let Some(d) = b.dir("cpu") {
        let st = flat_keyed(d, "cpu.stat");
        let g = |k: &str| st.get(k).copied().unwrap_or(0);
        let cpu = data.entry("cpu").or_insert_with(|| json!({}));
        cpu["throttling"] = json!({"periods": g("nr_periods"),
            "throttled_periods": g("nr_throttled"), "throttled_time": g("throttled_time")});
    }
    if let Some(d) = b.dir("memory") {
        let raw = flat_keyed(d, "memory.stat");
        data.insert(
            "memory".into(),
            json!({
                "cache": raw.get("total_cache").or(raw.get("cache")).copied().unwrap_or(0),
                "usage": entry(d, "memory"),
                "swap": entry(d, "memory.memsw"),
                "kernel": entry(d, "memory.kmem"),
                "kernelTCP": entry(d, "memory.kmem.tcp"),
                "raw": raw,
            }),
        );
    }
    if let Some(d) = b.dir("pids") {
        let limit = read_limit(d, "pids.max");
        data.insert(
            "pids".into(),
            json!({"current": read(d, "pids.current").unwrap_or(0),
                   "limit": if limit == u64::MAX { 0 } else { limit }}),
        );
    }
    if let Some(d) = b.dir("blkio") {
        data.insert(
            "blkio".into(),
            json!({
                "ioServiceBytesRecursive": blkio_entries(d, "blkio.throttle.io_service_bytes_recursive"),
                "ioServicedRecursive": blkio_entries(d, "blkio.throttle.io_serviced_recursive"),
            }),
        );
    }
    if let Some(d) = b.dir("hugetlb") {
        let mut h = Map::new();
        for s in hugepage_sizes() {
            h.insert(
                s.clone(),
                json!({"usage": read(d, &format!("hugetlb.{s}.usage_in_bytes")).unwrap_or(0),
                       "max": read(d, &format!("hugetlb.{s}.max_usage_in_bytes")).unwrap_or(0),
                       "failcnt": read(d, &format!("hugetlb.{s}.failcnt")).unwrap_or(0)}),
            );
        }
        data.insert("hugetlb".into(), Value::Object(h));
    }
    Value::Object(data)
}

/// v2 stats of the cgroup directory `d` (public for the stand-in directory tests).
pub fn v2(d: &Path) -> Value {
    let mut data = Map::new();
    let cpu = flat_keyed(d, "cpu.stat");
    let g = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    data.insert(
        "cpu".into(),
        json!({
            "usage": {"total": g(&cpu, "usage_usec") * 1000, "kernel": g(&cpu, "system_usec") * 1000,
                      "user": g(&cpu, "user_usec") * 1000},
            "throttling": {"periods": g(&cpu, "nr_periods"), "throttled_periods": g(&cpu, "nr_throttled"),
                           "throttled_time": g(&cpu, "throttled_usec") * 1000},
        }),
    );
    if d.join("memory.current").exists() {
        let raw = flat_keyed(d, "memory.stat");
        let ev = flat_keyed(d, "memory.events");
        let usage = read(d, "memory.current").unwrap_or(0);
        let limit = read_limit(d, "memory.max");
        let swap_limit = read_limit(d, "memory.swap.max");
        // runc reports swap as memory+swap, v1's memsw.
        data.insert(
            "memory".into(),
            json!({
                "cache": g(&raw, "file"),
                "usage": {"limit": limit, "usage": usage, "max": read(d, "memory.peak").unwrap_or(0),
                          "failcnt": g(&ev, "max")},
                "swap": {"limit": if limit == u64::MAX || swap_limit == u64::MAX { u64::MAX } else { limit + swap_limit },
                         "usage": usage + read(d, "memory.swap.current").unwrap_or(0), "failcnt": 0},
                "raw": raw,
            }),
        );
    }
    if d.join("pids.current").exists() {
        let limit = read_limit(d, "pids.max");
        data.insert(
            "pids".into(),
            json!({"current": read(d, "pids.current").unwrap_or(0),
                   "limit": if limit == u64::MAX { 0 } else { limit }}),
        );
    }
    let io = crate::kernfs::read(d.join("io.stat")).unwrap_or_default();
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for l in io.lines() {
        let mut f = l.split_whitespace();
        let Some((ma, mi)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(json!({"major": ma.parse::<u64>().unwrap_or(0), "minor": mi.parse::<u64>().unwrap_or(0),
                             "op": op, "value": v.parse::<u64>().unwrap_or(0)}));
        }
    }
    data.insert(
        "blkio".into(),
        json!({"ioServiceBytesRecursive": bytes, "ioServicedRecursive": ios}),
    );
    let mut h = Map::new();
    for s in hugepage_sizes() {
        if d.join(format!("hugetlb.{s}.current")).exists() {
            let ev = flat_keyed(d, &format!("hugetlb.{s}.events"));
            h.insert(
                s.clone(),
                json!({"usage": read(d, &format!("hugetlb.{s}.current")).unwrap_or(0),
                       "failcnt": g(&ev, "max")}),
            );
        }
    }
    data.insert("hugetlb".into(), Value::Object(h));
    Value::Object(data)
}

/// The container's stats, as the `data` of a runc `stats` event.
pub fn collect(paths: &[PathBuf]) -> Value {
    let v = match super::backend(paths) {
        Some(Backend::V1(b)) => v1(&b),
        Some(Backend::V2(b)) => v2(&b.dir),
        None => json!({}),
    };
    omit_empty(v)
}
