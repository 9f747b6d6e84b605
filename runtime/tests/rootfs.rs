//! Root-only tests of `runrs::rootfs`: each test forks a child that unshares a mount namespace
//! (made private, so nothing reaches the host), builds a busybox rootfs, runs
//! prepare/enter/finish and checks the result from inside; the parent asserts on its report.
//!
//! Run with `cargo test -p runrs --test rootfs` as root.

use anyhow::{bail, ensure, Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{major, minor, SFlag};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// harness

/// A temp dir holding `rootfs/` (busybox) and room for host-side fixtures; removed on drop.
struct Bundle {
    dir: TempDir,
}

impl Bundle {
    fn new() -> Bundle {
        assert!(nix::unistd::geteuid().is_root(), "these tests need root");
        let dir = tempfile::Builder::new()
            .prefix("runrs-rootfs-")
            .tempdir()
            .unwrap();
        let bin = dir.path().join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        for applet in ["sh", "ls", "cat", "mount", "true", "echo", "stat"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        Bundle { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

/// Set in the process that [`isolated`] starts.
const ISOLATED_ENV: &str = "RUNRS_ROOTFS_TEST_ISOLATED";

/// Forking a multi-threaded test harness is not safe: another test thread may hold a lock
/// (a backtrace being printed, the environment) that the forked child then waits on forever.
/// So each test re-runs itself alone in a fresh process of this binary, where only its own
/// thread is busy; returns true in that process (run the test), false in the outer one
/// (which has asserted on the result).
fn isolated(test: &str) -> bool {
    if std::env::var_os(ISOLATED_ENV).is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(ISOLATED_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} failed in its own process:\n{stdout}\n{stderr}"
    );
    false
}

/// Runs `f` in a forked child with its own (private) mount namespace; panics with the
/// child's error when it fails.
fn in_child(f: impl FnOnce() -> Result<()>) {
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    // SAFETY: the child only runs the test closure and leaves with `_exit`; it touches no lock
    // another test thread could hold (no stdout, glibc resets malloc's locks on fork).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        drop(read_end);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            unshare(CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
            mount::<str, str, str, str>(
                None,
                "/",
                None,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None,
            )
            .context("make / rprivate")?;
            f()
        }));
        let message = match outcome {
            Ok(Ok(())) => String::new(),
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => "child panicked".to_string(),
        };
        let mut pipe = std::fs::File::from(write_end);
        let _ = pipe.write_all(message.as_bytes());
        drop(pipe);
        // SAFETY: leaves the forked child without running the test harness's exit path.
        unsafe { libc::_exit(i32::from(!message.is_empty())) };
    }
    drop(write_end);
    let mut message = String::new();
    std::fs::File::from(read_end)
        .read_to_string(&mut message)
        .unwrap();
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(message.is_empty(), "child failed: {message}");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child exited with status {status:#x}"
    );
}

/// Removes an (empty) directory when dropped, if it exists.
struct RemoveDirOnDrop(PathBuf);

impl Drop for RemoveDirOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn spec(value: Value) -> Spec {
    let mut value = value;
    value["ociVersion"] = json!("1.0.2");
    value["root"] = value
        .get("root")
        .cloned()
        .unwrap_or(json!({"path": "rootfs"}));
    serde_json::from_value(value).expect("test spec")
}

/// The usual container mounts (runc's `spec` defaults).
fn default_mounts() -> Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]}
    ])
}

fn with_mounts(extra: Value) -> Value {
    let mut mounts = default_mounts();
    let list = mounts.as_array_mut().unwrap();
    list.extend(extra.as_array().unwrap().iter().cloned());
    mounts
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
struct MountLine {
    id: u32,
    parent: u32,
    root: String,
    mount_point: String,
    options: Vec<String>,
    optional: String,
    fs_type: String,
    super_options: Vec<String>,
}

impl MountLine {
    fn has(&self, option: &str) -> bool {
        self.options
            .iter()
            .chain(&self.super_options)
            .any(|o| o == option)
    }
}

fn mountinfo() -> Vec<MountLine> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .map(|line| {
            let (a, b) = line.split_once(" - ").unwrap();
            let a: Vec<&str> = a.split(' ').collect();
            let b: Vec<&str> = b.split(' ').collect();
            MountLine {
                id: a[0].parse().unwrap(),
                parent: a[1].parse().unwrap(),
                root: a[3].to_string(),
                mount_point: a[4].to_string(),
                options: a[5].split(',').map(String::from).collect(),
                optional: a[6..].join(" "),
                fs_type: b[0].to_string(),
                super_options: b[2].split(',').map(String::from).collect(),
            }
        })
        .collect()
}

/// The topmost mount at `mount_point`.
fn mount_at(mount_point: &str) -> Result<MountLine> {
    mountinfo()
        .into_iter()
        .rev()
        .find(|m| m.mount_point == mount_point)
        .with_context(|| format!("no mount at {mount_point}"))
}

fn expect_erofs(path: &str) -> Result<()> {
    match std::fs::write(path, b"x") {
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => Ok(()),
        other => bail!("writing {path}: expected EROFS, got {other:?}"),
    }
}

