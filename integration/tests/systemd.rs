//! The systemd cgroup driver (`--systemd-cgroup`) against the real systemd of the guest of
//! `hack/vm` (PID 1, pure cgroup v2): the scope unit, its properties and cgroup files, the
//! lifecycle commands under it, bad input and a runtime killed mid-create. Each assertion
//! holds for runc too (`RUNRS_TEST_RUNTIME=/usr/sbin/runc`): runc is the reference. Every test
//! skips, saying so, where systemd is not PID 1 or the host is not pure cgroup v2.

use runrs_integration::procfs::{cgroup_dir, pure_cgroup_v2};
use runrs_integration::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const MB: i64 = 1024 * 1024;

fn systemd_host(test: &str) -> bool {
    let ok = Path::new("/run/systemd/system").is_dir() && pure_cgroup_v2();
    if !ok {
        eprintln!("skipping {test}: needs systemd as PID 1 on pure cgroup v2 (hack/test-guest)");
    }
    ok
}

/// `systemctl show -p NAME --value UNIT`.
fn show(unit: &str, prop: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", prop, "--value", unit])
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn unit_gone(unit: &str) -> bool {
    matches!(show(unit, "LoadState").as_str(), "not-found" | "")
        || show(unit, "ActiveState") == "inactive" && show(unit, "LoadState") != "loaded"
}

fn failed_units() -> String {
    let out = Command::new("systemctl")
        .args(["list-units", "--failed", "--plain", "--no-legend"])
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

/// `--systemd-cgroup create` of `b` as `id`.
fn create(env: &TestEnv, b: &Bundle, id: &str) -> Output {
    env.rt
        .run(["--systemd-cgroup", "create", "--bundle", &arg(b.path()), id])
}

fn sd(env: &TestEnv, args: &[&str]) -> Output {
    let mut all = vec!["--systemd-cgroup"];
    all.extend_from_slice(args);
    env.rt.run(all)
}

#[test]
fn a_container_is_a_scope_unit_through_its_whole_life() {
    if !systemd_host("a_container_is_a_scope_unit_through_its_whole_life") {
        return;
    }
    let env = TestEnv::new("sd_life");
    let id = env.id();
    let unit = format!("runrs-it-{id}.scope");
    let mut b = env.bundle();
    b.set(
        "/linux/cgroupsPath",
        json!(format!("system.slice:runrs-it:{id}")),
    );
    b.set(
        "/linux/resources",
        json!({"memory": {"limit": 64 * MB}, "pids": {"limit": 42},
               "cpu": {"shares": 512, "quota": 50000, "period": 100000}}),
    );
    b.sh("touch /tmp/ready; while :; do usleep 20000; done");
    let mut g = env.guard(&id);
    create(&env, &b, &id).ok();
    let pid = env.rt.state(&id)["pid"].as_i64().expect("pid") as i32;
    g.record(pid);
    let dir = PathBuf::from("/sys/fs/cgroup/system.slice").join(&unit);
    assert_eq!(show(&unit, "ActiveState"), "active");
    assert_eq!(show(&unit, "Slice"), "system.slice");
    assert_eq!(show(&unit, "Delegate"), "yes");
    assert_eq!(show(&unit, "ControlGroup"), format!("/system.slice/{unit}"));
    assert_eq!(show(&unit, "MemoryMax"), (64 * MB).to_string());
    assert_eq!(show(&unit, "TasksMax"), "42");
    assert_eq!(
        show(&unit, "CPUWeight"),
        expected_cpu_weight(512).to_string()
    );
    assert_eq!(show(&unit, "CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(cgroup_dir(pid, ""), dir);
    assert_eq!(read(&dir, "memory.max"), (64 * MB).to_string());
    assert_eq!(read(&dir, "pids.max"), "42");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");

    env.rt.run(["start", &id]).ok();
    wait_until("ready", WAIT, || b.host_path("/tmp/ready").exists());
    let pid_file = env.path("exec.pid");
    sd(
        &env,
        &[
            "exec",
            "-d",
            "--pid-file",
            &arg(&pid_file),
            &id,
            "sleep",
            "300",
        ],
    )
    .ok();
    let exec_pid: i32 = read(env.dir(), "exec.pid").parse().expect("a pid");
    assert_eq!(
        cgroup_dir(exec_pid, ""),
        dir,
        "the exec'd process is in the scope"
    );

    sd(&env, &["pause", &id]).ok();
    assert_eq!(env.rt.status(&id).as_deref(), Some("paused"));
    assert_contains(&read(&dir, "cgroup.events"), "frozen 1");
    sd(&env, &["resume", &id]).ok();
    assert_eq!(env.rt.status(&id).as_deref(), Some("running"));

    sd(
        &env,
        &["update", "--memory", "128m", "--pids-limit", "50", &id],
    )
    .ok();
    assert_eq!(show(&unit, "MemoryMax"), (128 * MB).to_string());
    assert_eq!(show(&unit, "TasksMax"), "50");
    assert_eq!(read(&dir, "memory.max"), (128 * MB).to_string());
    assert_eq!(read(&dir, "pids.max"), "50");

    let pids = sd(&env, &["ps", "-f", "json", &id]).ok().json();
    assert!(
        pids.as_array().unwrap().contains(&json!(exec_pid)),
        "{pids}"
    );
    let ev = sd(&env, &["events", "--stats", &id]).ok().json();
    assert_eq!(ev["data"]["pids"]["limit"], 50, "{ev}");

    sd(&env, &["kill", "--all", &id, "KILL"]).ok();
    wait_until("stopped", WAIT, || {
        env.rt.status(&id).as_deref() == Some("stopped")
    });
    sd(&env, &["delete", &id]).ok();
    wait_until("unit gone", WAIT, || unit_gone(&unit));
    assert!(!dir.exists(), "{} left after delete", dir.display());
    assert_eq!(failed_units(), "", "failed units after delete");
    env.assert_no_trace(&id, &b);
}

#[test]
fn an_empty_cgroups_path_is_the_default_scope() {
    if !systemd_host("an_empty_cgroups_path_is_the_default_scope") {
        return;
    }
    let env = TestEnv::new("sd_default");
    let id = env.id();
    let mut b = env.bundle();
    b.remove("/linux/cgroupsPath");
    b.sh("cat /proc/self/cgroup");
    let out = env
        .rt
        .run(["--systemd-cgroup", "run", "--bundle", &arg(b.path()), &id]);
    out.ok();
    // runc names it runc-<id>.scope; we runrs-<id>.scope: both in system.slice.
    let prefix = if is_runc() { "runc" } else { "runrs" };
    assert_contains(&out.stdout, &format!("/system.slice/{prefix}-{id}.scope"));
    assert!(unit_gone(&format!("{prefix}-{id}.scope")));
}

#[test]
fn nested_slices_are_made_as_systemd_makes_them() {
    if !systemd_host("nested_slices_are_made_as_systemd_makes_them") {
        return;
    }
    let env = TestEnv::new("sd_slice");
    let id = env.id();
    let slice = format!("runrsit-p{}.slice", std::process::id());
    let mut b = env.bundle();
    b.set("/linux/cgroupsPath", json!(format!("{slice}:cri:{id}")));
    b.sh("cat /proc/self/cgroup");
    let out = env
        .rt
        .run(["--systemd-cgroup", "run", "--bundle", &arg(b.path()), &id]);
    out.ok();
    assert_contains(
        &out.stdout,
        &format!("/runrsit.slice/{slice}/cri-{id}.scope"),
    );
    // Slices stay after their last unit (with runc too): stop ours, parent first.
    let _ = Command::new("systemctl")
        .args(["stop", &slice, "runrsit.slice"])
        .status();
}

#[test]
fn bad_systemd_input_is_refused_and_leaves_nothing() {
    if !systemd_host("bad_systemd_input_is_refused_and_leaves_nothing") {
        return;
    }
    let env = TestEnv::new("sd_bad");
    for (path, words) in [
        ("a:b", vec!["slice:prefix:name"]),
        ("slice.notslice:x:y", vec!["slice"]),
    ] {
        let id = env.id();
        let mut b = env.bundle();
        b.set("/linux/cgroupsPath", json!(path));
        b.set_args(&["true"]);
        let _g = env.guard(&id);
        create(&env, &b, &id).fails_with(&words);
        env.assert_no_trace(&id, &b);
    }
    // An annotation naming a property systemd does not know.
    let id = env.id();
    let mut b = env.bundle();
    b.set(
        "/linux/cgroupsPath",
        json!(format!("system.slice:runrs-it:{id}")),
    );
    b.set(
        "/annotations",
        json!({"org.systemd.property.NoSuchProperty": "true"}),
    );
    b.set_args(&["sleep", "300"]);
    let _g = env.guard(&id);
    create(&env, &b, &id).fails_with(&["NoSuchProperty"]);
    env.assert_no_trace(&id, &b);
    assert!(unit_gone(&format!("runrs-it-{id}.scope")));
}

#[test]
fn a_unit_that_exists_already_is_refused() {
    if !systemd_host("a_unit_that_exists_already_is_refused") {
        return;
    }
    let env = TestEnv::new("sd_twice");
    let first = env.id();
    let path = format!("system.slice:runrs-it:twice-{}", std::process::id());
    let unit = format!("runrs-it-twice-{}.scope", std::process::id());
    let mut a = env.bundle();
    a.set("/linux/cgroupsPath", json!(path));
    a.set_args(&["sleep", "300"]);
    let mut g = env.guard(&first);
    create(&env, &a, &first).ok();
    g.record(env.rt.state(&first)["pid"].as_i64().unwrap() as i32);
    let second = env.id();
    let mut b = env.bundle();
    b.set("/linux/cgroupsPath", json!(path));
    b.set_args(&["sleep", "300"]);
    let _g2 = env.guard(&second);
    // runc's words: the scope's cgroup exists and holds the first container's init.
    create(&env, &b, &second).fails_with(&["container's cgroup is not empty"]);
    assert!(
        !env.rt_root_entries().contains(&second),
        "state of the refused container left"
    );
    // The first container and its unit are untouched.
    assert_eq!(show(&unit, "ActiveState"), "active");
    assert_eq!(env.rt.status(&first).as_deref(), Some("created"));
    sd(&env, &["delete", "--force", &first]).ok();
    wait_until("unit gone", WAIT, || unit_gone(&unit));
}

#[test]
fn a_runtime_killed_after_the_unit_started_is_cleaned_up_by_delete_force() {
    if !systemd_host("a_runtime_killed_after_the_unit_started_is_cleaned_up_by_delete_force") {
        return;
    }
    let env = TestEnv::new("sd_killed");
    let id = env.id();
    let unit = format!("runrs-it-{id}.scope");
    let mut b = env.bundle();
    b.set(
        "/linux/cgroupsPath",
        json!(format!("system.slice:runrs-it:{id}")),
    );
    b.set_args(&["sleep", "300"]);
    // createRuntime runs once the scope holds the init: the hook SIGKILLs the runtime, its
    // parent.
    b.hook(
        "createRuntime",
        &["/bin/sh", "-c", "kill -9 $PPID"],
        Some(10),
    );
    let _g = env.guard(&id);
    let out = create(&env, &b, &id);
    assert!(
        !out.success(),
        "create survived its own SIGKILL: {}",
        out.stderr
    );
    sd(&env, &["delete", "--force", &id]).ok();
    wait_until("unit gone", WAIT, || unit_gone(&unit));
    assert!(!PathBuf::from("/sys/fs/cgroup/system.slice")
        .join(&unit)
        .exists());
    env.assert_no_trace(&id, &b);
    assert_eq!(failed_units(), "", "failed units left");
}

#[test]
fn without_systemd_the_driver_fails_at_once_and_leaves_nothing() {
    if Path::new("/run/systemd/system").is_dir() {
        eprintln!("skipping: this host runs systemd");
        return;
    }
    let env = TestEnv::new("sd_nosystemd");
    let id = env.id();
    let mut b = env.bundle();
    b.set_args(&["sleep", "300"]);
    let _g = env.guard(&id);
    // runc's words.
    create(&env, &b, &id).fails_with(&["systemd not running on this host"]);
    env.assert_no_trace(&id, &b);
}

/// Every line of `/proc/<pid>/cgroup` (each v1 hierarchy, name=systemd, the hybrid's cgroup2).
fn cgroup_lines(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .expect("read cgroup")
        .lines()
        .map(str::to_string)
        .collect()
}

/// A cgroup v1 (hybrid) host under systemd: the scope holds the container in every
/// hierarchy, systemd's in those it manages and the runtime's in the others, with runc's v1
/// unit properties and the v1 files; delete leaves no unit and no directory in any of them.
#[test]
fn on_cgroup_v1_the_scope_holds_the_container_in_every_hierarchy() {
    let v1 = Path::new("/run/systemd/system").is_dir() && !pure_cgroup_v2();
    if !v1 {
        eprintln!("skipping: needs systemd as PID 1 on cgroup v1 (RUNRS_VM_CGROUP=hybrid)");
        return;
    }
    let env = TestEnv::new("sd_v1");
    let id = env.id();
    let unit = format!("runrs-it-{id}.scope");
    let mut b = env.bundle();
    b.set(
        "/linux/cgroupsPath",
        json!(format!("system.slice:runrs-it:{id}")),
    );
    b.set(
        "/linux/resources",
        json!({"memory": {"limit": 64 * MB}, "pids": {"limit": 42}, "cpu": {"shares": 512}}),
    );
    b.sh("touch /tmp/ready; while :; do usleep 20000; done");
    let mut g = env.guard(&id);
    create(&env, &b, &id).ok();
    let pid = env.rt.state(&id)["pid"].as_i64().expect("pid") as i32;
    g.record(pid);
    assert_eq!(show(&unit, "ActiveState"), "active");
    assert_eq!(show(&unit, "MemoryLimit"), (64 * MB).to_string());
    assert_eq!(show(&unit, "TasksMax"), "42");
    let lines = cgroup_lines(pid);
    // runc 1.1 knows no `misc` controller (Linux 5.13) and leaves it alone.
    for l in lines
        .iter()
        .filter(|l| !(is_runc() && l.ends_with(":misc:/")))
    {
        assert!(
            l.ends_with(&format!("/system.slice/{unit}")),
            "{l} in {lines:?}"
        );
    }
    let v1 = |ctrl: &str| {
        PathBuf::from("/sys/fs/cgroup")
            .join(ctrl)
            .join("system.slice")
            .join(&unit)
    };
    assert_eq!(
        read(&v1("memory"), "memory.limit_in_bytes"),
        (64 * MB).to_string()
    );
    assert_eq!(read(&v1("pids"), "pids.max"), "42");
    assert_eq!(read(&v1("cpu,cpuacct"), "cpu.shares"), "512");
    assert_contains(&read(&v1("devices"), "devices.list"), "c 1:3 rwm");

    env.rt.run(["start", &id]).ok();
    wait_until("ready", WAIT, || b.host_path("/tmp/ready").exists());
    let pid_file = env.path("exec.pid");
    sd(
        &env,
        &[
            "exec",
            "-d",
            "--pid-file",
            &arg(&pid_file),
            &id,
            "sleep",
            "300",
        ],
    )
    .ok();
    let exec_pid: i32 = read(env.dir(), "exec.pid").parse().expect("a pid");
    assert_eq!(
        cgroup_lines(exec_pid),
        lines,
        "the exec'd process is where the init is"
    );
    sd(&env, &["pause", &id]).ok();
    assert_eq!(read(&v1("freezer"), "freezer.state"), "FROZEN");
    sd(&env, &["resume", &id]).ok();
    sd(&env, &["update", "--memory", "128m", &id]).ok();
    assert_eq!(show(&unit, "MemoryLimit"), (128 * MB).to_string());
    assert_eq!(
        read(&v1("memory"), "memory.limit_in_bytes"),
        (128 * MB).to_string()
    );

    sd(&env, &["delete", "--force", &id]).ok();
    wait_until("unit gone", WAIT, || unit_gone(&unit));
    for ctrl in [
        "memory",
        "pids",
        "cpu,cpuacct",
        "devices",
        "freezer",
        "systemd",
        "unified",
    ] {
        assert!(
            !v1(ctrl).exists(),
            "{} left after delete",
            v1(ctrl).display()
        );
    }
    assert_eq!(failed_units(), "", "failed units after delete");
}

/// runc is the reference: the same config under runc `--systemd-cgroup` and under the
/// runtime under test gives the same unit properties and the same cgroup files.
#[test]
fn the_same_config_gives_runcs_unit_properties_and_files() {
    let runc = PathBuf::from("/usr/sbin/runc");
    if !systemd_host("the_same_config_gives_runcs_unit_properties_and_files")
        || is_runc()
        || !runc.exists()
    {
        eprintln!("skipping: needs runc and a runtime under test other than runc");
        return;
    }
    let props = [
        "Slice",
        "Delegate",
        "DefaultDependencies",
        "MemoryAccounting",
        "CPUAccounting",
        "TasksAccounting",
        "MemoryMax",
        "MemoryLow",
        "MemorySwapMax",
        "CPUWeight",
        "CPUQuotaPerSecUSec",
        "CPUQuotaPeriodUSec",
        "AllowedCPUs",
        "TasksMax",
        "DevicePolicy",
    ];
    let files = [
        "memory.max",
        "memory.low",
        "memory.swap.max",
        "pids.max",
        "cpu.weight",
        "cpu.max",
        "cpuset.cpus",
    ];
    let mut seen = Vec::new();
    for bin in [runtime_path(), runc] {
        let env = TestEnv::with_runtime("sd_same", bin);
        let id = env.id();
        let unit = format!("runrs-it-{id}.scope");
        let mut b = env.bundle();
        b.set(
            "/linux/cgroupsPath",
            json!(format!("system.slice:runrs-it:{id}")),
        );
        b.set(
            "/linux/resources",
            json!({"memory": {"limit": 64 * MB, "reservation": 32 * MB, "swap": 96 * MB},
                   "pids": {"limit": 42},
                   "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}}),
        );
        b.set_args(&["sleep", "300"]);
        let mut g = env.guard(&id);
        create(&env, &b, &id).ok();
        g.record(env.rt.state(&id)["pid"].as_i64().expect("pid") as i32);
        let dir = PathBuf::from("/sys/fs/cgroup/system.slice").join(&unit);
        let mut got: Vec<String> = props
            .iter()
            .map(|p| format!("{p}={}", show(&unit, p)))
            .collect();
        // The device allow list in any order.
        let mut devices: Vec<String> = show(&unit, "DeviceAllow")
            .split_whitespace()
            .collect::<Vec<_>>()
            .chunks(2)
            .map(|c| c.join(" "))
            .collect();
        devices.sort();
        got.push(format!("DeviceAllow={devices:?}"));
        got.extend(files.iter().map(|f| format!("{f}={}", read(&dir, f))));
        sd(&env, &["delete", "--force", &id]).ok();
        wait_until("unit gone", WAIT, || unit_gone(&unit));
        seen.push(got);
    }
    // runc before 1.3 converted cpu.shares to a weight linearly (512 → 20); runrs follows
    // runc 1.3 (512 → 59), so against an older runc those two lines are checked on their own.
    let old_runc = runc_version_of(Path::new("/usr/sbin/runc")).is_some_and(|v| v < (1, 3));
    for (ours, runcs) in seen[0].iter().zip(&seen[1]) {
        if old_runc && (ours.starts_with("CPUWeight=") || ours.starts_with("cpu.weight=")) {
            assert!(
                ours.ends_with("=59") && runcs.ends_with("=20"),
                "{ours} {runcs}"
            );
            continue;
        }
        // A whole major: runc 1.3 and runrs write `char-136`, runc 1.1 the driver's name from
        // /proc/devices (`char-pts`).
        if old_runc && ours.starts_with("DeviceAllow=") {
            let runcs = runcs.replace("char-pts", "char-136");
            assert_eq!(ours, &runcs, "runrs and runc differ");
            continue;
        }
        assert_eq!(ours, runcs, "runrs and runc differ");
    }
}
