//! Crash injection for the crash tests, in debug builds only (release builds compile it
//! out): `RUNRS_FAULT=<point>` SIGKILLs the runtime when it reaches the
//! `logging::mark` of that name, e.g. `create: cgroups made`. A point of the
//! container's init (`init: mounted`, `init: pivoted`, ...) kills the runtime while the
//! init is at that step: the init wakes a watcher thread of the runtime through a pipe
//! (the runtime is not visible from the init's pid namespace, so it cannot be signalled
//! from there). What the tests check afterwards: `delete --force` leaves nothing.
//!
//! `exec` has points of its own (`exec: clone`, `exec: process executing`, ...), and so
//! has its child (`exec child: in cgroups`, ...: it is in the container's pid namespace
//! too, so it wakes the watcher the same way). What the tests check after those: the
//! container still runs and is managed, and no stray exec'd process is left.

/// Called by every `logging::mark`.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn at(_what: &str) {}

#[cfg(debug_assertions)]
pub use armed::at;

#[cfg(debug_assertions)]
mod armed {
    use std::sync::OnceLock;

    struct Armed {
        point: String,
        runtime: i32,
        /// Init points: the pipe the init writes to and the runtime's watcher reads.
        pipe: Option<(i32, i32)>,
    }

    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();

    fn arm() -> Option<Armed> {
        let point = std::env::var("RUNRS_FAULT").ok()?;
        let mut fds = [-1; 2];
        // SAFETY: pipe2 writes two fds into the array.
        let pipe = ((point.starts_with("init:") || point.starts_with("exec child:"))
            && unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0)
            .then_some((fds[0], fds[1]));
        // SAFETY: getpid has no preconditions.
        let runtime = unsafe { libc::getpid() };
        Some(Armed {
            point,
            runtime,
            pipe,
        })
    }

    pub fn at(what: &str) {
        let Some(a) = ARMED.get_or_init(arm) else {
            return;
        };
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        if me == a.runtime {
            if what == a.point {
                // Straight to stderr: the log module calls this one, not the other way round.
                eprintln!("runrs: fault injected at {what:?}: SIGKILL");
                // SAFETY: kill of ourselves.
                unsafe { libc::kill(me, libc::SIGKILL) };
            }
            // exec's watcher starts before exec joins the pid namespace: a thread cannot be
            // made after that (EINVAL). (Nor can a time namespace be joined with two threads:
            // an exec child point is for containers without one.) exec clones its child
            // after this, so we wait until the watcher holds no lock (malloc's above all: the
            // child allocates, and a lock held at the clone stays held in it forever): it
            // says so just before its read, which takes none.
            if let (Some((r, _)), "create: cloned" | "exec: namespaces opened") = (a.pipe, what) {
                use std::sync::atomic::{AtomicBool, Ordering};
                static READING: AtomicBool = AtomicBool::new(false);
                let runtime = a.runtime;
                std::thread::spawn(move || {
                    let mut b = 0u8;
                    READING.store(true, Ordering::SeqCst);
                    // SAFETY: a one-byte read into a local.
                    if unsafe { libc::read(r, (&raw mut b).cast(), 1) } == 1 {
                        // SAFETY: kill of our own process.
                        unsafe { libc::kill(runtime, libc::SIGKILL) };
                    }
                });
                while !READING.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
            }
        } else if what == a.point {
            if let Some((_, w)) = a.pipe {
                // SAFETY: a one-byte write from a static.
                unsafe { libc::write(w, b"k".as_ptr().cast(), 1) };
                // Let the runtime die before the init (or exec child) goes on.
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}
