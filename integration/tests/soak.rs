//! Soak (issue 16, part 4): `RUNRS_SOAK_CYCLES` create/start/kill/delete cycles, and as
//! many `exec`s (`RUNRS_SOAK_EXECS` if set) into one running container, with what a node
//! would see accumulate counted on the host before and after: mounts, cgroup directories of
//! the test's containers, zombies, open fds of the long-lived processes (this test; the
//! container's init in the exec soak), files under the runtime's state root. Each must be
//! exactly what it was. `hack/soak` runs both with 1000 and prints the figures.

use runrs_integration::procfs;
use runrs_integration::*;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The two soaks count this process's fds: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

fn cycles() -> usize {
    env_usize("RUNRS_SOAK_CYCLES", 100)
}

/// This process's mountinfo lines (mount point and what is mounted, without the mount ids),
/// less those in another test's temp dir: a suite running beside this one on the machine
/// (another CI run) mounts there, and a leak of ours would be in our own dir or elsewhere.
fn mounts(ours: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let point = *f.get(4)?;
            let others = point.starts_with("/tmp/runrs-it-") && !Path::new(point).starts_with(ours);
            (!others).then(|| f[2..].join(" "))
        })
        .collect();
    lines.sort();
    lines
}

/// Open fds of `pid` (`self` for this process).
fn fds(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count()
}

/// Cgroup directories anywhere under /sys/fs/cgroup whose name starts with `prefix`.
fn cgroup_dirs(prefix: &str) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, depth: usize, found: &mut Vec<String>) {
        if depth > 8 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with(prefix) {
                found.push(e.path().display().to_string());
            }
            walk(&e.path(), prefix, depth + 1, found);
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), prefix, 0, &mut found);
    found.sort();
    found
}

/// (state, ppid, start time) from /proc/<pid>/stat.
fn stat(pid: i32) -> Option<(char, i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?.chars().next()?;
    Some((state, f.get(1)?.parse().ok()?, f.get(19)?.parse().ok()?))
}

/// The (pid, start time) of a process, to know it again as a zombie.
fn proc_id(pid: i32) -> (i32, u64) {
    (pid, stat(pid).map_or(0, |s| s.2))
}

/// Zombies that are ours: children of this test or of `also` (the container's init), and
/// the `known` processes of our containers (their inits, which go to PID 1 once their
/// runtime has exited: it reaps a second or two late here). A zombie cannot be told by its
/// cgroup (v1 shows it in the root) nor its environment, so other zombies of PID 1 are only
/// counted host-wide: shown, not compared (other work on this machine, another CI run,
/// leaves them at any moment).
fn zombies(known: &[(i32, u64)], also: Option<i32>) -> (Vec<i32>, usize) {
    let me = std::process::id() as i32;
    let mut ours = Vec::new();
    let mut all = 0;
    for pid in std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        if let Some(('Z', ppid, start)) = stat(pid) {
            all += 1;
            if ppid == me || Some(ppid) == also || known.contains(&(pid, start)) {
                ours.push(pid);
            }
        }
    }
    (ours, all)
}

/// Every file and directory under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// What is counted before and after a soak.
#[derive(Debug, PartialEq)]
struct Counts {
    mounts: Vec<String>,
    cgroup_dirs: Vec<String>,
    zombies: Vec<i32>,
    test_fds: usize,
    init_fds: Option<usize>,
    state_files: Vec<String>,
}

/// The figures before: once no zombie of ours is left (PID 1 reaps the inits killed just
/// before, by this test's first round or the other soak, a moment later).
fn baseline(env: &TestEnv, prefix: &str, init: Option<i32>, known: &[(i32, u64)]) -> Counts {
    wait_for(Duration::from_secs(10), || {
        zombies(known, init).0.is_empty()
    });
    let (before, host_zombies) = counts(env, prefix, init, known);
    print_counts("before", &before, host_zombies);
    before
}

fn counts(env: &TestEnv, prefix: &str, init: Option<i32>, known: &[(i32, u64)]) -> (Counts, usize) {
    let (zombies, host_zombies) = zombies(known, init);
    let c = Counts {
        mounts: mounts(env.dir()),
        cgroup_dirs: cgroup_dirs(prefix),
        zombies,
        test_fds: fds("self"),
        init_fds: init.map(|p| fds(&p.to_string())),
        state_files: files_under(&env.rt.root),
    };
    (c, host_zombies)
}

