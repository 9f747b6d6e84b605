//! containerd-shim-runrs-v2: containerd's shim v2 for runrs (runtime type
//! `io.containerd.runrs.v2`), driving any runc-compatible runtime binary.
//!
//! Three commands: containerd runs `<shim> [flags] start` (spawn a detached server, print
//! its address) and `<shim> [flags] delete` (clean up after a dead shim); `serve`, the
//! server itself, is this binary re-executed without an action, with its listening
//! socket on fd 3. What they are made of is layered, each module importing only those
//! listed below it:
//!
//! ```text
//! server/    the ttrpc loop: one thread, every connection, Waits parked until the exit
//! task/      the Task service: the dispatch, one file per RPC or group, the containers
//!            and the shim's state (exits and OOMs become events), the RPCs' errors
//! runtime/   the runc-compatible runtime binary (every call, its log) and its config
//! process/   a container's processes (pid, stdio, exit), the reaper of every child
//! io/        a process's stdio: pipes or a pty, relayed to containerd's fifos
//! events/    the publisher to containerd, with its queue; the OOM watcher
//! cgroup     a container's cgroup: its memory cgroup, its metrics
//! rootfs     the rootfs mounts Create is given
//! address    the task socket's name; flags, log, sha256; fault (debug builds' crash points)
//! ```
#![cfg_attr(not(test), no_main)]

/// Entered from C's `main`, without std's runtime start-up (which reads /proc/self/maps
/// through glibc's sscanf and sets up a sigaltstack only to name stack overflows): a shim
/// lives as long as its containers, and every page it touches once stays resident. Kept of
/// it: fds 0-2 valid and SIGPIPE ignored (a fifo without reader is EPIPE, not death).
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    // The arguments sit at the top of the main thread's stack (the server trims below).
    server::MAIN_STACK_TOP.store(argv as usize, std::sync::atomic::Ordering::Relaxed);
    runrs::std_start::std_start();
    std::process::exit(run())
}

// The commands.
mod delete;
mod serve;
mod start;

// What they are made of, in layers (see above).
mod address;
mod cgroup;
mod events;
mod fault;
mod flags;
mod io;
mod log;
mod process;
mod rootfs;
mod runtime;
mod server;
mod sha256;
mod task;

#[cfg_attr(test, allow(dead_code))]
fn run() -> i32 {
    // One malloc arena: glibc otherwise gives each thread that allocates its own (each
    // with resident pages), and the shim's threads are all mostly idle.
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match flags::parse_flags(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd-shim-runrs-v2: {e}");
            return 2;
        }
    };
    if flags.version {
        println!("containerd-shim-runrs-v2:");
        println!("  Version:  {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    if flags.info {
        println!(
            "{{\"name\":\"containerd-shim-runrs-v2\",\"version\":\"{}\",\"runtime_type\":\"io.containerd.runrs.v2\",\"features\":{{\"checkpoint\":true,\"tty\":true,\"exec\":true,\"stats\":[\"cgroup-v1\",\"cgroup-v2\"]}}}}",
            env!("CARGO_PKG_VERSION")
        );
        return 0;
    }
    if flags.namespace.is_empty() || flags.id.is_empty() {
        eprintln!("containerd-shim-runrs-v2: -namespace and -id are required");
        return 2;
    }
    let result = match flags.action.as_deref() {
        Some("start") => start::start(&flags),
        Some("delete") => delete::delete_after_dead_shim(&flags),
        None => serve::serve(&flags),
        Some(other) => Err(format!(
            "unknown action {other:?} (expected start or delete)"
        )),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("containerd-shim-runrs-v2: {e}");
            1
        }
    }
}
