//! Differential test: random profiles compiled by `compile` against libseccomp's filter for
//! the same profile (built as runc builds it, by `libseccomp_helper.c`), both run on random
//! `(arch, nr, args)` in a classic-BPF interpreter. Any difference in the returned action is
//! a bug in ours (runc's containers get libseccomp's answer).
//!
//! Needs a C compiler and libseccomp-dev (hack/test installs it). Deterministic:
//! RUNRS_SECCOMP_DIFF_SEED=N picks another seed (the seed is printed on failure),
//! RUNRS_SECCOMP_DIFF_PROFILES=N the number of profiles (default 400),
//! RUNRS_SECCOMP_DIFF_ARCHES=1 lets profiles name x86 and x32 (a known difference).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const X32_BIT: u32 = 0x4000_0000;

/// Names from every corner: common, x86_64-only, i386-only, multiplexed on i386 (socketcall,
/// ipc), x32's own numbers, new ones, and names no architecture has.
const NAMES: &[&str] = &[
    "read",
    "write",
    "openat",
    "close",
    "mmap",
    "mprotect",
    "ioctl",
    "readv",
    "clone",
    "clone3",
    "execve",
    "kill",
    "personality",
    "mkdir",
    "chmod",
    "getpid",
    "uname",
    "arch_prctl",
    "socket",
    "connect",
    "accept4",
    "sendmsg",
    "recvmsg",
    "setsockopt",
    "shmget",
    "semop",
    "msgsnd",
    "socketcall",
    "ipc",
    "mmap2",
    "_llseek",
    "rt_sigaction",
    "fstat",
    "fstat64",
    "time",
    "futex",
    "prctl",
    "seccomp",
    "io_uring_setup",
    "cachestat",
    "mseal",
    "vm86",
    "no_such_syscall",
];

const ARCHES: &[&str] = &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
];

/// The OCI operator names, with libseccomp's `enum scmp_compare` values.
const OPS: &[(&str, u32)] = &[
    ("SCMP_CMP_NE", 1),
    ("SCMP_CMP_LT", 2),
    ("SCMP_CMP_LE", 3),
    ("SCMP_CMP_EQ", 4),
    ("SCMP_CMP_GE", 5),
    ("SCMP_CMP_GT", 6),
    ("SCMP_CMP_MASKED_EQ", 7),
];

/// xorshift64*: small, seedable, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    /// Values near the edges of 32 and 64 bits, small ones, and anything.
    fn value(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => self.next() % 16,
            2 => u64::MAX - self.next() % 4,
            3 => (1 << 32) + self.next() % 4,
            4 => 0xffff_ffff - self.next() % 4,
            5 => ((self.next() % 4) << 32) | (self.next() % 4),
            6 => 1 << self.below(64),
            _ => self.next(),
        }
    }
}

/// An action: its OCI name, errnoRet if any, and the `SECCOMP_RET_*` value both must return.
fn action(rng: &mut Rng, notify: bool) -> (&'static str, Option<u32>, u32) {
    let errno = if rng.chance(50) {
        Some(rng.below(200) as u32)
    } else {
        None
    };
    let data = errno.unwrap_or(libc::EPERM as u32);
    let choices = if notify { 9 } else { 8 };
    match rng.below(choices) {
        0 => ("SCMP_ACT_ALLOW", None, 0x7fff_0000),
        1 => ("SCMP_ACT_ERRNO", errno, 0x0005_0000 | data),
        2 => ("SCMP_ACT_KILL", None, 0),
        3 => ("SCMP_ACT_KILL_PROCESS", None, 0x8000_0000),
        4 => ("SCMP_ACT_TRAP", None, 0x0003_0000),
        5 => ("SCMP_ACT_TRACE", errno, 0x7ff0_0000 | data),
        6 => ("SCMP_ACT_LOG", None, 0x7ffc_0000),
        7 => ("SCMP_ACT_KILL_THREAD", None, 0),
        _ => ("SCMP_ACT_NOTIFY", None, 0x7fc0_0000),
    }
}

/// One rule as runc hands it to libseccomp: a syscall, its action, and its tests (all must
/// pass; none = always).
struct Rule {
    name: &'static str,
    code: u32,
    tests: Vec<(usize, u32, u64, u64)>,
}

struct Profile {
    json: serde_json::Value,
    default: u32,
    rules: Vec<Rule>,
    /// The same profile as `libseccomp_helper.c` reads it.
    helper_input: String,
    /// Argument values the profile compares with (tuples aim at and around them).
    values: Vec<u64>,
    names: Vec<&'static str>,
}