/// Makes `openat2` fail with ENOSYS for this process, as on kernels before 5.6.
fn deny_openat2() -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xc000_00b7;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let mut filter = [
        stmt(load, 4), // seccomp_data.arch
        jeq(AUDIT_ARCH, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(load, 0), // seccomp_data.nr
        jeq(libc::SYS_openat2 as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: `program` points at a valid filter that outlives the call (the kernel copies it).
    let rc = unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program) };
    ensure!(
        rc == 0,
        "install seccomp filter: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: openat2 with a null `how` only returns an error; it reads no memory here.
    let probe = unsafe { libc::syscall(libc::SYS_openat2, libc::AT_FDCWD, c"/".as_ptr(), 0, 0) };
    ensure!(
        probe == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS),
        "openat2 still works"
    );
    Ok(())
}

fn run_all(spec: &Spec, rootfs: &Path, no_pivot: bool) -> Result<()> {
    runrs::rootfs::prepare(spec, rootfs, &runrs::cgroups::MountView::of_self()?)?;
    runrs::rootfs::enter(rootfs, no_pivot)?;
    runrs::rootfs::finish(spec)
}

// ---------------------------------------------------------------------------------------------
// tests

#[test]
fn mounts_in_order_with_their_options() {
    if !isolated("mounts_in_order_with_their_options") {
        return;
    }
    let bundle = Bundle::new();
    let host_dir = bundle.path().join("hostdir");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-bind"), b"bind").unwrap();
    let spec = spec(json!({"mounts": with_mounts(json!([
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "size=65536k", "mode=755"]},
        {"destination": "/tmp/inner", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        // Two mounts on one destination: the later one must end up on top.
        {"destination": "/stacked", "type": "bind", "source": host_dir, "options": ["rbind"]},
        {"destination": "/stacked", "type": "tmpfs", "source": "tmpfs", "options": ["mode=700"]},
        {"destination": "/norelatime", "type": "tmpfs", "source": "tmpfs",
         "options": ["noatime", "noexec", "sync"]},
    ]))}));
    let rootfs = bundle.rootfs();
    in_child(|| {
        run_all(&spec, &rootfs, false)?;

        let tmp = mount_at("/tmp")?;
        ensure!(tmp.fs_type == "tmpfs", "/tmp is {}", tmp.fs_type);
        ensure!(
            tmp.has("nosuid") && tmp.has("nodev") && tmp.has("size=65536k"),
            "{tmp:?}"
        );
        let mode = std::fs::metadata("/tmp")?.permissions().mode() & 0o7777;
        ensure!(mode == 0o755, "/tmp mode {mode:o}");
        let inner = mount_at("/tmp/inner")?;
        ensure!(
            inner.parent == tmp.id,
            "/tmp/inner is not mounted on /tmp's tmpfs: {inner:?}"
        );
        ensure!(inner.has("size=1024k"), "{inner:?}");

        let stacked: Vec<MountLine> = mountinfo()
            .into_iter()
            .filter(|m| m.mount_point == "/stacked")
            .collect();
        ensure!(
            stacked.len() == 2,
            "expected 2 mounts on /stacked: {stacked:?}"
        );
        ensure!(stacked[1].fs_type == "tmpfs" && stacked[1].parent == stacked[0].id);
        ensure!(
            !Path::new("/stacked/from-bind").exists(),
            "the bind is on top of the tmpfs"
        );
        let mode = std::fs::metadata("/stacked")?.permissions().mode() & 0o7777;
        ensure!(mode == 0o700, "/stacked mode {mode:o}");

        let flags = mount_at("/norelatime")?;
        ensure!(
            flags.has("noatime") && flags.has("noexec") && flags.has("sync"),
            "{flags:?}"
        );

        let shm = mount_at("/dev/shm")?;
        ensure!(
            shm.has("nosuid") && shm.has("nodev") && shm.has("noexec"),
            "{shm:?}"
        );
        let pts = mount_at("/dev/pts")?;
        ensure!(
            pts.fs_type == "devpts" && pts.has("gid=5") && pts.has("ptmxmode=666"),
            "{pts:?}"
        );
        ensure!(mount_at("/dev/mqueue")?.fs_type == "mqueue");
        ensure!(mount_at("/proc")?.fs_type == "proc");
        let sys = mount_at("/sys")?;
        ensure!(sys.fs_type == "sysfs" && sys.has("ro"), "{sys:?}");
        expect_erofs("/sys/kernel/new-file")?;

        // The rootfs works: busybox runs from it.
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", "echo ok"])
            .output()?;
        ensure!(out.stdout == b"ok\n", "busybox sh said {out:?}");
        Ok(())
    });
}

