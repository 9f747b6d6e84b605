//! Helpers shared by the integration tests: bundles, runtime selection, cleanup guards.
//!
//! Every test builds a [`TestEnv`] (its own temp dir and `--root`), makes busybox
//! [`Bundle`]s in it, drives the runtime under test through [`Runtime`] (every call has a
//! timeout, so a hang fails the test instead of hanging CI) and wraps each container in a
//! [`ContainerGuard`] that force-deletes it and kills the processes it recorded, even when
//! the test panics. The runtime is `RUNRS_TEST_RUNTIME` or the workspace's `runrs`.

pub mod bundle;
pub mod console;
pub mod env;
pub mod procfs;
pub mod runtime;

pub use bundle::Bundle;
pub use console::ConsoleSocket;
pub use env::{ContainerGuard, TestEnv};
pub use runtime::{
    expected_cpu_weight, is_runc, runc_lacks, runc_version_of, runtime_path, Output, Running,
    Runtime,
};

use std::time::{Duration, Instant};

/// Polls `cond` every few milliseconds until it is true or `timeout` passes; returns
/// whether it became true.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Like [`wait_for`] but panics with `what` when the condition never holds.
pub fn wait_until(what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
    assert!(
        wait_for(timeout, cond),
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// Whether the suites run in an emulated guest (`hack/guest-suite` sets
/// `RUNRS_TEST_EMULATED=1` under qemu's TCG, where a CPU-bound step takes 20–50× as long):
/// a test whose subject is only CPU and memory, measured on the host by `hack/test`, says
/// SKIPPED in one line there instead of outlasting every timeout.
pub fn skipped_under_emulation(test: &str, why: &str) -> bool {
    let emulated = std::env::var("RUNRS_TEST_EMULATED").is_ok_and(|v| v == "1");
    if emulated {
        // The real stderr, not the harness's captured one: the suite's output says so.
        use std::io::Write;
        let line = format!("SKIPPED {test}: {why} (it runs on the host)\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    emulated
}

/// Asserts that `haystack` contains `needle`, showing both on failure.
#[track_caller]
pub fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected to find {needle:?} in:\n{haystack}"
    );
}

/// Asserts that `haystack` does not contain `needle`, showing both on failure.
#[track_caller]
pub fn assert_not_contains(haystack: &str, needle: &str) {
    assert!(
        !haystack.contains(needle),
        "did not expect {needle:?} in:\n{haystack}"
    );
}

/// The lines of `text`, trimmed, without empty ones.
pub fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Capability numbers (from linux/capability.h) by their OCI names.
pub const CAPABILITIES: &[(&str, u32)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_LINUX_IMMUTABLE", 9),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_BROADCAST", 11),
    ("CAP_NET_ADMIN", 12),
    ("CAP_NET_RAW", 13),
    ("CAP_IPC_LOCK", 14),
    ("CAP_IPC_OWNER", 15),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_RAWIO", 17),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_SYS_PACCT", 20),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_BOOT", 22),
    ("CAP_SYS_NICE", 23),
    ("CAP_SYS_RESOURCE", 24),
    ("CAP_SYS_TIME", 25),
    ("CAP_SYS_TTY_CONFIG", 26),
    ("CAP_MKNOD", 27),
    ("CAP_LEASE", 28),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_AUDIT_CONTROL", 30),
    ("CAP_SETFCAP", 31),
    ("CAP_MAC_OVERRIDE", 32),
    ("CAP_MAC_ADMIN", 33),
    ("CAP_SYSLOG", 34),
    ("CAP_WAKE_ALARM", 35),
    ("CAP_BLOCK_SUSPEND", 36),
    ("CAP_AUDIT_READ", 37),
    ("CAP_PERFMON", 38),
    ("CAP_BPF", 39),
    ("CAP_CHECKPOINT_RESTORE", 40),
];

/// The bit mask `/proc/<pid>/status` shows for a set of capability names.
pub fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0, |mask, name| {
        let bit = CAPABILITIES
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("unknown capability {name}"))
            .1;
        mask | (1u64 << bit)
    })
}

/// The capabilities this machine's bounding set holds (CAP_SYS_RESOURCE is missing in
/// the shared sandbox), as OCI names: what a container can be given at most.
pub fn host_capabilities() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let bounding = procfs::status_caps(&status)["CapBnd"];
    CAPABILITIES
        .iter()
        .filter(|(_, bit)| bounding & (1u64 << bit) != 0)
        .map(|(name, _)| *name)
        .collect()
}

/// A path as a command-line argument.
pub fn arg(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Whether `s` is an RFC 3339 timestamp (`2024-01-02T03:04:05.123Z`, offset allowed).
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if rest == "Z" || rest == "z" {
        return true;
    }
    let o = rest.as_bytes();
    o.len() == 6
        && matches!(o[0], b'+' | b'-')
        && o[1..3].iter().all(u8::is_ascii_digit)
        && o[3] == b':'
        && o[4..6].iter().all(u8::is_ascii_digit)
}

/// Loads (or replaces) an AppArmor profile named `name` that confines nothing (flags
/// `unconfined`: a process in it shows `NAME (unconfined)` in `/proc/PID/attr/current`), where
/// AppArmor is enabled and `apparmor_parser` installed; `Err` says why it could not be.
pub fn load_apparmor_profile(name: &str) -> Result<(), String> {
    use std::io::Write;
    let enabled = std::path::Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.starts_with('Y'));
    if !enabled {
        return Err("AppArmor is not enabled".into());
    }
    let mut child = std::process::Command::new("apparmor_parser")
        .arg("-r")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("apparmor_parser: {e}"))?;
    let profile = format!("profile {name} flags=(unconfined) {{\n}}\n");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(profile.as_bytes())
        .map_err(|e| format!("apparmor_parser: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("apparmor_parser: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "apparmor_parser: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}
