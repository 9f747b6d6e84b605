//! Assembles the classic-BPF program of a profile.
//!
//! seccompiler compiles the argument tests of each rule (`SeccompRule` → BPF, 64-bit compares,
//! its long-jump helpers); the program around them is built here because seccompiler's own
//! `SeccompFilter` has one match action for the whole filter and no `SECCOMP_RET_USER_NOTIF`,
//! while an OCI profile gives every rule its own action.
//!
//! Layout: check the architecture, load the syscall number, then a binary search over the
//! sorted syscall numbers that ends in short linear runs of sections, one per syscall:
//!
//! ```text
//! JEQ nr ? next : skip        rule 1: [entry][skip][tests…] RET action1
//!                             rule 2: [entry][skip][tests…] RET action2
//!                             tail:   [JA 1][JA 1] RET fallback
//! ```
//!
//! A seccompiler rule starts with two jumps: its entry (go test the arguments) and its skip
//! (jump to the next rule's skip). A failed test lands on the next rule's entry. So a matching
//! syscall number walks the rules in order and falls to the tail's `RET fallback`; any other
//! number walks the skips out of the section.

use anyhow::{bail, Result};
use seccompiler::{BpfProgram, SeccompRule};

/// BPF_LD | BPF_W | BPF_ABS (the first two are 0).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// Syscall numbers with this bit set come from the x32 ABI, which shares x86_64's audit arch.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// At most this many sections are tested one after the other before the search splits.
const LINEAR_RUN: usize = 8;

/// The architecture a program filters; every other architecture is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub audit_arch: u32,
    /// x86_64: x32 syscall numbers (`nr | 0x40000000`) are refused with the bad-arch action.
    pub refuse_x32: bool,
}

impl Target {
    pub fn native() -> Option<Self> {
        if cfg!(target_arch = "x86_64") {
            Some(Self {
                audit_arch: 0xc000_003e,
                refuse_x32: true,
            })
        } else if cfg!(target_arch = "aarch64") {
            Some(Self {
                audit_arch: 0xc000_00b7,
                refuse_x32: false,
            })
        } else {
            None
        }
    }
}

/// Everything the profile says about one syscall number.
#[derive(Clone, Debug)]
pub struct Section {
    pub nr: u32,
    /// Rules with argument tests, in profile order, each with its `SECCOMP_RET_*` value.
    pub conditional: Vec<(SeccompRule, u32)>,
    /// What the syscall gets when no conditional rule matched.
    pub fallback: u32,
}

/// The whole program: `sections` need not be sorted; `bad_arch` is returned for a foreign ABI.
pub fn assemble(
    target: Target,
    mut sections: Vec<Section>,
    default: u32,
    bad_arch: u32,
) -> Result<Vec<libc::sock_filter>> {
    sections.sort_by_key(|section| section.nr);
    let mut program = vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        jump(BPF_JMP_JEQ_K, target.audit_arch, 1, 0),
        stmt(BPF_RET_K, bad_arch),
        stmt(BPF_LD_W_ABS, DATA_NR),
    ];
    if target.refuse_x32 {
        program.push(jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1));
        program.push(stmt(BPF_RET_K, bad_arch));
    }
    search(&sections, default, &mut program);
    if program.len() > libc::BPF_MAXINSNS as usize {
        bail!(
            "the seccomp profile compiles to {} BPF instructions, more than the kernel's limit of {}",
            program.len(),
            libc::BPF_MAXINSNS
        );
    }
    Ok(program)
}

/// Binary search on the syscall number (kept in the accumulator: only rule bodies reload it,
/// and every path through a rule body ends in a `RET`).
fn search(sections: &[Section], default: u32, out: &mut Vec<libc::sock_filter>) {
    if sections.len() <= LINEAR_RUN {
        for section in sections {
            emit_section(section, out);
        }
        out.push(stmt(BPF_RET_K, default));
        return;
    }
    let (low, high) = sections.split_at(sections.len() / 2);
    let mut low_code = Vec::new();
    search(low, default, &mut low_code);
    out.push(jump(BPF_JMP_JGE_K, high[0].nr, 0, 1));
    out.push(stmt(BPF_JMP_JA, low_code.len() as u32));
    out.extend(low_code);
    search(high, default, out);
}

