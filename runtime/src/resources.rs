//! The commands that act on a container's cgroup: pause, resume, update, ps, events.

use crate::cgroups;
use crate::state::{self, Status};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// `runrs pause`: freeze every process of a running (or created) container.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let c = state::load(root, id)?;
    let _lock = state::lock(&c.dir)?;
    match c.status() {
        Status::Running | Status::Created => c.cgroup().freeze(true),
        _ => bail!("container not running"),
    }
}

/// `runrs resume`: thaw a paused container.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let c = state::load(root, id)?;
    let _lock = state::lock(&c.dir)?;
    if c.status() != Status::Paused {
        bail!("container not paused");
    }
    c.cgroup().freeze(false)
}

/// What `runrs update` changes (each `None` is left as it is), and the container's id.
#[derive(Debug, Default)]
pub struct UpdateOptions {
    /// A file with a LinuxResources JSON object (`-`: standard input), instead of the rest.
    pub resources: Option<String>,
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_burst: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpu_share: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub pids_limit: Option<i64>,
    pub l3_cache_schema: Option<String>,
    pub mem_bw_schema: Option<String>,
    pub id: Vec<String>,
}

/// Docker's RAMInBytes: `1024`, `512k`, `128m`, `1g`, `1.5GB` (binary units); `-1` is unlimited.
pub fn ram_in_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size: '{s}'"))?;
    let mult: f64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => bail!("invalid size: '{s}'"),
    };
    Ok((n * mult) as i64)
}

/// The options as a LinuxResources JSON object with only what was given.
fn options_json(f: &UpdateOptions) -> Result<Value> {
    let mut r = json!({});
    let size = |name: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| ram_in_bytes(s).with_context(|| format!("invalid value for {name}")))
            .transpose()
    };
    let mut mem = serde_json::Map::new();
    for (k, name, v) in [
        ("limit", "memory", &f.memory),
        ("reservation", "memory-reservation", &f.memory_reservation),
        ("swap", "memory-swap", &f.memory_swap),
        ("kernel", "kernel-memory", &f.kernel_memory),
        ("kernelTCP", "kernel-memory-tcp", &f.kernel_memory_tcp),
    ] {
        if let Some(n) = size(name, v)? {
            mem.insert(k.into(), n.into());
        }
    }
    if !mem.is_empty() {
        r["memory"] = Value::Object(mem);
    }
    let mut cpu = serde_json::Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            cpu.insert(k.into(), v);
        }
    };
    put("shares", f.cpu_share.map(Value::from));
    put("quota", f.cpu_quota.map(Value::from));
    put("period", f.cpu_period.map(Value::from));
    put("burst", f.cpu_burst.map(Value::from));
    put("realtimePeriod", f.cpu_rt_period.map(Value::from));
    put("realtimeRuntime", f.cpu_rt_runtime.map(Value::from));
    put("cpus", f.cpuset_cpus.clone().map(Value::from));
    put("mems", f.cpuset_mems.clone().map(Value::from));
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(w) = f.blkio_weight {
        r["blockIO"] = json!({ "weight": w });
    }
    if let Some(p) = f.pids_limit {
        r["pids"] = json!({ "limit": p });
    }
    Ok(r)
}

/// `--l3-cache-schema` and `--mem-bw-schema` need resctrl with CAT and MBA (runc's words).
fn check_rdt_flags(f: &UpdateOptions) -> Result<Option<crate::intelrdt::Resctrl>> {
    if f.l3_cache_schema.is_none() && f.mem_bw_schema.is_none() {
        return Ok(None);
    }
    let r = crate::intelrdt::Resctrl::find();
    if f.l3_cache_schema.is_some() && !r.as_ref().is_some_and(|r| r.cat()) {
        bail!("Intel RDT/CAT: l3 cache schema is not enabled");
    }
    if f.mem_bw_schema.is_some() && !r.as_ref().is_some_and(|r| r.mba()) {
        bail!("Intel RDT/MBA: memory bandwidth schema is not enabled");
    }
    Ok(r)
}

