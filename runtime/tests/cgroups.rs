//! Cgroup backends: v1 against temporary directories laid out like cgroupfs (files written,
//! values translated), v2 stats parsing, and for real on this machine's cgroup2 mount:
//! membership, freeze, kill and the eBPF device program, in child cgroups created and
//! removed here. The v2 files themselves are tested against a real kernel in the guest
//! (integration/tests/resources_v2.rs, hack/test-guest).

use oci_spec::runtime::LinuxResources;
use runrs::cgroups::{self, devices};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("LinuxResources")
}

/// A stand-in cgroup directory holding `files` (empty), as the kernel would show them.
fn stand_in(files: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in files {
        fs::write(d.path().join(f), "").unwrap();
    }
    d
}

fn read(d: &Path, f: &str) -> String {
    fs::read_to_string(d.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"))
}

const V2_FILES: &[&str] = &[
    "cgroup.controllers",
    "cgroup.freeze",
    "cpu.weight",
    "cpu.max",
    "cpu.max.burst",
    "cpu.idle",
    "cpuset.cpus",
    "cpuset.mems",
    "memory.max",
    "memory.low",
    "memory.high",
    "memory.swap.max",
    "pids.max",
    "io.weight",
    "io.max",
    "hugetlb.2MB.max",
    "rdma.max",
];

#[test]
fn v2_backend_is_picked_and_freezes_and_reports_stats() {
    let d = stand_in(V2_FILES);
    let p = d.path();
    fs::write(p.join("cgroup.procs"), "7\n9\n").unwrap();
    fs::write(p.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 20\n").unwrap();
    fs::write(p.join("memory.current"), "4096\n").unwrap();
    fs::write(p.join("memory.max"), "max\n").unwrap();
    fs::write(p.join("memory.stat"), "anon 1024\nfile 2048\n").unwrap();
    fs::write(
        p.join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    )
    .unwrap();
    fs::write(p.join("pids.current"), "2\n").unwrap();
    fs::write(p.join("pids.max"), "10\n").unwrap();
    fs::write(
        p.join("io.stat"),
        "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
    )
    .unwrap();
    let paths = vec![p.to_path_buf()];
    assert!(matches!(
        cgroups::backend(&paths),
        Some(cgroups::Backend::V2(_))
    ));
    assert_eq!(cgroups::pids(&paths), vec![7, 9]);
    cgroups::freeze(&paths, true).unwrap();
    assert_eq!(read(p, "cgroup.freeze"), "1");
    assert!(cgroups::is_frozen(&paths));
    cgroups::freeze(&paths, false).unwrap();
    assert!(!cgroups::is_frozen(&paths));

    let s = cgroups::stats::collect(&paths);
    assert_eq!(s["cpu"]["usage"]["total"], 1_500_000, "{s}");
    assert_eq!(s["cpu"]["usage"]["kernel"], 500_000, "{s}");
    assert_eq!(s["cpu"]["throttling"]["throttled_time"], 20_000, "{s}");
    assert_eq!(s["memory"]["usage"]["usage"], 4096, "{s}");
    assert_eq!(s["memory"]["usage"]["limit"], u64::MAX, "{s}");
    assert_eq!(s["memory"]["usage"]["failcnt"], 3, "{s}");
    assert_eq!(s["memory"]["cache"], 2048, "{s}");
    assert_eq!(s["memory"]["raw"]["anon"], 1024, "{s}");
    assert_eq!(s["pids"]["current"], 2, "{s}");
    assert_eq!(s["pids"]["limit"], 10, "{s}");
    let bytes = &s["blkio"]["ioServiceBytesRecursive"];
    assert_eq!(bytes[1]["op"], "Write", "{s}");
    assert_eq!(bytes[1]["value"], 200, "{s}");
}

#[test]
fn v1_writes_each_controller_to_its_hierarchy() {
    let base = tempfile::tempdir().unwrap();
    let mk = |name: &str, files: &[&str]| {
        let d = base.path().join(name);
        fs::create_dir(&d).unwrap();
        for f in files {
            fs::write(d.join(f), "").unwrap();
        }
        d
    };
    let mem = mk(
        "memory",
        &[
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "memory.swappiness",
            "memory.oom_control",
            "memory.kmem.tcp.limit_in_bytes",
        ],
    );
    fs::write(mem.join("memory.limit_in_bytes"), "9223372036854771712").unwrap();
    let cpu = mk(
        "cpu,cpuacct",
        &[
            "cpu.shares",
            "cpu.cfs_quota_us",
            "cpu.cfs_period_us",
            "cpuacct.usage",
        ],
    );
    let pids = mk("pids", &["pids.max"]);
    let devs = mk(
        "devices",
        &["devices.allow", "devices.deny", "devices.list"],
    );
    let blk = mk("blkio", &["blkio.weight", "blkio.throttle.read_bps_device"]);
    let net = mk(
        "net_cls,net_prio",
        &["net_cls.classid", "net_prio.ifpriomap"],
    );
    let paths: Vec<PathBuf> = vec![
        mem.clone(),
        cpu.clone(),
        pids.clone(),
        devs.clone(),
        blk.clone(),
        net.clone(),
    ];
    let r = res(r#"{
        "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "r"}],
        "memory": {"limit": 1000000, "reservation": 500000, "swap": 2000000, "swappiness": 5,
                   "disableOOMKiller": true, "kernelTCP": 4096},
        "cpu": {"shares": 0, "quota": 20000, "period": 50000},
        "pids": {"limit": 5},
        "blockIO": {"weight": 200, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 100}]},
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 3}]}
    }"#);
    // create's way: the hierarchies (and so each controller's directory) are known.
    let names = [
        "memory",
        "cpu,cpuacct",
        "pids",
        "devices",
        "blkio",
        "net_cls,net_prio",
    ];
    let known = names.into_iter().zip(paths.iter().map(PathBuf::as_path));
    cgroups::v1::V1::known(known).apply(&r, true).unwrap();
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "1000000");
    assert_eq!(read(&mem, "memory.memsw.limit_in_bytes"), "2000000");
    assert_eq!(read(&mem, "memory.soft_limit_in_bytes"), "500000");
    assert_eq!(read(&mem, "memory.swappiness"), "5");
    assert_eq!(read(&mem, "memory.oom_control"), "1");
    assert_eq!(read(&mem, "memory.kmem.tcp.limit_in_bytes"), "4096");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "50000");
    assert_eq!(read(&pids, "pids.max"), "5");
    assert_eq!(read(&blk, "blkio.weight"), "200");
    assert_eq!(read(&blk, "blkio.throttle.read_bps_device"), "8:0 100");
    assert_eq!(read(&net, "net_cls.classid"), "1048577");
    assert_eq!(read(&net, "net_prio.ifpriomap"), "eth0 3");
    // Default deny first, then the exceptions, one per write: the config's, then runc's
    // default devices (the last is tun).
    assert_eq!(read(&devs, "devices.deny"), "a");
    let allowed = fs::read_to_string(devs.join("devices.allow")).unwrap();
    let allowed: Vec<&str> = allowed.lines().collect();
    assert_eq!(allowed.first(), Some(&"b 8:0 r"), "{allowed:?}");
    assert_eq!(allowed.last(), Some(&"c 10:200 rwm"), "{allowed:?}");
    assert!(allowed.contains(&"c 1:3 rwm") && allowed.contains(&"c 136:* rwm"));
    // update's way: each controller's directory found by its files.
    let e = cgroups::update(&paths, &res(r#"{"memory": {"swappiness": 101}}"#)).unwrap_err();
    assert!(format!("{e:#}").contains("0-100"), "{e:#}");
    cgroups::update(&paths, &res(r#"{"pids": {"limit": 7}}"#)).unwrap();
    assert_eq!(read(&pids, "pids.max"), "7");
    let e = cgroups::update(
        &paths,
        &res(r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}"#),
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("hugetlb"), "{e:#}");
}

/// A child cgroup of this machine's cgroup2 mount, removed on drop with the processes put
/// in it (killed by pid, then reaped).
struct RealCgroup {
    dir: PathBuf,
    children: Vec<Child>,
}

impl RealCgroup {
    fn new(name: &str) -> Option<RealCgroup> {
        let hs = cgroups::hierarchies().ok()?;
        let h = hs.iter().find(|h| h.unified)?;
        let dir = h.dir_for(&format!("/runrs-test-{name}-{}", std::process::id()));
        fs::create_dir(&dir).ok()?;
        Some(RealCgroup {
            dir,
            children: Vec::new(),
        })
    }

    fn spawn(&mut self, script: &str) -> i32 {
        let procs = self.dir.join("cgroup.procs");
        let child = Command::new("/bin/sh")
            .args(["-c", &format!("echo $$ > {} && {script}", procs.display())])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let pid = child.id() as i32;
        self.children.push(child);
        pid
    }

    fn output(&mut self) -> String {
        let child = self.children.pop().unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

impl Drop for RealCgroup {
    fn drop(&mut self) {
        let _ = fs::write(self.dir.join("cgroup.freeze"), "0");
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for _ in 0..100 {
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

#[test]
fn real_v2_procs_freeze_and_kill() {
    let Some(mut cg) = RealCgroup::new("freeze") else {
        eprintln!("no writable cgroup2 mount: skipped");
        return;
    };
    let pid = cg.spawn("exec sleep 100");
    let paths = vec![cg.dir.clone()];
    assert!(
        wait_for(|| cgroups::pids(&paths) == vec![pid]),
        "{:?}",
        cgroups::pids(&paths)
    );
    cgroups::freeze(&paths, true).unwrap();
    assert!(cgroups::is_frozen(&paths));
    assert!(read(&cg.dir, "cgroup.events").contains("frozen 1"));
    cgroups::freeze(&paths, false).unwrap();
    assert!(read(&cg.dir, "cgroup.events").contains("frozen 0"));
    cgroups::signal_all(&paths, libc::SIGKILL).unwrap();
    let mut child = cg.children.pop().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(wait_for(|| cgroups::pids(&paths).is_empty()));
}

#[test]
fn real_v2_device_program_allows_and_denies() {
    let Some(mut cg) = RealCgroup::new("bpf") else {
        eprintln!("no writable cgroup2 mount: skipped");
        return;
    };
    let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(
        r#"[{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"}]"#,
    )
    .unwrap();
    let mut all = devices::with_defaults(&rules);
    all.truncate(rules.len());
    // runc's defaults, minus /dev/zero and /dev/full, which this test restricts.
    all.extend(
        devices::defaults()
            .into_iter()
            .filter(|r| !(r.major == Some(1) && matches!(r.minor, Some(5) | Some(7)))),
    );
    let e = devices::reduce(&all);
    cgroups::bpf::attach(&cg.dir, &e).unwrap();
    cg.spawn(
        "head -c1 /dev/zero >/dev/null && echo zero-read-ok; \
         (echo x > /dev/zero) 2>/dev/null || echo zero-write-denied; \
         head -c1 /dev/full >/dev/null 2>&1 || echo full-denied",
    );
    let out = cg.output();
    for w in ["zero-read-ok", "zero-write-denied", "full-denied"] {
        assert!(out.contains(w), "{w} missing from:\n{out}");
    }
}
