//! Cgroup resources with real containers: limits written where the kernel enforces them
//! and enforced (OOM kill, pids limit, device access), and the commands that act on a
//! container's cgroup: pause/resume, kill --all, update, ps, events.
//! The v1 file checks run on v1 and hybrid hosts; resources_v2.rs checks the v2 files.

use runrs_integration::procfs::cgroup_dir;
use runrs_integration::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

// Generous: the Debian guest runs under emulation (hack/vm), 20-50x slower than a host.
const WAIT: Duration = Duration::from_secs(60);
const MB: i64 = 1024 * 1024;

/// The tests that read v1 files skip, saying so, on a pure cgroup v2 host (resources_v2.rs
/// has their v2 counterparts).
fn v1_host(test: &str) -> bool {
    let v2 = runrs_integration::procfs::pure_cgroup_v2();
    if v2 {
        eprintln!("skipping {test}: reads cgroup v1 files, and this host is pure cgroup v2");
    }
    !v2
}

fn read(dir: &std::path::Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

/// Create and start `b` as a new container; returns its guard and init pid.
fn start(env: &TestEnv, b: &Bundle) -> (ContainerGuard, i32) {
    let id = env.id();
    let mut guard = env.guard(&id);
    env.create_start(b, &id);
    let pid = env.rt.state(&id)["pid"].as_i64().expect("pid") as i32;
    guard.record(pid);
    (guard, pid)
}

fn alive_loop(b: &mut Bundle) {
    b.sh("touch /tmp/ready; while :; do usleep 20000; done");
}

#[test]
fn memory_over_the_limit_is_oom_killed() {
    let env = TestEnv::new("res_oom");
    let mut b = env.bundle();
    b.set(
        "/linux/resources/memory",
        json!({"limit": 32 * MB, "swap": 32 * MB}),
    );
    // The init itself grows past the limit (tail keeps the last "line" of /dev/zero, which
    // never ends: fast even under emulation): the OOM killer picks it.
    b.sh("exec tail /dev/zero");
    let out = env.run_bundle(&b);
    out.code(137);
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let env = TestEnv::new("res_pids");
    let mut b = env.bundle();
    b.set("/linux/resources/pids", json!({"limit": 10}));
    b.sh("i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); echo $i > /tmp/n; done; echo all-forked");
    let out = env.run_bundle(&b);
    assert_not_contains(&out.stdout, "all-forked");
    assert_contains(&out.stderr.to_lowercase(), "fork");
    let n: i32 = std::fs::read_to_string(b.host_path("/tmp/n"))
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        n < 10,
        "{n} background processes started under a limit of 10"
    );
}

/// The blkio weight file a new cgroup gets on this machine, if any: `blkio.weight` (CFQ) or
/// `blkio.bfq.weight` (BFQ). With neither (e.g. mq-deadline everywhere) runc and runrs both
/// refuse `blockIO.weight`, so a test may only ask for one where this finds it. The files are
/// not shown on the root cgroup, so the probe is a new child of our own.
fn blkio_weight_file() -> Option<&'static str> {
    let probe = cgroup_dir(std::process::id() as i32, "blkio")
        .join(format!("runrs-it-probe-{}", std::process::id()));
    std::fs::create_dir(&probe).ok()?;
    let found = ["blkio.bfq.weight", "blkio.weight"]
        .into_iter()
        .find(|f| probe.join(f).exists());
    let _ = std::fs::remove_dir(&probe);
    eprintln!("blkio weight file on this machine: {found:?}");
    found
}