#[test]
fn bind_mounts_read_only_file_and_propagation() {
    if !isolated("bind_mounts_read_only_file_and_propagation") {
        return;
    }
    let bundle = Bundle::new();
    let host_dir = bundle.path().join("data");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("file"), b"hello").unwrap();
    let host_file = bundle.path().join("single-file");
    std::fs::write(&host_file, b"single").unwrap();
    let spec = spec(json!({"mounts": with_mounts(json!([
        {"destination": "/data-ro", "type": "bind", "source": host_dir,
         "options": ["rbind", "ro", "nosuid", "nodev"]},
        {"destination": "/data-rw", "source": host_dir, "options": ["bind"]},
        // A file source gets a file destination, with missing parents created.
        {"destination": "/etc/deep/single", "type": "bind", "source": host_file,
         "options": ["bind", "ro"]},
        {"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": ["shared"]},
        {"destination": "/unbindable", "type": "bind", "source": host_dir,
         "options": ["rbind", "runbindable"]},
        {"destination": "/private", "type": "tmpfs", "source": "tmpfs",
         "options": ["shared", "private"]},
    ]))}));
    let rootfs = bundle.rootfs();
    let host_file_copy = host_dir.join("file");
    in_child(|| {
        run_all(&spec, &rootfs, false)?;
        ensure!(std::fs::read("/data-ro/file")? == b"hello");
        expect_erofs("/data-ro/file")?;
        let ro = mount_at("/data-ro")?;
        ensure!(
            ro.has("ro") && ro.has("nosuid") && ro.has("nodev"),
            "{ro:?}"
        );
        std::fs::write("/data-rw/file", b"changed")?;
        ensure!(mount_at("/data-rw")?.has("rw"));
        ensure!(std::fs::read("/etc/deep/single")? == b"single");
        ensure!(std::fs::metadata("/etc/deep/single")?.is_file());
        expect_erofs("/etc/deep/single")?;
        let shared = mount_at("/shared")?;
        ensure!(shared.optional.contains("shared:"), "{shared:?}");
        let unbindable = mount_at("/unbindable")?;
        ensure!(unbindable.optional.contains("unbindable"), "{unbindable:?}");
        ensure!(
            mount_at("/private")?.optional.is_empty(),
            "/private is not private"
        );
        Ok(())
    });
    // The rw bind wrote through to the host directory.
    assert_eq!(std::fs::read(host_file_copy).unwrap(), b"changed");
}

/// `/` of the container: rslave by default (its mounts receive the host's events), or
/// `linux.rootfsPropagation`.
#[test]
fn root_propagation() {
    if !isolated("root_propagation") {
        return;
    }
    for (propagation, expect) in [
        (None, "master:"),
        (Some("rprivate"), ""),
        (Some("rshared"), "shared:"),
    ] {
        let bundle = Bundle::new();
        let mut value = json!({"mounts": default_mounts(), "linux": {}});
        if let Some(p) = propagation {
            value["linux"]["rootfsPropagation"] = json!(p);
        }
        let spec = spec(value);
        let rootfs = bundle.rootfs();
        in_child(|| {
            // A shared host, as on systemd machines, so that slave and private differ: `/` gets
            // a peer in a second namespace, kept alive by an fd.
            mount::<str, str, str, str>(
                None,
                "/",
                None,
                MsFlags::MS_REC | MsFlags::MS_SHARED,
                None,
            )?;
            let _host_ns = std::fs::File::open("/proc/self/ns/mnt")?;
            unshare(CloneFlags::CLONE_NEWNS)?;
            run_all(&spec, &rootfs, false)?;
            let root = mount_at("/")?;
            if expect.is_empty() {
                ensure!(
                    root.optional.is_empty(),
                    "{propagation:?}: / is {:?}",
                    root.optional
                );
            } else {
                ensure!(
                    root.optional.contains(expect),
                    "{propagation:?}: / is {:?}",
                    root.optional
                );
            }
            Ok(())
        });
    }
}