/// A random profile over the names of `pool`, naming the first `compat_arches` of `ARCHES`.
///
/// Conditional rules of one syscall share one action: where such rules overlap with
/// different actions, libseccomp's answer follows the order of its rule tree (by argument
/// index, operator and value, on 32-bit halves), not the profile's, and that order is not
/// reproduced here (docs/cli.md lists it).
fn profile(rng: &mut Rng, pool: &[&'static str], compat_arches: usize) -> Profile {
    let (default_name, default_errno, default_code) = action(rng, false);
    let mut json = serde_json::json!({ "defaultAction": default_name });
    if let Some(e) = default_errno {
        json["defaultErrnoRet"] = e.into();
    }
    let mut input = format!("default {default_code}\nbadarch {}\n", 0x8000_0000u32);
    let arches: Vec<&str> = ARCHES[..compat_arches]
        .iter()
        .copied()
        .filter(|_| rng.chance(50))
        .collect();
    for arch in &arches {
        let name = arch.trim_start_matches("SCMP_ARCH_").to_ascii_lowercase();
        input.push_str(&format!("arch {name}\n"));
    }
    if !arches.is_empty() || rng.chance(20) {
        json["architectures"] = arches.into();
    }
    let flags: Vec<&str> = FLAGS.iter().copied().filter(|_| rng.chance(20)).collect();
    if !flags.is_empty() {
        json["flags"] = flags.into();
    }
    let mut syscalls = Vec::new();
    let mut values = Vec::new();
    let mut names_used = Vec::new();
    let mut rules = Vec::new();
    let mut conditional_action: HashMap<&'static str, u32> = HashMap::new();
    for _ in 0..1 + rng.below(8) {
        let (act, errno, code) = action(rng, true);
        let count = match rng.below(10) {
            0..=3 => 0,
            4..=6 => 1,
            7..=8 => 2,
            _ => 3,
        };
        let names: Vec<&'static str> = (0..1 + rng.below(3))
            .map(|_| *rng.pick(pool))
            .filter(|name| !(act == "SCMP_ACT_NOTIFY" && *name == "write"))
            .filter(|name| count == 0 || *conditional_action.entry(name).or_insert(code) == code)
            .collect();
        if names.is_empty() {
            continue;
        }
        let mut args = Vec::new();
        let mut helper_args = String::new();
        for _ in 0..count {
            let index = rng.below(6);
            let (op, op_code) = *rng.pick(OPS);
            let value = rng.value();
            let value_two = if op_code == 7 {
                // Mostly a datum inside the mask (a live test), sometimes outside.
                if rng.chance(80) {
                    rng.value() & value
                } else {
                    rng.value()
                }
            } else {
                0
            };
            values.extend([value, value_two]);
            let mut arg = serde_json::json!({ "index": index, "value": value, "op": op });
            if op_code == 7 || rng.chance(10) {
                arg["valueTwo"] = value_two.into();
            }
            args.push(arg);
            // libseccomp: datum_a is the mask for MASKED_EQ, datum_b the value.
            helper_args.push_str(&format!(" {index} {op_code} {value} {value_two}"));
        }
        let mut entry = serde_json::json!({ "names": names, "action": act });
        if let Some(e) = errno {
            entry["errnoRet"] = e.into();
        }
        if !args.is_empty() {
            entry["args"] = args.into();
        }
        syscalls.push(entry);
        // runc adds one libseccomp rule per name; with an argument index given twice, one
        // rule per test (libseccomp cannot AND two tests of one argument).
        let split = {
            let mut seen = [0; 6];
            helper_args.split_whitespace().step_by(4).any(|i| {
                let i: usize = i.parse().unwrap();
                seen[i] += 1;
                seen[i] > 1
            })
        };
        let tests: Vec<(usize, u32, u64, u64)> = helper_args
            .split_whitespace()
            .map(|w| w.parse::<u64>().unwrap())
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|t| (t[0] as usize, t[1] as u32, t[2], t[3]))
            .collect();
        for name in &names {
            names_used.push(*name);
            let groups: Vec<Vec<(usize, u32, u64, u64)>> = if split {
                tests.iter().map(|t| vec![*t]).collect()
            } else {
                vec![tests.clone()]
            };
            // runc skips a rule with the default action ("redundant"; libseccomp refuses it).
            if code == default_code {
                continue;
            }
            for group in groups {
                input.push_str(&format!("rule {code} {name} {}", group.len()));
                for (index, op, a, b) in &group {
                    input.push_str(&format!(" {index} {op} {a} {b}"));
                }
                input.push('\n');
                rules.push(Rule {
                    name,
                    code,
                    tests: group,
                });
            }
        }
    }
    json["syscalls"] = syscalls.into();
    Profile {
        json,
        default: default_code,
        rules,
        helper_input: input,
        values,
        names: names_used,
    }
}