#[test]
fn limits_are_written_and_visible_inside() {
    if !v1_host("limits_are_written_and_visible_inside") {
        return;
    }
    let env = TestEnv::new("res_values");
    let mut b = env.bundle();
    let weight_file = blkio_weight_file();
    let mut resources = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 64 * MB, "reservation": 32 * MB, "swap": 96 * MB, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42}
    });
    if weight_file.is_some() {
        resources["blockIO"] = json!({"weight": 300});
    }
    b.set("/linux/resources", resources);
    b.sh("grep -E '^(Cpus|Mems)_allowed_list' /proc/self/status > /tmp/status; touch /tmp/ready; while :; do usleep 20000; done");
    let (_g, pid) = start(&env, &b);
    wait_until("ready", WAIT, || b.host_path("/tmp/ready").exists());
    let mem = cgroup_dir(pid, "memory");
    assert_eq!(read(&mem, "memory.limit_in_bytes"), (64 * MB).to_string());
    assert_eq!(
        read(&mem, "memory.soft_limit_in_bytes"),
        (32 * MB).to_string()
    );
    assert_eq!(
        read(&mem, "memory.memsw.limit_in_bytes"),
        (96 * MB).to_string()
    );
    assert_eq!(read(&mem, "memory.swappiness"), "10");
    let cpu = cgroup_dir(pid, "cpu");
    assert_eq!(read(&cpu, "cpu.shares"), "512");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&cgroup_dir(pid, "cpuset"), "cpuset.cpus"), "0");
    assert_eq!(read(&cgroup_dir(pid, "pids"), "pids.max"), "42");
    if let Some(f) = weight_file {
        assert_contains(&read(&cgroup_dir(pid, "blkio"), f), "300");
    }
    let devices = read(&cgroup_dir(pid, "devices"), "devices.list");
    assert_contains(&devices, "c 1:3 rwm");
    assert_contains(&devices, "c 136:* rwm");
    assert_not_contains(&devices, "a *:* rwm");
    let status = std::fs::read_to_string(b.host_path("/tmp/status")).unwrap();
    assert_contains(&status, "Cpus_allowed_list:\t0\n");
    assert_contains(&status, "Mems_allowed_list:\t0\n");
}

#[test]
fn a_device_outside_the_allow_list_cannot_be_opened() {
    let env = TestEnv::new("res_devices");
    let mut b = env.bundle();
    let mut caps = vec![
        "CAP_MKNOD",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
        "CAP_NET_BIND_SERVICE",
    ];
    caps.retain(|c| host_capabilities().contains(c));
    b.capabilities(&caps);
    b.set(
        "/linux/resources/devices",
        json!([{"allow": false, "access": "rwm"}]),
    );
    // 1:3 is /dev/null (allowed by default), 1:1 is /dev/mem and 8:0 a disk: not allowed.
    b.sh(
        // In the container's /dev (a tmpfs the runtime mounts without nodev): the bundle's
        // own /tmp may sit on a nodev host tmpfs (Debian 13's /tmp is), where any node fails.
        "mkdir /dev/t; cd /dev/t; mknod blk b 8 0 && echo mknod-blk-ok; mknod mem c 1 1 && echo mknod-mem-ok; \
          mknod nul c 1 3 && echo x > nul && echo null-ok; \
          head -c1 blk >/dev/null 2>blk.err || echo blk-denied; \
          head -c1 mem >/dev/null 2>mem.err || echo mem-denied; cat *.err",
    );
    let out = env.run_bundle(&b);
    out.ok();
    for word in [
        "mknod-blk-ok",
        "mknod-mem-ok",
        "null-ok",
        "blk-denied",
        "mem-denied",
    ] {
        assert_contains(&out.stdout, word);
    }
    assert_contains(&out.stdout, "Operation not permitted");
}

#[test]
fn blkio_throttles_under_the_specs_keys() {
    if !v1_host("blkio_throttles_under_the_specs_keys") {
        return;
    }
    let env = TestEnv::new("res_throttle");
    let mut b = env.bundle();
    let disk = a_disk();
    let (major, minor) = disk.split_once(' ').unwrap();
    let dev = |rate: u64| json!([{"major": major.parse::<i64>().unwrap(), "minor": minor.parse::<i64>().unwrap(), "rate": rate}]);
    // The spec's keys, as containerd and Docker write them ("IOPS" in capitals).
    b.set(
        "/linux/resources/blockIO",
        json!({"throttleReadBpsDevice": dev(1048576), "throttleWriteBpsDevice": dev(2097152),
               "throttleReadIOPSDevice": dev(100), "throttleWriteIOPSDevice": dev(200)}),
    );
    alive_loop(&mut b);
    let (_g, pid) = start(&env, &b);
    let blkio = cgroup_dir(pid, "blkio");
    let dev = disk.replace(' ', ":");
    for (file, rate) in [
        ("blkio.throttle.read_bps_device", 1048576),
        ("blkio.throttle.write_bps_device", 2097152),
        ("blkio.throttle.read_iops_device", 100),
        ("blkio.throttle.write_iops_device", 200),
    ] {
        assert_eq!(read(&blkio, file), format!("{dev} {rate}"), "{file}");
    }
}

