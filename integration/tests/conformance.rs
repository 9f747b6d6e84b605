//! Behaviours where runrs must do what runc does, found by running both side by side
//! (issue 13). Every test here passes against runrs and against runc
//! (`RUNRS_TEST_RUNTIME=/usr/sbin/runc`); where runc's versions differ, the test says which
//! one it follows.

use runrs_integration::procfs::pure_cgroup_v2;
use runrs_integration::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A cgroup the test makes on the host before the container's create, removed (thawed,
/// emptied, deepest first) when dropped. Its name holds `runrs` so that `hack/leftovers`
/// sees one left behind.
struct HostCgroup {
    dirs: Vec<PathBuf>,
}

impl HostCgroup {
    /// `rel` (e.g. `runrs-it-x/ctr`) under the root of the hierarchy of `controller` (the
    /// unified one on a pure v2 host, whatever the controller).
    fn new(controller: &str, rel: &str) -> HostCgroup {
        let dir = hierarchy_root(controller).join(rel);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let mut dirs = vec![dir.clone()];
        let mut d = dir.parent();
        while let Some(p) = d {
            if p == hierarchy_root(controller) {
                break;
            }
            dirs.push(p.to_path_buf());
            d = p.parent();
        }
        HostCgroup { dirs }
    }

    fn dir(&self) -> &Path {
        &self.dirs[0]
    }

    fn write(&self, file: &str, value: &str) {
        std::fs::write(self.dir().join(file), value)
            .unwrap_or_else(|e| panic!("write {value} to {}/{file}: {e}", self.dir().display()));
    }
}

impl Drop for HostCgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            for (file, value) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
                let _ = std::fs::write(d.join(file), value);
            }
        }
        for d in &self.dirs {
            remove_cgroup_tree(d);
        }
    }
}

/// Removes `/<name>` and what is below it from every hierarchy when dropped: the levels
/// above a container's own cgroup stay after `delete` (with runc too).
struct CgroupTopLevel(String);

impl Drop for CgroupTopLevel {
    fn drop(&mut self) {
        let roots = if pure_cgroup_v2() {
            vec![PathBuf::from("/sys/fs/cgroup")]
        } else {
            let hierarchies = std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten();
            hierarchies.flatten().map(|e| e.path()).collect()
        };
        for root in roots {
            let dir = root.join(&self.0);
            if dir.is_dir() {
                remove_cgroup_tree(&dir);
            }
        }
    }
}

/// rmdir `dir` and everything below it (a runtime may have made children), deepest first.
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = wait_for(Duration::from_secs(5), || {
        std::fs::remove_dir(dir).is_ok() || !dir.exists()
    });
}

/// Where the hierarchy carrying `controller` is mounted (`/sys/fs/cgroup` on pure v2).
fn hierarchy_root(controller: &str) -> PathBuf {
    if pure_cgroup_v2() {
        return PathBuf::from("/sys/fs/cgroup");
    }
    let root = PathBuf::from("/sys/fs/cgroup").join(controller);
    if root.exists() {
        return root;
    }
    // A co-mount (`cpu,cpuacct`): find the hierarchy by its controller list.
    std::fs::read_dir("/sys/fs/cgroup")
        .expect("read /sys/fs/cgroup")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.split(',').any(|c| c == controller))
        })
        .unwrap_or_else(|| panic!("no {controller} cgroup hierarchy mounted"))
}

fn bundle_arg(b: &Bundle) -> String {
    arg(b.path())
}

// --- 1. a pre-existing cgroup: frozen is refused, non-empty is refused (runc ≥ 1.2) ---

/// runc 1.1.5 refuses a frozen pre-existing cgroup at once ("container's cgroup unexpectedly
/// frozen"); a runtime that does not check hangs forever, its init stopped in the freezer.
#[test]
fn create_into_a_frozen_cgroup_is_refused_at_once() {
    let env = TestEnv::new("conf_frozen");
    let name = format!("runrs-it-frozen-{}", std::process::id());
    let cg = HostCgroup::new("freezer", &name);
    if pure_cgroup_v2() {
        cg.write("cgroup.freeze", "1");
    } else {
        cg.write("freezer.state", "FROZEN");
    }
    let mut b = env.bundle();
    b.set("/linux/cgroupsPath", json!(format!("/{name}")));
    b.set_args(&["true"]);
    for cmd in ["create", "run"] {
        let id = env.id();
        let _g = env.guard(&id);
        let out = env
            .rt
            .cmd([cmd, "--bundle", &bundle_arg(&b), &id])
            .timeout(Duration::from_secs(20))
            .run();
        out.fails_with(&["container's cgroup unexpectedly frozen"]);
        assert!(env.rt_root_entries().is_empty(), "{cmd} left its state");
        assert!(
            procfs::processes_with_env(&b.mark()).is_empty(),
            "{cmd} left a process"
        );
    }
    assert!(cg.dir().exists(), "the pre-existing cgroup was removed");
}

