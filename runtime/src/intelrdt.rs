//! Intel RDT (`linux.intelRdt`): cache allocation (CAT), memory bandwidth allocation (MBA)
//! and monitoring through the resctrl filesystem, with runc's semantics.
//!
//! A container gets the resctrl group named by `closID`, or one named after the container
//! when it has none. A group named by `closID` is shared and may exist already: it is made
//! only when the config gives a schema, and never removed by runrs (other containers may be
//! in it); the container's own group is removed at delete. `enableMonitoring` adds a
//! monitoring group `mon_groups/<id>` in it, removed at delete. The init enters the group
//! (or its monitoring group) from the runtime; exec'd processes enter it themselves, as they
//! enter the cgroups (their children inherit it).

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxIntelRdt;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// resctrl's filesystem magic (`RDTGROUP_SUPER_MAGIC`).
const RDTGROUP_SUPER_MAGIC: i64 = 0x7655821;
const DEFAULT_ROOT: &str = "/sys/fs/resctrl";

/// A mounted resctrl filesystem.
pub struct Resctrl {
    root: PathBuf,
}

/// The resctrl group of one container, as its state keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    /// The control group (`<root>/<closID or id>`).
    pub path: PathBuf,
    /// `<path>/mon_groups/<id>` with `enableMonitoring`.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "mon_path")]
    pub mon: Option<PathBuf>,
    /// Named after the container (no `closID`): removed at delete.
    #[serde(default)]
    pub own: bool,
}

impl Group {
    /// The resctrl filesystem the group is in: its control group sits at the top of it
    /// (a `closID` has no `/`), so it is not looked for again.
    pub fn resctrl(&self) -> Resctrl {
        Resctrl::at(self.path.parent().unwrap_or(Path::new(DEFAULT_ROOT)))
    }
}

impl Resctrl {
    /// `/sys/fs/resctrl` when resctrl is mounted there, else the first resctrl mount.
    pub fn find() -> Option<Resctrl> {
        if let Ok(st) = nix::sys::statfs::statfs(DEFAULT_ROOT) {
            if st.filesystem_type() == nix::sys::statfs::FsType(RDTGROUP_SUPER_MAGIC as _) {
                return Some(Resctrl::at(DEFAULT_ROOT));
            }
        }
        let mounts = crate::mountinfo::read_mountinfo().ok()?;
        let m = mounts.into_iter().find(|m| m.fs_type == "resctrl")?;
        Some(Resctrl::at(m.mount_point))
    }

