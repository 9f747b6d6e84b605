//! The runtime-spec 1.2/1.3 fields runc 1.3 honours: time namespace offsets, the process's
//! scheduler, I/O priority and personality, the CPU affinity of `exec`, and the fields runrs
//! refuses rather than ignores. Against a runc older than the one that has a field, the
//! test says it is skipped (runc 1.1 ignores all of them).

use runrs_integration::procfs::status_field;
use runrs_integration::*;
use serde_json::json;

fn report(case: &str, out: &Output) {
    eprintln!(
        "BAD-INPUT | {case} | {:?} | {}",
        out.code,
        out.stderr.trim().replace('\n', " // ")
    );
}

/// `create` of `b` must fail mentioning every needle and leave nothing.
fn create_fails(env: &TestEnv, b: &Bundle, case: &str, needles: &[&str]) {
    let id = env.id();
    let _guard = env.guard(&id);
    let out = env.rt.run(["create", "--bundle", &arg(b.path()), &id]);
    report(case, &out);
    out.fails_with(needles);
    env.assert_no_trace(&id, b);
}

/// Seconds since boot by a clock, as /proc/uptime shows it in the container's time namespace.
fn uptime(text: &str) -> f64 {
    text.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn time_offsets_shift_the_containers_clocks_and_exec_sees_them() {
    if runc_lacks("linux.timeOffsets", (1, 2)) {
        return;
    }
    let env = TestEnv::new("time_offsets");
    let mut b = env.bundle();
    b.namespace("time", None);
    b.set(
        "/linux/timeOffsets",
        // (A negative offset may not take a clock below zero: a guest just booted refuses -1000 s.)
        json!({"boottime": {"secs": 86400}, "monotonic": {"secs": 1000, "nanosecs": 5}}),
    );
    b.sh("cat /proc/uptime; cat /proc/self/timens_offsets; sleep 1000");
    let (id, _guard, init) = env.start_running(&b);
    let host_before = uptime(&std::fs::read_to_string("/proc/uptime").unwrap());
    let exec = env.rt.run(["exec", &id, "cat", "/proc/uptime"]);
    let host_after = uptime(&std::fs::read_to_string("/proc/uptime").unwrap());
    let inside = uptime(&exec.ok().stdout);
    // /proc/uptime is CLOCK_BOOTTIME: a day ahead of the host's, for the exec'd process too.
    assert!(
        inside >= host_before + 86400.0 - 1.0 && inside <= host_after + 86400.0 + 1.0,
        "container uptime {inside}, host {host_before}..{host_after}"
    );
    let ns = std::fs::read_link(format!("/proc/{init}/ns/time")).unwrap();
    let host_ns = std::fs::read_link("/proc/self/ns/time").unwrap();
    assert_ne!(ns, host_ns, "the init is in the host's time namespace");
    let offsets = env
        .rt
        .run(["exec", &id, "cat", "/proc/self/timens_offsets"]);
    let words: Vec<_> = offsets.ok().stdout.split_whitespace().collect::<Vec<_>>();
    assert_eq!(
        words,
        ["monotonic", "1000", "5", "boottime", "86400", "0"],
        "{}",
        offsets.stdout
    );
}

#[test]
fn time_offsets_without_their_namespace_are_refused() {
    if runc_lacks("linux.timeOffsets", (1, 2)) {
        return;
    }
    let env = TestEnv::new("time_offsets_bad");
    let mut b = env.bundle();
    b.set("/linux/timeOffsets", json!({"boottime": {"secs": 1}}));
    create_fails(
        &env,
        &b,
        "timeOffsets without a time namespace",
        &["time namespace offsets specified, but time namespace isn't enabled in the config"],
    );
    b.namespace("time", Some("/proc/self/ns/time"));
    create_fails(
        &env,
        &b,
        "timeOffsets with a time namespace path",
        &["both namespace path and time offsets specified"],
    );
}

#[test]
fn scheduler_policy_and_nice_apply_to_init_and_exec() {
    if runc_lacks("process.scheduler", (1, 2)) {
        return;
    }
    let env = TestEnv::new("scheduler");
    let mut b = env.bundle();
    b.set(
        "/process/scheduler",
        // The spec's flag name (oci-spec 0.10 spells this one otherwise).
        json!({"policy": "SCHED_BATCH", "nice": 7, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}),
    );
    // /proc/PID/stat: field 19 is the nice value, field 41 the policy (3 = SCHED_BATCH).
    let stat = "cut -d' ' -f19,41 /proc/self/stat";
    b.sh(&format!("{stat}; sleep 1000"));
    let (id, _guard, init) = env.start_running(&b);
    let fields = |text: &str| text.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let init_stat = std::fs::read_to_string(format!("/proc/{init}/stat")).unwrap();
    let after_comm = init_stat.rsplit_once(") ").unwrap().1;
    let f = fields(after_comm);
    assert_eq!((f[16].as_str(), f[38].as_str()), ("7", "3"), "{init_stat}");
    let exec = env.rt.run(["exec", &id, "sh", "-c", stat]);
    assert_eq!(exec.ok().stdout.trim(), "7 3");
}

#[test]
fn a_bad_scheduler_is_refused_before_anything_is_made() {
    if runc_lacks("process.scheduler", (1, 2)) {
        return;
    }
    let env = TestEnv::new("scheduler_bad");
    let mut b = env.bundle();
    b.set(
        "/process/scheduler",
        json!({"policy": "SCHED_NOPE", "nice": 1}),
    );
    create_fails(&env, &b, "unknown scheduler policy", &["SCHED_NOPE"]);
    // SCHED_FIFO needs a priority of 1..99: the kernel refuses 0, in the init.
    b.set("/process/scheduler", json!({"policy": "SCHED_FIFO"}));
    create_fails(&env, &b, "SCHED_FIFO priority 0", &["scheduler"]);
    b.set(
        "/process/scheduler",
        json!({"policy": "SCHED_OTHER", "nice": 20}),
    );
    create_fails(&env, &b, "nice 20", &["invalid scheduler.nice: 20"]);
    b.set(
        "/process/scheduler",
        json!({"policy": "SCHED_BATCH", "priority": 5}),
    );
    create_fails(
        &env,
        &b,
        "priority without FIFO/RR",
        &["scheduler.priority can only"],
    );
    b.remove("/process/scheduler");
    b.set(
        "/process/ioPriority",
        json!({"class": "IOPRIO_CLASS_BE", "priority": 8}),
    );
    create_fails(
        &env,
        &b,
        "ioPriority 8",
        &["invalid ioPriority.Priority: 8"],
    );
}

#[test]
fn io_priority_applies_to_the_container() {
    if runc_lacks("process.ioPriority", (1, 2)) {
        return;
    }
    let env = TestEnv::new("ioprio");
    let mut b = env.bundle();
    b.set(
        "/process/ioPriority",
        json!({"class": "IOPRIO_CLASS_BE", "priority": 6}),
    );
    b.sh("ionice -p $$");
    let out = env.run_ok(&b);
    assert!(
        out.trim() == "best-effort: prio 6" || out.trim() == "best-effort: prio 6\n",
        "{out}"
    );
    b.set("/process/ioPriority", json!({"class": "IOPRIO_CLASS_IDLE"}));
    assert_eq!(env.run_ok(&b).trim(), "idle");
}

#[test]
fn personality_linux32_shows_in_uname() {
    if !cfg!(target_arch = "x86_64") || runc_lacks("linux.personality", (1, 2)) {
        return;
    }
    let env = TestEnv::new("personality");
    let mut b = env.bundle();
    b.set("/linux/personality", json!({"domain": "LINUX32"}));
    b.sh("uname -m");
    assert_eq!(env.run_ok(&b).trim(), "i686");
    b.set("/linux/personality", json!({"domain": "LINUX"}));
    assert_eq!(env.run_ok(&b).trim(), "x86_64");
}

#[test]
fn memory_policy_binds_the_containers_memory() {
    if runc_lacks("linux.memoryPolicy", (1, 4)) {
        return;
    }
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        eprintln!("skipped: this kernel has no NUMA (CONFIG_NUMA)");
        return;
    }
    let env = TestEnv::new("mempolicy");
    let mut b = env.bundle();
    b.set(
        "/linux/memoryPolicy",
        json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
    );
    // numa_maps shows the policy of each mapping: the task's, for the binary's.
    b.sh("head -n1 /proc/self/numa_maps");
    let out = env.run_ok(&b);
    assert!(out.contains(" bind=static:0 "), "{out}");
    // A node that does not exist: the kernel refuses, in the init; nothing is left.
    b.set(
        "/linux/memoryPolicy",
        json!({"mode": "MPOL_BIND", "nodes": "63"}),
    );
    create_fails(
        &env,
        &b,
        "memoryPolicy on a missing node",
        &["memoryPolicy"],
    );
}