/// A pre-existing cgroup with a process in it: runc 1.1 warns "container's cgroup is not
/// empty: N process(es) found" and goes on; runc 1.2 and later refuse with those words,
/// and so does runrs (two containers in one cgroup share limits, freezes and `kill --all`).
#[test]
fn create_into_a_cgroup_with_processes_says_it_is_not_empty() {
    let env = TestEnv::new("conf_nonempty");
    let name = format!("runrs-it-nonempty-{}", std::process::id());
    let mut b = env.bundle();
    b.set("/linux/cgroupsPath", json!(format!("/{name}")));
    b.set_args(&["sleep", "1000"]);
    let first = env.id();
    let mut g1 = env.guard(&first);
    env.create_start(&b, &first);
    g1.record(env.rt.state(&first)["pid"].as_i64().unwrap() as i32);
    let second = env.id();
    let _g2 = env.guard(&second);
    let out = env.rt.run(["create", "--bundle", &bundle_arg(&b), &second]);
    assert_contains(
        &out.stderr,
        "container's cgroup is not empty: 1 process(es) found",
    );
    if !is_runc() {
        out.fails_with(&["container's cgroup is not empty"]);
        assert_eq!(env.rt_root_entries(), vec![first.clone()]);
        assert_eq!(env.rt.status(&first).as_deref(), Some("running"));
    }
}

// --- 2. /proc and /sys must be ordinary directories (CVE-2019-16884, CVE-2019-19921) ---

/// A rootfs whose `/proc` (or `/sys`) is a symlink: runc refuses it, "filesystem \"proc\"
/// must be mounted on ordinary directory"; mounting through the link would leave the masked
/// and read-only paths on a directory that is not the container's procfs. So is a file.
#[test]
fn proc_or_sys_as_a_symlink_or_file_is_refused() {
    let env = TestEnv::new("conf_procsym");
    let target = format!("/runrs-it-procsym-{}", std::process::id());
    for (dir, typ, symlink) in [
        ("proc", "proc", true),
        ("sys", "sysfs", true),
        ("proc", "proc", false),
    ] {
        let b = env.bundle();
        let path = b.host_path(dir);
        std::fs::remove_dir(&path).unwrap();
        if symlink {
            std::os::unix::fs::symlink(&target, &path).unwrap();
        } else {
            std::fs::write(&path, "").unwrap();
        }
        let id = env.id();
        let _g = env.guard(&id);
        let out = env.rt.run(["run", "--bundle", &bundle_arg(&b), &id]);
        // runc's log quotes the message: `filesystem \"proc\" must be ...`.
        out.fails_with(&["filesystem", typ, "must be mounted on ordinary directory"]);
        drop(_g);
        env.assert_no_trace(&id, &b);
        assert!(!Path::new(&target).exists(), "{target} made on the host");
        assert!(
            !b.host_path(&target).exists(),
            "{target} made in the rootfs"
        );
    }
}

// --- 3. cgroup v1 cpuset: every level gets its parent's cpus and mems ---