fn emit_section(section: &Section, out: &mut Vec<libc::sock_filter>) {
    out.push(jump(BPF_JMP_JEQ_K, section.nr, 0, 1));
    if section.conditional.is_empty() {
        out.push(stmt(BPF_RET_K, section.fallback));
        return;
    }
    for (rule, action) in &section.conditional {
        let body: BpfProgram = rule.clone().into();
        out.extend(body.iter().map(|insn| libc::sock_filter {
            code: insn.code,
            jt: insn.jt,
            jf: insn.jf,
            k: insn.k,
        }));
        out.push(stmt(BPF_RET_K, *action));
    }
    out.push(stmt(BPF_JMP_JA, 1));
    out.push(stmt(BPF_JMP_JA, 1));
    out.push(stmt(BPF_RET_K, section.fallback));
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    jump(code, k, 0, 0)
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

#[cfg(test)]
mod tests {
    //! The assembled programs run on a small classic-BPF interpreter, so the layout is checked
    //! for every syscall number without loading anything into the kernel.

    use super::*;
    use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition};

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    const X86_64: Target = Target {
        audit_arch: 0xc000_003e,
        refuse_x32: true,
    };

    fn errno(e: u32) -> u32 {
        libc::SECCOMP_RET_ERRNO | e
    }

    /// Runs `program` on (arch, nr, args) like the kernel's classic-BPF interpreter.
    fn run(program: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, arg) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let insn = program[pc];
            pc += 1;
            match insn.code {
                BPF_LD_W_ABS => {
                    let at = insn.k as usize;
                    acc = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
                }
                0x54 => acc &= insn.k, // BPF_ALU | BPF_AND | BPF_K
                BPF_RET_K => return insn.k,
                BPF_JMP_JA => pc += insn.k as usize,
                code => {
                    let taken = match code {
                        BPF_JMP_JEQ_K => acc == insn.k,
                        BPF_JMP_JGE_K => acc >= insn.k,
                        0x25 => acc > insn.k, // BPF_JGT
                        other => panic!("unexpected BPF opcode {other:#x}"),
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
            }
        }
    }

    fn rule(conditions: &[(u8, SeccompCmpOp, u64)]) -> SeccompRule {
        SeccompRule::new(
            conditions
                .iter()
                .map(|(arg, op, value)| {
                    SeccompCondition::new(*arg, SeccompCmpArgLen::Qword, op.clone(), *value)
                        .unwrap()
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn dispatch_reaches_every_section_of_a_large_allow_list() {
        let sections = (0..400)
            .step_by(2)
            .map(|nr| Section {
                nr,
                conditional: Vec::new(),
                fallback: ALLOW,
            })
            .collect();
        let program = assemble(X86_64, sections, errno(1), KILL).unwrap();
        for nr in 0..420 {
            let expected = if nr % 2 == 0 && nr < 400 {
                ALLOW
            } else {
                errno(1)
            };
            assert_eq!(
                run(&program, X86_64.audit_arch, nr, [0; 6]),
                expected,
                "{nr}"
            );
        }
        assert_eq!(run(&program, 0x4000_0003, 0, [0; 6]), KILL);
        assert_eq!(run(&program, X86_64.audit_arch, 0x4000_0002, [0; 6]), KILL);
    }

    #[test]
    fn rules_are_tried_in_order_then_the_fallback() {
        let sections = vec![
            Section {
                nr: 10,
                conditional: vec![
                    (rule(&[(0, SeccompCmpOp::Eq, 1)]), errno(11)),
                    (
                        rule(&[(0, SeccompCmpOp::Ge, 1), (1, SeccompCmpOp::Lt, 5)]),
                        errno(22),
                    ),
                ],
                fallback: ALLOW,
            },
            Section {
                nr: 12,
                conditional: vec![(rule(&[(2, SeccompCmpOp::MaskedEq(0xf0), 0x30)]), ALLOW)],
                fallback: errno(33),
            },
        ];
        let program = assemble(X86_64, sections, errno(1), KILL).unwrap();
        let arch = X86_64.audit_arch;
        assert_eq!(run(&program, arch, 10, [1, 0, 0, 0, 0, 0]), errno(11));
        assert_eq!(run(&program, arch, 10, [2, 4, 0, 0, 0, 0]), errno(22));
        assert_eq!(run(&program, arch, 10, [2, 5, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            run(&program, arch, 10, [1 << 32 | 1, 3, 0, 0, 0, 0]),
            errno(22)
        );
        assert_eq!(run(&program, arch, 10, [0, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(run(&program, arch, 11, [1, 0, 0, 0, 0, 0]), errno(1));
        assert_eq!(run(&program, arch, 12, [0, 0, 0x3f, 0, 0, 0]), ALLOW);
        assert_eq!(run(&program, arch, 12, [0, 0, 0x4f, 0, 0, 0]), errno(33));
        assert_eq!(run(&program, arch, 13, [0; 6]), errno(1));
    }
}