fn print_counts(what: &str, c: &Counts, host_zombies: usize) {
    eprintln!(
        "soak {what}: mounts {}, cgroup dirs {}, zombies {} (host-wide {host_zombies}), \
         test fds {}, init fds {}, state root files {}",
        c.mounts.len(),
        c.cgroup_dirs.len(),
        c.zombies.len(),
        c.test_fds,
        c.init_fds.map_or("-".to_owned(), |n| n.to_string()),
        c.state_files.len()
    );
}

/// Waits a moment for the counts to settle back (a killed init is reaped by PID 1 a little
/// after `delete` returns), then asserts they are exactly the ones before.
#[track_caller]
fn assert_unchanged(
    env: &TestEnv,
    prefix: &str,
    init: Option<i32>,
    known: &[(i32, u64)],
    before: &Counts,
) {
    wait_for(Duration::from_secs(5), || {
        counts(env, prefix, init, known).0 == *before
    });
    let (after, host_zombies) = counts(env, prefix, init, known);
    print_counts("after", &after, host_zombies);
    assert_eq!(after, *before, "what the soak left differs from before");
}

/// `RUNRS_SOAK_CYCLES` (100) containers one after another: create, start, kill, delete.
#[test]
fn create_start_kill_delete_cycles_leave_nothing_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new("soak_cycles");
    let n = cycles();
    let prefix = format!("soak_cycles-{}-", std::process::id());
    let mut b = env.bundle();
    b.set_args(&["sleep", "600"]);
    let pid_file = env.path("init.pid");
    // One cycle first, so that what the first use of anything allocates (this test's log
    // files, the runtime's state root) is in the figures before. Each returns its init.
    let cycle = |id: &str| {
        let _guard = env.guard(id);
        env.rt
            .run([
                "create",
                "--bundle",
                &arg(b.path()),
                "--pid-file",
                &arg(&pid_file),
                id,
            ])
            .ok();
        let init: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let known = proc_id(init);
        env.rt.run(["start", id]).ok();
        env.rt.run(["kill", id, "KILL"]).ok();
        wait_until("the init to die", Duration::from_secs(10), || {
            !procfs::pid_alive(init)
        });
        env.rt.run(["delete", id]).ok();
        known
    };
    let mut inits = vec![cycle(&env.id())];
    std::fs::remove_file(&pid_file).unwrap();
    let before = baseline(&env, &prefix, None, &inits);
    let began = Instant::now();
    for _ in 0..n {
        inits.push(cycle(&env.id()));
    }
    let took = began.elapsed();
    std::fs::remove_file(&pid_file).unwrap();
    eprintln!(
        "soak cycles: {n} create/start/kill/delete in {:.1} s: {:.1} ms per cycle",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / n as f64
    );
    assert_unchanged(&env, &prefix, None, &inits, &before);
    env.assert_no_trace("", &b);
}

/// `RUNRS_SOAK_EXECS` (or `RUNRS_SOAK_CYCLES`, 100) `exec`s into one running container:
/// each one's output and status, and nothing accumulates, in the container's init either.
#[test]
fn execs_into_one_container_leave_nothing_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new("soak_execs");
    let n = env_usize("RUNRS_SOAK_EXECS", cycles());
    let prefix = format!("soak_execs-{}-", std::process::id());
    let mut b = env.bundle();
    b.set_args(&["sleep", "600"]);
    let (id, _guard, init) = env.start_running(&b);
    let exec = |i: usize| {
        // Every tenth one exits non-zero: its status comes back too.
        let code = if i % 10 == 9 { 3 } else { 0 };
        let script = format!("echo exec {i}; exit {code}");
        let out = env.rt.run(["exec", &id, "sh", "-c", &script]);
        out.code(code);
        assert_eq!(out.stdout.trim(), format!("exec {i}"));
    };
    exec(0);
    let before = baseline(&env, &prefix, Some(init), &[]);
    let procs_before = procfs::cgroup_procs(init);
    let began = Instant::now();
    for i in 1..=n {
        exec(i);
    }
    let took = began.elapsed();
    eprintln!(
        "soak execs: {n} execs in {:.1} s: {:.1} ms per exec",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / n as f64
    );
    assert_unchanged(&env, &prefix, Some(init), &[], &before);
    assert_eq!(
        procfs::cgroup_procs(init),
        procs_before,
        "processes in the container"
    );
    assert_eq!(env.rt.status(&id).as_deref(), Some("running"));
    env.rt.run(["kill", &id, "KILL"]).ok();
    wait_until("the init to die", Duration::from_secs(10), || {
        !procfs::pid_alive(init)
    });
    env.rt.run(["delete", &id]).ok();
    env.assert_no_trace(&id, &b);
}
