//! seccomp profiles on the real kernel: every filter is loaded in a forked child, never in the
//! test process. The child only makes raw syscalls before `_exit`/`execve`.
//! The fixtures and syscall numbers are x86_64's (the machine this project runs on).
#![cfg(target_arch = "x86_64")]

use std::ffi::CString;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use oci_spec::runtime::LinuxSeccomp;
use runrs::seccomp::{self, Compiled};
use serde_json::json;

/// Filler for arguments that must be invalid so the real syscall fails with EINVAL.
const BAD_CLOSE_RANGE_FLAGS: u64 = 0xdead_00ff;
const BAD_PRIORITY_WHICH: u64 = 1000;

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Exited(i32),
    Signaled(i32),
}

fn profile(value: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(value).expect("test profile parses")
}

fn fixture(name: &str) -> LinuxSeccomp {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seccomp")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("fixture parses")
}

/// errno of a raw syscall, 0 when it succeeded.
fn errno_of(nr: libc::c_long, args: [u64; 3]) -> i32 {
    // SAFETY: every syscall made through this helper takes integer arguments only.
    let ret = unsafe { libc::syscall(nr, args[0], args[1], args[2]) };
    if ret < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

fn wait(pid: libc::pid_t) -> Outcome {
    let mut status = 0;
    // SAFETY: `pid` is our own child and `status` a live local.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    if libc::WIFEXITED(status) {
        Outcome::Exited(libc::WEXITSTATUS(status))
    } else {
        Outcome::Signaled(libc::WTERMSIG(status))
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are new and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Fork; the child sets no_new_privs, loads `compiled`, fills up to 8 results with `body` and
/// writes them to the parent. Returns how the child ended and its results.
fn run_filtered(compiled: &Compiled, body: impl FnOnce(&mut [i32; 8])) -> (Outcome, [i32; 8]) {
    let (read_end, write_end) = pipe();
    // SAFETY: the child makes only raw syscalls (no allocation, no locks) and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let mut results = [0i32; 8];
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(101) };
        }
        if seccomp::apply(compiled).is_err() {
            // SAFETY: as above.
            unsafe { libc::_exit(100) };
        }
        body(&mut results);
        // SAFETY: writes from a live local array of the given size.
        unsafe {
            libc::write(
                write_end.as_raw_fd(),
                results.as_ptr().cast(),
                std::mem::size_of_val(&results),
            );
            libc::_exit(0);
        }
    }
    drop(write_end);
    let outcome = wait(pid);
    let mut bytes = Vec::new();
    std::fs::File::from(read_end)
        .read_to_end(&mut bytes)
        .unwrap();
    let mut results = [0i32; 8];
    for (slot, chunk) in results.iter_mut().zip(bytes.chunks_exact(4)) {
        *slot = i32::from_ne_bytes(chunk.try_into().unwrap());
    }
    (outcome, results)
}

#[test]
fn errno_with_errno_ret_on_a_named_syscall() {
    let compiled = seccomp::compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}
        ]
    })))
    .unwrap();
    let (outcome, r) = run_filtered(&compiled, |r| {
        let mut buf = [0u8; 512];
        r[0] = errno_of(libc::SYS_uname, [buf.as_mut_ptr() as u64, 0, 0]);
        r[1] = errno_of(
            libc::SYS_getcwd,
            [buf.as_mut_ptr() as u64, buf.len() as u64, 0],
        );
        r[2] = errno_of(libc::SYS_getppid, [0; 3]);
    });
    assert_eq!(outcome, Outcome::Exited(0));
    assert_eq!(&r[..3], &[42, libc::EPERM, 0]);
}

#[test]
fn default_errno_ret_applies_to_unlisted_syscalls() {
    let allow_exit = json!({"names": ["write", "exit_group", "exit"], "action": "SCMP_ACT_ALLOW"});
    for (default_errno, expected) in [(Some(77), 77), (None, libc::EPERM)] {
        let mut value = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [allow_exit]});
        if let Some(errno) = default_errno {
            value["defaultErrnoRet"] = json!(errno);
        }
        let compiled = seccomp::compile(&profile(value)).unwrap();
        let (outcome, r) = run_filtered(&compiled, |r| {
            r[0] = errno_of(libc::SYS_getppid, [0; 3]);
        });
        assert_eq!(outcome, Outcome::Exited(0));
        assert_eq!(r[0], expected);
    }
}