/// A pod-style `cgroupsPath` whose intermediate levels exist already with an empty cpuset
/// (made by `mkdir`, as a kubelet or an older runtime leaves them): runc copies
/// `cpuset.cpus`/`cpuset.mems` down from the parent into every empty level; without that
/// joining the container's cpuset fails with "No space left on device".
#[test]
fn intermediate_cpuset_cgroups_get_the_parents_cpus_and_mems() {
    if pure_cgroup_v2() {
        eprintln!("skipping: cpuset inheritance is a cgroup v1 rule");
        return;
    }
    let env = TestEnv::new("conf_cpuset");
    let top = format!("runrs-it-kubepods-{}", std::process::id());
    let _cleanup = CgroupTopLevel(top.clone());
    let pod = HostCgroup::new("cpuset", &format!("{top}/pod1"));
    assert_eq!(read_trim(&pod.dir().join("cpuset.cpus")), "");
    let root_cpus = read_trim(&hierarchy_root("cpuset").join("cpuset.cpus"));
    let root_mems = read_trim(&hierarchy_root("cpuset").join("cpuset.mems"));
    let mut b = env.bundle();
    b.set("/linux/cgroupsPath", json!(format!("/{top}/pod1/ctr")));
    b.set_args(&["cat", "/proc/self/cgroup"]);
    let out = env.run_bundle(&b);
    out.ok();
    assert_contains(&out.stdout, &format!(":cpuset:/{top}/pod1/ctr"));
    for dir in [pod.dir(), &hierarchy_root("cpuset").join(&top)] {
        assert_eq!(read_trim(&dir.join("cpuset.cpus")), root_cpus, "{dir:?}");
        assert_eq!(read_trim(&dir.join("cpuset.mems")), root_mems, "{dir:?}");
    }
    // And with the container's own cpus: set on its level, the parents keep theirs.
    let first = root_cpus.split([',', '-']).next().unwrap().to_string();
    b.set(
        "/linux/resources/cpu",
        json!({"cpus": first, "mems": root_mems}),
    );
    b.set_args(&["cat", "/sys/fs/cgroup/cpuset/cpuset.cpus"]);
    let out = env.run_bundle(&b);
    assert_eq!(out.ok().stdout.trim(), first);
    assert_eq!(read_trim(&pod.dir().join("cpuset.cpus")), root_cpus);
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

// --- 4. update: memory and swap written in an order the kernel accepts ---

/// `update --memory -1` after a swap limit: runc lifts both (an unlimited memory without a
/// swap value means unlimited swap too) and writes swap first; writing the memory limit
/// first, or keeping the old swap limit, is refused by the kernel (EINVAL: memsw < memory).
#[test]
fn update_memory_unlimited_after_a_swap_limit() {
    let v2 = pure_cgroup_v2();
    let (limit_file, swap_file, unlimited) = if v2 {
        ("memory.max", "memory.swap.max", "max")
    } else {
        (
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "9223372036854771712",
        )
    };
    if !v2 && !hierarchy_root("memory").join(swap_file).exists() {
        eprintln!("skipping: no swap accounting in this kernel");
        return;
    }
    let env = TestEnv::new("conf_memswap");
    let name = format!("runrs-it-memswap-{}", std::process::id());
    let _cleanup = CgroupTopLevel(name.clone());
    let dir = hierarchy_root("memory").join(&name);
    let mut b = env.bundle();
    b.set("/linux/cgroupsPath", json!(format!("/{name}")));
    b.set_args(&["sleep", "1000"]);
    let id = env.id();
    let _g = env.guard(&id);
    env.create_start(&b, &id);
    env.rt
        .run(["update", "--memory", "32m", "--memory-swap", "64m", &id])
        .ok();
    assert_eq!(read_trim(&dir.join(limit_file)), (32 << 20).to_string());
    env.rt.run(["update", "--memory", "-1", &id]).ok();
    assert_eq!(read_trim(&dir.join(limit_file)), unlimited);
    assert_eq!(read_trim(&dir.join(swap_file)), unlimited);
    // And back down: a limit under the (now unlimited) swap is written as it is.
    env.rt.run(["update", "--memory", "16m", &id]).ok();
    assert_eq!(read_trim(&dir.join(limit_file)), (16 << 20).to_string());
}

// --- 5. seccomp profiles naming other architectures ---

/// Multi-arch profiles (Docker's, containerd's) list `SCMP_ARCH_ARM`, `SCMP_ARCH_AARCH64`,
/// beside the host's: runc accepts them and filters what can run here. (libseccomp refuses
/// to mix byte orders in one filter, "numerical argument out of domain"; runrs does not, a
/// difference kept: only the native architecture is filtered.)
#[test]
fn seccomp_profile_naming_other_architectures_is_accepted_and_enforced() {
    let env = TestEnv::new("conf_seccomp_arch");
    let mut b = env.bundle();
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": [
                "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM",
            ],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ]
        }),
    );
    b.sh("mkdir /tmp/d 2>&1; echo done");
    let out = env.run_bundle(&b);
    out.ok();
    assert_contains(&out.stdout, "Operation not permitted");
    assert_contains(&out.stdout, "done");
    assert!(!b.host_path("/tmp/d").exists(), "mkdir was not filtered");
}

// --- 6. configs without a mount namespace ---

/// The bundle's config without a mount namespace and with nothing that would have to be
/// mounted (no mounts, masks, read-only root or devices).
fn without_mount_namespace(b: &mut Bundle) {
    b.without_namespace("mount");
    b.set("/mounts", json!([]));
    b.remove("/linux/maskedPaths");
    b.remove("/linux/readonlyPaths");
    std::fs::write(b.host_path("/marker"), "in the rootfs\n").unwrap();
}

/// Whether `path` is on a filesystem mounted nodev (device nodes cannot be opened there).
fn on_nodev(path: &std::path::Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a zeroed statvfs is a valid value of the plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs fills the struct we pass for a NUL-terminated path.
    let ok = unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0;
    ok && st.f_flag & libc::ST_NODEV != 0
}

/// The mounts a runtime without a mount namespace could change in the one it shares: `/`
/// (its propagation: rslave) and anything under the test's dir (a bound rootfs). The rest
/// of the table is the host's, which changes on its own (systemd mounting credentials).
fn what_a_container_could_change(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            let point = l.split(' ').nth(4).unwrap_or("");
            point == "/" || point.starts_with(&dir)
        })
        .map(str::to_owned)
        .collect()
}

/// runc with a config that has no mount namespace mounts in the namespace it runs in and
/// makes its `/` rslave: run it inside a mount namespace of its own, never the host's.
fn runtime_for_no_mount_namespace(env: &TestEnv) -> Runtime {
    if !is_runc() {
        return env.rt.clone();
    }
    let wrapper = env.path("runtime-in-own-mntns");
    let script = format!(
        "#!/bin/sh\nexec unshare --mount -- {} \"$@\"\n",
        env.rt.bin.display()
    );
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    env.rt.with_bin(wrapper)
}