fn cpus(text: &str) -> String {
    status_field(text, "Cpus_allowed_list")
        .unwrap_or_default()
        .to_owned()
}

fn online_cpus() -> String {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn exec_cpu_affinity_initial_and_final() {
    if runc_lacks("process.execCPUAffinity", (1, 3)) {
        return;
    }
    if online_cpus() == "0" {
        eprintln!("skipped: one CPU only, no affinity to choose");
        return;
    }
    let env = TestEnv::new("exec_affinity");
    let mut b = env.bundle();
    b.set("/process/execCPUAffinity", json!({"final": "1"}));
    b.sh("grep Cpus_allowed_list /proc/self/status; sleep 1000");
    let (id, _guard, _init) = env.start_running(&b);
    let status = "grep Cpus_allowed_list /proc/self/status";
    let exec = env.rt.run(["exec", &id, "sh", "-c", status]);
    assert_eq!(cpus(&exec.ok().stdout), "1", "final applies to exec");
    // A process.json of its own wins over the container's.
    let p = env.path("process.json");
    let process = json!({"args": ["sh", "-c", status], "cwd": "/", "env": ["PATH=/bin"],
                         "execCPUAffinity": {"initial": "0", "final": "0"}});
    std::fs::write(&p, process.to_string()).unwrap();
    let exec = env.rt.run(["exec", "-p", &arg(&p), &id]);
    assert_eq!(cpus(&exec.ok().stdout), "0");
}

#[test]
fn affinity_of_the_caller_is_not_inherited() {
    if runc_lacks("CPU affinity reset", (1, 3)) || online_cpus() == "0" {
        return;
    }
    let env = TestEnv::new("affinity_reset");
    let mut b = env.bundle();
    b.sh("grep Cpus_allowed_list /proc/self/status; sleep 1000");
    // The runtime pinned to CPU 0 (a pinned shim, `taskset`): the container gets them all.
    let rt_path = arg(&env.rt.bin);
    let id = env.id();
    let mut guard = env.guard(&id);
    let root = arg(&env.rt.root);
    let run = |args: &[&str]| {
        std::process::Command::new("taskset")
            .args(["-c", "0", &rt_path, "--root", &root])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run taskset")
    };
    // The container's stdio: not the pipes `output` waits on.
    let created = std::process::Command::new("taskset")
        .args(["-c", "0", &rt_path, "--root", &root, "create", "--bundle"])
        .args([&arg(b.path()), &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run taskset");
    assert!(created.success(), "create failed");
    let init = env.rt.state(&id)["pid"].as_i64().unwrap() as i32;
    guard.record(init);
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    assert_eq!(
        cpus(&status),
        online_cpus(),
        "the init kept the runtime's CPU"
    );
    let out = run(&[
        "exec",
        &id,
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(cpus(&String::from_utf8_lossy(&out.stdout)), online_cpus());
}

/// `create` runs its init on another CPU than its own until GO (so that the two work side by
/// side); what the container's set-up shows has the runtime's CPUs all the same: a
/// createContainer hook (run by the init after GO) and the container's process.
#[test]
fn the_inits_set_up_has_the_runtimes_cpus() {
    if online_cpus() == "0" {
        eprintln!("skipped: one CPU only");
        return;
    }
    let ours = cpus(&std::fs::read_to_string("/proc/self/status").unwrap());
    let env = TestEnv::new("init_cpus");
    let mut b = env.bundle();
    let out = env.path("hook.status");
    let record = format!("cat /proc/self/status > {}", arg(&out));
    b.hook("createContainer", &["/bin/sh", "-c", &record], None);
    b.set_args(&["grep", "Cpus_allowed_list", "/proc/self/status"]);
    let id = env.id();
    let _g = env.guard(&id);
    let run = env.rt.run(["run", "--bundle", &arg(b.path()), &id]);
    assert_eq!(
        cpus(&run.ok().stdout),
        online_cpus(),
        "the container's process"
    );
    let hook = std::fs::read_to_string(&out).expect("the createContainer hook ran");
    assert_eq!(cpus(&hook), ours, "the createContainer hook");
}

/// Whether a resctrl filesystem is mounted (Intel RDT or AMD PQoS hardware): neither this
/// VM nor qemu's emulated CPUs have one.
fn resctrl_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| m.contains(" - resctrl "))
}

#[test]
fn intel_rdt_without_resctrl_is_refused_with_runcs_words() {
    if resctrl_mounted() {
        eprintln!("skipped: resctrl is mounted here");
        return;
    }
    let env = TestEnv::new("intel_rdt");
    let mut b = env.bundle();
    b.set("/linux/intelRdt", json!({"l3CacheSchema": "L3:0=f"}));
    // runc 1.1: "... but Intel RDT is not supported or enabled"; 1.3: "intelRdt.l3CacheSchema
    // is specified in config, but Intel RDT/CAT is not enabled"; 1.4 and runrs: "intelRdt is
    // specified in config, but Intel RDT is not enabled".
    create_fails(
        &env,
        &b,
        "intelRdt l3",
        &["intelRdt", "Intel RDT", "enabled"],
    );
    if !is_runc() {
        // A closID alone: runc 1.3 goes on without the group, runc 1.4 refuses as runrs does.
        b.set("/linux/intelRdt", json!({"closID": "gold"}));
        create_fails(
            &env,
            &b,
            "intelRdt closID",
            &["intelRdt is specified in config, but Intel RDT is not enabled"],
        );
    }
}

/// A veth pair on the host (its peer keeps it alive until the container's namespace goes),
/// removed with whatever is left of it when dropped.
struct Veth(String, String);

impl Veth {
    fn new(tag: &str) -> Veth {
        let n = std::process::id() % 100_000;
        let v = Veth(format!("rr{tag}{n}a"), format!("rr{tag}{n}b"));
        let ip = |args: &[&str]| {
            let ok = std::process::Command::new("ip")
                .args(args)
                .status()
                .unwrap()
                .success();
            assert!(ok, "ip {args:?}");
        };
        ip(&["link", "add", &v.0, "type", "veth", "peer", "name", &v.1]);
        ip(&["addr", "add", "10.77.3.5/24", "dev", &v.0]);
        ip(&["-6", "addr", "add", "fd00:77::5/64", "dev", &v.0, "nodad"]);
        ip(&["link", "set", &v.0, "up"]);
        v
    }

    fn on_host(name: &str) -> bool {
        std::path::Path::new("/sys/class/net").join(name).exists()
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for n in [&self.0, &self.1] {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", n])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

#[test]
fn net_devices_move_into_the_container_with_their_addresses() {
    if runc_lacks("linux.netDevices", (1, 4)) {
        return;
    }
    let env = TestEnv::new("netdevices");
    let veth = Veth::new("n");
    let mut b = env.bundle();
    b.set(
        "/linux/netDevices",
        json!({veth.0.clone(): {"name": "eth7"}}),
    );
    b.sh("ip addr show eth7");
    let out = env.run_ok(&b);
    assert_contains(&out, "inet 10.77.3.5/24");
    assert_contains(&out, "inet6 fd00:77::5/64");
    assert!(lines(&out)[0].contains(",UP"), "eth7 is not up: {out}");
    // The namespace is gone with the container: a virtual device with it (its peer too).
    wait_until(
        "the veth went with the namespace",
        std::time::Duration::from_secs(30),
        || !Veth::on_host(&veth.0) && !Veth::on_host(&veth.1),
    );
}

#[test]
fn net_devices_that_cannot_move_are_refused() {
    if runc_lacks("linux.netDevices", (1, 4)) {
        return;
    }
    let env = TestEnv::new("netdevices_bad");
    let veth = Veth::new("m");
    let mut b = env.bundle();
    b.set("/linux/netDevices", json!({"rrnosuchdev0": {}}));
    create_fails(
        &env,
        &b,
        "a device the host lacks",
        &["link not found", "rrnosuchdev0"],
    );
    b.set(
        "/linux/netDevices",
        json!({veth.0.clone(): {"name": "a/b"}}),
    );
    create_fails(&env, &b, "a bad name", &["invalid network device name"]);
    b.set("/linux/netDevices", json!({veth.0.clone(): {}}));
    b.without_namespace("network");
    create_fails(
        &env,
        &b,
        "no network namespace",
        &["unable to move network devices without a NET namespace"],
    );
    // None of that moved it.
    assert!(Veth::on_host(&veth.0));
}

/// A directory for idmapped mounts: `f` owned by 1000, `sub` by 2000, itself writable by all.
fn idmap_source(env: &TestEnv) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = env.path("idmapped");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.join("f"), "").unwrap();
    std::os::unix::fs::chown(dir.join("f"), Some(1000), Some(1000)).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::os::unix::fs::chown(dir.join("sub"), Some(2000), Some(2000)).unwrap();
    dir
}

fn owners(ls_ln: &str) -> Vec<String> {
    lines(ls_ln)
        .iter()
        .filter(|l| !l.starts_with("total"))
        .map(|l| {
            let f: Vec<_> = l.split_whitespace().collect();
            format!("{} {}:{}", f[8], f[2], f[3])
        })
        .collect()
}

#[test]
fn idmapped_bind_mount_maps_owners_both_ways() {
    if runc_lacks("idmapped mounts", (1, 2)) {
        return;
    }
    let env = TestEnv::new("idmap");
    let src = idmap_source(&env);
    let mut b = env.bundle();
    // On-disk 1000 is the container's 0 and the other way round; 2000 is not mapped.
    let map = json!([{"containerID": 1000, "hostID": 0, "size": 1},
                     {"containerID": 0, "hostID": 1000, "size": 1}]);
    b.push(
        "/mounts",
        json!({"destination": "/m", "source": arg(&src), "options": ["bind"],
               "uidMappings": map, "gidMappings": map}),
    );
    b.sh("ls -ln /m; touch /m/new");
    let out = env.run_ok(&b);
    assert_eq!(owners(&out), ["f 0:0", "sub 65534:65534"], "{out}");
    // What the container's root wrote is owned by 1000 on the disk.
    let meta = std::fs::metadata(src.join("new")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
    // The host's own view is unchanged.
    assert_eq!(std::fs::metadata(src.join("f")).unwrap().uid(), 1000);
}

#[test]
fn idmap_option_uses_the_containers_user_namespace() {
    if runc_lacks("idmapped mounts", (1, 2)) {
        return;
    }
    let env = TestEnv::new("idmap_userns");
    let src = idmap_source(&env);
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let mut b = env.bundle();
    b.namespace("user", None);
    b.set("/linux/uidMappings", map.clone());
    b.set("/linux/gidMappings", map);
    // The mount points exist: the container's root may not create them in a rootfs of the host's root.
    for dir in ["plain", "m"] {
        std::fs::create_dir(b.rootfs().join(dir)).unwrap();
    }
    b.mount("/plain", "bind", &arg(&src), &["bind"]);
    b.mount("/m", "bind", &arg(&src), &["bind", "idmap"]);
    b.sh("ls -ln /plain; ls -ln /m");
    let out = env.run_ok(&b);
    // Unmapped in the container's namespace without the idmap; as on the disk with it.
    assert_eq!(
        owners(&out),
        [
            "f 65534:65534",
            "sub 65534:65534",
            "f 1000:1000",
            "sub 2000:2000"
        ],
        "{out}"
    );
}

#[test]
fn ridmap_maps_the_mounts_under_the_source_too() {
    if runc_lacks("idmapped mounts", (1, 2)) {
        return;
    }
    let env = TestEnv::new("ridmap");
    let src = idmap_source(&env);
    // A tmpfs under the source, owned by 1000 (tmpfs has idmapped mounts since Linux 6.3).
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "uid=1000,gid=1000", "tmpfs"])
        .arg(src.join("sub"))
        .status()
        .unwrap();
    assert!(status.success());
    let map = json!([{"containerID": 1000, "hostID": 0, "size": 1}]);
    let mut b = env.bundle();
    for (dest, opts) in [("/r", ["rbind", "ridmap"]), ("/n", ["rbind", "idmap"])] {
        b.push(
            "/mounts",
            json!({"destination": dest, "source": arg(&src), "options": opts,
                   "uidMappings": map, "gidMappings": map}),
        );
    }
    b.sh("stat -c '%n %u' /r/sub /n/sub");
    let out = env.run_ok(&b);
    // idmap alone maps only the top mount: the tmpfs under it shows its owner as is.
    assert_eq!(lines(&out), ["/r/sub 0", "/n/sub 1000"], "{out}");
}

#[test]
fn idmapped_mounts_that_cannot_be_are_refused() {
    if runc_lacks("idmapped mounts", (1, 2)) {
        return;
    }
    let env = TestEnv::new("idmap_bad");
    let map = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    let mut b = env.bundle();
    b.push(
        "/mounts",
        json!({"destination": "/m", "type": "tmpfs", "source": "tmpfs",
               "uidMappings": map, "gidMappings": map}),
    );
    create_fails(
        &env,
        &b,
        "idmapped tmpfs",
        &["only supported for bind-mounts"],
    );
    let mut b = env.bundle();
    b.mount("/m", "bind", "/tmp", &["bind", "idmap"]);
    create_fails(
        &env,
        &b,
        "idmap without mappings",
        &["uid and gid mappings"],
    );
    // procfs has no idmapped mounts: the kernel's refusal, named.
    let mut b = env.bundle();
    b.push(
        "/mounts",
        json!({"destination": "/m", "source": "/proc/self", "options": ["rbind"],
               "uidMappings": map, "gidMappings": map}),
    );
    create_fails(&env, &b, "idmapped procfs", &["/proc/self"]);
}

#[test]
fn tmpcopyup_starts_the_tmpfs_with_the_images_files() {
    let env = TestEnv::new("tmpcopyup");
    let mut b = env.bundle();
    let data = b.rootfs().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/file"), "from the image\n").unwrap();
    std::os::unix::fs::chown(data.join("sub/file"), Some(1000), Some(1000)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        data.join("sub/file"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", data.join("link")).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o711)).unwrap();
    b.mount("/data", "tmpfs", "tmpfs", &["tmpcopyup"]);
    b.sh(
        "cat /data/sub/file; stat -c '%a %u:%g' /data/sub/file /data; readlink /data/link; \
         grep ' /data ' /proc/self/mountinfo | grep -c tmpfs; echo new > /data/new; cat /data/new",
    );
    let out = env.run_ok(&b);
    assert_eq!(
        lines(&out),
        // The tmpfs's root takes the directory's mode over `mode=` (runc's copy does).
        [
            "from the image",
            "4755 1000:1000",
            "711 0:0",
            "/etc/passwd",
            "1",
            "new"
        ],
        "{out}"
    );
    // Writes went to the tmpfs, not the image.
    assert!(!data.join("new").exists());
}

/// The runc 1.3+ on this machine (the Debian testing guest has 1.3.6), if any.
fn runc_1_3() -> Option<std::path::PathBuf> {
    let runc = std::path::PathBuf::from("/usr/sbin/runc");
    let out = std::process::Command::new(&runc)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text.lines().next()?.split_whitespace().nth(2)?.to_owned();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next()?, parts.next()?);
    ((major, minor) >= (1, 3)).then_some(runc)
}

#[test]
fn features_list_what_runc_1_3_lists_where_both_support_it() {
    let Some(runc) = runc_1_3() else {
        eprintln!("skipped: no runc 1.3+ here to compare `features` with");
        return;
    };
    let env = TestEnv::new("features_vs_runc");
    let ours = env.rt.run(["features"]).ok().json();
    let theirs = env.rt.with_bin(runc).run(["features"]).ok().json();
    for pointer in [
        "/hooks",
        "/mountOptions",
        "/linux/namespaces",
        "/linux/mountExtensions",
        "/linux/seccomp/actions",
        "/linux/seccomp/operators",
        "/linux/cgroup/v1",
        "/linux/cgroup/v2",
        "/linux/cgroup/systemd",
        "/linux/intelRdt/enabled",
    ] {
        assert_eq!(ours.pointer(pointer), theirs.pointer(pointer), "{pointer}");
    }
    // Seccomp flags: runc 1.3's three (in its order), and the kernel's newer
    // SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, which runrs applies and runc 1.3 does not know.
    let flags = |v: &serde_json::Value| -> Vec<String> {
        let mut f: Vec<String> = v["linux"]["seccomp"]["knownFlags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .filter(|f| f != "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
            .collect();
        f.sort();
        f
    };
    assert_eq!(flags(&ours), flags(&theirs));
    // Capabilities: runc lists those its Go library knows; runrs the kernel's.
    let caps = |v: &serde_json::Value| -> Vec<String> {
        v["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    };
    let ours_caps = caps(&ours);
    for cap in caps(&theirs) {
        assert!(ours_caps.contains(&cap), "runrs lacks {cap}");
    }
}

/// The pid a pidfd refers to, from its fdinfo.
fn pidfd_pid(fd: &std::os::fd::OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    status_field(&info, "Pid").unwrap().parse().unwrap()
}

#[test]
fn pidfd_socket_receives_the_init_and_an_exec() {
    if runc_lacks("--pidfd-socket", (1, 2)) {
        return;
    }
    let env = TestEnv::new("pidfd_socket");
    // A socket nobody listens on: create fails before it makes anything.
    let gone = env.path("nobody.sock");
    let mut b = env.bundle();
    b.sh("true");
    let id = env.id();
    let guard = env.guard(&id);
    let out = env.rt.run([
        "create",
        "--pidfd-socket",
        &arg(&gone),
        "--bundle",
        &arg(b.path()),
        &id,
    ]);
    report("pidfd socket missing", &out);
    out.fails_with(&["nobody.sock"]);
    // runc 1.3.6 leaves the container's state directory behind here (its guard removes it).
    if !is_runc() {
        env.assert_no_trace(&id, &b);
    }
    drop(guard);
    let mut b = env.bundle();
    b.sh("sleep 1000");
    let sock = ConsoleSocket::bind(&env.path("pidfd.sock"));
    let id = env.id();
    let mut guard = env.guard(&id);
    let sock_arg = arg(sock.path());
    env.rt
        .run([
            "create",
            "--pidfd-socket",
            &sock_arg,
            "--bundle",
            &arg(b.path()),
            &id,
        ])
        .ok();
    let pidfd = sock.receive_master(std::time::Duration::from_secs(30));
    let init = env.rt.state(&id)["pid"].as_i64().unwrap() as i32;
    guard.record(init);
    assert_eq!(pidfd_pid(&pidfd), init);
    env.rt.run(["start", &id]).ok();
    let pid_file = env.path("exec.pid");
    env.rt
        .run([
            "exec",
            "-d",
            "--pidfd-socket",
            &sock_arg,
            "--pid-file",
            &arg(&pid_file),
            &id,
            "sleep",
            "1000",
        ])
        .ok();
    let pidfd = sock.receive_master(std::time::Duration::from_secs(30));
    let exec_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pidfd_pid(&pidfd), exec_pid);
}

#[test]
fn a_tmpfs_over_a_directory_takes_its_mode_unless_it_has_its_own() {
    if runc_lacks("the tmpfs mode of runc 1.1.15+", (1, 2)) {
        return;
    }
    let env = TestEnv::new("tmpfs_mode");
    let mut b = env.bundle();
    use std::os::unix::fs::PermissionsExt;
    for dir in ["a", "b"] {
        std::fs::create_dir(b.rootfs().join(dir)).unwrap();
        std::fs::set_permissions(b.rootfs().join(dir), std::fs::Permissions::from_mode(0o710))
            .unwrap();
    }
    b.mount("/a", "tmpfs", "tmpfs", &[]);
    b.mount("/b", "tmpfs", "tmpfs", &["mode=0750"]);
    b.mount("/new", "tmpfs", "tmpfs", &[]);
    b.sh("stat -c '%a' /a /b /new");
    // A directory the image did not have gets the tmpfs's own default.
    assert_eq!(lines(&env.run_ok(&b)), ["710", "750", "1777"]);
}