#[test]
fn devices_and_dev_symlinks() {
    if !isolated("devices_and_dev_symlinks") {
        return;
    }
    let bundle = Bundle::new();
    let spec = spec(json!({
        "mounts": default_mounts(),
        "linux": {"devices": [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640,
             "uid": 1000, "gid": 1001},
            {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200},
            {"path": "/dev/loop7", "type": "b", "major": 7, "minor": 7, "fileMode": 0o20660},
            {"path": "/dev/fifo", "type": "p"},
            // A spec entry replaces the default of the same path.
            {"path": "/dev/full", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600}
        ]}
    }));
    let rootfs = bundle.rootfs();
    in_child(|| {
        run_all(&spec, &rootfs, false)?;
        let check = |path: &str, kind: SFlag, maj: u64, min: u64, mode: u32, uid: u32, gid: u32| {
            let meta = std::fs::symlink_metadata(path).with_context(|| path.to_string())?;
            let actual_kind = SFlag::from_bits_truncate(meta.mode()) & SFlag::S_IFMT;
            ensure!(actual_kind == kind, "{path}: type {actual_kind:?}");
            ensure!(
                major(meta.rdev()) == maj && minor(meta.rdev()) == min,
                "{path}: rdev"
            );
            ensure!(
                meta.mode() & 0o7777 == mode,
                "{path}: mode {:o}",
                meta.mode() & 0o7777
            );
            ensure!(meta.uid() == uid && meta.gid() == gid, "{path}: owner");
            Ok(())
        };
        let chr = SFlag::S_IFCHR;
        check("/dev/null", chr, 1, 3, 0o666, 0, 0)?;
        check("/dev/zero", chr, 1, 5, 0o666, 0, 0)?;
        check("/dev/random", chr, 1, 8, 0o666, 0, 0)?;
        check("/dev/urandom", chr, 1, 9, 0o666, 0, 0)?;
        check("/dev/tty", chr, 5, 0, 0o666, 0, 0)?;
        check("/dev/full", chr, 1, 5, 0o600, 0, 0)?;
        check("/dev/fuse", chr, 10, 229, 0o640, 1000, 1001)?;
        check("/dev/net/tun", chr, 10, 200, 0o666, 0, 0)?;
        check("/dev/loop7", SFlag::S_IFBLK, 7, 7, 0o660, 0, 0)?;
        ensure!(std::fs::metadata("/dev/fifo")?.file_type().is_fifo());
        std::fs::write("/dev/null", b"discarded")?;

        for (link, target) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
            ("/dev/ptmx", "pts/ptmx"),
        ] {
            let actual = std::fs::read_link(link).with_context(|| link.to_string())?;
            ensure!(actual == Path::new(target), "{link} -> {actual:?}");
        }
        let core = std::fs::read_link("/dev/core");
        ensure!(
            core.is_ok() == Path::new("/proc/kcore").exists(),
            "/dev/core: {core:?}"
        );
        // /dev/ptmx reaches the container's own devpts instance.
        let ptmx = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/ptmx")?;
        ensure!(
            std::fs::metadata("/dev/pts/0").is_ok(),
            "no /dev/pts/0 after opening ptmx"
        );
        drop(ptmx);
        Ok(())
    });
}

#[test]
fn pivot_root_detaches_the_host() {
    if !isolated("pivot_root_detaches_the_host") {
        return;
    }
    for no_pivot in [false, true] {
        let bundle = Bundle::new();
        let spec = spec(json!({"mounts": default_mounts()}));
        let rootfs = bundle.rootfs();
        let host_marker = bundle.path().join("host-only");
        std::fs::write(&host_marker, b"").unwrap();
        in_child(|| {
            run_all(&spec, &rootfs, no_pivot)?;
            ensure!(std::env::current_dir()? == Path::new("/"));
            ensure!(Path::new("/bin/busybox").exists(), "busybox is not at /bin");
            ensure!(
                !Path::new(&host_marker).exists(),
                "host file visible: {host_marker:?}"
            );
            let mounts = mountinfo();
            let root = mount_at("/")?;
            ensure!(
                !mounts.iter().any(|m| m.mount_point.starts_with("/mnt/")),
                "host mounts visible: {mounts:?}"
            );
            if !no_pivot {
                // Only the rootfs and what the spec mounted are left.
                ensure!(
                    mounts.len() == 7,
                    "{} mounts after pivot: {mounts:#?}",
                    mounts.len()
                );
                ensure!(
                    mounts[0].id == root.id,
                    "/ is not the first mount: {mounts:?}"
                );
            }
            let out = std::process::Command::new("/bin/ls").arg("/bin").output()?;
            ensure!(
                String::from_utf8_lossy(&out.stdout).contains("busybox"),
                "{out:?}"
            );
            Ok(())
        });
    }
}

#[test]
fn masked_and_read_only_paths() {
    if !isolated("masked_and_read_only_paths") {
        return;
    }
    let bundle = Bundle::new();
    // nosuid/nodev/noexec on /proc must survive the read-only remounts below it.
    let mut mounts = default_mounts();
    mounts[0]["options"] = json!(["nosuid", "noexec", "nodev"]);
    let spec = spec(json!({
        "mounts": mounts,
        "linux": {
            "maskedPaths": ["/proc/keys", "/proc/timer_list", "/proc/acpi", "/sys/firmware",
                            "/proc/kcore-missing", "/etc/missing/deeper"],
            "readonlyPaths": ["/proc/sys", "/proc/bus", "/proc/loadavg", "/proc/missing"]
        }
    }));
    let rootfs = bundle.rootfs();
    in_child(|| {
        run_all(&spec, &rootfs, false)?;
        for file in ["/proc/keys", "/proc/timer_list"] {
            let meta = std::fs::metadata(file).with_context(|| file.to_string())?;
            ensure!(
                meta.file_type().is_char_device() && meta.rdev() == nix::sys::stat::makedev(1, 3),
                "{file} is not /dev/null"
            );
            ensure!(std::fs::read(file)?.is_empty(), "{file} is not empty");
        }
        for dir in ["/proc/acpi", "/sys/firmware"] {
            let m = mount_at(dir)?;
            ensure!(m.fs_type == "tmpfs" && m.has("ro"), "{m:?}");
            ensure!(
                std::fs::read_dir(dir)?.next().is_none(),
                "{dir} is not empty"
            );
            expect_erofs(&format!("{dir}/x"))?;
        }

        let sys = mount_at("/proc/sys")?;
        ensure!(sys.has("ro") && sys.has("nosuid") && sys.has("nodev") && sys.has("noexec"));
        expect_erofs("/proc/sys/kernel/hostname")?;
        ensure!(mount_at("/proc/bus")?.has("ro"));
        ensure!(mount_at("/proc/loadavg")?.has("ro"));
        ensure!(
            !std::fs::read("/proc/loadavg")?.is_empty(),
            "read-only must not mask"
        );
        ensure!(
            mount_at("/proc")?.has("rw"),
            "/proc itself became read-only"
        );
        ensure!(!Path::new("/proc/kcore-missing").exists());
        ensure!(
            !Path::new("/etc/missing").exists(),
            "a missing masked path was created"
        );
        Ok(())
    });
}