/// The new schemas into the config and the container's group; a container made without
/// `linux.intelRdt` gets a group of its own with its init in it, as runc does.
fn update_rdt(
    resctrl: &crate::intelrdt::Resctrl,
    c: &mut state::Container,
    config: &mut Value,
    f: &UpdateOptions,
) -> Result<()> {
    let rdt = &mut config["linux"]["intelRdt"];
    if !rdt.is_object() {
        *rdt = json!({});
    }
    if let Some(s) = &f.l3_cache_schema {
        rdt["l3CacheSchema"] = json!(s);
    }
    if let Some(s) = &f.mem_bw_schema {
        rdt["memBwSchema"] = json!(s);
    }
    let parsed: oci_spec::runtime::LinuxIntelRdt =
        serde_json::from_value(rdt.clone()).context("linux.intelRdt in state.json")?;
    let lines = crate::intelrdt::schemata(&parsed);
    match &c.saved.intel_rdt {
        Some(g) => resctrl.set(g, &lines),
        None => {
            let g = resctrl.group(&c.saved.id, &parsed);
            resctrl.apply(&g, &parsed, c.saved.pid)?;
            c.saved.intel_rdt = Some(g);
            Ok(())
        }
    }
}

/// Merge `patch` into `base`: objects key by key, anything else replaced.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// runc's rule: an update to unlimited memory (`-1`) that does not name a swap limit lifts
/// that too. Merged with a swap limit kept from before, the memory limit alone could not be
/// lifted: the kernel wants memory+swap ≥ memory (EINVAL).
fn unlimited_memory_means_unlimited_swap(mut patch: Value) -> Value {
    if let Some(Value::Object(memory)) = patch.get_mut("memory") {
        let no_swap = memory
            .get("swap")
            .is_none_or(|s| s.is_null() || *s == json!(0));
        if memory.get("limit") == Some(&json!(-1)) && no_swap {
            memory.insert("swap".into(), json!(-1));
        }
    }
    patch
}

/// `runrs update`: change a container's resources, and keep them in its state.
pub fn update(root: &Path, f: &UpdateOptions) -> Result<()> {
    if f.id.len() != 1 {
        bail!(
            "{}: \"update\" requires exactly 1 argument(s)",
            crate::argv0()
        );
    }
    let patch = match f.resources.as_deref() {
        Some(src) => {
            let mut text = String::new();
            if src == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(src)
                    .map_err(|e| anyhow::anyhow!("open {src}: {}", crate::process::io_msg(&e)))?;
            }
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("{src}: not a LinuxResources JSON object"))?;
            // Validate the shape before touching anything.
            serde_json::from_value::<oci_spec::runtime::LinuxResources>(v.clone())
                .with_context(|| format!("{src}: not a LinuxResources JSON object"))?;
            v
        }
        None => options_json(f)?,
    };
    let patch = unlimited_memory_means_unlimited_swap(patch);
    let mut c = state::load(root, &f.id[0])?;
    let _lock = state::lock(&c.dir)?;
    // After the container is found, as runc checks them.
    let resctrl = check_rdt_flags(f)?;
    if c.status() == Status::Stopped {
        bail!("container not running");
    }
    let mut config: Value =
        serde_json::from_str(c.saved.config.get()).context("config in state.json is corrupt")?;
    if !config["linux"].is_object() {
        config["linux"] = json!({});
    }
    let resources = &mut config["linux"]["resources"];
    if resources.is_null() {
        *resources = json!({});
    }
    merge(resources, patch);
    let merged: oci_spec::runtime::LinuxResources =
        serde_json::from_value(resources.clone()).context("the updated resources are not valid")?;
    c.cgroup().update(&merged)?;
    if let Some(r) = &resctrl {
        update_rdt(r, &mut c, &mut config, f)?;
    }
    c.saved.config = serde_json::value::to_raw_value(&config)?;
    state::save(&c.dir, &c.saved)
}

/// `runrs ps`: the container's pids as JSON, or `ps` output (default `-ef`) kept to them.
pub fn ps(root: &Path, id: &str, format: &str, ps_args: &[String]) -> Result<String> {
    let c = state::load(root, id)?;
    let pids = c.cgroup().pids();
    match format {
        "json" => Ok(format!("{}\n", serde_json::to_string(&pids)?)),
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("run ps")?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(filter_ps(&String::from_utf8_lossy(&out.stdout), &pids)?)
        }
        _ => bail!("invalid format option"),
    }
}

/// Keep `ps`'s header and the lines whose PID column is one of `pids`.
pub fn filter_ps(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("couldn't find PID field in ps output")?;
    let mut out = format!("{header}\n");
    for l in lines {
        let pid = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Go's time.ParseDuration for what people write: `5s`, `200ms`, `1m30s`, `1.5s`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .with_context(|| format!("time: missing unit in duration {s:?}"))?;
        let n: f64 = rest[..n_end]
            .parse()
            .map_err(|_| anyhow::anyhow!("time: invalid duration {s:?}"))?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => bail!("time: unknown unit {u:?} in duration {s:?}"),
        };
        total += n * secs;
        rest = &rest[u_end..];
    }
    // Go's durations are i64 nanoseconds: a longer one is invalid there (and too long for
    // Duration here).
    Duration::try_from_secs_f64(total)
        .ok()
        .filter(|d| d.as_nanos() <= i64::MAX as u128)
        .with_context(|| format!("time: invalid duration {s:?}"))
}

