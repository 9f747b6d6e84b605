//! `linux.seccomp` with real busybox containers: errno (with `errnoRet` and
//! `defaultErrnoRet`), kill, argument filters, both no_new_privileges orders, a
//! `listenerPath` agent answering SCMP_ACT_NOTIFY, a default-deny profile shaped like
//! Docker's, and `exec` getting the container's filter.

use runrs_integration::*;
use serde_json::{json, Value};
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

// Generous: the Debian guest runs under emulation (hack/vm), 20-50x slower than a host.
const WAIT: Duration = Duration::from_secs(30);

/// A profile from `tests/fixtures/seccomp/`.
fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seccomp")
        .join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Allow everything except `names`, which get `action` (ERRNO with `errno`, if given).
fn deny(names: &[&str], action: &str, errno: Option<u32>) -> Value {
    let mut rule = json!({"names": names, "action": action});
    if let Some(errno) = errno {
        rule["errnoRet"] = json!(errno);
    }
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})
}

/// `mkdir` on x86_64 goes through mkdir(2), elsewhere through mkdirat(2): name both.
const MKDIR: &[&str] = &["mkdir", "mkdirat"];

/// Creates and starts `b` as a new container; returns its id and guard.
fn start(env: &TestEnv, b: &Bundle) -> (String, ContainerGuard) {
    let id = env.id();
    let mut guard = env.guard(&id);
    env.create_start(b, &id);
    guard.record(env.rt.state(&id)["pid"].as_i64().expect("pid") as i32);
    (id, guard)
}

/// The `Seccomp:` and `NoNewPrivs:` lines of `/proc/self/status`, printed by `script`.
const STATUS: &str = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status";

#[test]
fn errno_ret_is_what_the_syscall_returns() {
    let env = TestEnv::new("sc_errno");
    let mut b = env.bundle();
    // ENOSPC, which mkdir on a tmpfs with room never returns by itself.
    b.set("/linux/seccomp", deny(MKDIR, "SCMP_ACT_ERRNO", Some(28)));
    b.sh("grep ^Seccomp: /proc/self/status; mkdir /tmp/d; echo rc=$?; [ -e /tmp/d ] || echo absent; touch /tmp/f && echo touched");
    let out = env.run_bundle(&b);
    out.ok();
    assert_contains(&out.stderr, "No space left on device");
    assert_eq!(
        lines(&out.stdout),
        ["Seccomp:\t2", "rc=1", "absent", "touched"]
    );
    assert!(!b.host_path("/tmp/d").exists());
    assert!(b.host_path("/tmp/f").exists());
}

#[test]
fn errno_without_errno_ret_is_eperm() {
    let env = TestEnv::new("sc_eperm");
    let mut b = env.bundle();
    b.set("/linux/seccomp", deny(MKDIR, "SCMP_ACT_ERRNO", None));
    b.sh("mkdir /tmp/d; echo rc=$?");
    let out = env.run_bundle(&b);
    assert_eq!(lines(&out.ok().stdout), ["rc=1"]);
    assert_contains(&out.stderr, "Operation not permitted");
}

#[test]
fn default_errno_ret_applies_to_the_default_action() {
    let env = TestEnv::new("sc_default_errno");
    let mut b = env.bundle();
    // The default-deny profile without mkdir in its allow list, and EXDEV as the default.
    let mut profile = fixture("default-deny.json");
    profile["defaultErrnoRet"] = json!(18);
    let allowed = profile["syscalls"][0]["names"].as_array_mut().unwrap();
    allowed.retain(|n| !MKDIR.contains(&n.as_str().unwrap()));
    b.set("/linux/seccomp", profile);
    b.sh("mkdir /tmp/d; echo rc=$?; echo still-running");
    let out = env.run_bundle(&b);
    assert_eq!(lines(&out.ok().stdout), ["rc=1", "still-running"]);
    assert_contains(&out.stderr, "Invalid cross-device link");
}