/// What the profile means for a native syscall, read the way runc and libseccomp read it: a
/// foreign ABI gets the bad-arch action; a syscall with a rule without tests gets the first
/// such rule's action (rules with tests of that syscall are then ignored); otherwise the
/// action of any rule whose tests all pass (one action per syscall, see `profile`); otherwise
/// the default.
fn meaning(
    p: &Profile,
    numbers: &HashMap<(&'static str, &'static str), u32>,
    arch: u32,
    nr: u32,
    args: &[u64; 6],
) -> u32 {
    if arch != AUDIT_ARCH_X86_64 || nr & X32_BIT != 0 {
        return 0x8000_0000;
    }
    let rules: Vec<&Rule> = p
        .rules
        .iter()
        .filter(|r| numbers.get(&("x86_64", r.name)) == Some(&nr))
        .collect();
    if let Some(r) = rules.iter().find(|r| r.tests.is_empty()) {
        return r.code;
    }
    let passes = |&(index, op, a, b): &(usize, u32, u64, u64)| {
        let v = args[index];
        match op {
            1 => v != a,
            2 => v < a,
            3 => v <= a,
            4 => v == a,
            5 => v >= a,
            6 => v > a,
            _ => v & a == b & a,
        }
    };
    rules
        .iter()
        .find(|r| r.tests.iter().all(passes))
        .map_or(p.default, |r| r.code)
}