/// The runtime-spec allows a container without a mount namespace; runc runs it chrooted
/// into its rootfs. runrs does the same, and changes no mount of the namespace it shares.
#[test]
fn a_config_without_a_mount_namespace_runs_chrooted() {
    let env = TestEnv::new("conf_nomntns");
    let rt = runtime_for_no_mount_namespace(&env);
    let mut b = env.bundle();
    without_mount_namespace(&mut b);
    // Neither runtime can mount one: both need a procfs in the rootfs (runc's init reads
    // /proc/self/fd). Made by the test, unmounted with its temp dir.
    mount_proc(&b.host_path("/proc"));
    b.sh("cat /marker; echo $$");
    if is_runc() && on_nodev(&b.rootfs()) {
        // runc reopens /dev/null in the rootfs, which a nodev filesystem refuses (the
        // bundles' /tmp on Debian 13): nothing to compare with there.
        eprintln!("skipped for runc: the rootfs is on a nodev filesystem");
        return;
    }
    let mounts_before = what_a_container_could_change(env.dir());
    let id = env.id();
    let _g = env.guard(&id);
    let out = rt.run(["run", "--bundle", &bundle_arg(&b), &id]);
    assert_eq!(lines(&out.ok().stdout), ["in the rootfs", "1"]);
    if is_runc() {
        return;
    }
    assert_eq!(
        what_a_container_could_change(env.dir()),
        mounts_before,
        "the shared mount table changed"
    );
    // Detached, with an exec: both in the runtime's mount namespace, both in the rootfs.
    b.set_args(&["sleep", "1000"]);
    let id = env.id();
    let mut g = env.guard(&id);
    env.create_start(&b, &id);
    let pid = env.rt.state(&id)["pid"].as_i64().unwrap() as i32;
    g.record(pid);
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).unwrap();
    assert_eq!(ns(&pid.to_string()), ns("self"));
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        b.rootfs()
    );
    let out = env.rt.run(["exec", &id, "cat", "/marker"]);
    assert_eq!(out.ok().stdout, "in the rootfs\n");
}

/// What would have to be mounted without a mount namespace: runc refuses masked and
/// read-only paths ("unable to restrict sys entries without a private MNT namespace"), as
/// runrs does; runc makes `mounts` in the namespace it runs in, where runrs refuses them.
#[test]
fn a_config_without_a_mount_namespace_refuses_masks_like_runc() {
    let env = TestEnv::new("conf_nomntns_masks");
    let rt = runtime_for_no_mount_namespace(&env);
    let mut b = env.bundle();
    without_mount_namespace(&mut b);
    b.set("/linux/maskedPaths", json!(["/proc/kcore"]));
    let id = env.id();
    let _g = env.guard(&id);
    rt.run(["run", "--bundle", &bundle_arg(&b), &id])
        .fails_with(&["unable to restrict sys entries without a private MNT namespace"]);
    env.assert_no_trace(&id, &b);
    if is_runc() {
        return;
    }
    b.remove("/linux/maskedPaths");
    b.mount("/proc", "proc", "proc", &[]);
    env.rt
        .run(["run", "--bundle", &bundle_arg(&b), &id])
        .fails_with(&["mounts need a private mount namespace"]);
    env.assert_no_trace(&id, &b);
}

fn mount_proc(at: &Path) {
    let target = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: NUL-terminated strings that live across the call.
    let rc = unsafe {
        libc::mount(
            c"proc".as_ptr(),
            target.as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "mount proc on {}: {}",
        at.display(),
        std::io::Error::last_os_error()
    );
}

// --- 7. hooks: working directory and environment ---

/// Where each kind of hook runs, as runc 1.1 runs them: the runtime's own hooks (prestart,
/// createRuntime, poststart, poststop) in the directory the runtime runs in (`create` and
/// `run` change into the bundle first; `start` and `delete` stay where they were called),
/// createContainer in the container's rootfs (the init has changed into it before
/// pivot_root), startContainer in the process's cwd inside the container. A hook's `env`
/// is its whole environment; without one it inherits the runtime's.
#[test]
fn hooks_run_in_runcs_directories_with_runcs_environment() {
    let env = TestEnv::new("conf_hooks_cwd");
    let mut b = env.bundle();
    let out = env.path("hooks");
    std::fs::create_dir(&out).unwrap();
    b.set("/process/cwd", json!("/home/user"));
    b.set_args(&["true"]);
    let record = |dir: &str, kind: &str| format!("pwd > {dir}/{kind}.cwd; env > {dir}/{kind}.env");
    let host = arg(&out);
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        b.hook(kind, &["/bin/sh", "-c", &record(&host, kind)], None);
    }
    // Runs inside the container: writes into its /tmp.
    b.hook(
        "startContainer",
        &["/bin/sh", "-c", &record("/tmp", "startContainer")],
        None,
    );
    // No `env`: the runtime's environment (the create below is given a variable of its own).
    b.push(
        "/hooks/prestart",
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!("env > {host}/inherited.env")]}),
    );
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let id = env.id();
    let _g = env.guard(&id);
    let bundle = bundle_arg(&b);
    env.rt
        .cmd(["create", "--bundle", &bundle, &id])
        .current_dir(&elsewhere)
        .env("RUNRS_TEST_HOOK_INHERITS", "the-runtimes-environment")
        .run()
        .ok();
    env.rt
        .cmd(["start", &id])
        .current_dir(&elsewhere)
        .run()
        .ok();
    wait_until("the container to stop", Duration::from_secs(10), || {
        env.rt.status(&id).as_deref() == Some("stopped")
    });
    env.rt
        .cmd(["delete", &id])
        .current_dir(&elsewhere)
        .run()
        .ok();
    let cwd = |kind: &str| read_trim(&out.join(format!("{kind}.cwd")));
    let bundle_dir = b.path().display().to_string();
    assert_eq!(cwd("prestart"), bundle_dir);
    assert_eq!(cwd("createRuntime"), bundle_dir);
    assert_eq!(cwd("createContainer"), b.rootfs().display().to_string());
    // runc 1.1 runs poststart hooks at the end of `create` (so in the bundle), a bug runc
    // 1.2 fixed: they run in `start`, after the process has started, as the spec asks.
    if !is_runc() {
        assert_eq!(cwd("poststart"), elsewhere.display().to_string());
    }
    assert_eq!(cwd("poststop"), elsewhere.display().to_string());
    assert_eq!(
        read_trim(&b.host_path("/tmp/startContainer.cwd")),
        "/home/user"
    );
    for kind in ["prestart", "createContainer", "poststop"] {
        let mut vars: Vec<String> = std::fs::read_to_string(out.join(format!("{kind}.env")))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL=") && !l.starts_with("_="))
            .map(str::to_owned)
            .collect();
        vars.sort();
        assert_eq!(
            vars,
            ["PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_string(), b.mark()],
            "{kind}"
        );
    }
    let inherited = std::fs::read_to_string(out.join("inherited.env")).unwrap();
    assert_contains(
        &inherited,
        "RUNRS_TEST_HOOK_INHERITS=the-runtimes-environment",
    );
}

