//! Regression tests for container breakouts runc has had:
//! CVE-2021-30465 (mount destinations through rootfs symlinks), CVE-2024-21626 (leaked
//! host fds and a cwd through them) and CVE-2019-5736 (overwriting the runtime binary
//! through /proc/<pid>/exe).

use runrs_integration::procfs::{self, parse_mountinfo};
use runrs_integration::*;
use serde_json::json;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

// Generous: the Debian guest runs under emulation (hack/vm), 20-50x slower than a host.
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn mount_destination_through_a_rootfs_symlink_stays_inside_the_rootfs() {
    let env = TestEnv::new("symlink_mount");
    let mut b = env.bundle();
    // A host dir the symlinks would lead to if followed on the host.
    let outside = env.path("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::create_dir(outside.join("target")).unwrap();
    let payload = env.path("payload");
    std::fs::create_dir(&payload).unwrap();
    std::fs::write(payload.join("payload-file"), "payload\n").unwrap();
    let rootfs = b.rootfs();
    std::os::unix::fs::symlink("/", rootfs.join("evil")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../../..", rootfs.join("evil2")).unwrap();
    std::os::unix::fs::symlink(outside.join("target"), rootfs.join("evil3")).unwrap();
    let o = arg(&outside);
    let via_root = format!("/evil{o}/via-root/sub");
    let via_dotdot = format!("/evil2{o}/via-dotdot/sub");
    b.mount(&via_root, "bind", &arg(&payload), &["rbind"]);
    b.mount(&via_dotdot, "tmpfs", "tmpfs", &["size=1m"]);
    b.mount("/evil3", "bind", &arg(&payload), &["rbind"]);
    b.sh(&format!(
        "cat {o}/via-root/sub/payload-file /evil3/payload-file; cat /proc/self/mountinfo"
    ));
    let out = env.run_bundle(&b);
    let stdout = out.ok().stdout.clone();

    // Nothing was created or mounted on the host outside the rootfs.
    let on_host: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        on_host,
        ["target"],
        "the runtime created dirs outside the rootfs"
    );
    assert_eq!(
        std::fs::read_dir(outside.join("target")).unwrap().count(),
        0
    );
    assert!(procfs::mounts_under(&outside).is_empty());
    // The mounts landed inside the container, where the symlinks lead from its root.
    assert_eq!(lines(&stdout)[..2], ["payload", "payload"]);
    let points: Vec<String> = parse_mountinfo(&stdout)
        .into_iter()
        .map(|m| m.mount_point)
        .collect();
    for inside in [
        format!("{o}/via-root/sub"),
        format!("{o}/via-dotdot/sub"),
        format!("{o}/target"),
    ] {
        assert!(
            points.contains(&inside),
            "no mount at {inside} inside: {points:?}"
        );
    }
    assert!(b.host_path(&format!("{o}/via-root/sub")).is_dir());
}

/// A non-close-on-exec fd to a host directory, standing in for an fd the runtime might
/// leak into the container (runc leaked a /sys/fs/cgroup fd: CVE-2024-21626).
fn host_dir_fd(path: &std::path::Path) -> OwnedFd {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: open(2) with a valid path; the fd is owned by the OwnedFd below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    assert!(
        fd >= 0,
        "open {path:?}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` was just opened and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn fds_of(out: &str) -> Vec<String> {
    lines(out).into_iter().map(str::to_owned).collect()
}

#[test]
fn only_stdio_and_preserved_fds_reach_the_container() {
    let env = TestEnv::new("fd_leak");
    let host_dir = env.path("host-dir");
    std::fs::create_dir(&host_dir).unwrap();

    // Without --preserve-fds: fds 3 and 4 given to the runtime must not reach pid 1.
    let mut b = env.bundle();
    // `; true` keeps sh from exec'ing ls, so pid 1 stays the process the runtime started.
    b.sh("ls /proc/1/fd; true");
    let (_r, w) = runtime::pipe();
    let id = env.id();
    let _guard = env.guard(&id);
    let out = env
        .rt
        .cmd(["run", "--bundle", &arg(b.path()), &id])
        .pass_fd(3, w)
        .pass_fd(4, host_dir_fd(&host_dir))
        .run();
    assert_eq!(fds_of(&out.ok().stdout), ["0", "1", "2"]);

    // With --preserve-fds 1: fd 3 (and only it) is passed, and works.
    let mut b = env.bundle();
    b.sh("ls /proc/1/fd; echo through-fd-3 >&3");
    let (r, w) = runtime::pipe();
    let id = env.id();
    let _guard = env.guard(&id);
    let out = env
        .rt
        .cmd([
            "run",
            "--preserve-fds",
            "1",
            "--bundle",
            &arg(b.path()),
            &id,
        ])
        .pass_fd(3, w)
        .pass_fd(4, host_dir_fd(&host_dir))
        .run();
    assert_eq!(fds_of(&out.ok().stdout), ["0", "1", "2", "3"]);
    let mut piped = String::new();
    // Every write end is closed once the container exited, so this reads to EOF.
    std::fs::File::from(r).read_to_string(&mut piped).unwrap();
    assert_eq!(piped.trim(), "through-fd-3");
}

#[test]
fn exec_passes_only_stdio_and_preserved_fds() {
    let env = TestEnv::new("exec_fd_leak");
    let host_dir = env.path("host-dir");
    std::fs::create_dir(&host_dir).unwrap();
    let mut b = env.bundle();
    b.set_args(&["sleep", "60"]);
    let id = env.id();
    let mut guard = env.guard(&id);
    env.create_start(&b, &id);
    guard.record(env.rt.state(&id)["pid"].as_i64().unwrap() as i32);
    for (preserve, expected) in [("0", vec!["0", "1", "2"]), ("1", vec!["0", "1", "2", "3"])] {
        let (_r, w) = runtime::pipe();
        let out = env
            .rt
            .cmd([
                "exec",
                "--preserve-fds",
                preserve,
                &id,
                "sh",
                "-c",
                "ls /proc/$$/fd; true",
            ])
            .pass_fd(3, w)
            .pass_fd(4, host_dir_fd(&host_dir))
            .run();
        assert_eq!(
            fds_of(&out.ok().stdout),
            expected,
            "--preserve-fds {preserve}"
        );
    }
}

#[test]
fn cwd_through_a_proc_fd_link_never_lands_outside_the_container() {
    let env = TestEnv::new("cwd_fd");
    for fd in 3..=9 {
        let mut b = env.bundle();
        std::fs::write(b.host_path("/container-marker"), "inside\n").unwrap();
        b.set("/process/cwd", json!(format!("/proc/self/fd/{fd}")));
        // From a cwd inside the container, enough `..` reach its root and the marker;
        // from a host directory they reach the host's root, which has no marker.
        b.sh("cat ../../../../../../../../../../../../container-marker 2>/dev/null || echo ESCAPED; ls /proc/1/fd; true");
        let out = env.run_bundle(&b);
        if out.success() {
            let got = lines(&out.stdout);
            assert_eq!(
                got.first().copied(),
                Some("inside"),
                "cwd /proc/self/fd/{fd}: {}",
                out.stdout
            );
            assert_eq!(
                got[1..],
                ["0", "1", "2"],
                "cwd /proc/self/fd/{fd}: fds {}",
                out.stdout
            );
        } else {
            out.fails_with(&[]);
            assert_not_contains(&out.stdout, "ESCAPED");
        }
        env.assert_no_trace("", &b);
    }
}

/// The attacker of CVE-2019-5736: container init that watches /proc for any process
/// whose executable is not busybox, opens its /proc/<pid>/exe read-only, and keeps
/// trying to reopen that fd for writing (O_TRUNC) until the runtime has exited.
const ATTACKER: &str = r#"
touch /tmp/attacker-ready
while [ ! -e /tmp/stop ]; do
  for e in /proc/[0-9]*/exe; do
    p=${e#/proc/}; p=${p%/exe}
    [ "$p" = 1 ] && continue
    [ -e /tmp/seen-$p ] && continue
    [ "$e" -ef /bin/busybox ] && continue
    : > /tmp/seen-$p
    ( exec 5<"$e" || exit 0
      echo "opened $p" >> /tmp/attack.log
      n=0
      while [ $n -lt 300 ] && [ ! -e /tmp/stop ]; do
        if echo pwned > /proc/self/fd/5; then echo "WROTE $p" >> /tmp/attack.log; exit 0; fi
        n=$((n+1)); usleep 10000
      done
      echo "gave-up $p" >> /tmp/attack.log ) 2>/dev/null &
  done
done
"#;

#[test]
fn container_cannot_overwrite_the_runtime_binary_through_proc_exe() {
    // Attack a copy, so that a vulnerable runtime only ruins the copy.
    let bin_dir = tempfile::Builder::new()
        .prefix("runrs-it-bin-")
        .tempdir_in("/tmp")
        .unwrap();
    let original = runtime_path();
    let copy = bin_dir.path().join(original.file_name().unwrap());
    std::fs::copy(&original, &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let env = TestEnv::with_runtime("cve_2019_5736", copy.clone());

    let mut b = env.bundle();
    b.capabilities(&host_capabilities());
    b.set("/process/noNewPrivileges", json!(false));
    b.sh(ATTACKER);
    let fifo = b.host_path("/tmp/logfifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);

    let id = env.id();
    // Clean up with the original binary: the copy may be ruined.
    let mut guard = ContainerGuard::new(env.rt.with_bin(original.clone()), &id);
    env.create_start(&b, &id);
    guard.record(env.rt.state(&id)["pid"].as_i64().unwrap() as i32);
    wait_until("attacker ready", WAIT, || {
        b.host_path("/tmp/attacker-ready").exists()
    });

    // 1. The race: the runtime's own process inside the container during `exec`.
    for _ in 0..10 {
        env.rt.run(["exec", &id, "true"]).ok();
    }
    // 2. The container runs the runtime binary itself (/proc/self/exe of the exec'd
    //    runtime process): it blocks opening the fifo as its log, so the attacker has
    //    all the time it needs to open its /proc/<pid>/exe.
    let opened_before = count_opened(&b);
    let exec = env
        .rt
        .cmd([
            "exec",
            "-d",
            &id,
            "/proc/self/exe",
            "--log",
            "/tmp/logfifo",
            "list",
        ])
        .run();
    let attacker_saw_it =
        exec.success() && wait_for(Duration::from_secs(5), || count_opened(&b) > opened_before);
    // Let it go: open the fifo's read end (non-blocking) and close it again.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        let _ = (&reader).read(&mut [0u8; 4096]);
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(reader);
    // Give the attacker's write loop time to run after every runtime process exited.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(b.host_path("/tmp/stop"), "").unwrap();
    let log = std::fs::read_to_string(b.host_path("/tmp/attack.log")).unwrap_or_default();
    eprintln!(
        "attacker log (saw the exec'd runtime: {attacker_saw_it}):\n{log}--- exec: {:?} {}",
        exec.code, exec.stderr
    );
    drop(guard);

    let after = std::fs::read(&copy).unwrap();
    assert!(
        after == before,
        "the container modified the runtime binary; attacker log:\n{log}"
    );
    assert_not_contains(&log, "WROTE");
    drop(env);
    drop(bin_dir);
}

fn count_opened(b: &Bundle) -> usize {
    std::fs::read_to_string(b.host_path("/tmp/attack.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("opened"))
        .count()
}