#[test]
fn root_and_dev_read_only() {
    if !isolated("root_and_dev_read_only") {
        return;
    }
    let bundle = Bundle::new();
    let mut mounts = default_mounts();
    mounts[1]["options"]
        .as_array_mut()
        .unwrap()
        .push(json!("ro"));
    let mounts = {
        let mut list = mounts.as_array().unwrap().clone();
        list.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        Value::Array(list)
    };
    let spec = spec(json!({"root": {"path": "rootfs", "readonly": true}, "mounts": mounts}));
    let rootfs = bundle.rootfs();
    in_child(|| {
        run_all(&spec, &rootfs, false)?;
        expect_erofs("/new-file")?;
        ensure!(mount_at("/")?.has("ro"));
        std::fs::write("/tmp/ok", b"writable")?;
        // /dev was populated before it became read-only.
        ensure!(Path::new("/dev/null").exists());
        let dev = mount_at("/dev")?;
        ensure!(dev.has("ro") && dev.has("nosuid"), "{dev:?}");
        expect_erofs("/dev/new-file")?;
        std::fs::write("/dev/null", b"still a device")?;
        Ok(())
    });
}

/// CVE-2021-30465 class: rootfs symlinks pointing at `/`, `../..` or a host path must not
/// redirect a mount (or a device) out of the rootfs.
#[test]
fn symlinks_cannot_escape_the_rootfs() {
    if isolated("symlinks_cannot_escape_the_rootfs") {
        symlink_escape(false);
    }
}

/// The same on a kernel without `openat2` (ENOSYS, here from a seccomp filter): the
/// component walk must clamp symlinks just as well.
#[test]
fn symlinks_cannot_escape_the_rootfs_without_openat2() {
    if isolated("symlinks_cannot_escape_the_rootfs_without_openat2") {
        symlink_escape(true);
    }
}

fn symlink_escape(without_openat2: bool) {
    let bundle = Bundle::new();
    let rootfs = bundle.rootfs();
    let host = bundle.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::create_dir(host.join("existing")).unwrap();
    std::fs::create_dir_all(rootfs.join("host/existing")).unwrap();
    let unique = format!("runrs-escape-{}", std::process::id());
    // Should a mount escape, the directory it created on the host's `/` goes away with the test.
    let _stray = RemoveDirOnDrop(Path::new("/").join(&unique));
    let sym =
        |name: &str, target: &Path| std::os::unix::fs::symlink(target, rootfs.join(name)).unwrap();
    sym("to-root", Path::new("/"));
    sym("up", Path::new("../../../../../.."));
    sym("up-host", Path::new("../host"));
    sym("abs-host", &host);
    sym("chain", Path::new("up-host/../up/./up-host"));
    // No /dev mount in the spec: devices go to the rootfs's /dev, which points "outside".
    sym("dev", Path::new("../host"));
    let host_file = bundle.path().join("file");
    std::fs::write(&host_file, b"f").unwrap();
    let spec = spec(json!({"mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": format!("/to-root/{unique}"), "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/up/host/x2", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/up-host/x3", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/up-host/existing", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/abs-host/x4", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/chain/x5", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/up-host/bound-file", "type": "bind", "source": host_file, "options": ["bind"]},
    ]}));
    let host_in_child = host.clone();
    let rootfs_in_child = rootfs.clone();
    let unique_in_child = unique.clone();
    in_child(|| {
        if without_openat2 {
            deny_openat2()?;
        }
        runrs::rootfs::prepare(
            &spec,
            &rootfs_in_child,
            &runrs::cgroups::MountView::of_self()?,
        )?;
        let tmpfs = |p: &Path| -> Result<()> {
            let fs = nix::sys::statfs::statfs(p).with_context(|| format!("{p:?}"))?;
            ensure!(
                fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC,
                "{p:?} is not a tmpfs"
            );
            Ok(())
        };
        // Before pivot: everything landed inside the rootfs, clamped to its root.
        let r = &rootfs_in_child;
        tmpfs(&r.join(&unique_in_child))?;
        tmpfs(&r.join("host/x2"))?;
        tmpfs(&r.join("host/x3"))?;
        tmpfs(&r.join("host/existing"))?;
        tmpfs(&r.join(host_in_child.strip_prefix("/")?).join("x4"))?;
        tmpfs(&r.join("host/x5"))?;
        ensure!(std::fs::read(r.join("host/bound-file"))? == b"f");
        ensure!(
            r.join("host/null").exists(),
            "/dev/null not created through the clamped link"
        );
        // ... and nothing on the host.
        let entries: Vec<_> = std::fs::read_dir(&host_in_child)?
            .map(|e| e.unwrap().file_name())
            .collect();
        ensure!(entries == ["existing"], "host dir touched: {entries:?}");
        let existing = nix::sys::statfs::statfs(&host_in_child.join("existing"))?;
        ensure!(
            existing.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC,
            "host dir mounted"
        );
        ensure!(
            !Path::new("/").join(&unique_in_child).exists(),
            "created on the host's /"
        );
        runrs::rootfs::enter(&rootfs_in_child, false)?;
        runrs::rootfs::finish(&spec)
    });
    let escaped = Path::new("/").join(&unique).exists();
    assert!(!escaped, "a mount destination escaped to the host's /");
    assert_eq!(
        std::fs::read_dir(&host).unwrap().count(),
        1,
        "host directory was written to"
    );
}

