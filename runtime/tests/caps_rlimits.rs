//! Capabilities and rlimits, applied in forked children and checked in /proc/self/status.

use oci_spec::runtime::{LinuxCapabilities, PosixRlimit};

/// Run `f` alone in a fresh copy of this test binary (capabilities and limits are per
/// process, and forking a multi-threaded test process could deadlock): the test re-runs
/// itself with `RUNRS_ISOLATED` set, and the result comes back on stdout.
fn in_child(name: &str, f: impl FnOnce() -> Result<String, String>) -> Result<String, String> {
    const MARK: &str = "\n@@result@@";
    if std::env::var("RUNRS_ISOLATED").as_deref() == Ok(name) {
        let (code, text) = match f() {
            Ok(s) => (0, s),
            Err(s) => (1, s),
        };
        print!("{MARK}{text}");
        std::process::exit(code);
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("RUNRS_ISOLATED", name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = match stdout.split_once(MARK) {
        Some((_, t)) => t.to_string(),
        None => panic!("no result from the isolated test: {stdout}"),
    };
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn status_mask(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

fn caps(v: serde_json::Value) -> LinuxCapabilities {
    serde_json::from_value(v).unwrap()
}

const KILL: u64 = 1 << 5;
const NET_BIND_SERVICE: u64 = 1 << 10;
const AUDIT_WRITE: u64 = 1 << 29;

fn masks() -> String {
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .map(|f| format!("{f}={:x}", status_mask(f)))
        .join(" ")
}

#[test]
fn root_gets_exactly_the_configured_sets() {
    let c = caps(serde_json::json!({
        "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL", "CAP_AUDIT_WRITE"],
    }));
    let out = in_child("root_gets_exactly_the_configured_sets", || {
        runrs::capabilities::drop_bounding(&c).map_err(|e| e.to_string())?;
        runrs::capabilities::apply(&c).map_err(|e| e.to_string())?;
        Ok(masks())
    })
    .unwrap();
    let all = KILL | NET_BIND_SERVICE | AUDIT_WRITE;
    // Ambient CAP_AUDIT_WRITE is not inheritable: skipped, as runc does.
    let want = format!(
        "CapInh={KILL:x} CapPrm={all:x} CapEff={:x} CapBnd={all:x} CapAmb={KILL:x}",
        KILL | NET_BIND_SERVICE
    );
    assert_eq!(out, want);
}

#[test]
fn non_root_keeps_caps_across_setuid() {
    let c = caps(serde_json::json!({
        "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }));
    let out = in_child("non_root_keeps_caps_across_setuid", || {
        runrs::capabilities::drop_bounding(&c).map_err(|e| e.to_string())?;
        // SAFETY: plain prctl/setresuid calls.
        unsafe {
            libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0);
            if libc::setresuid(1000, 1000, 1000) != 0 {
                return Err("setresuid".into());
            }
        }
        runrs::capabilities::apply(&c).map_err(|e| e.to_string())?;
        Ok(masks())
    })
    .unwrap();
    let n = NET_BIND_SERVICE;
    let b = KILL | NET_BIND_SERVICE;
    assert_eq!(
        out,
        format!("CapInh={n:x} CapPrm={n:x} CapEff={n:x} CapBnd={b:x} CapAmb={n:x}")
    );
}

#[test]
fn a_capability_the_runtime_lacks_is_named() {
    let c = caps(serde_json::json!({
        "bounding": ["CAP_KILL", "CAP_SYS_RESOURCE"],
        "effective": ["CAP_KILL", "CAP_SYS_RESOURCE"],
        "permitted": ["CAP_KILL", "CAP_SYS_RESOURCE"],
    }));
    let err = in_child("a_capability_the_runtime_lacks_is_named", || {
        // Make the runtime lack CAP_SYS_RESOURCE (24) whatever this machine grants.
        // SAFETY: PR_CAPBSET_DROP takes a number; capset/capget use valid buffers.
        unsafe {
            libc::prctl(libc::PR_CAPBSET_DROP, 24, 0, 0, 0);
            let mut hdr = [0x2008_0522u32, 0];
            let mut data = [0u32; 6];
            libc::syscall(libc::SYS_capget, hdr.as_mut_ptr(), data.as_mut_ptr());
            data[0] &= !(1 << 24);
            data[1] &= !(1 << 24);
            libc::syscall(libc::SYS_capset, hdr.as_mut_ptr(), data.as_ptr());
        }
        runrs::capabilities::drop_bounding(&c).map_err(|e| e.to_string())?;
        runrs::capabilities::apply(&c).map_err(|e| e.to_string())?;
        Ok(masks())
    })
    .unwrap_err();
    assert_eq!(
        err,
        "capability CAP_SYS_RESOURCE is not in the runtime's bounding set: it cannot be granted"
    );
}

#[test]
fn unknown_names_are_stripped_before_parsing() {
    let mut v = serde_json::json!({"process": {"capabilities": {
        "bounding": ["CAP_KILL", "CAP_FOO"], "effective": ["CAP_FOO", "CAP_BAR"]}}});
    let unknown = runrs::capabilities::strip_unknown(&mut v);
    assert_eq!(unknown, ["CAP_BAR", "CAP_FOO"]);
    assert_eq!(
        v["process"]["capabilities"]["bounding"],
        serde_json::json!(["CAP_KILL"])
    );
    assert_eq!(
        v["process"]["capabilities"]["effective"],
        serde_json::json!([])
    );
}

fn rlimit(t: &str, soft: u64, hard: u64) -> PosixRlimit {
    serde_json::from_value(serde_json::json!({"type": t, "soft": soft, "hard": hard})).unwrap()
}

fn getrlimit(r: libc::__rlimit_resource_t) -> (u64, u64) {
    // SAFETY: an all-zero rlimit is valid; getrlimit writes through a valid pointer.
    let mut l: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrlimit(r, &mut l) };
    (l.rlim_cur, l.rlim_max)
}

#[test]
fn rlimits_are_applied() {
    let out = in_child("rlimits_are_applied", || {
        runrs::rlimits::apply(&[
            rlimit("RLIMIT_NOFILE", 100, 200),
            rlimit("RLIMIT_CORE", 0, 0),
            rlimit("RLIMIT_NPROC", 5000, 6000),
        ])
        .map_err(|e| e.to_string())?;
        Ok(format!(
            "{:?} {:?} {:?}",
            getrlimit(libc::RLIMIT_NOFILE),
            getrlimit(libc::RLIMIT_CORE),
            getrlimit(libc::RLIMIT_NPROC)
        ))
    })
    .unwrap();
    assert_eq!(out, "(100, 200) (0, 0) (5000, 6000)");
}

#[test]
fn every_limit_name_maps_to_its_resource() {
    let names = [
        ("RLIMIT_AS", libc::RLIMIT_AS),
        ("RLIMIT_CORE", libc::RLIMIT_CORE),
        ("RLIMIT_CPU", libc::RLIMIT_CPU),
        ("RLIMIT_DATA", libc::RLIMIT_DATA),
        ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
        ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
        ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
        ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
        ("RLIMIT_NICE", libc::RLIMIT_NICE),
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        ("RLIMIT_RSS", libc::RLIMIT_RSS),
        ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
        ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
        ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
        ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ];
    let out = in_child("every_limit_name_maps_to_its_resource", || {
        for (name, r) in names {
            let (soft, hard) = getrlimit(r);
            // Lower the soft limit by one (or keep 0) to see it land on the right resource.
            let want = soft.saturating_sub(1).min(hard);
            runrs::rlimits::apply(&[rlimit(name, want, hard)]).map_err(|e| e.to_string())?;
            if getrlimit(r) != (want, hard) {
                return Err(format!("{name} did not reach its resource"));
            }
            let t = rlimit(name, 0, 0).typ();
            if runrs::rlimits::name(t) != name {
                return Err(format!("{name} is named {}", runrs::rlimits::name(t)));
            }
        }
        Ok(String::new())
    });
    assert_eq!(out, Ok(String::new()));
}

#[test]
fn raising_the_hard_limit_names_the_limit_and_the_capability() {
    let err = in_child(
        "raising_the_hard_limit_names_the_limit_and_the_capability",
        || {
            // Lose CAP_SYS_RESOURCE (24) from the effective set, whatever this machine grants.
            // SAFETY: capget/capset use valid buffers.
            unsafe {
                let mut hdr = [0x2008_0522u32, 0];
                let mut data = [0u32; 6];
                libc::syscall(libc::SYS_capget, hdr.as_mut_ptr(), data.as_mut_ptr());
                data[0] &= !(1 << 24);
                libc::syscall(libc::SYS_capset, hdr.as_mut_ptr(), data.as_ptr());
            }
            let (_, hard) = getrlimit(libc::RLIMIT_NOFILE);
            runrs::rlimits::apply(&[rlimit("RLIMIT_NOFILE", 1024, hard + 1)])
                .map(|_| String::new())
                .map_err(|e| format!("{hard} {e}"))
        },
    )
    .unwrap_err();
    let (hard, msg) = err.split_once(' ').unwrap();
    let hard: u64 = hard.parse().unwrap();
    assert_eq!(
        msg,
        format!(
            "error setting rlimit type RLIMIT_NOFILE (soft 1024, hard {}): operation not \
             permitted: the hard limit cannot be raised above the current {hard} without \
             CAP_SYS_RESOURCE",
            hard + 1
        )
    );
}

#[test]
fn soft_above_hard_is_explained() {
    let err = in_child("soft_above_hard_is_explained", || {
        runrs::rlimits::apply(&[rlimit("RLIMIT_CORE", 10, 5)])
            .map(|_| String::new())
            .map_err(|e| e.to_string())
    })
    .unwrap_err();
    assert_eq!(
        err,
        "error setting rlimit type RLIMIT_CORE (soft 10, hard 5): invalid argument: the soft \
         limit is above the hard limit"
    );
}

#[test]
fn unknown_limit_names_use_runcs_wording() {
    let v = serde_json::json!({"process": {"rlimits": [
        {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
        {"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]}});
    let e = runrs::rlimits::check_names(&v).unwrap_err();
    assert_eq!(e.to_string(), "wrong rlimit value: RLIMIT_FOO");
}
