//! The pod sandbox's process (the "pause" container): holds the pod's namespaces, reaps
//! the children the pod's processes leave it, and exits 0 on SIGTERM or SIGINT.
//! Built by the integration crate's build.rs with `rustc -C target-feature=+crt-static`
//! (std only, no crates), so the image needs nothing but this file.

use std::process::exit;

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
const SIGCHLD: i32 = 17;
const SIG_BLOCK: i32 = 0;
const WNOHANG: i32 = 1;

/// The kernel's sigset_t as glibc lays it out (1024 bits).
#[repr(C)]
struct SigSet([u64; 16]);

extern "C" {
    fn sigfillset(set: *mut SigSet) -> i32;
    fn sigprocmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
    fn sigwait(set: *const SigSet, sig: *mut i32) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
}

fn main() {
    let mut all = SigSet([0; 16]);
    // SAFETY: `all` is a valid sigset_t-sized buffer; blocking every signal in this
    // single-threaded process makes them queue for sigwait (even as a namespace's init).
    unsafe {
        sigfillset(&mut all);
        sigprocmask(SIG_BLOCK, &all, std::ptr::null_mut());
    }
    loop {
        let mut sig = 0;
        // SAFETY: valid pointers to a filled set and an int.
        if unsafe { sigwait(&all, &mut sig) } != 0 {
            continue;
        }
        match sig {
            SIGTERM | SIGINT => exit(0),
            SIGCHLD => {
                let mut status = 0;
                // SAFETY: waitpid with a valid status pointer; WNOHANG never blocks.
                while unsafe { waitpid(-1, &mut status, WNOHANG) } > 0 {}
            }
            _ => {}
        }
    }
}