/// major:minor of a disk of this machine (a block device that root can open and read).
fn a_disk() -> String {
    std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with("loop"))
        .find_map(|e| std::fs::read_to_string(e.path().join("dev")).ok())
        .expect("a disk in /sys/block")
        .trim()
        .replace(':', " ")
}

/// Without a deny-all rule, or without `linux.resources` at all, the container still gets
/// only runc's default devices (runc's emulator starts from deny-all): a node of this
/// machine's disk, made with mknod, cannot be read; /dev/null (1:3) can be written.
#[test]
fn devices_are_denied_by_default_without_a_deny_all_rule() {
    let env = TestEnv::new("res_devdefault");
    let disk = a_disk();
    for resources in [None, Some(json!({"devices": []}))] {
        let mut b = env.bundle();
        let mut caps = vec!["CAP_MKNOD", "CAP_KILL", "CAP_AUDIT_WRITE"];
        caps.retain(|c| host_capabilities().contains(c));
        b.capabilities(&caps);
        match &resources {
            Some(r) => b.set("/linux/resources", r.clone()),
            None => b.remove("/linux/resources"),
        };
        b.sh(&format!(
            "mkdir /dev/t; cd /dev/t; mknod disk b {disk} && mknod nul c 1 3 && echo made; \
             echo x > nul && echo null-ok; head -c1 disk >/dev/null && echo disk-read; \
             head -c1 disk 2>&1 >/dev/null | grep -q 'not permitted' && echo disk-denied"
        ));
        let out = env.run_bundle(&b);
        for word in ["made", "null-ok", "disk-denied"] {
            assert!(
                out.stdout.contains(word),
                "{word} missing with resources {resources:?}: {}{}",
                out.stdout,
                out.stderr
            );
        }
        assert_not_contains(&out.stdout, "disk-read");
    }
}

#[test]
fn custom_cgroups_path_is_created_and_removed() {
    if !v1_host("custom_cgroups_path_is_created_and_removed") {
        return;
    }
    let env = TestEnv::new("res_cgpath");
    let mut b = env.bundle();
    let name = format!("runrs-it-cgpath-{}", std::process::id());
    b.set("/linux/cgroupsPath", json!(format!("/{name}")));
    alive_loop(&mut b);
    let (g, pid) = start(&env, &b);
    let pids = cgroup_dir(pid, "pids");
    assert!(pids.ends_with(&name), "{}", pids.display());
    assert!(lines(&read(&pids, "cgroup.procs")).contains(&pid.to_string().as_str()));
    env.rt.run(["delete", "--force", g.id()]).ok();
    assert!(!pids.exists(), "{} left after delete", pids.display());
    assert!(!PathBuf::from("/sys/fs/cgroup/memory").join(&name).exists());
}

#[test]
fn pause_resume_and_status() {
    if !v1_host("pause_resume_and_status") {
        return;
    }
    let env = TestEnv::new("res_pause");
    let mut b = env.bundle();
    alive_loop(&mut b);
    let (g, pid) = start(&env, &b);
    let id = g.id().to_string();
    let freezer = cgroup_dir(pid, "freezer");
    env.rt.run(["pause", &id]).ok();
    assert_eq!(env.rt.status(&id).as_deref(), Some("paused"));
    assert_eq!(read(&freezer, "freezer.state"), "FROZEN");
    let list = env.rt.run(["list", "--format", "json"]).ok().json();
    assert_eq!(list[0]["status"], "paused", "{list}");
    env.rt.run(["pause", &id]).fails_with(&["not running"]);
    env.rt.run(["resume", &id]).ok();
    assert_eq!(env.rt.status(&id).as_deref(), Some("running"));
    assert_eq!(read(&freezer, "freezer.state"), "THAWED");
    env.rt.run(["resume", &id]).fails_with(&["not paused"]);
}

