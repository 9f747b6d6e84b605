//! cgroup v2 device control: a `BPF_PROG_TYPE_CGROUP_DEVICE` program generated here as raw
//! instructions from the reduced rules (a default plus exceptions), loaded with
//! `bpf(BPF_PROG_LOAD)` and attached to the cgroup with `bpf(BPF_PROG_ATTACH)`.

use super::devices::{Effective, ALL};
use anyhow::{bail, Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

/// The program: r1 is `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
/// with `access_type = access << 16 | type`. Each exception is a block that jumps to the
/// next one on the first mismatch and returns its verdict on a match; the end returns the
/// default. Exceptions never overlap in verdict, so their order does not matter.
pub fn program(e: &Effective) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),        // r2 = access_type
        insn(ALU32_AND_K, 2, 0, 0, 0xffff), // r2 = device type
        insn(LDX_MEM_W, 3, 1, 0, 0),        // r3 = access_type
        insn(ALU32_RSH_K, 3, 0, 0, 16),     // r3 = requested access
        insn(LDX_MEM_W, 4, 1, 4, 0),        // r4 = major
        insn(LDX_MEM_W, 5, 1, 8, 0),        // r5 = minor
    ];
    for r in &e.exceptions {
        let mut block = Vec::new();
        match r.kind {
            'b' => block.push(insn(JNE_K, 2, 0, 0, 1)),
            'c' => block.push(insn(JNE_K, 2, 0, 0, 2)),
            _ => {}
        }
        if r.access & ALL != ALL {
            // Every requested bit must be in the rule: (r3 & access) == r3.
            block.push(insn(ALU32_MOV_X, 1, 3, 0, 0));
            block.push(insn(ALU32_AND_K, 1, 0, 0, r.access as i32));
            block.push(insn(JNE_X, 1, 3, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(insn(JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push(insn(JNE_K, 5, 0, 0, m as i32));
        }
        block.push(insn(ALU32_MOV_K, 0, 0, 0, i32::from(r.allow)));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K || ins.code == JNE_X {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(ALU32_MOV_K, 0, 0, 0, i32::from(e.default_allow)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// Load the program; on a verifier error, the verifier's log is in the message.
pub fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..5].copy_from_slice(b"runrs");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    // SAFETY: bpf(2) reads `attr` (size given) and the instruction and license buffers it
    // points to, and writes at most `log_size` bytes into `log`; all outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &mut attr as *mut ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        let end = log.iter().position(|b| *b == 0).unwrap_or(0);
        bail!(
            "load the cgroup v2 device program: {e} (needs CAP_BPF or CAP_SYS_ADMIN){}{}",
            if end > 0 { "; verifier: " } else { "" },
            String::from_utf8_lossy(&log[..end]).trim()
        );
    }
    // SAFETY: bpf(2) returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Generate, load and attach the device program for `e` to the v2 cgroup `dir`.
pub fn attach(dir: &Path, e: &Effective) -> Result<()> {
    let prog = load(&program(e))?;
    let cg = std::fs::File::open(dir).with_context(|| format!("open {}", dir.display()))?;
    let mut attr = ProgAttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    // SAFETY: bpf(2) reads `attr` only; both fds are open for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &mut attr as *mut ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("attach the device program to {}", dir.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::devices::{reduce, Rule, READ, WRITE};
    use super::*;

    #[test]
    fn jumps_land_on_the_next_block() {
        let e = reduce(&[
            Rule {
                kind: 'a',
                major: None,
                minor: None,
                access: ALL,
                allow: false,
            },
            Rule {
                kind: 'c',
                major: Some(1),
                minor: Some(3),
                access: READ | WRITE,
                allow: true,
            },
        ]);
        let p = program(&e);
        // prologue 6, block: type, 3 access, major, minor, mov, exit = 8, end 2.
        assert_eq!(p.len(), 16);
        assert_eq!(p[6], insn(JNE_K, 2, 0, 7, 2));
        assert_eq!(p[9], insn(JNE_X, 1, 3, 4, 0));
        assert_eq!(p[11], insn(JNE_K, 5, 0, 2, 3));
        assert_eq!(p[12], insn(ALU32_MOV_K, 0, 0, 0, 1));
        assert_eq!(p[14], insn(ALU32_MOV_K, 0, 0, 0, 0));
        assert_eq!(p[15].code, EXIT);
    }
}
