//! Unit properties: `linux.resources` as runc's systemd driver expresses them on cgroup v2,
//! and `org.systemd.property.<Key>` annotations. What has no property is written to the
//! delegated cgroup's files afterwards by the v2 backend.

use crate::cgroups::devices::{self, Effective};
use crate::cgroups::v2::{shares_to_weight, swap_to_v2};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};
use std::collections::BTreeMap;
use zbus::zvariant::Value;

pub type Property = (String, Value<'static>);

fn prop(name: &str, v: impl Into<Value<'static>>) -> Property {
    (name.to_string(), v.into())
}

/// -1 (or anything negative) is systemd's "infinity".
fn limit(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The resource properties runc's systemd driver sets: its v2 set on a pure cgroup v2
/// host (`v1 == false`), its legacy set on a v1 or hybrid one (`MemoryLimit`, `CPUShares`,
/// `BlockIOWeight`; no swap, low or cpuset properties there: those are files only).
pub fn from_resources(r: &LinuxResources, v1: bool) -> Result<Vec<Property>> {
    let mut p = Vec::new();
    if let Some(m) = r.memory() {
        memory(&mut p, m, v1)?;
    }
    if let Some(c) = r.cpu() {
        cpu(&mut p, c, v1)?;
    }
    if let Some(pids) = r.pids() {
        if pids.limit() > 0 || pids.limit() == -1 {
            p.push(prop("TasksMax", limit(pids.limit())));
        }
    }
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|_| v1)
    {
        p.push(prop("BlockIOWeight", u64::from(w)));
    }
    for (k, v) in r.unified().iter().flatten().filter(|_| !v1) {
        if let Some(name) = unified_property(k) {
            let n = if v.trim() == "max" {
                u64::MAX
            } else {
                v.trim()
                    .parse()
                    .with_context(|| format!("linux.resources.unified[{k:?}] = {v:?}"))?
            };
            p.push(prop(name, n));
        }
    }
    let rules = devices::with_defaults(r.devices().as_deref().unwrap_or(&[]));
    p.extend(device_properties(&devices::reduce(&rules)));
    Ok(p)
}

fn memory(p: &mut Vec<Property>, m: &LinuxMemory, v1: bool) -> Result<()> {
    let mem = m.limit().unwrap_or(0);
    if mem != 0 {
        p.push(prop(
            if v1 { "MemoryLimit" } else { "MemoryMax" },
            limit(mem),
        ));
    }
    if v1 {
        return Ok(());
    }
    if let Some(low) = m.reservation().filter(|v| *v != 0) {
        p.push(prop("MemoryLow", limit(low)));
    }
    if let Some(swap) = swap_to_v2(m.swap().unwrap_or(0), mem)? {
        p.push(prop("MemorySwapMax", limit(swap)));
    }
    Ok(())
}

fn cpu(p: &mut Vec<Property>, c: &LinuxCpu, v1: bool) -> Result<()> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        if v1 {
            p.push(prop("CPUShares", s));
        } else {
            p.push(prop("CPUWeight", shares_to_weight(s)));
        }
    }
    cpu_quota(p, c.quota().unwrap_or(0), c.period().unwrap_or(0));
    if v1 {
        return Ok(());
    }
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        p.push(prop("AllowedCPUs", bitmask(cpus).context("cpu.cpus")?));
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        p.push(prop(
            "AllowedMemoryNodes",
            bitmask(mems).context("cpu.mems")?,
        ));
    }
    Ok(())
}

/// The unified keys systemd has a property for (the file is written too).
fn unified_property(key: &str) -> Option<&'static str> {
    Some(match key {
        "memory.high" => "MemoryHigh",
        "memory.min" => "MemoryMin",
        "memory.low" => "MemoryLow",
        "memory.max" => "MemoryMax",
        "memory.swap.max" => "MemorySwapMax",
        "pids.max" => "TasksMax",
        _ => return None,
    })
}

/// runc's CPUQuotaPerSecUSec: quota per second of the period, rounded up to 10 ms (what
/// systemd can represent); a period alone sets CPUQuotaPeriodUSec.
fn cpu_quota(p: &mut Vec<Property>, quota: i64, period: u64) {
    if period != 0 {
        p.push(prop("CPUQuotaPeriodUSec", period));
    }
    if quota == 0 && period == 0 {
        return;
    }
    let mut per_sec = u64::MAX;
    if quota > 0 {
        let period = if period == 0 { 100_000 } else { period };
        per_sec = (quota as u64).saturating_mul(1_000_000) / period;
        if per_sec % 10_000 != 0 {
            per_sec = (per_sec / 10_000 + 1).saturating_mul(10_000);
        }
    }
    p.push(prop("CPUQuotaPerSecUSec", per_sec));
}

