//! Entered from C's `main`, without std's runtime start-up: `lang_start` would read
//! `/proc/self/maps` (glibc's pthread_getattr_np, through sscanf) and install a sigaltstack
//! with SIGSEGV/SIGBUS handlers only to name a stack overflow — a dozen syscalls and ~100 KB
//! of pages touched on every command, and copied into every container's init. What matters
//! of it is kept: fds 0-2 are made valid and SIGPIPE is ignored (write errors, not death).
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    runrs::std_start::std_start();
    std::process::exit(runrs::cli::main())
}