// --- 8. exec --cgroup ---

/// `exec --cgroup [CONTROLLER[,CONTROLLER]:]PATH`: runc runs the process in an existing
/// sub-cgroup of the container's (runc's own test, "runc exec --cgroup sub-cgroups").
#[test]
fn exec_into_a_sub_cgroup() {
    let env = TestEnv::new("conf_exec_cgroup");
    let name = format!("runrs-it-execcg-{}", std::process::id());
    let _cleanup = CgroupTopLevel(name.clone());
    let mut b = env.bundle();
    b.set("/linux/cgroupsPath", json!(format!("/{name}")));
    b.set_args(&["sleep", "1000"]);
    let id = env.id();
    let mut g = env.guard(&id);
    env.create_start(&b, &id);
    g.record(env.rt.state(&id)["pid"].as_i64().unwrap() as i32);
    let exec = |flags: &[&str], cmd: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.push(&id);
        args.extend_from_slice(cmd);
        env.rt.run(args)
    };
    let cgroups_of = |flags: &[&str]| {
        let out = exec(flags, &["cat", "/proc/self/cgroup"]);
        out.ok().stdout.clone()
    };
    exec(&["--cgroup", ".."], &["true"]).fails_with(&[".. is not a sub cgroup path"]);
    exec(&["--cgroup", "nonexistent"], &["true"]).fails_with(&["no such file"]);
    exec(&["--cgroup", "whaaat:/"], &["true"]).fails_with(&["unknown controller whaaat"]);
    for flags in [&[][..], &["--cgroup", "/"]] {
        for line in lines(&cgroups_of(flags)) {
            assert!(line.ends_with(&format!(":/{name}")), "{flags:?}: {line}");
        }
    }
    // A sub-cgroup in every hierarchy (cpuset's with its parent's cpus and mems).
    for dir in procfs::cgroup_dirs_named(&name) {
        let sub = dir.join("sub");
        std::fs::create_dir(&sub).unwrap();
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if sub.join(f).exists() {
                std::fs::write(sub.join(f), read_trim(&dir.join(f))).unwrap();
            }
        }
    }
    for line in lines(&cgroups_of(&["--cgroup", "sub"])) {
        assert!(line.ends_with(&format!(":/{name}/sub")), "{line}");
    }
    if pure_cgroup_v2() {
        exec(&["--cgroup", "memory:sub"], &["true"]).fails_with(&["unknown controller memory"]);
        return;
    }
    let pids_sub = hierarchy_root("pids").join(&name).join("subpids");
    std::fs::create_dir(&pids_sub).unwrap();
    let out = cgroups_of(&["--cgroup", "memory:sub", "--cgroup", "pids:subpids"]);
    assert_contains(&out, &format!(":memory:/{name}/sub\n"));
    assert_contains(&out, &format!(":pids:/{name}/subpids\n"));
    assert_contains(&out, &format!(":cpuset:/{name}\n"));
    // Two controllers, and freezer has no subpids: that fails, as in runc.
    exec(&["--cgroup", "pids,freezer:subpids"], &["true"]).fails_with(&["no such file"]);
    std::fs::create_dir(hierarchy_root("freezer").join(&name).join("subpids")).unwrap();
    let out = cgroups_of(&["--cgroup", "memory:sub", "--cgroup", "pids,freezer:subpids"]);
    assert_contains(&out, &format!(":freezer:/{name}/subpids\n"));
    exec(&["--cgroup", "a", "--cgroup", "b"], &["true"])
        .fails_with(&["invalid --cgroup argument: a (missing <controller>: prefix)"]);
    // delete removes the sub-cgroups with the container's (runc's RemovePath).
    drop(g);
    assert!(
        procfs::cgroup_dirs_named(&name).is_empty(),
        "left: {:?}",
        procfs::cgroup_dirs_named(&name)
    );
}