/// `0-2,7` as systemd's byte array: bit n of byte n/8 for each cpu or node n.
fn bitmask(list: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.trim().parse()?, b.trim().parse()?);
        if a > b || b > 8191 {
            bail!("invalid range {part:?} in {list:?}");
        }
        for n in a..=b {
            if bytes.len() <= n / 8 {
                bytes.resize(n / 8 + 1, 0);
            }
            bytes[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(bytes)
}

/// DevicePolicy=strict and the allowed devices, when the rules are "deny all but these";
/// systemd cannot express denials, so for "allow all but these" it is left to our BPF filter.
/// A whole major is `char-136` (systemd 240+), as runc 1.3 writes it; runc 1.1 looked the
/// major's driver name up in /proc/devices (`char-pts`).
fn device_properties(e: &Effective) -> Vec<Property> {
    if e.default_allow {
        return Vec::new();
    }
    let mut allow: Vec<(String, String)> = Vec::new();
    for r in &e.exceptions {
        let access: String = [
            (devices::READ, 'r'),
            (devices::WRITE, 'w'),
            (devices::MKNOD, 'm'),
        ]
        .iter()
        .filter(|(bit, _)| r.access & bit != 0)
        .map(|(_, c)| *c)
        .collect();
        let class = if r.kind == 'b' { "block" } else { "char" };
        match (r.major, r.minor) {
            (Some(ma), Some(mi)) => allow.push((format!("/dev/{class}/{ma}:{mi}"), access)),
            (Some(ma), None) => allow.push((format!("{class}-{ma}"), access)),
            (None, _) => allow.push((format!("{class}-*"), access)),
        }
    }
    vec![prop("DevicePolicy", "strict"), prop("DeviceAllow", allow)]
}

/// `org.systemd.property.<Key>` annotations, as runc takes them: a key that ends in a
/// lowercase letter and `Sec` is given in seconds and set as `<Key minus Sec>USec`; other values are `true`/`false`,
/// numbers (optionally typed: `uint32 5`), or strings (optionally quoted).
pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Result<Vec<Property>> {
    let mut p = Vec::new();
    for (k, v) in annotations {
        let Some(key) = k.strip_prefix("org.systemd.property.") else {
            continue;
        };
        let bad = |why: &str| anyhow::anyhow!("annotation {k}={v:?}: {why}");
        let valid = key.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && key.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(bad("not a systemd property name"));
        }
        // `TimeoutStopSec`, not `CPUQuotaPeriodUSec` (a lowercase letter before Sec, as runc).
        let sec_stem = key
            .strip_suffix("Sec")
            .filter(|s| s.ends_with(|c: char| c.is_ascii_lowercase()));
        if let Some(stem) = sec_stem {
            let secs: f64 = v
                .trim()
                .parse()
                .map_err(|_| bad("a *Sec property takes a number of seconds"))?;
            if !(0.0..=1.8e13).contains(&secs) {
                return Err(bad("out of range"));
            }
            p.push(prop(&format!("{stem}USec"), (secs * 1e6).round() as u64));
            continue;
        }
        p.push((key.to_string(), parse_value(v).map_err(|e| bad(&e))?));
    }
    Ok(p)
}