    /// The resctrl filesystem mounted at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Resctrl {
        Resctrl { root: root.into() }
    }

    /// Cache allocation: `info/L3` exists.
    pub fn cat(&self) -> bool {
        self.root.join("info/L3").is_dir()
    }

    /// Memory bandwidth allocation: `info/MB` exists.
    pub fn mba(&self) -> bool {
        self.root.join("info/MB").is_dir()
    }

    /// The group of container `id` for `rdt`.
    pub fn group(&self, id: &str, rdt: &LinuxIntelRdt) -> Group {
        let clos = rdt.clos_id().as_deref().filter(|c| !c.is_empty());
        let path = self.root.join(clos.unwrap_or(id));
        let mon =
            (rdt.enable_monitoring() == &Some(true)).then(|| path.join("mon_groups").join(id));
        Group {
            path,
            mon,
            own: clos.is_none(),
        }
    }

    /// Put `pid` in the group, making it (and its monitoring group) where needed, and write
    /// the schemata the config gives; a control group made here goes again if that fails.
    pub fn apply(&self, g: &Group, rdt: &LinuxIntelRdt, pid: i32) -> Result<()> {
        let lines = schemata(rdt);
        if !g.own && lines.is_empty() && !g.path.is_dir() {
            bail!(
                "clos dir not accessible (must be pre-created when schemata, l3CacheSchema \
                 and memBwSchema are empty): stat {}: no such file or directory",
                g.path.display()
            );
        }
        let made = self.make_dir(&g.path)?;
        let done = self.enter_and_set(g, &lines, pid);
        if done.is_err() && made {
            let _ = std::fs::remove_dir(&g.path);
        }
        done
    }

    fn enter_and_set(&self, g: &Group, lines: &str, pid: i32) -> Result<()> {
        self.write(&g.path.join("tasks"), &pid.to_string())
            .map_err(|e| anyhow::anyhow!("intelrdt: unable to add pid {pid}: {e}"))?;
        if let Some(mon) = &g.mon {
            self.make_dir(mon)?;
            self.write(&mon.join("tasks"), &pid.to_string())
                .map_err(|e| anyhow::anyhow!("intelrdt: unable to add pid {pid}: {e}"))?;
        }
        self.set(g, lines)
    }

    /// Write `lines` (a schemata file's text) to the group's `schemata`, if any.
    pub fn set(&self, g: &Group, lines: &str) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        self.write(&g.path.join("schemata"), lines)
            .map_err(|e| anyhow::anyhow!("intelrdt: unable to write {lines:?}: {e}"))
    }

    /// `mkdir`; Ok(false) where it exists.
    fn make_dir(&self, dir: &Path) -> Result<bool> {
        match std::fs::create_dir(dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(anyhow::anyhow!(
                "mkdir {}: {}{}",
                dir.display(),
                crate::process::io_msg(&e),
                self.last_cmd_status()
            )),
        }
    }

    /// Write a resctrl file; the error carries `info/last_cmd_status`, where resctrl says
    /// why it refused (a bad schema, no free CLOSID).
    fn write(&self, file: &Path, value: &str) -> Result<()> {
        use std::io::Write;
        let r = std::fs::OpenOptions::new()
            .write(true)
            .open(file)
            .and_then(|mut f| f.write_all(value.as_bytes()));
        r.map_err(|e| {
            anyhow::anyhow!(
                "write {}: {}{}",
                file.display(),
                crate::process::io_msg(&e),
                self.last_cmd_status()
            )
        })
    }

    fn last_cmd_status(&self) -> String {
        match std::fs::read_to_string(self.root.join("info/last_cmd_status")) {
            Ok(s) if !s.trim().is_empty() => format!(", last_cmd_status: {}", s.trim()),
            _ => String::new(),
        }
    }

    /// `events`' `intel_rdt` object, runc's fields: the schema lines of the root and of the
    /// group, the hardware's limits, and what the monitoring counters say.
    pub fn stats(&self, g: &Group) -> Value {
        let mut s = Map::new();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let (root, ours) = (
            read(&self.root.join("schemata")),
            read(&g.path.join("schemata")),
        );
        let line = |text: &str, kind: &str| {
            (text.lines().map(str::trim))
                .find(|l| l.starts_with(kind))
                .map(String::from)
        };
        let num = |dir: &Path, f: &str| -> Option<u64> { read(&dir.join(f)).trim().parse().ok() };
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                s.insert(k.into(), v);
            }
        };
        if self.cat() {
            let info = self.root.join("info/L3");
            put(
                "l3_cache_info",
                Some(nonzero(json!({
                    "cbm_mask": read(&info.join("cbm_mask")).trim(),
                    "min_cbm_bits": num(&info, "min_cbm_bits"),
                    "num_closids": num(&info, "num_closids"),
                }))),
            );
            put("l3_cache_schema_root", line(&root, "L3").map(Value::from));
            put("l3_cache_schema", line(&ours, "L3").map(Value::from));
        }
        if self.mba() {
            let info = self.root.join("info/MB");
            put(
                "mem_bw_info",
                Some(nonzero(json!({
                    "bandwidth_gran": num(&info, "bandwidth_gran"),
                    "delay_linear": num(&info, "delay_linear"),
                    "min_bandwidth": num(&info, "min_bandwidth"),
                    "num_closids": num(&info, "num_closids"),
                }))),
            );
            put("mem_bw_schema_root", line(&root, "MB").map(Value::from));
            put("mem_bw_schema", line(&ours, "MB").map(Value::from));
        }
        let (mbm, cmt) = self.monitoring(g.mon.as_deref().unwrap_or(&g.path));
        put("mbm_stats", mbm);
        put("cmt_stats", cmt);
        Value::Object(s)
    }

    /// Per L3 domain (`mon_data/mon_L3_NN`), in order: memory bandwidth (MBM) and cache
    /// occupancy (CMT) counters, where the hardware has them (`info/L3_MON/mon_features`).
    fn monitoring(&self, group: &Path) -> (Option<Value>, Option<Value>) {
        let features =
            std::fs::read_to_string(self.root.join("info/L3_MON/mon_features")).unwrap_or_default();
        let has = |f: &str| features.lines().any(|l| l.trim() == f);
        let mbm = has("mbm_total_bytes") || has("mbm_local_bytes");
        let cmt = has("llc_occupancy");
        if !mbm && !cmt {
            return (None, None);
        }
        let mut domains: Vec<PathBuf> = std::fs::read_dir(group.join("mon_data"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("mon_L3_"))
            })
            .collect();
        domains.sort();
        let num = |d: &Path, f: &str| -> u64 {
            std::fs::read_to_string(d.join(f))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        let mbm = mbm.then(|| {
            (domains.iter())
                .map(|d| {
                    json!({"mbm_total_bytes": num(d, "mbm_total_bytes"),
                           "mbm_local_bytes": num(d, "mbm_local_bytes")})
                })
                .collect()
        });
        let cmt = cmt.then(|| {
            (domains.iter())
                .map(|d| json!({"llc_occupancy": num(d, "llc_occupancy")}))
                .collect()
        });
        (mbm, cmt)
    }
}