/// runc's stats always carry `intel_rdt`: the group's, or empty.
fn with_rdt_stats(mut data: Value, g: Option<&crate::intelrdt::Group>) -> Value {
    let rdt = g.map_or_else(|| json!({}), |g| g.resctrl().stats(g));
    if let Value::Object(m) = &mut data {
        m.insert("intel_rdt".into(), rdt);
    }
    data
}

/// `runrs events`: one stats event (`--stats`), or stats every `interval` plus OOM
/// events until the container stops.
pub fn events(root: &Path, id: &str, stats_once: bool, interval: &str) -> Result<()> {
    let interval = parse_duration(interval)?;
    if interval.is_zero() {
        bail!("duration interval must be greater than 0");
    }
    let c = state::load(root, id)?;
    if c.status() == Status::Stopped {
        bail!("container with id {id} is not running");
    }
    let paths = c.saved.cgroup_paths.clone();
    let rdt = c.saved.intel_rdt.clone();
    let mut out = std::io::stdout().lock();
    let mut emit = |v: Event| -> Result<()> {
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
        out.flush()?;
        Ok(())
    };
    let stats = |id: &str| Event {
        kind: "stats",
        id: id.to_string(),
        data: Some(with_rdt_stats(
            cgroups::stats::collect(&paths),
            rdt.as_ref(),
        )),
    };
    if stats_once {
        return emit(stats(id));
    }
    let mut oom = cgroups::events::OomWatch::new(&paths);
    loop {
        match state::load(root, id) {
            Ok(c) if c.status() != Status::Stopped => {}
            _ => return Ok(()),
        }
        emit(stats(id))?;
        let deadline = std::time::Instant::now() + interval;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            // Short waits so that a stopped container ends the stream promptly.
            if oom.wait(left.min(Duration::from_millis(500))) > 0 {
                emit(Event {
                    kind: "oom",
                    id: id.to_string(),
                    data: None,
                })?;
            }
            if !state::load(root, id).is_ok_and(|c| c.status() != Status::Stopped) {
                return Ok(());
            }
        }
    }
}

/// One line of `events`, its keys in runc's order (`type`, `id`, `data`).
#[derive(serde::Serialize)]
struct Event {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(ram_in_bytes("128m").unwrap(), 128 << 20);
        assert_eq!(ram_in_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("512kb").unwrap(), 512 << 10);
        assert_eq!(ram_in_bytes("4096").unwrap(), 4096);
        assert_eq!(ram_in_bytes("-1").unwrap(), -1);
        assert!(ram_in_bytes("lots").is_err());
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5").is_err());
        // Found by fuzz/ (cli): a duration beyond Go's 292 years panicked in Duration.
        let nines = format!("{}s", "9".repeat(400));
        for huge in ["5555555555555555550s", "300000000000h", &nines] {
            let e = parse_duration(huge).unwrap_err().to_string();
            assert!(e.starts_with("time: invalid duration"), "{e}");
        }
    }

    #[test]
    fn ps_output_is_filtered_by_pid_column() {
        let text = "UID   PID  PPID  C STIME TTY  TIME     CMD\nroot    1     0  0 10:00 ?    00:00:01 init\nroot   42     1  0 10:00 ?    00:00:00 sleep 300\n";
        let out = filter_ps(text, &[42]).unwrap();
        assert_eq!(out.lines().count(), 2);
        assert!(out.contains("sleep 300"));
        assert!(filter_ps("USER CMD\n", &[1]).is_err());
    }

    #[test]
    fn flags_become_resources() {
        let f = UpdateOptions {
            memory: Some("64m".into()),
            cpu_share: Some(256),
            pids_limit: Some(10),
            ..Default::default()
        };
        let v = options_json(&f).unwrap();
        assert_eq!(v["memory"]["limit"], 64 << 20);
        assert_eq!(v["cpu"]["shares"], 256);
        assert_eq!(v["pids"]["limit"], 10);
        let mut base = json!({"memory": {"limit": 1, "swap": 2}, "devices": []});
        merge(&mut base, v);
        assert_eq!(base["memory"]["swap"], 2);
        assert_eq!(base["memory"]["limit"], 64 << 20);
    }
}