#[test]
fn kill_all_empties_the_cgroup() {
    if !v1_host("kill_all_empties_the_cgroup") {
        return;
    }
    let env = TestEnv::new("res_killall");
    let mut b = env.bundle();
    // Without a pid namespace of its own the children survive their init: --all must
    // reach them too.
    b.without_namespace("pid");
    b.sh("trap '' TERM; sleep 300 & sleep 300 & touch /tmp/ready; while :; do usleep 20000; done");
    let (g, pid) = start(&env, &b);
    wait_until("ready", WAIT, || b.host_path("/tmp/ready").exists());
    let dir = cgroup_dir(pid, "pids");
    let procs = read(&dir, "cgroup.procs");
    assert!(lines(&procs).len() >= 3, "{procs}");
    env.rt.run(["kill", "--all", g.id(), "KILL"]).ok();
    wait_until("empty cgroup", WAIT, || {
        std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|s| s.trim().is_empty())
    });
}

#[test]
fn update_changes_limits() {
    if !v1_host("update_changes_limits") {
        return;
    }
    let env = TestEnv::new("res_update");
    let mut b = env.bundle();
    b.set("/linux/resources/memory", json!({"limit": 64 * MB}));
    alive_loop(&mut b);
    let (g, pid) = start(&env, &b);
    let id = g.id().to_string();
    env.rt
        .run([
            "update",
            "--memory",
            "128m",
            "--memory-swap",
            "256m",
            "--pids-limit",
            "50",
            "--cpu-share",
            "256",
            "--cpu-quota",
            "20000",
            "--cpu-period",
            "100000",
            "--cpuset-cpus",
            "0",
            &id,
        ])
        .ok();
    let mem = cgroup_dir(pid, "memory");
    assert_eq!(read(&mem, "memory.limit_in_bytes"), (128 * MB).to_string());
    assert_eq!(
        read(&mem, "memory.memsw.limit_in_bytes"),
        (256 * MB).to_string()
    );
    assert_eq!(read(&cgroup_dir(pid, "pids"), "pids.max"), "50");
    let cpu = cgroup_dir(pid, "cpu");
    assert_eq!(read(&cpu, "cpu.shares"), "256");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "20000");
    let file = env.path("resources.json");
    std::fs::write(
        &file,
        json!({"memory": {"limit": 100 * MB, "swap": 200 * MB}, "pids": {"limit": 7}}).to_string(),
    )
    .unwrap();
    env.rt.run(["update", "-r", &arg(&file), &id]).ok();
    assert_eq!(read(&mem, "memory.limit_in_bytes"), (100 * MB).to_string());
    assert_eq!(read(&cgroup_dir(pid, "pids"), "pids.max"), "7");
    env.rt
        .run(["update", "--memory", "lots", &id])
        .fails_with(&["memory"]);
}

#[test]
fn ps_lists_init_and_exec_pids() {
    let env = TestEnv::new("res_ps");
    let mut b = env.bundle();
    alive_loop(&mut b);
    let (g, pid) = start(&env, &b);
    let id = g.id().to_string();
    let exec = env.rt.cmd(["exec", "-d", &id, "sleep", "300"]).run();
    exec.ok();
    wait_until("two pids", WAIT, || {
        let out = env.rt.run(["ps", "--format", "json", &id]);
        out.success() && out.json().as_array().is_some_and(|a| a.len() >= 2)
    });
    let pids = env.rt.run(["ps", "-f", "json", &id]).ok().json();
    assert!(pids.as_array().unwrap().contains(&json!(pid)), "{pids}");
    let table = env.rt.run(["ps", &id]).ok().stdout.clone();
    let rows = lines(&table);
    assert!(
        rows[0].contains("PID") && rows[0].contains("CMD"),
        "{table}"
    );
    assert!(rows.iter().any(|r| r.contains("sleep 300")), "{table}");
    assert!(rows.iter().all(|r| !r.contains("cargo")), "{table}");
}

#[test]
fn events_stats_report_usage() {
    let env = TestEnv::new("res_events");
    let mut b = env.bundle();
    b.set("/linux/resources/pids", json!({"limit": 99}));
    alive_loop(&mut b);
    let (g, _pid) = start(&env, &b);
    let id = g.id().to_string();
    let ev = env.rt.run(["events", "--stats", &id]).ok().json();
    assert_eq!(ev["type"], "stats", "{ev}");
    assert_eq!(ev["id"], id.as_str(), "{ev}");
    let d = &ev["data"];
    assert!(
        d["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{ev}"
    );
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0, "{ev}");
    assert!(d["pids"]["current"].as_u64().unwrap_or(0) >= 1, "{ev}");
    assert_eq!(d["pids"]["limit"], 99, "{ev}");
    // runc's stats always carry Intel RDT's, empty without a group.
    assert_eq!(d["intel_rdt"], json!({}), "{ev}");
}