#[test]
fn kill_action_kills_the_container_by_sigsys() {
    let env = TestEnv::new("sc_kill");
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"] {
        let mut b = env.bundle();
        b.set("/linux/seccomp", deny(MKDIR, action, None));
        b.set_args(&["mkdir", "/tmp/d"]);
        // `run` reports a container killed by a signal as 128 + signal: SIGSYS is 31.
        let out = env.run_bundle(&b);
        out.code(128 + libc::SIGSYS);
        assert!(!b.host_path("/tmp/d").exists(), "{action}: mkdir ran");
    }
    // A shell survives what kills a child it forked, and sees the signal in `$?`.
    let mut b = env.bundle();
    b.set("/linux/seccomp", deny(MKDIR, "SCMP_ACT_KILL", None));
    b.sh("mkdir /tmp/d; echo rc=$?");
    assert_eq!(lines(&env.run_ok(&b)), ["rc=159"]);
}

#[test]
fn argument_filters_pick_calls_by_their_arguments() {
    let env = TestEnv::new("sc_args");
    let mut b = env.bundle();
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                // personality(PER_LINUX32) is denied, personality(PER_LINUX) allowed.
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                // kill(pid > 1, SIGUSR1): two tests on one rule must both hold.
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3,
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GT"},
                          {"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]},
                // chmod to a world-writable mode.
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 1, "value": 0o002, "valueTwo": 0o002, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]
        }),
    );
    // Written for x86_64, where busybox's chmod calls chmod(2) (mode is argument 1).
    b.sh("linux64 uname -m; linux32 uname -m; echo linux32=$?; \
         sleep 60 & p=$!; kill -USR1 $p; echo usr1=$?; kill -0 $p && echo alive; \
         kill -USR2 $p; wait $p; echo waited=$?; \
         kill -USR1 $$ 2>/dev/null; echo self=$?; \
         touch /tmp/f; chmod 640 /tmp/f; echo 640=$?; chmod 666 /tmp/f; echo 666=$?; \
         stat -c %a /tmp/f");
    let out = env.run_bundle(&b);
    assert_eq!(
        lines(&out.ok().stdout),
        [
            "x86_64",
            "linux32=1",
            "usr1=1",
            "alive",
            "waited=140",
            // pid 1 is the shell itself: the first test (pid > 1) fails, the call is
            // allowed, and an init ignores a signal it has no handler for.
            "self=0",
            "640=0",
            "666=1",
            "640",
        ],
        "stderr: {}",
        out.stderr
    );
    assert_contains(&out.stderr, "Operation not permitted"); // personality
    assert_contains(&out.stderr, "No such process"); // kill: ESRCH
    assert_contains(&out.stderr, "Permission denied"); // chmod: EACCES
}

#[test]
fn no_new_privileges_false_and_true_both_load_the_filter() {
    let env = TestEnv::new("sc_nnp");
    for nnp in [false, true] {
        for user in [0, 1000] {
            let mut b = env.bundle();
            b.set("/process/noNewPrivileges", json!(nnp));
            b.set("/process/user", json!({"uid": user, "gid": user}));
            if user != 0 {
                // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: the runtime
                // must load it before it drops the capabilities of a non-root process.
                b.capabilities(&[]);
            }
            b.set("/linux/seccomp", deny(MKDIR, "SCMP_ACT_ERRNO", Some(28)));
            b.sh(&format!("{STATUS}; id -u; mkdir /tmp/d; echo rc=$?"));
            let out = env.run_bundle(&b);
            let nnp_line = format!("NoNewPrivs:\t{}", u8::from(nnp));
            let uid = user.to_string();
            assert_eq!(
                lines(&out.ok().stdout),
                [nnp_line.as_str(), "Seccomp:\t2", uid.as_str(), "rc=1"],
                "noNewPrivileges {nnp}, uid {user}"
            );
            assert_contains(&out.stderr, "No space left on device");
        }
    }
}