// --- 9. AppArmor and SELinux labels ---

fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.starts_with('Y'))
}

/// A loaded AppArmor profile in complain mode (it confines nothing a test does), if any.
fn complain_profile() -> Option<String> {
    let list = std::fs::read_to_string("/sys/kernel/security/apparmor/profiles").ok()?;
    list.lines()
        .find_map(|l| l.strip_suffix(" (complain)"))
        .map(str::to_owned)
}

/// A profile the host cannot enforce fails the create and the exec, as runc fails them
/// ("apparmor failed to apply profile"), instead of running the process unconfined; where
/// AppArmor is enabled, the container's process is confined by the profile.
#[test]
fn apparmor_profile_is_applied_or_the_create_fails() {
    let env = TestEnv::new("conf_apparmor");
    let mut b = env.bundle();
    match (apparmor_enabled(), complain_profile()) {
        (true, Some(profile)) => {
            b.set("/process/apparmorProfile", json!(profile));
            b.set_args(&["cat", "/proc/self/attr/current"]);
            let out = env.run_bundle(&b);
            assert_eq!(out.ok().stdout.trim(), format!("{profile} (complain)"));
        }
        (true, None) => {
            eprintln!("not checking confinement: no AppArmor profile in complain mode loaded")
        }
        (false, _) => {}
    }
    // AppArmor not enabled, or no such profile loaded: both fail.
    b.set(
        "/process/apparmorProfile",
        json!("runrs-it-no-such-profile"),
    );
    b.set_args(&["true"]);
    let id = env.id();
    let _g = env.guard(&id);
    env.rt
        .run(["run", "--bundle", &bundle_arg(&b), &id])
        .fails_with(&["apparmor failed to apply profile"]);
    env.assert_no_trace(&id, &b);
    // exec --apparmor too.
    b.remove("/process/apparmorProfile");
    b.set_args(&["sleep", "1000"]);
    let id = env.id();
    let _g = env.guard(&id);
    env.create_start(&b, &id);
    env.rt
        .run([
            "exec",
            "--apparmor",
            "runrs-it-no-such-profile",
            &id,
            "true",
        ])
        .code(255)
        .fails_with(&["apparmor failed to apply profile"]);
}

/// SELinux labels where SELinux is off: runc refuses them ("selinux label is specified in
/// config, but selinux is disabled or not supported"); so does runrs, which applies none.
#[test]
fn selinux_label_without_selinux_is_refused() {
    if Path::new("/sys/fs/selinux/enforce").exists() {
        eprintln!("skipping: SELinux is enabled here");
        return;
    }
    let env = TestEnv::new("conf_selinux");
    let mut b = env.bundle();
    b.set(
        "/process/selinuxLabel",
        json!("system_u:system_r:container_t:s0"),
    );
    b.set_args(&["true"]);
    let id = env.id();
    let _g = env.guard(&id);
    env.rt
        .run(["run", "--bundle", &bundle_arg(&b), &id])
        .fails_with(&[
            "selinux label is specified in config, but selinux is disabled or not supported",
        ]);
    env.assert_no_trace(&id, &b);
    b.remove("/process/selinuxLabel");
    b.set_args(&["sleep", "1000"]);
    let id = env.id();
    let _g = env.guard(&id);
    env.create_start(&b, &id);
    env.rt
        .run([
            "exec",
            "--process-label",
            "system_u:system_r:container_t:s0",
            &id,
            "true",
        ])
        .code(255)
        .fails_with(&["selinux is disabled or not supported"]);
}

// --- 10. output details scripts parse (found by hack/runc-compare) ---