#[test]
fn kill_actions_end_the_child_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
    ] {
        let compiled = seccomp::compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": action}]
        })))
        .unwrap();
        let (outcome, _) = run_filtered(&compiled, |r| {
            r[0] = errno_of(libc::SYS_getppid, [0; 3]);
        });
        assert_eq!(outcome, Outcome::Signaled(libc::SIGSYS), "{action}");
    }
}

static TRAPPED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigsys(_: libc::c_int) {
    TRAPPED.store(true, Ordering::SeqCst);
}

#[test]
fn trap_delivers_sigsys_to_a_handler() {
    let compiled = seccomp::compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_TRAP"}]
    })))
    .unwrap();
    let (outcome, r) = run_filtered(&compiled, |r| {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(
                libc::SIGSYS,
                on_sigsys as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
        errno_of(libc::SYS_getppid, [0; 3]);
        r[0] = i32::from(TRAPPED.load(Ordering::SeqCst));
    });
    assert_eq!(outcome, Outcome::Exited(0));
    assert_eq!(r[0], 1);
}

#[test]
fn log_allow_and_trace_without_tracer() {
    let compiled = seccomp::compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getuid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5}
        ]
    })))
    .unwrap();
    let (outcome, r) = run_filtered(&compiled, |r| {
        r[0] = errno_of(libc::SYS_getppid, [0; 3]);
        r[1] = errno_of(libc::SYS_getpid, [0; 3]);
        r[2] = errno_of(libc::SYS_getuid, [0; 3]);
    });
    assert_eq!(outcome, Outcome::Exited(0));
    // With no tracer attached the kernel fails a TRACE'd syscall with ENOSYS.
    assert_eq!(&r[..3], &[0, 0, libc::ENOSYS]);
}

#[test]
fn argument_filters_with_every_operator() {
    let compiled = seccomp::compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11,
             "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_NE"}]},
            // valueTwo's bits outside the mask are ignored: libseccomp masks it (0x1ff -> 0xff).
            {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 36,
             "args": [{"index": 2, "value": 0xff, "valueTwo": 0x1ff, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 31,
             "args": [{"index": 0, "value": 100, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 200, "op": "SCMP_CMP_GT"}]},
            {"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 32,
             "args": [{"index": 0, "value": 0xff00, "valueTwo": 0x0300, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 34,
             "args": [{"index": 1, "value": 3, "op": "SCMP_CMP_LT"}]},
            {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 35,
             "args": [{"index": 0, "value": BAD_PRIORITY_WHICH, "op": "SCMP_CMP_LE"},
                      {"index": 1, "value": 50, "op": "SCMP_CMP_GE"}]},
            // The same index twice: runc makes each test a rule of its own (OR).
            {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 33,
             "args": [{"index": 1, "value": 7, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 8, "op": "SCMP_CMP_EQ"}]}
        ]
    })))
    .unwrap();
    let (outcome, r) = run_filtered(&compiled, |r| {
        let close_range = |first: u64, last: u64| {
            errno_of(libc::SYS_close_range, [first, last, BAD_CLOSE_RANGE_FLAGS])
        };
        let getpriority = |who: u64, which: u64| errno_of(libc::SYS_getpriority, [which, who, 0]);
        r[0] = errno_of(libc::SYS_personality, [0xffff_ffff, 0, 0]);
        r[1] = errno_of(libc::SYS_personality, [0, 0, 0]);
        r[2] = close_range(100, 201) * 100 + close_range(100, 200);
        r[3] = close_range(0x0342, 50) * 100 + close_range(0x0442, 2);
        r[4] = close_range(1 << 32 | 100, 201);
        r[5] = getpriority(7, BAD_PRIORITY_WHICH) * 100 + getpriority(60, BAD_PRIORITY_WHICH);
        r[6] =
            getpriority(60, BAD_PRIORITY_WHICH + 1) * 100 + getpriority(8, BAD_PRIORITY_WHICH + 1);
        r[7] = errno_of(libc::SYS_getpriority, [BAD_PRIORITY_WHICH + 2, 0, 0x2ff]) * 100
            + errno_of(libc::SYS_getpriority, [BAD_PRIORITY_WHICH + 2, 0, 0x2fe]);
    });
    assert_eq!(outcome, Outcome::Exited(0));
    let einval = libc::EINVAL;
    assert_eq!(r[0], 0, "personality query (NE 0xffffffff) passes");
    assert_eq!(r[1], 11, "personality(0) is refused");
    assert_eq!(r[2], 31 * 100 + einval, "EQ and GT are ANDed");
    assert_eq!(r[3], 32 * 100 + 34, "MASKED_EQ, then LT");
    assert_eq!(r[4], einval, "comparisons use all 64 bits");
    assert_eq!(r[5], 33 * 100 + 35, "repeated index ORs; LE and GE");
    assert_eq!(r[6], einval * 100 + 33);
    assert_eq!(
        r[7],
        36 * 100 + einval,
        "MASKED_EQ with valueTwo masked, as libseccomp"
    );
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let compiled = seccomp::compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["no_such_syscall", "getppid", "sys_from_2040"],
                      "action": "SCMP_ACT_ERRNO", "errnoRet": 9}]
    })))
    .unwrap();
    let (outcome, r) = run_filtered(&compiled, |r| r[0] = errno_of(libc::SYS_getppid, [0; 3]));
    assert_eq!(outcome, Outcome::Exited(0));
    assert_eq!(r[0], 9);
}