#[test]
fn update_of_intel_rdt_schemas_needs_resctrl() {
    if std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| m.contains(" - resctrl ")) {
        eprintln!("skipped: resctrl is mounted here");
        return;
    }
    let env = TestEnv::new("res_update_rdt");
    let mut b = env.bundle();
    alive_loop(&mut b);
    let (g, _pid) = start(&env, &b);
    let id = g.id().to_string();
    let before = env.rt.run(["state", &id]).ok().json();
    (env.rt.run(["update", "--l3-cache-schema", "L3:0=f", &id]))
        .fails_with(&["Intel RDT/CAT: l3 cache schema is not enabled"]);
    (env.rt.run(["update", "--mem-bw-schema", "MB:0=50", &id]))
        .fails_with(&["Intel RDT/MBA: memory bandwidth schema is not enabled"]);
    // Refused before anything changed: the same state, still running.
    assert_eq!(env.rt.run(["state", &id]).ok().json(), before);
    assert_eq!(before["status"], "running", "{before}");
}

#[test]
fn events_stream_stats_and_oom() {
    let env = TestEnv::new("res_events_oom");
    let mut b = env.bundle();
    b.set(
        "/linux/resources/memory",
        json!({"limit": 32 * MB, "swap": 32 * MB}),
    );
    b.sh("while [ ! -e /tmp/go ]; do usleep 10000; done; \
          (tail /dev/zero); touch /tmp/done; while :; do usleep 20000; done");
    let (g, _pid) = start(&env, &b);
    let id = g.id().to_string();
    let events = env
        .rt
        .cmd(["events", "--interval", "200ms", &id])
        .timeout(Duration::from_secs(90))
        .spawn();
    // `events` takes its baseline of OOM kills when it starts; its first stats line says it
    // has (a fixed sleep lost that race in a slow, emulated guest).
    wait_until("the first stats line of events", WAIT, || {
        events.stdout_so_far().contains("\"stats\"")
    });
    std::fs::write(b.host_path("/tmp/go"), "").unwrap();
    // The OOM killer usually takes the subshell; now and then it takes the container's shell
    // instead. Either way the cgroup OOMed, which is what the event stream must report.
    wait_until("oom'd subshell or container", WAIT, || {
        b.host_path("/tmp/done").exists() || env.rt.status(&id).as_deref() == Some("stopped")
    });
    std::thread::sleep(Duration::from_millis(500));
    env.rt.run(["delete", "--force", &id]).ok();
    let out = events.wait();
    let evs: Vec<Value> = lines(&out.stdout)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(
        evs.iter()
            .any(|e| e["type"] == "oom" && e["id"] == id.as_str()),
        "{}",
        out.stdout
    );
    assert!(
        evs.iter().filter(|e| e["type"] == "stats").count() >= 2,
        "{}",
        out.stdout
    );
}