/// The group the config asks for: none without `linux.intelRdt` (or without resctrl, which
/// the config's check refused).
pub fn group_for(id: &str, spec: &oci_spec::runtime::Spec) -> Option<Group> {
    let rdt = spec.linux().as_ref()?.intel_rdt().as_ref()?;
    Some(Resctrl::find()?.group(id, rdt))
}

/// Put `pid` in the container's group as its config asks: create's init, or restore's CRIU
/// (the tree it restores inherits the group).
pub fn enter(spec: &oci_spec::runtime::Spec, g: &Group, pid: i32) -> Result<()> {
    match spec.linux().as_ref().and_then(|l| l.intel_rdt().as_ref()) {
        Some(rdt) => g.resctrl().apply(g, rdt, pid),
        None => Ok(()),
    }
}

/// runc's `omitempty`: zero numbers and empty strings left out.
fn nonzero(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !matches!(v, Value::Null) && v != &json!(0) && v != &json!(""))
                .collect(),
        ),
        v => v,
    }
}

/// The schemata file's text the config asks for: `l3CacheSchema`, `memBwSchema`, then each
/// line of `schemata`, one per line (runc writes them in that order, later lines winning).
pub fn schemata(rdt: &LinuxIntelRdt) -> String {
    let mut out = String::new();
    let lines = [
        rdt.l3_cache_schema().as_deref(),
        rdt.mem_bw_schema().as_deref(),
    ]
    .into_iter()
    .flatten()
    .chain(rdt.schemata().iter().flatten().map(String::as_str));
    for l in lines.filter(|l| !l.is_empty()) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The config's `linux.intelRdt` checked against the host, before anything is made (runc's
/// words).
pub fn validate(rdt: &LinuxIntelRdt) -> Result<()> {
    validate_on(Resctrl::find().as_ref(), rdt)
}

fn validate_on(resctrl: Option<&Resctrl>, rdt: &LinuxIntelRdt) -> Result<()> {
    let Some(r) = resctrl else {
        bail!(
            "intelRdt is specified in config, but Intel RDT is not enabled \
             (no resctrl filesystem is mounted)"
        );
    };
    if let Some(clos) = rdt.clos_id().as_deref() {
        if clos == "." || clos == ".." || clos.contains('/') || clos.contains('\0') {
            bail!("invalid intelRdt.ClosID {clos:?}");
        }
    }
    let given = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    if given(rdt.l3_cache_schema()) && !r.cat() {
        bail!("intelRdt.l3CacheSchema is specified in config, but Intel RDT/CAT is not enabled");
    }
    if given(rdt.mem_bw_schema()) && !r.mba() {
        bail!("intelRdt.memBwSchema is specified in config, but Intel RDT/MBA is not enabled");
    }
    if rdt.enable_monitoring() == &Some(true) && !r.root.join("info/L3_MON").is_dir() {
        bail!("intelRdt.enableMonitoring is specified in config, but resctrl has no monitoring (info/L3_MON)");
    }
    Ok(())
}

/// Remove what the container's group left at delete: its monitoring group, and the control
/// group when it is the container's own. Already gone is fine.
pub fn remove(g: &Group) {
    for dir in g.mon.iter().chain(g.own.then_some(&g.path)) {
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => crate::logging::warn(&format!(
                "remove {}: {}",
                dir.display(),
                crate::process::io_msg(&e)
            )),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! resctrl needs Intel RDT (or AMD PQoS) hardware, which neither this VM nor qemu's
    //! emulation has: these run against a directory laid out as resctrl's, so they check
    //! runrs's side (names, order, words, clean-up), not the kernel's.
    use super::*;

    fn rdt(v: Value) -> LinuxIntelRdt {
        serde_json::from_value(v).unwrap()
    }

    fn fake(cat: bool, mba: bool, mon: bool) -> (tempdir::Dir, Resctrl) {
        let d = tempdir::Dir::new();
        let root = d.0.clone();
        std::fs::create_dir_all(root.join("info")).unwrap();
        std::fs::write(root.join("info/last_cmd_status"), "ok\n").unwrap();
        std::fs::write(root.join("schemata"), "L3:0=fff\nMB:0=100\n").unwrap();
        if cat {
            std::fs::create_dir_all(root.join("info/L3")).unwrap();
            std::fs::write(root.join("info/L3/cbm_mask"), "fff\n").unwrap();
            std::fs::write(root.join("info/L3/min_cbm_bits"), "1\n").unwrap();
            std::fs::write(root.join("info/L3/num_closids"), "16\n").unwrap();
        }
        if mba {
            std::fs::create_dir_all(root.join("info/MB")).unwrap();
            std::fs::write(root.join("info/MB/bandwidth_gran"), "10\n").unwrap();
            std::fs::write(root.join("info/MB/num_closids"), "8\n").unwrap();
        }
        if mon {
            std::fs::create_dir_all(root.join("info/L3_MON")).unwrap();
            std::fs::write(
                root.join("info/L3_MON/mon_features"),
                "llc_occupancy\nmbm_total_bytes\nmbm_local_bytes\n",
            )
            .unwrap();
        }
        (d, Resctrl::at(root))
    }

    /// A group directory as resctrl makes it: its files exist as soon as it does.
    fn populate(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for f in ["tasks", "schemata"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "runrs-resctrl-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn refused_without_resctrl_or_the_feature_asked_for() {
        let e = validate_on(None, &rdt(json!({"closID": "x"}))).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("intelRdt is specified in config, but Intel RDT is not enabled"));
        let (_d, r) = fake(false, true, false);
        let e = validate_on(Some(&r), &rdt(json!({"l3CacheSchema": "L3:0=f"}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "intelRdt.l3CacheSchema is specified in config, but Intel RDT/CAT is not enabled"
        );
        assert!(validate_on(Some(&r), &rdt(json!({"memBwSchema": "MB:0=50"}))).is_ok());
        let (_d, r) = fake(true, false, false);
        let e = validate_on(Some(&r), &rdt(json!({"memBwSchema": "MB:0=50"}))).unwrap_err();
        assert!(e.to_string().contains("Intel RDT/MBA is not enabled"));
        for bad in [".", "..", "a/b"] {
            let e = validate_on(Some(&r), &rdt(json!({"closID": bad}))).unwrap_err();
            assert_eq!(e.to_string(), format!("invalid intelRdt.ClosID {bad:?}"));
        }
        let e = validate_on(Some(&r), &rdt(json!({"enableMonitoring": true}))).unwrap_err();
        assert!(e.to_string().contains("enableMonitoring"));
    }

    #[test]
    fn schemata_lines_in_runcs_order() {
        let r = rdt(json!({"l3CacheSchema": "L3:0=f", "memBwSchema": "MB:0=20",
                           "schemata": ["L2:0=3", ""]}));
        assert_eq!(schemata(&r), "L3:0=f\nMB:0=20\nL2:0=3\n");
        assert_eq!(schemata(&rdt(json!({"closID": "x"}))), "");
    }

    #[test]
    fn own_group_made_entered_set_and_removed() {
        let (_d, r) = fake(true, true, true);
        let cfg = rdt(json!({"l3CacheSchema": "L3:0=f", "enableMonitoring": true}));
        let g = r.group("c1", &cfg);
        assert_eq!(g.path, r.root.join("c1"));
        assert_eq!(g.mon, Some(r.root.join("c1/mon_groups/c1")));
        assert!(g.own);
        // resctrl fills a new group; a plain directory does not: make it as resctrl would.
        populate(&g.path);
        populate(g.mon.as_ref().unwrap());
        r.apply(&g, &cfg, 4242).unwrap();
        assert_eq!(
            std::fs::read_to_string(g.path.join("tasks")).unwrap(),
            "4242"
        );
        let mon = g.mon.clone().unwrap();
        assert_eq!(std::fs::read_to_string(mon.join("tasks")).unwrap(), "4242");
        assert_eq!(
            std::fs::read_to_string(g.path.join("schemata")).unwrap(),
            "L3:0=f\n"
        );
        // resctrl removes a group with its files; a plain directory must be empty.
        let empty = |d: &Path| {
            for f in ["tasks", "schemata"] {
                std::fs::remove_file(d.join(f)).unwrap();
            }
        };
        empty(&mon);
        empty(&g.path);
        remove(&g);
        assert!(!mon.exists(), "the monitoring group is removed first");
        let plain = rdt(json!({"l3CacheSchema": "L3:0=f"}));
        let g = r.group("c9", &plain);
        populate(&g.path);
        r.apply(&g, &plain, 9).unwrap();
        empty(&g.path);
        remove(&g);
        assert!(!g.path.exists(), "the container's own group is removed");
    }

    #[test]
    fn shared_clos_must_exist_without_a_schema_and_is_kept() {
        let (_d, r) = fake(true, true, false);
        let cfg = rdt(json!({"closID": "gold"}));
        let g = r.group("c1", &cfg);
        assert_eq!(g.path, r.root.join("gold"));
        assert!(!g.own && g.mon.is_none());
        let e = r.apply(&g, &cfg, 1).unwrap_err().to_string();
        assert!(e.starts_with("clos dir not accessible"), "{e}");
        assert!(!g.path.exists(), "nothing made");
        populate(&g.path);
        r.apply(&g, &cfg, 7).unwrap();
        assert_eq!(
            std::fs::read_to_string(g.path.join("schemata")).unwrap(),
            ""
        );
        remove(&g);
        assert!(g.path.exists(), "a shared group stays");
    }

    #[test]
    fn a_failed_entry_removes_the_group_it_made_and_says_why() {
        let (_d, r) = fake(true, true, false);
        let cfg = rdt(json!({"memBwSchema": "MB:0=20"}));
        let g = r.group("c2", &cfg);
        // A plain mkdir makes no `tasks` (resctrl would): the write fails as on a group the
        // kernel took away.
        let e = r.apply(&g, &cfg, 5).unwrap_err().to_string();
        assert!(
            e.starts_with("intelrdt: unable to add pid 5: write "),
            "{e}"
        );
        assert!(e.ends_with(", last_cmd_status: ok"), "{e}");
        assert!(!g.path.exists());
    }

    #[test]
    fn stats_in_runcs_shape() {
        let (_d, r) = fake(true, true, true);
        let cfg = rdt(json!({"l3CacheSchema": "L3:0=f", "memBwSchema": "MB:0=20"}));
        let g = r.group("c3", &cfg);
        populate(&g.path);
        std::fs::write(g.path.join("schemata"), "    L3:0=00f\n    MB:0= 20\n").unwrap();
        for (n, occ) in [("mon_L3_01", 7), ("mon_L3_00", 5)] {
            let d = g.path.join("mon_data").join(n);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("llc_occupancy"), format!("{occ}\n")).unwrap();
            std::fs::write(d.join("mbm_total_bytes"), "100\n").unwrap();
            std::fs::write(d.join("mbm_local_bytes"), "40\n").unwrap();
        }
        let s = r.stats(&g);
        assert_eq!(
            s,
            json!({
                "l3_cache_info": {"cbm_mask": "fff", "min_cbm_bits": 1, "num_closids": 16},
                "l3_cache_schema_root": "L3:0=fff",
                "l3_cache_schema": "L3:0=00f",
                "mem_bw_info": {"bandwidth_gran": 10, "num_closids": 8},
                "mem_bw_schema_root": "MB:0=100",
                "mem_bw_schema": "MB:0= 20",
                "mbm_stats": [{"mbm_total_bytes": 100, "mbm_local_bytes": 40},
                              {"mbm_total_bytes": 100, "mbm_local_bytes": 40}],
                "cmt_stats": [{"llc_occupancy": 5}, {"llc_occupancy": 7}],
            })
        );
    }
}