#[test]
fn notify_hands_the_fd_to_the_listener_and_the_agent_answers() {
    let seccomp_profile = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerMetadata": "agent-args",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let compiled = seccomp::compile(&seccomp_profile).unwrap();
    assert!(compiled.needs_listener());

    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("agent.sock");
    let agent = UnixListener::bind(&socket_path).unwrap();

    // The child reports its listener fd number (write is never notified), then makes the
    // notified call and exits with what the agent answered.
    let (read_end, write_end) = pipe();
    // SAFETY: the child makes only raw syscalls and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: raw syscalls and `_exit` in the forked child.
        unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            let fd: RawFd = match seccomp::apply(&compiled) {
                Ok(Some(fd)) => fd.into_raw_fd(), // kept open for the agent
                _ => libc::_exit(100),
            };
            libc::write(write_end.as_raw_fd(), (&fd as *const RawFd).cast(), 4);
            let answer = libc::syscall(libc::SYS_getppid);
            libc::_exit(if answer == 4242 { 0 } else { 1 });
        }
    }
    drop(write_end);
    let mut number = [0u8; 4];
    std::fs::File::from(read_end)
        .read_exact(&mut number)
        .unwrap();
    let child_fd = RawFd::from_ne_bytes(number);

    // As runc's parent does: take the fd out of the child with pidfd_getfd.
    // SAFETY: pidfd_open on our own child; the result is checked.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a new fd owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    // SAFETY: pidfd_getfd with integer arguments; the result is checked.
    let notify_fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), child_fd, 0) };
    assert!(
        notify_fd >= 0,
        "pidfd_getfd: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a new fd owned by nobody else.
    let notify_fd = unsafe { OwnedFd::from_raw_fd(notify_fd as RawFd) };

    let state = json!({"ociVersion": "1.0.2", "id": "web", "status": "creating", "pid": pid,
                       "bundle": "/bundle", "annotations": {}});
    seccomp::send_listener(
        &socket_path,
        notify_fd,
        pid,
        state.to_string().as_bytes(),
        seccomp_profile.listener_metadata().as_deref(),
    )
    .unwrap();

    // The agent's side: one message with the state and the fd.
    let (conn, _) = agent.accept().unwrap();
    let mut buf = vec![0u8; 8192];
    let (len, agent_fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        let fd = msg
            .cmsgs()
            .unwrap()
            .find_map(|cmsg| match cmsg {
                ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("the message carries the seccomp fd");
        (msg.bytes, fd)
    };
    let mut payload = buf[..len].to_vec();
    (&conn).read_to_end(&mut payload).unwrap();
    // SAFETY: received over SCM_RIGHTS, owned by nobody else.
    let agent_fd = unsafe { OwnedFd::from_raw_fd(agent_fd) };
    let message: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(message["ociVersion"], "1.0.2");
    assert_eq!(message["fds"], json!(["seccompFd"]));
    assert_eq!(message["pid"], json!(pid));
    assert_eq!(message["metadata"], "agent-args");
    assert_eq!(message["state"], state);

    // SAFETY: seccomp_notif is plain integers; the kernel wants it zeroed.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: NOTIF_RECV writes one seccomp_notif into a live local.
    let ret = unsafe {
        libc::ioctl(
            agent_fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut notif,
        )
    };
    assert_eq!(ret, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
    assert_eq!(notif.pid, pid as u32);
    assert_eq!(i64::from(notif.data.nr), libc::SYS_getppid);
    let mut resp = libc::seccomp_notif_resp {
        id: notif.id,
        val: 4242,
        error: 0,
        flags: 0,
    };
    // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from a live local.
    let ret = unsafe {
        libc::ioctl(
            agent_fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp,
        )
    };
    assert_eq!(ret, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
    assert_eq!(wait(pid), Outcome::Exited(0));
}

#[test]
fn default_deny_profile_runs_busybox_and_denies_namespaces() {
    let busybox = "/bin/busybox";
    if !std::path::Path::new(busybox).exists() {
        eprintln!("skipped: {busybox} is missing");
        return;
    }
    let compiled = seccomp::compile(&fixture("default-deny.json")).unwrap();

    // Raw syscalls left out of the allow list fail with EPERM (defaultErrnoRet 1).
    let (outcome, r) = run_filtered(&compiled, |r| {
        r[0] = errno_of(libc::SYS_unshare, [libc::CLONE_NEWUTS as u64, 0, 0]);
        r[1] = errno_of(libc::SYS_mount, [0, 0, 0]);
        r[2] = errno_of(libc::SYS_kexec_load, [0, 0, 0]);
        r[3] = errno_of(libc::SYS_bpf, [0, 0, 0]);
        r[4] = errno_of(libc::SYS_clone, [libc::CLONE_NEWNS as u64, 0, 0]);
        r[5] = errno_of(libc::SYS_clone3, [0, 0, 0]);
        r[6] = errno_of(libc::SYS_getppid, [0; 3]);
    });
    assert_eq!(outcome, Outcome::Exited(0));
    let eperm = libc::EPERM;
    assert_eq!(
        &r[..7],
        &[eperm, eperm, eperm, eperm, eperm, libc::ENOSYS, 0]
    );

    // A shell runs normally; its unshare is refused.
    let script = "echo ok; ls /; busybox unshare -u true || echo unshare-refused";
    let argv: Vec<CString> = ["busybox", "sh", "-c", script]
        .iter()
        .map(|arg| CString::new(*arg).unwrap())
        .collect();
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let path = CString::new(busybox).unwrap();
    let env = [c"PATH=/bin:/usr/bin".as_ptr(), std::ptr::null()];
    let (read_end, write_end) = pipe();
    // SAFETY: the child makes only raw syscalls, then execs or `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: raw syscalls with pointers prepared before the fork.
        unsafe {
            libc::dup2(write_end.as_raw_fd(), 1);
            libc::dup2(write_end.as_raw_fd(), 2);
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            if seccomp::apply(&compiled).is_err() {
                libc::_exit(100);
            }
            libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), env.as_ptr());
            libc::_exit(127);
        }
    }
    drop(write_end);
    let mut output = String::new();
    std::fs::File::from(read_end)
        .read_to_string(&mut output)
        .unwrap();
    assert_eq!(wait(pid), Outcome::Exited(0), "{output}");
    assert!(output.starts_with("ok\n"), "{output}");
    assert!(
        output.contains("proc") && output.contains("etc"),
        "{output}"
    );
    assert!(output.contains("Operation not permitted"), "{output}");
    assert!(output.trim_end().ends_with("unshare-refused"), "{output}");
}

#[test]
fn check_supported_refuses_what_cannot_be_enforced() {
    let refuse = |value: serde_json::Value, needle: &str| {
        let err = seccomp::check_supported(Some(&profile(value))).unwrap_err();
        assert!(err.to_string().contains(needle), "{err:#}");
    };
    refuse(
        json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
        "cannot be the default action",
    );
    refuse(
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
        "write",
    );
    refuse(
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
        "argument index 6",
    );
    refuse(
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": [""], "action": "SCMP_ACT_ERRNO"}]}),
        "empty string",
    );
    seccomp::check_supported(None).unwrap();
    // Any architecture may be named, as runc (libseccomp) accepts them: only ours is filtered.
    let foreign = json!({"defaultAction": "SCMP_ACT_ALLOW",
                         "architectures": ["SCMP_ARCH_S390X", "SCMP_ARCH_ARM"]});
    seccomp::check_supported(Some(&profile(foreign))).unwrap();
    seccomp::check_supported(Some(&fixture("default-deny.json"))).unwrap();
}

#[test]
fn features_lists() {
    assert!(seccomp::ACTIONS.contains(&"SCMP_ACT_NOTIFY"));
    assert!(seccomp::OPERATORS.contains(&"SCMP_CMP_MASKED_EQ"));
    assert!(seccomp::supported_flags().contains(&"SECCOMP_FILTER_FLAG_LOG"));
    assert!(seccomp::accepted_architectures().contains(&"SCMP_ARCH_X86_64".to_string()));
}