fn parse_value(v: &str) -> std::result::Result<Value<'static>, String> {
    let v = v.trim();
    let num = |s: &str| s.trim().parse::<u64>().map_err(|e| e.to_string());
    Ok(match v.split_once(' ') {
        Some(("uint64", n)) => Value::from(num(n)?),
        Some(("uint32", n)) => Value::from(u32::try_from(num(n)?).map_err(|e| e.to_string())?),
        Some(("int64", n)) => Value::from(n.trim().parse::<i64>().map_err(|e| e.to_string())?),
        Some(("int32", n)) => Value::from(n.trim().parse::<i32>().map_err(|e| e.to_string())?),
        Some(("double", n)) => Value::from(n.trim().parse::<f64>().map_err(|e| e.to_string())?),
        _ => match v {
            "true" => Value::from(true),
            "false" => Value::from(false),
            // GVariant's text form, as runc parses it: an untyped integer is an int32
            // (podman's `KillSignal=15`; systemd refuses a uint64 there), `1.5` a double.
            _ if v.parse::<i128>().is_ok() => Value::from(v.parse::<i32>().map_err(|_| {
                "an untyped number is an int32: give the type of a larger one (uint64 N)"
                    .to_string()
            })?),
            _ if v.parse::<f64>().is_ok() && v.contains('.') => {
                Value::from(v.parse::<f64>().unwrap_or(0.0))
            }
            _ => {
                let unquoted = v
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| v.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                    .unwrap_or(v);
                if unquoted.is_empty() {
                    return Err("an empty value".into());
                }
                Value::from(unquoted.to_string())
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(p: &'a [Property], name: &str) -> Option<&'a Value<'static>> {
        p.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    #[test]
    fn resources_become_runcs_properties() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory": {"limit": 67108864, "reservation": 33554432, "swap": 100663296},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-2,9"},
                "pids": {"limit": 42},
                "unified": {"memory.high": "max"}}"#,
        )
        .unwrap();
        let p = from_resources(&r, false).unwrap();
        assert_eq!(find(&p, "MemoryMax"), Some(&Value::from(67108864u64)));
        assert_eq!(find(&p, "MemoryLow"), Some(&Value::from(33554432u64)));
        assert_eq!(find(&p, "MemorySwapMax"), Some(&Value::from(33554432u64)));
        // shares 512: runc 1.3's quadratic conversion (runc 1.1's linear one gave 20).
        assert_eq!(find(&p, "CPUWeight"), Some(&Value::from(59u64)));
        assert_eq!(
            find(&p, "CPUQuotaPerSecUSec"),
            Some(&Value::from(500000u64))
        );
        assert_eq!(
            find(&p, "CPUQuotaPeriodUSec"),
            Some(&Value::from(100000u64))
        );
        assert_eq!(
            find(&p, "AllowedCPUs"),
            Some(&Value::from(vec![0b111u8, 0b10]))
        );
        assert_eq!(find(&p, "TasksMax"), Some(&Value::from(42u64)));
        assert_eq!(find(&p, "MemoryHigh"), Some(&Value::from(u64::MAX)));
        // runc's default rules, from deny-all: a strict policy with the defaults allowed.
        assert_eq!(find(&p, "DevicePolicy"), Some(&Value::from("strict")));
        let allow = format!("{:?}", find(&p, "DeviceAllow").unwrap());
        for dev in [
            "/dev/char/1:3",
            "char-*",
            "block-*",
            "/dev/char/10:200",
            "char-136",
        ] {
            assert!(allow.contains(dev), "{dev} not in {allow}");
        }
    }

    #[test]
    fn extreme_cpu_values_do_not_overflow() {
        // Found by fuzz/ (config): shares of u64::MAX overflowed the weight's arithmetic.
        let r: LinuxResources = serde_json::from_str(
            r#"{"cpu": {"shares": 18446744073709551615, "quota": 9223372036854775807, "period": 1}}"#,
        )
        .unwrap();
        let p = from_resources(&r, false).unwrap();
        // runc 1.3 clamps shares above the kernel's 262144 to the top weight.
        assert_eq!(find(&p, "CPUWeight"), Some(&Value::from(10_000u64)));
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::from(u64::MAX)));
    }

    #[test]
    fn quota_rounds_up_to_ten_milliseconds() {
        let mut p = Vec::new();
        cpu_quota(&mut p, 12345, 100000);
        assert_eq!(
            find(&p, "CPUQuotaPerSecUSec"),
            Some(&Value::from(130000u64))
        );
        let mut p = Vec::new();
        cpu_quota(&mut p, -1, 0);
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::from(u64::MAX)));
    }

    #[test]
    fn annotations_like_runc() {
        let a: BTreeMap<String, String> = [
            ("org.systemd.property.TimeoutStopSec", "2"),
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.CPUQuotaPeriodUSec", "uint64 50000"),
            ("org.systemd.property.KillSignal", "15"),
            ("other", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = from_annotations(&a).unwrap();
        assert_eq!(
            find(&p, "TimeoutStopUSec"),
            Some(&Value::from(2_000_000u64))
        );
        assert_eq!(
            find(&p, "CollectMode"),
            Some(&Value::from("inactive-or-failed".to_string()))
        );
        // Podman 5 sets it: systemd takes KillSignal as an int32 only.
        assert_eq!(find(&p, "KillSignal"), Some(&Value::from(15i32)));
        assert_eq!(p.len(), 4);
        for (k, v) in [
            ("org.systemd.property.lower", "1"),
            ("org.systemd.property.TimeoutStopSec", "soon"),
            ("org.systemd.property.LimitNOFILE", "4294967296"),
        ] {
            let bad: BTreeMap<String, String> = [(k.to_string(), v.to_string())].into();
            let e = from_annotations(&bad).unwrap_err().to_string();
            assert!(e.contains(k), "{e}");
        }
    }
}