#[test]
fn errors_name_the_destination() {
    if !isolated("errors_name_the_destination") {
        return;
    }
    let cases: Vec<(Value, &str)> = vec![
        (
            json!([{"destination": "/x", "type": "nosuchfs", "source": "none"}]),
            "mount nosuchfs on /x",
        ),
        (
            json!([{"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}]),
            "/proc must be of type proc",
        ),
        (
            json!([{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"}]),
            "/proc/sys is under /proc",
        ),
        // Through a symlink into the container's procfs.
        (
            json!([{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/link/kernel", "type": "tmpfs", "source": "tmpfs"}]),
            "inside procfs",
        ),
        (
            json!([{"destination": "/data", "type": "bind", "source": "/", "options": ["idmap"]}]),
            "idmapped mount on /data was not prepared",
        ),
        (
            json!([{"destination": "/data", "type": "bind", "source": "/nonexistent-runrs-src"}]),
            "open bind source /nonexistent-runrs-src for /data",
        ),
    ];
    for (mounts, expected) in cases {
        let bundle = Bundle::new();
        std::os::unix::fs::symlink("/proc/sys", bundle.rootfs().join("link")).unwrap();
        let spec = spec(json!({"mounts": mounts}));
        let rootfs = bundle.rootfs();
        in_child(|| {
            let error = match runrs::rootfs::prepare(
                &spec,
                &rootfs,
                &runrs::cgroups::MountView::of_self()?,
            ) {
                Ok(()) => bail!("prepare succeeded, expected an error with {expected:?}"),
                Err(e) => format!("{e:#}"),
            };
            ensure!(
                error.contains(expected),
                "error {error:?} does not mention {expected:?}"
            );
            Ok(())
        });
    }
}

/// On a host with only the unified hierarchy a `type: "cgroup"` entry (what runc's and
/// containerd's default specs carry) mounts cgroup2, as runc does: not an empty tmpfs.
#[test]
fn cgroup_mount_on_a_cgroup2_only_host_is_cgroup2() {
    if !isolated("cgroup_mount_on_a_cgroup2_only_host_is_cgroup2") {
        return;
    }
    let Some(unified) = runrs::cgroups::MountView::of_self().unwrap().unified else {
        eprintln!("skipping: no cgroup2 hierarchy mounted here");
        return;
    };
    // This host's view with its v1 hierarchies left out: what a cgroup2-only host has.
    let view = runrs::cgroups::MountView {
        v1: Vec::new(),
        unified: Some(unified),
    };
    let bundle = Bundle::new();
    let mounts = with_mounts(json!([{"destination": "/sys/fs/cgroup", "type": "cgroup",
        "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}]));
    let spec = spec(json!({"mounts": mounts}));
    let rootfs = bundle.rootfs();
    in_child(|| {
        runrs::rootfs::prepare(&spec, &rootfs, &view)?;
        runrs::rootfs::enter(&rootfs, false)?;
        runrs::rootfs::finish(&spec)?;
        let m = mount_at("/sys/fs/cgroup")?;
        ensure!(m.fs_type == "cgroup2" && m.has("ro"), "{m:?}");
        ensure!(
            std::path::Path::new("/sys/fs/cgroup/cgroup.procs").exists(),
            "no cgroup.procs in /sys/fs/cgroup"
        );
        Ok(())
    });
}

#[test]
fn cgroup_v1_mount_shows_own_cgroups() {
    if !isolated("cgroup_v1_mount_shows_own_cgroups") {
        return;
    }
    let v1 = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - cgroup ");
    if !v1 {
        eprintln!("no cgroup v1 hierarchy on this host: only cgroup2 is checked");
    }
    let bundle = Bundle::new();
    let mounts = if v1 {
        with_mounts(
            json!([{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}]),
        )
    } else {
        with_mounts(
            json!([{"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup"}]),
        )
    };
    let spec = spec(json!({"mounts": mounts}));
    let rootfs = bundle.rootfs();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    in_child(|| {
        run_all(&spec, &rootfs, false)?;
        if !v1 {
            ensure!(mount_at("/sys/fs/cgroup")?.fs_type == "cgroup2");
            return Ok(());
        }
        let base = mount_at("/sys/fs/cgroup")?;
        ensure!(base.fs_type == "tmpfs" && base.has("ro"), "{base:?}");
        let mut checked = 0;
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) =
                (parts.next(), parts.next().unwrap(), parts.next().unwrap());
            if controllers.is_empty() {
                continue;
            }
            let name = controllers.trim_start_matches("name=");
            let m = mount_at(&format!("/sys/fs/cgroup/{name}"))?;
            ensure!(
                m.fs_type == "cgroup" && m.root == path,
                "{controllers}: {m:?}"
            );
            ensure!(m.has("ro") && m.has("nosuid"), "{m:?}");
            checked += 1;
        }
        ensure!(checked > 0, "no v1 controllers checked");
        expect_erofs("/sys/fs/cgroup/memory/cgroup.procs")?;
        Ok(())
    });
}

#[test]
fn console_is_bound_onto_dev_console() {
    if !isolated("console_is_bound_onto_dev_console") {
        return;
    }
    let bundle = Bundle::new();
    let spec = spec(json!({"mounts": default_mounts()}));
    let rootfs = bundle.rootfs();
    in_child(|| {
        run_all(&spec, &rootfs, false)?;
        let master = nix::pty::posix_openpt(nix::fcntl::OFlag::O_RDWR)?;
        nix::pty::grantpt(&master)?;
        nix::pty::unlockpt(&master)?;
        let slave = nix::pty::ptsname_r(&master)?;
        ensure!(slave.starts_with("/dev/pts/"), "slave {slave}");
        runrs::rootfs::mount_console(Path::new(&slave))?;
        let console = std::fs::metadata("/dev/console")?;
        let pty = std::fs::metadata(&slave)?;
        ensure!(console.file_type().is_char_device() && console.rdev() == pty.rdev());
        ensure!(mount_at("/dev/console")?.fs_type == "devpts");
        Ok(())
    });
}

/// In a user namespace: device nodes come from binds of the host's nodes (mknod is refused),
/// sysfs without a network namespace falls back to a bind of /sys, and remounts keep the
/// flags the kernel locked (nosuid, nodev) on the source.
#[test]
fn user_namespace_fallbacks() {
    if !isolated("user_namespace_fallbacks") {
        return;
    }
    let bundle = Bundle::new();
    let locked = bundle.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let spec = spec(json!({
        "root": {"path": "rootfs", "readonly": true},
        "mounts": with_mounts(json!([
            {"destination": "/locked", "type": "bind", "source": locked, "options": ["rbind", "ro"]}
        ])),
        "linux": {
            "namespaces": [{"type": "user"}, {"type": "mount"}, {"type": "pid"}, {"type": "ipc"}],
            "devices": [{"path": "/dev/full", "type": "c", "major": 1, "minor": 7}],
            "maskedPaths": ["/proc/timer_list"],
            "readonlyPaths": ["/proc/sys"]
        }
    }));
    let rootfs = bundle.rootfs();
    in_child(|| {
        // A nosuid,nodev mount as the bind source: a user namespace may not drop those flags.
        mount(
            Some("tmpfs"),
            &locked,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            None::<&str>,
        )?;
        in_user_namespace(|| {
            run_all(&spec, &rootfs, false)?;
            for (path, maj, min) in [("/dev/null", 1, 3), ("/dev/tty", 5, 0), ("/dev/full", 1, 7)] {
                let meta = std::fs::metadata(path).with_context(|| path.to_string())?;
                ensure!(
                    meta.file_type().is_char_device(),
                    "{path} is not a char device"
                );
                ensure!(
                    major(meta.rdev()) == maj && minor(meta.rdev()) == min,
                    "{path}: rdev"
                );
                mount_at(path).with_context(|| format!("{path} is not a bind of the host's"))?;
            }
            std::fs::write("/dev/null", b"x")?;
            let sys = mount_at("/sys")?;
            ensure!(sys.fs_type == "sysfs" && sys.has("ro"), "{sys:?}");
            let locked = mount_at("/locked")?;
            ensure!(
                locked.has("ro") && locked.has("nosuid") && locked.has("nodev"),
                "{locked:?}"
            );
            expect_erofs("/locked/x")?;
            ensure!(
                std::fs::read("/proc/timer_list")?.is_empty(),
                "timer_list not masked"
            );
            expect_erofs("/proc/sys/kernel/hostname")?;
            expect_erofs("/new-file")?;
            ensure!(mount_at("/dev/mqueue")?.fs_type == "mqueue");
            Ok(())
        })
    });
}

/// Runs `f` as pid 1 of new user (uid/gid 0-65535 mapped to the same host ids), mount, pid and
/// IPC namespaces, and returns its outcome.
fn in_user_namespace(f: impl FnOnce() -> Result<()>) -> Result<()> {
    let (ready_r, ready_w) = nix::unistd::pipe()?;
    let (mapped_r, mapped_w) = nix::unistd::pipe()?;
    let (report_r, report_w) = nix::unistd::pipe()?;
    // SAFETY: this process runs a single thread (it is a forked test child).
    let pid = unsafe { libc::fork() };
    ensure!(pid >= 0, "fork");
    if pid == 0 {
        drop((ready_r, mapped_w, report_r));
        let outcome = (|| -> Result<()> {
            unshare(CloneFlags::CLONE_NEWUSER).context("unshare user namespace")?;
            std::fs::File::from(ready_w).write_all(b"r")?;
            let mut byte = [0u8];
            std::fs::File::from(mapped_r).read_exact(&mut byte)?;
            let flags =
                CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWIPC;
            unshare(flags).context("unshare mount, pid, ipc namespaces")?;
            // SAFETY: single-threaded; the child runs `f` and leaves with `_exit`.
            let init = unsafe { libc::fork() };
            ensure!(init >= 0, "fork pid 1");
            if init == 0 {
                let message = match f() {
                    Ok(()) => String::new(),
                    Err(e) => format!("{e:#}"),
                };
                let _ = std::fs::File::from(report_w).write_all(message.as_bytes());
                // SAFETY: ends the forked pid 1.
                unsafe { libc::_exit(i32::from(!message.is_empty())) };
            }
            drop(report_w);
            let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(init), None)?;
            ensure!(
                matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
                "pid 1 ended with {status:?}"
            );
            Ok(())
        })();
        // SAFETY: ends the forked child.
        unsafe { libc::_exit(i32::from(outcome.is_err())) };
    }
    drop((ready_w, mapped_r, report_w));
    let mut byte = [0u8];
    std::fs::File::from(ready_r).read_exact(&mut byte)?;
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 0 65536")
            .with_context(|| format!("write {map}"))?;
    }
    std::fs::File::from(mapped_w).write_all(b"m")?;
    let mut message = String::new();
    std::fs::File::from(report_r).read_to_string(&mut message)?;
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)?;
    ensure!(message.is_empty(), "in the user namespace: {message}");
    ensure!(
        matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
        "user namespace child ended with {status:?}"
    );
    Ok(())
}

/// `rro` (and the other r-attributes) reach every mount of an rbind; plain `ro` only its top.
#[test]
fn recursive_attributes_cover_submounts() {
    if !isolated("recursive_attributes_cover_submounts") {
        return;
    }
    let bundle = Bundle::new();
    let host_dir = bundle.path().join("tree");
    std::fs::create_dir_all(host_dir.join("sub")).unwrap();
    let spec = spec(json!({"mounts": with_mounts(json!([
        {"destination": "/rro", "type": "bind", "source": host_dir,
         "options": ["rbind", "rro", "rnosuid", "rnoexec"]},
        {"destination": "/ro", "type": "bind", "source": host_dir, "options": ["rbind", "ro"]},
    ]))}));
    let rootfs = bundle.rootfs();
    in_child(|| {
        mount(
            Some("tmpfs"),
            &host_dir.join("sub"),
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )?;
        run_all(&spec, &rootfs, false)?;
        for point in ["/rro", "/rro/sub"] {
            let m = mount_at(point)?;
            ensure!(m.has("ro") && m.has("nosuid") && m.has("noexec"), "{m:?}");
            expect_erofs(&format!("{point}/x"))?;
        }
        ensure!(mount_at("/ro")?.has("ro"));
        std::fs::write("/ro/sub/x", b"plain ro is not recursive")?;
        Ok(())
    });
}

/// With a cgroup namespace, `type: "cgroup"` mounts each v1 hierarchy anew, rooted at the
/// namespace's root.
#[test]
fn cgroup_v1_mount_in_cgroup_namespace() {
    if !isolated("cgroup_v1_mount_in_cgroup_namespace") {
        return;
    }
    if !std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - cgroup ")
    {
        eprintln!("no cgroup v1 hierarchy on this host: nothing to check");
        return;
    }
    let bundle = Bundle::new();
    let spec = spec(json!({
        "mounts": with_mounts(json!([{"destination": "/sys/fs/cgroup", "type": "cgroup",
                                      "source": "cgroup", "options": ["nosuid", "noexec", "nodev"]}])),
        "linux": {"namespaces": [{"type": "mount"}, {"type": "cgroup"}]}
    }));
    let rootfs = bundle.rootfs();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    in_child(|| {
        unshare(CloneFlags::CLONE_NEWCGROUP)?;
        run_all(&spec, &rootfs, false)?;
        let mut checked = 0;
        for line in own.lines() {
            let controllers = line.split(':').nth(1).unwrap_or("");
            if controllers.is_empty() {
                continue;
            }
            let point = format!("/sys/fs/cgroup/{}", controllers.trim_start_matches("name="));
            let m = mount_at(&point)?;
            ensure!(
                m.fs_type == "cgroup" && m.root == "/" && m.has("nosuid"),
                "{m:?}"
            );
            checked += 1;
        }
        ensure!(checked > 0, "no v1 controllers checked");
        ensure!(Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists());
        Ok(())
    });
}