#[test]
fn default_deny_profile_runs_a_shell_and_denies_namespaces_and_mounts() {
    let env = TestEnv::new("sc_default_deny");
    let script = "echo ok; ls /; cat /etc/passwd; \
                  unshare -U true; echo unshare=$?; \
                  mount -t tmpfs t /mnt; echo mount=$?; \
                  sleep 0.1 & wait $!; echo forked=$?";
    let make = |with_profile: bool| {
        let mut b = env.bundle();
        std::fs::create_dir(b.host_path("/mnt")).unwrap();
        // Enough privilege that only the filter stands between the shell and a mount.
        b.capabilities(&["CAP_SYS_ADMIN", "CAP_AUDIT_WRITE", "CAP_KILL"]);
        if with_profile {
            b.set("/linux/seccomp", fixture("default-deny.json"));
        }
        b.sh(script);
        b
    };

    // Without the profile both succeed: what fails below fails because of the filter.
    let out = env.run_bundle(&make(false));
    let out = lines(&out.ok().stdout).join("\n");
    assert_contains(&out, "unshare=0");
    assert_contains(&out, "mount=0");

    let b = make(true);
    let out = env.run_bundle(&b);
    out.ok();
    let stdout = lines(&out.stdout);
    assert_eq!(stdout[0], "ok");
    for entry in ["bin", "dev", "etc", "proc", "sys", "tmp"] {
        assert!(stdout.contains(&entry), "ls / lacks {entry}: {stdout:?}");
    }
    assert!(
        stdout.contains(&"root:x:0:0:root:/root:/bin/sh"),
        "{stdout:?}"
    );
    assert!(stdout.contains(&"unshare=1"), "{stdout:?}");
    assert!(stdout.contains(&"mount=1"), "{stdout:?}");
    assert_eq!(stdout.last(), Some(&"forked=0"), "{stdout:?}");
    assert_contains(&out.stderr, "unshare(0x10000000): Operation not permitted");
    // busybox mount words EPERM its own way.
    assert_contains(&out.stderr, "permission denied");
}

#[test]
fn exec_gets_the_containers_filter() {
    let env = TestEnv::new("sc_exec");
    let mut b = env.bundle();
    b.set("/linux/seccomp", deny(MKDIR, "SCMP_ACT_ERRNO", Some(28)));
    b.set_args(&["sleep", "120"]);
    let (id, _guard) = start(&env, &b);
    let out = env
        .rt
        .run(["exec", &id, "grep", "^Seccomp:", "/proc/self/status"]);
    assert_eq!(lines(&out.ok().stdout), ["Seccomp:\t2"]);
    let out = env.rt.run(["exec", &id, "mkdir", "/tmp/d"]);
    out.code(1);
    assert_contains(&out.stderr, "No space left on device");
    assert!(!b.host_path("/tmp/d").exists());
    // A non-root exec with no capabilities is filtered too.
    let out = env
        .rt
        .run(["exec", "--user", "1000:1000", &id, "mkdir", "/tmp/d"]);
    out.code(1);
    assert_contains(&out.stderr, "No space left on device");
}

/// The agent's socket at `path`, for one [`seccomp_agent`] after another.
fn agent_socket(path: &Path) -> Arc<UnixListener> {
    let listener = UnixListener::bind(path).expect("bind agent socket");
    listener.set_nonblocking(true).unwrap();
    Arc::new(listener)
}

/// What the seccomp agent got and did.
struct AgentReport {
    /// The ContainerProcessState message.
    message: Value,
    /// Syscall numbers of the notifications it answered, in order.
    answered: Vec<i32>,
}