/// `/proc/<pid>/cgroup` without the cgroup2 line of a hybrid host (`0::`), sorted.
fn v1_cgroups(pid: i32) -> Vec<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    let mut v: Vec<String> = s
        .lines()
        .filter(|l| !l.starts_with("0::"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn init_and_exec_enter_every_cgroup_of_the_container() {
    if !v1_host("init_and_exec_enter_every_cgroup_of_the_container") {
        return;
    }
    let env = TestEnv::new("res_join");
    let mut b = env.bundle();
    let name = format!("runrs-it-join-{}", std::process::id());
    b.set("/linux/cgroupsPath", json!(format!("/{name}")));
    alive_loop(&mut b);
    let (g, pid) = start(&env, &b);
    let init = v1_cgroups(pid);
    // Every hierarchy (not only the ones with limits): the container's cgroup, not ours.
    // runc 1.1 knows no `misc` controller (Linux 5.13) and leaves it alone.
    assert!(!init.is_empty());
    for line in init
        .iter()
        .filter(|l| !(is_runc() && l.ends_with(":misc:/")))
    {
        assert!(line.ends_with(&format!("/{name}")), "{line} in {init:?}");
    }
    // And the unified hierarchy of a hybrid host, where one is mounted.
    let all = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if let Some(v2) = all.lines().find(|l| l.starts_with("0::")) {
        if mounts.contains(" - cgroup2 ") {
            assert!(v2.ends_with(&format!("/{name}")), "{v2}");
        }
    }
    // By its pid file: the init's loop has short-lived children too (a zombie shows as in
    // the root cgroups).
    let pid_file = env.path("exec.pid");
    let out = env
        .rt
        .cmd([
            "exec",
            "-d",
            "--pid-file",
            &arg(&pid_file),
            g.id(),
            "sleep",
            "300",
        ])
        .run();
    out.ok();
    let exec_pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    assert_eq!(v1_cgroups(exec_pid), init);
}

#[test]
fn cgroup_namespace_is_rooted_at_the_container_cgroup() {
    if !v1_host("cgroup_namespace_is_rooted_at_the_container_cgroup") {
        return;
    }
    let env = TestEnv::new("res_cgns");
    let mut b = env.bundle();
    b.namespace("cgroup", None);
    b.sh("cat /proc/self/cgroup");
    let out = env.run_ok(&b);
    let v1: Vec<&str> = lines(&out)
        .into_iter()
        .filter(|l| !l.starts_with("0::"))
        .collect();
    assert!(!v1.is_empty(), "{out}");
    for l in v1 {
        assert!(l.ends_with(":/"), "not at the namespace root: {l}\n{out}");
    }
}

/// A cgroup2-only host (this host's, rearranged in a private mount namespace): the init is
/// cloned into its cgroup2 directory
/// (and waits for no v1 ones), the default `type: "cgroup"` mount shows cgroup2, and the
/// directory is gone after `run`.
#[test]
fn cgroup2_only_layout() {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if !mounts.contains(" - cgroup2 ") {
        eprintln!("skipping: no cgroup2 hierarchy mounted here");
        return;
    }
    // On a cgroup2-only host the runtime enables the available controllers down to the
    // container's cgroup, from the root: only where that changes nothing but its own.
    let root = mounts
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .unwrap();
    let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_default();
    let on = read("cgroup.subtree_control");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let nested = own.lines().any(|l| l.starts_with("0::") && l != "0::/");
    let missing = read("cgroup.controllers")
        .split_whitespace()
        .any(|c| !on.split_whitespace().any(|o| o == c));
    if nested || missing {
        eprintln!("skipping: would enable controllers in cgroups this test did not make");
        return;
    }
    let env = TestEnv::new("res_v2only");
    let mut b = env.bundle();
    b.sh(
        "cat /proc/self/cgroup; echo MOUNT; grep ' /sys/fs/cgroup ' /proc/self/mountinfo; \
          ls /sys/fs/cgroup/cgroup.procs",
    );
    let id = env.id();
    let _guard = env.guard(&id);
    // The v1 hierarchies unmounted and the unified one moved onto /sys/fs/cgroup, in a
    // private mount namespace: what a cgroup2-only host has.
    let unmount_v1 = r#"set -e
        for m in $(awk '$9 == "cgroup" {print $5}' /proc/self/mountinfo); do umount "$m"; done
        v2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
        tmp=$(mktemp -d)
        mount --move "$v2" "$tmp"
        if mountpoint -q /sys/fs/cgroup; then umount /sys/fs/cgroup; fi
        mount --move "$tmp" /sys/fs/cgroup
        rmdir "$tmp"
        exec "$@""#;
    let out = std::process::Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            unmount_v1,
            "sh",
        ])
        .arg(&env.rt.bin)
        .arg("--root")
        .arg(&env.rt.root)
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (own, mount) = stdout.split_once("MOUNT").unwrap();
    let v2 = lines(own)
        .into_iter()
        .find(|l| l.starts_with("0::"))
        .unwrap();
    assert!(v2.ends_with(&format!("/{id}")), "{v2}");
    assert_contains(mount, " - cgroup2 ");
    assert_contains(mount, "/sys/fs/cgroup/cgroup.procs");
    env.assert_no_trace(&id, &b);
}