/// The helper, built once per test run.
fn helper(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/seccomp/libseccomp_helper.c");
    let bin = dir.join("libseccomp_helper");
    let out = Command::new("cc")
        .arg("-O1")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .arg("-lseccomp")
        .output()
        .expect("run cc (the differential seccomp test needs a C compiler)");
    assert!(
        out.status.success(),
        "building the libseccomp helper failed (install libseccomp-dev: hack/install-deps libseccomp-dev):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// libseccomp's program for `input`, and the rules it refused (index, errno).
fn reference(helper: &Path, input: &str) -> (Vec<libc::sock_filter>, Vec<String>) {
    let mut child = Command::new(helper)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the libseccomp helper");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "libseccomp helper: {stderr}\ninput:\n{input}"
    );
    let program = out
        .stdout
        .chunks_exact(8)
        .map(|i| libc::sock_filter {
            code: u16::from_ne_bytes([i[0], i[1]]),
            jt: i[2],
            jf: i[3],
            k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
        })
        .collect();
    (program, stderr.lines().map(String::from).collect())
}

/// Each name's number on each architecture, as libseccomp knows them.
fn numbers(helper: &Path) -> HashMap<(&'static str, &'static str), u32> {
    let mut map = HashMap::new();
    for arch in ["x86_64", "x86", "x32"] {
        let out = Command::new(helper)
            .arg("resolve")
            .arg(arch)
            .args(NAMES)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        for (name, nr) in NAMES.iter().zip(text.lines()) {
            let nr: i64 = nr.parse().unwrap();
            if nr >= 0 {
                map.insert((arch, *name), nr as u32);
            }
        }
    }
    map
}

/// The kernel's classic BPF as seccomp accepts it, over `struct seccomp_data`.
fn run(program: &[libc::sock_filter], data: &[u8; 64]) -> u32 {
    let word = |at: u32| -> u32 {
        let at = at as usize;
        assert!(
            at.is_multiple_of(4) && at + 4 <= 64,
            "load out of seccomp_data: {at}"
        );
        u32::from_ne_bytes(data[at..at + 4].try_into().unwrap())
    };
    let (mut a, mut x, mut mem, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
    loop {
        let insn = program
            .get(pc)
            .unwrap_or_else(|| panic!("ran off the program at {pc}"));
        pc += 1;
        let k = insn.k;
        let src = if insn.code & 0x08 != 0 { x } else { k };
        match insn.code & 0x07 {
            0x00 => match insn.code {
                0x20 => a = word(k),         // LD W ABS
                0x00 => a = k,               // LD IMM
                0x60 => a = mem[k as usize], // LD MEM
                0x80 => a = 64,              // LD W LEN
                c => panic!("unexpected load {c:#x}"),
            },
            0x01 => match insn.code {
                0x01 => x = k,               // LDX IMM
                0x61 => x = mem[k as usize], // LDX MEM
                0x81 => x = 64,              // LDX LEN
                c => panic!("unexpected ldx {c:#x}"),
            },
            0x02 => mem[k as usize] = a,
            0x03 => mem[k as usize] = x,
            0x04 => {
                a = match insn.code & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    0x30 => a.checked_div(src).expect("division by zero"),
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.checked_shl(src).unwrap_or(0),
                    0x70 => a.checked_shr(src).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(src).expect("modulo by zero"),
                    0xa0 => a ^ src,
                    c => panic!("unexpected alu {c:#x}"),
                }
            }
            0x05 => {
                if insn.code & 0xf0 == 0x00 {
                    pc += k as usize; // JA
                    continue;
                }
                let taken = match insn.code & 0xf0 {
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    0x40 => a & src != 0,
                    c => panic!("unexpected jump {c:#x}"),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            0x06 => return if insn.code & 0x18 == 0x10 { a } else { k },
            _ => match insn.code {
                0x07 => x = a, // TAX
                0x87 => a = x, // TXA
                c => panic!("unexpected misc {c:#x}"),
            },
        }
    }
}

fn seccomp_data(arch: u32, nr: u32, args: &[u64; 6]) -> [u8; 64] {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, arg) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
    }
    data
}

#[test]
#[cfg(target_arch = "x86_64")]
fn our_filters_return_what_libseccomps_return() {
    let seed: u64 = std::env::var("RUNRS_SECCOMP_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5ec0_4b9f);
    let profiles: usize = std::env::var("RUNRS_SECCOMP_DIFF_PROFILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let dir = tempfile::tempdir().unwrap();
    let helper = helper(dir.path());
    let numbers = numbers(&helper);
    // Names this libseccomp does not know natively (newer than it) are left out: runc built
    // with it would skip them, one built with a newer one would not. The others must have
    // our number.
    let pool: Vec<&'static str> = NAMES
        .iter()
        .copied()
        .filter(|name| {
            let theirs = numbers.get(&("x86_64", *name)).map(|nr| i64::from(*nr));
            let ours = super::syscalls::number(name);
            if theirs.is_some() {
                assert_eq!(ours, theirs, "the number of {name}");
            }
            theirs.is_some() || ours.is_none()
        })
        .collect();
    // x86 and x32 in `architectures`: runc filters them with their own numbers, we give
    // them the bad-arch action (docs/cli.md); RUNRS_SECCOMP_DIFF_ARCHES=1 compares them.
    let compat_arches = if std::env::var_os("RUNRS_SECCOMP_DIFF_ARCHES").is_some() {
        ARCHES.len()
    } else {
        1
    };
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let (mut compared, mut libseccomp_wrong, mut skipped) = (0u64, 0u64, 0u64);
    for n in 0..profiles {
        let p = profile(&mut rng, &pool, compat_arches);
        let spec: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(p.json.clone())
            .unwrap_or_else(|e| panic!("seed {seed} profile {n}: not a profile: {e}\n{}", p.json));
        let ours = super::compile(&spec)
            .unwrap_or_else(|e| panic!("seed {seed} profile {n}: compile: {e:#}\n{:#}", p.json));
        let (theirs, refused) = reference(&helper, &p.helper_input);
        if !refused.is_empty() {
            // runc fails the container on a rule libseccomp refuses; the verdicts of such a
            // profile are not comparable.
            skipped += 1;
            if std::env::var_os("RUNRS_SECCOMP_DIFF_DEBUG").is_some() {
                eprintln!("refused: {refused:?}\n{}", p.helper_input);
            }
            continue;
        }
        for _ in 0..300 {
            let (arch_name, audit) = *rng.pick(&[
                ("x86_64", AUDIT_ARCH_X86_64),
                ("x86", AUDIT_ARCH_I386),
                ("x32", AUDIT_ARCH_X86_64),
                ("arm", AUDIT_ARCH_ARM),
                ("aarch64", AUDIT_ARCH_AARCH64),
            ]);
            let nr = match rng.below(10) {
                0..=6 if !p.names.is_empty() => {
                    let name = rng.pick(&p.names);
                    match numbers.get(&(arch_name, *name)) {
                        Some(nr) => *nr,
                        None => rng.below(500) as u32,
                    }
                }
                0..=7 => rng.below(500) as u32,
                8 => rng.below(500) as u32 | X32_BIT,
                _ => {
                    let any = rng.next() as u32;
                    *rng.pick(&[any, u32::MAX, X32_BIT - 1])
                }
            };
            let mut args = [0u64; 6];
            for arg in &mut args {
                *arg = if !p.values.is_empty() && rng.chance(70) {
                    let v = *rng.pick(&p.values);
                    match rng.below(6) {
                        0 => v.wrapping_add(1),
                        1 => v.wrapping_sub(1),
                        2 => v ^ (1 << 32),
                        3 => v & 0xffff_ffff,
                        _ => v,
                    }
                } else {
                    rng.value()
                };
            }
            let data = seccomp_data(audit, nr, &args);
            let (got, want) = (run(&ours.program, &data), run(&theirs, &data));
            let meant = meaning(&p, &numbers, audit, nr, &args);
            // Where libseccomp's own program misses its rules (its 64-bit comparisons of
            // two rules on one argument, see libseccomp_bugs), ours must still be right.
            if got != want && got == meant {
                libseccomp_wrong += 1;
                if libseccomp_wrong == 1 {
                    eprintln!(
                        "libseccomp's program differs from its profile: arch {arch_name} nr {nr} \
                         args {args:x?}: libseccomp {want:#x}, profile {meant:#x}\n{}",
                        p.helper_input
                    );
                }
            } else {
                assert_eq!(
                    got, want,
                    "seed {seed} profile {n}: arch {arch_name} ({audit:#x}) nr {nr} args {args:x?}: \
                     ours {got:#x}, libseccomp {want:#x}, the profile says {meant:#x}\n\
                     profile: {}\nlibseccomp input:\n{}",
                    p.json, p.helper_input
                );
            }
            compared += 1;
        }
    }
    eprintln!(
        "seccomp differential: {compared} verdicts compared (seed {seed}, {profiles} profiles, \
         {skipped} with rules libseccomp refuses); {libseccomp_wrong} where libseccomp's program \
         contradicts its own rules and ours does not"
    );
}

/// Differences the comparison found, each pinned without libseccomp.
mod regressions {
    use super::*;

    fn verdict(profile: serde_json::Value, nr: i64, args: [u64; 6]) -> u32 {
        let spec: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(profile).unwrap();
        let compiled = super::super::compile(&spec).unwrap();
        let native = super::super::bpf::Target::native().unwrap().audit_arch;
        run(&compiled.program, &seccomp_data(native, nr as u32, &args))
    }

    const ALLOW: u32 = 0x7fff_0000;
    const KILL: u32 = 0;
    const TRAP: u32 = 0x0003_0000;

    /// libseccomp drops a syscall's rules with tests once it has one without, whichever
    /// comes first (we tried the rules with tests first).
    #[test]
    fn a_rule_without_tests_overrides_the_rules_with_tests() {
        let getpid = libc::SYS_getpid;
        for syscalls in [
            serde_json::json!([
                {"names": ["getpid"], "action": "SCMP_ACT_TRAP",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}
            ]),
            serde_json::json!([
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["getpid"], "action": "SCMP_ACT_TRAP",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}
            ]),
        ] {
            let profile =
                serde_json::json!({"defaultAction": "SCMP_ACT_KILL", "syscalls": syscalls});
            assert_eq!(verdict(profile.clone(), getpid, [1, 0, 0, 0, 0, 0]), ALLOW);
            assert_eq!(verdict(profile, getpid, [2, 0, 0, 0, 0, 0]), ALLOW);
        }
    }

    /// runc skips a rule whose action is the default one, so it hides no other rule of its
    /// syscall (we let it override them).
    #[test]
    fn a_rule_with_the_default_action_is_skipped() {
        let profile = serde_json::json!({"defaultAction": "SCMP_ACT_KILL", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_KILL"},
            {"names": ["getpid"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 3, "value": 0, "op": "SCMP_CMP_GE"}]}
        ]});
        assert_eq!(verdict(profile, libc::SYS_getpid, [0; 6]), TRAP);
    }

    /// libseccomp compares `arg & mask` with `valueTwo & mask` (we called a `valueTwo` with
    /// bits outside the mask a rule that never matches).
    #[test]
    fn masked_eq_masks_value_two_too() {
        let profile = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_KILL",
             "args": [{"index": 2, "value": 255, "valueTwo": 4096 + 16, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_KILL",
             "args": [{"index": 0, "value": 0, "valueTwo": 1u64 << 32, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]});
        assert_eq!(
            verdict(profile.clone(), libc::SYS_getpid, [0, 0, 16, 0, 0, 0]),
            KILL
        );
        assert_eq!(
            verdict(profile.clone(), libc::SYS_getpid, [0, 0, 17, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(
            verdict(profile, libc::SYS_getppid, [u64::MAX, 0, 0, 0, 0, 0]),
            KILL
        );
    }
}