/// A seccomp agent on `listener`: takes one connection carrying the ContainerProcessState
/// and the notify fd, then answers notifications in turn with `answers` (`Ok(val)` makes
/// the call return `val` without running it, `Err(errno)` fail with `errno`), until the
/// container's processes are gone or `WAIT` passes. Never blocks longer than that.
fn seccomp_agent(
    listener: &Arc<UnixListener>,
    answers: Vec<Result<i64, i32>>,
) -> std::thread::JoinHandle<Result<AgentReport, String>> {
    let listener = Arc::clone(listener);
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let conn = loop {
            match listener.accept() {
                Ok((conn, _)) => break conn,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err("nobody connected to the agent socket".into());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let (mut payload, notify) = recv_with_fd(&conn)?;
        // One message, as runc's agents read it; runc leaves the connection open, so read
        // on only while the JSON is incomplete.
        let message: Value = loop {
            match serde_json::from_slice(&payload) {
                Ok(message) => break message,
                Err(e) if e.is_eof() => {
                    let mut more = [0u8; 4096];
                    match (&conn).read(&mut more) {
                        Ok(n) if n > 0 => payload.extend_from_slice(&more[..n]),
                        _ => return Err(format!("state cut short: {payload:?}")),
                    }
                }
                Err(e) => return Err(format!("state is not JSON ({e}): {payload:?}")),
            }
        };
        let notify = notify.ok_or("no fd came with the state")?;
        let mut answered = Vec::new();
        for answer in answers {
            if !wait_readable(&notify, deadline)? {
                break;
            }
            // SAFETY: seccomp_notif is plain integers; the kernel wants it zeroed.
            let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            // SAFETY: NOTIF_RECV writes one seccomp_notif into a live local.
            let rc = unsafe {
                libc::ioctl(
                    notify.as_raw_fd(),
                    libc::SECCOMP_IOCTL_NOTIF_RECV,
                    &mut notif,
                )
            };
            if rc != 0 {
                return Err(format!("NOTIF_RECV: {}", std::io::Error::last_os_error()));
            }
            let (val, error) = match answer {
                Ok(val) => (val, 0),
                Err(errno) => (0, -errno),
            };
            let mut resp = libc::seccomp_notif_resp {
                id: notif.id,
                val,
                error,
                flags: 0,
            };
            // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from a live local.
            let rc = unsafe {
                libc::ioctl(
                    notify.as_raw_fd(),
                    libc::SECCOMP_IOCTL_NOTIF_SEND,
                    &mut resp,
                )
            };
            if rc != 0 {
                return Err(format!("NOTIF_SEND: {}", std::io::Error::last_os_error()));
            }
            answered.push(notif.data.nr);
        }
        Ok(AgentReport { message, answered })
    })
}

/// One `recvmsg`: the bytes and the fd passed with them (SCM_RIGHTS).
fn recv_with_fd(
    conn: &std::os::unix::net::UnixStream,
) -> Result<(Vec<u8>, Option<OwnedFd>), String> {
    let mut buf = vec![0u8; 64 * 1024];
    // Room for one cmsghdr with a handful of fds.
    let mut control = [0u64; 16];
    let mut iov = [IoSliceMut::new(&mut buf)];
    // SAFETY: msghdr is plain data; the fields set below point at live locals.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr().cast();
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: recvmsg fills the buffers `msg` points at, all alive for the call.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    let mut fd = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, bounded by
    // msg_controllen; SCM_RIGHTS data is an array of ints.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    let owned = OwnedFd::from_raw_fd(data.add(i).read_unaligned());
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    buf.truncate(n as usize);
    Ok((buf, fd))
}

/// Waits until a notification is pending (true) or every filtered process is gone (false).
fn wait_readable(fd: &OwnedFd, deadline: Instant) -> Result<bool, String> {
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one live pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, 100) };
        if rc < 0 {
            return Err(format!("poll: {}", std::io::Error::last_os_error()));
        }
        if pfd.revents & libc::POLLIN != 0 {
            return Ok(true);
        }
        if pfd.revents & libc::POLLHUP != 0 {
            return Ok(false);
        }
        if Instant::now() > deadline {
            return Err("no notification came".into());
        }
    }
}