/// What hack/runc-compare found different and runrs now prints as runc does.
#[test]
fn command_output_details_match_runc() {
    let env = TestEnv::new("conf_outputs");
    let mut b = env.bundle();
    b.set_args(&["sleep", "1000"]);
    let id = env.id();
    let mut g = env.guard(&id);
    env.create_start(&b, &id);
    g.record(env.rt.state(&id)["pid"].as_i64().unwrap() as i32);
    // `state` ends without a newline.
    let state = env.rt.run(["state", &id]);
    assert!(state.ok().stdout.ends_with('}'), "{:?}", state.stdout);
    // `list` names the owner of the state directory.
    let list = env.rt.run(["list", "-f", "json"]);
    assert_eq!(list.ok().json()[0]["owner"], "root");
    // events: the keys in runc's order.
    let events = env.rt.run(["events", "--stats", &id]);
    let start = format!("{{\"type\":\"stats\",\"id\":\"{id}\",\"data\":{{");
    assert!(events.ok().stdout.starts_with(&start), "{}", events.stdout);
    // Any number is a signal for kill(2): 0 probes, the kernel refuses what it does not know.
    env.rt.run(["kill", &id, "0"]).ok();
    env.rt
        .run(["kill", &id, "99"])
        .fails_with(&["unable to signal init: invalid argument"]);
    // exec -p: an absent user is root; cwd and args are required.
    let process = env.path("process.json");
    std::fs::write(
        &process,
        r#"{"args": ["id", "-u"], "cwd": "/", "env": ["PATH=/bin"]}"#,
    )
    .unwrap();
    let out = env.rt.run(["exec", "-p", &arg(&process), &id]);
    assert_eq!(out.ok().stdout.trim(), "0");
    std::fs::write(&process, r#"{"args": ["id"]}"#).unwrap();
    env.rt
        .run(["exec", "-p", &arg(&process), &id])
        .code(255)
        .fails_with(&["exec failed: Cwd property must not be empty"]);
    // runc 1.3's words; runc 1.1 said "process args cannot be empty".
    let words = match runrs_integration::runtime::runc_version() {
        Some(v) if v < (1, 3) => "exec failed: process args cannot be empty",
        _ => "exec failed: exec args cannot be empty",
    };
    env.rt.run(["exec", &id]).code(255).fails_with(&[words]);
    // runc 1.3's words; runc 1.1 said "parsing nobody as int for uid failed".
    // (The id is quoted, so escaped in the logrus line: needles around it.)
    let words: &[&str] = match runrs_integration::runtime::runc_version() {
        Some(v) if v < (1, 3) => &["parsing nobody as int for uid failed"],
        _ => &[
            "exec failed: bad uid: strconv.atoi: parsing",
            "invalid syntax",
        ],
    };
    env.rt
        .run(["exec", "-u", "nobody", &id, "true"])
        .code(255)
        .fails_with(words);
    // An unknown capability is a warning, once.
    let out = env.rt.run(["exec", "-c", "CAP_NOSUCH", &id, "true"]);
    let warning = "ignoring unknown or unavailable capabilities: [CAP_NOSUCH]";
    assert_eq!(
        out.ok().stderr.matches(warning).count(),
        1,
        "{}",
        out.stderr
    );
    env.rt
        .run(["update", "--memory", "nonsense", &id])
        .fails_with(&["invalid value for memory: invalid size: 'nonsense'"]);
    env.rt
        .run(["list", "-f", "yaml"])
        .fails_with(&["invalid format option"]);
    env.rt
        .run(["create", "-b", &bundle_arg(&b), "a/b"])
        .fails_with(&["create failed: invalid container ID format"]);
    env.rt
        .run(["create", "-b", &arg(&env.path("nowhere")), "x"])
        .fails_with(&["create failed: chdir", "no such file or directory"]);
    let usage = env.rt.run(["state"]);
    usage.fails_with(&[&format!(
        "{}: \\\"state\\\" requires exactly 1 argument(s)",
        env.rt.bin.display()
    )]);
    env.rt.run(["delete", "-f", &id]).ok();
    env.rt
        .run(["state", &id])
        .fails_with(&["msg=\"container does not exist\""]);
}

// --- --no-pivot must not leave a full procfs to mount a fresh, unmasked one over ---

/// With `--no-pivot` the host's mounts stay in the container's mount namespace behind the
/// chroot; the kernel allows a new procfs mount where a full one exists, so a container
/// that can make a user and mount namespace (unshare -mrpf) could mount `/proc` without the
/// masks. runc detaches those mounts first (runc's test "runc run --no-pivot must not expose
/// bare /proc").
#[test]
fn no_pivot_does_not_expose_a_bare_proc() {
    let env = TestEnv::new("conf_nopivot_proc");
    let mut b = env.bundle();
    b.set_args(&[
        "unshare",
        "-mrpf",
        "sh",
        "-c",
        "mount -t proc none /proc && echo mounted-a-fresh-proc",
    ]);
    for set in ["bounding", "permitted"] {
        b.push(
            &format!("/process/capabilities/{set}"),
            json!("CAP_SETFCAP"),
        );
    }
    let out = env.run_bundle_with(&b, &["--no-pivot"]);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_not_contains(&all, "mounted-a-fresh-proc");
    assert_contains(&all, "mount: permission denied");
    // The masks still hold in the container itself.
    b.set_args(&[
        "sh",
        "-c",
        "cat /proc/kcore 2>/dev/null | head -c 10 | wc -c; echo ok",
    ]);
    let out = env.run_bundle_with(&b, &["--no-pivot"]);
    assert_eq!(lines(&out.ok().stdout), ["0", "ok"]);
}

// --- user namespace: bind sources the container's root cannot reach ---

/// A bind mount whose source sits below a directory the container's (mapped) root may not
/// search: runc opens the sources before the init enters the user namespace and mounts from
/// those fds, so the bind works; opening it from inside fails with EACCES.
#[test]
fn user_namespace_binds_a_source_its_root_cannot_reach() {
    let env = TestEnv::new("conf_userns_bind");
    let private = env.path("private");
    std::fs::create_dir(&private).unwrap();
    // A shared mount as the sources' home, as / is on a systemd host.
    procfs::mount_tmpfs(&private, true);
    std::fs::create_dir(private.join("data")).unwrap();
    std::fs::write(private.join("data/file"), "from the host\n").unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let mut b = env.bundle();
    b.namespace("user", None);
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    // The mount point exists: the mapped root could not make it in a rootfs owned by root.
    std::fs::create_dir(b.host_path("/mnt")).unwrap();
    b.mount("/mnt", "bind", &arg(&private.join("data")), &["bind", "ro"]);
    // A file as the source, recursively.
    std::fs::write(private.join("single"), "a file\n").unwrap();
    std::fs::write(b.host_path("/etc/single"), "").unwrap();
    b.mount(
        "/etc/single",
        "bind",
        &arg(&private.join("single")),
        &["rbind"],
    );
    b.sh("cat /mnt/file /etc/single; grep -E ' /(mnt|etc/single) ' /proc/self/mountinfo");
    let out = env.run_bundle(&b);
    let stdout = out.ok().stdout.clone();
    let got = lines(&stdout);
    assert_eq!(got[..2], ["from the host", "a file"]);
    // Mounts below /mnt in the container must not propagate to the host.
    assert_eq!(got.len(), 4, "{stdout}");
    assert_not_contains(&stdout, "shared:");
    assert!(got[2].contains(" ro,"), "/mnt is not read-only: {}", got[2]);
}

// --- terminals: ownership, mode, size ---

/// The container's terminal as runc sets it up: the pty slave owned by the process's user
/// (its group left as devpts made it), mode 0620, `/dev/console` the same pty, the size
/// from `process.consoleSize`; the same for `exec --tty`, which keeps the container's size.
#[test]
fn terminal_ownership_mode_and_size() {
    let env = TestEnv::new("conf_tty");
    let mut b = env.bundle();
    b.set("/process/terminal", json!(true));
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.set("/process/consoleSize", json!({"height": 31, "width": 101}));
    let probe = "t=$(tty); stat -c '%u %g %a' $t /dev/console; stty size; echo done";
    b.sh(&format!("{probe}; sleep 1000"));
    let socket = ConsoleSocket::bind(&env.path("console.sock"));
    let id = env.id();
    let mut guard = env.guard(&id);
    let console = arg(socket.path());
    let bundle = bundle_arg(&b);
    env.rt
        .run([
            "create",
            "--bundle",
            &bundle,
            "--console-socket",
            &console,
            &id,
        ])
        .ok();
    let master = socket.receive_master(Duration::from_secs(20));
    guard.record(env.rt.state(&id)["pid"].as_i64().unwrap() as i32);
    env.rt.run(["start", &id]).ok();
    let seen = console::read_until(&master, "done", Duration::from_secs(20));
    // The devpts mount's gid=5 (tty) stays; runc changes only the owner.
    let want = ["1000 5 620", "1000 5 620", "31 101", "done"];
    assert_eq!(lines(&seen), want, "init: {seen:?}");
    let socket2 = ConsoleSocket::bind(&env.path("console2.sock"));
    let console2 = arg(socket2.path());
    env.rt
        .run([
            "exec",
            "--detach",
            "--tty",
            "--console-socket",
            &console2,
            "-u",
            "1000:1000",
            &id,
            "sh",
            "-c",
            probe,
        ])
        .ok();
    let master2 = socket2.receive_master(Duration::from_secs(20));
    let seen2 = console::read_until(&master2, "done", Duration::from_secs(20));
    assert_eq!(lines(&seen2), want, "exec --tty: {seen2:?}");
}

/// runc starts the init and every exec'd process in a session of its own (nsexec's setsid):
/// no container process stays in the session and process group of whoever ran the runtime.
#[test]
fn container_processes_lead_their_own_session() {
    let env = TestEnv::new("conf_setsid");
    let mut b = env.bundle();
    let probe = "set -- $(cat /proc/$$/stat); echo $1 $5 $6";
    b.sh(&format!("{probe}; exec sleep 1000"));
    let id = env.id();
    let mut g = env.guard(&id);
    let created = env.create_start(&b, &id);
    g.record(env.rt.state(&id)["pid"].as_i64().unwrap() as i32);
    wait_until("the init printed", Duration::from_secs(10), || {
        !created.stdout_now().is_empty()
    });
    // pid, process group and session: all 1.
    assert_eq!(created.stdout_now().trim(), "1 1 1");
    let out = env.rt.run(["exec", &id, "sh", "-c", probe]);
    let got = out.ok().stdout.clone();
    let f: Vec<&str> = got.split_whitespace().collect();
    assert_eq!((f[1], f[2]), (f[0], f[0]), "exec'd process: {got}");
}

/// Cgroup writes the kernel refuses, in runc's words.
#[test]
fn refused_cgroup_writes_read_as_runcs() {
    if pure_cgroup_v2() {
        eprintln!("skipping: v1 file names");
        return;
    }
    let env = TestEnv::new("conf_update_words");
    let mut b = env.bundle();
    b.set_args(&["sleep", "1000"]);
    let id = env.id();
    let mut g = env.guard(&id);
    env.create_start(&b, &id);
    g.record(env.rt.state(&id)["pid"].as_i64().unwrap() as i32);
    env.rt
        .run(["update", "--cpu-period", "500", &id])
        .fails_with(&[
            "failed to write",
            "500",
            "cpu.cfs_period_us: invalid argument",
        ]);
    env.rt.run(["update", "--memory", "1k", &id]).fails_with(&[
        "unable to set memory limit to 1024 (current usage: ",
        ", peak usage: ",
    ]);
}