#[test]
fn notify_hands_the_listener_fd_to_an_agent_that_answers() {
    let env = TestEnv::new("sc_notify");
    let socket = env.path("agent.sock");
    let mut b = env.bundle();
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": arg(&socket),
            "listenerMetadata": "agent-args",
            "syscalls": [{"names": MKDIR, "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    b.sh("mkdir /tmp/a; echo a=$?; [ -e /tmp/a ] || echo a-absent; mkdir /tmp/b; echo b=$?");
    // The first mkdir "succeeds" without a directory made, the second fails with ENOSPC.
    let agent = seccomp_agent(&agent_socket(&socket), vec![Ok(0), Err(libc::ENOSPC)]);
    let id = env.id();
    let _guard = env.guard(&id);
    let out = env.rt.run(["run", "--bundle", &arg(b.path()), &id]);
    let report = agent.join().expect("agent thread").expect("agent");
    assert_eq!(
        lines(&out.ok().stdout),
        ["a=0", "a-absent", "b=1"],
        "stderr: {}",
        out.stderr
    );
    assert_contains(&out.stderr, "No space left on device");
    assert_eq!(report.answered, [libc::SYS_mkdir as i32; 2]);

    let m = &report.message;
    assert_eq!(m["fds"], json!(["seccompFd"]), "{m}");
    assert_eq!(m["metadata"], "agent-args", "{m}");
    assert!(m["ociVersion"].is_string(), "{m}");
    assert_eq!(m["state"]["id"], json!(id), "{m}");
    assert_eq!(m["state"]["bundle"], json!(arg(b.path())), "{m}");
    assert_eq!(m["state"]["status"], "creating", "{m}");
    let pid = m["pid"].as_i64().expect("pid");
    assert!(pid > 0, "{m}");
    assert_eq!(m["state"]["pid"], json!(pid), "{m}");
}

#[test]
fn notify_with_create_and_start() {
    let env = TestEnv::new("sc_notify_cs");
    let socket = env.path("agent.sock");
    let mut b = env.bundle();
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": arg(&socket),
            "syscalls": [{"names": MKDIR, "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    b.sh("mkdir /tmp/a; echo a=$? > /tmp/result; sleep 60");
    let agent = seccomp_agent(&agent_socket(&socket), vec![Err(libc::EROFS)]);
    let (id, _guard) = start(&env, &b);
    wait_until("the container wrote its result", WAIT, || {
        std::fs::read_to_string(b.host_path("/tmp/result")).is_ok_and(|r| r.ends_with('\n'))
    });
    assert_eq!(
        std::fs::read_to_string(b.host_path("/tmp/result")).unwrap(),
        "a=1\n"
    );
    env.rt.run(["kill", &id, "KILL"]).ok();
    let report = agent.join().expect("agent thread").expect("agent");
    assert_eq!(report.answered, [libc::SYS_mkdir as i32]);
    // No listenerMetadata: the field is left out (runc) or empty.
    assert!(
        report.message["metadata"].as_str().unwrap_or("").is_empty(),
        "{}",
        report.message
    );
    assert_eq!(report.message["state"]["id"], json!(id));
}

#[test]
fn notify_for_exec_goes_to_the_agent_too() {
    let env = TestEnv::new("sc_notify_exec");
    let socket = env.path("agent.sock");
    let mut b = env.bundle();
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": arg(&socket),
            "syscalls": [{"names": MKDIR, "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    b.set_args(&["sleep", "120"]);
    let listener = agent_socket(&socket);
    // The init's listener fd arrives at create; the init never calls mkdir.
    let init_agent = seccomp_agent(&listener, vec![]);
    let (id, _guard) = start(&env, &b);
    let init = init_agent.join().expect("agent thread").expect("agent");
    let init_pid = env.rt.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(init.message["pid"], json!(init_pid));

    // Each exec'd process loads the filter anew and its listener fd is sent again.
    let exec_agent = seccomp_agent(&listener, vec![Ok(0)]);
    let out = env.rt.run([
        "exec",
        &id,
        "sh",
        "-c",
        "mkdir /tmp/x; echo rc=$?; [ -e /tmp/x ] || echo absent",
    ]);
    let report = exec_agent.join().expect("agent thread").expect("agent");
    assert_eq!(lines(&out.ok().stdout), ["rc=0", "absent"]);
    assert_eq!(report.answered, [libc::SYS_mkdir as i32]);
    assert_eq!(report.message["state"]["id"], json!(id));
    assert_eq!(report.message["state"]["status"], "running");
    assert_eq!(report.message["state"]["pid"], json!(init_pid));
    // The top-level pid is the process whose filter this is (runc: the exec'd process).
    let exec_pid = report.message["pid"].as_i64().expect("pid");
    assert_ne!(exec_pid, init_pid, "{}", report.message);
}
