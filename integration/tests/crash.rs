//! Crash at every step: `create` SIGKILLed at each of its points (a debug build's
//! `RUNRS_FAULT`, see runtime/src/fault.rs), then `delete --force`: nothing may be left
//! (state dir, cgroup, process, mount), and a new create of the same id works. `exec`
//! SIGKILLed at each of its points: the container still runs and is managed, no stray
//! exec'd process is left in it, and kill + delete leave nothing.

use runrs_integration::procfs;
use runrs_integration::*;
use std::time::Duration;

/// The runtime's points, in the order create passes them; `init:` ones are reached by the
/// container's init while the runtime waits for it.
const POINTS: &[&str] = &[
    "create: spec loaded",
    "create: state dir",
    "create: cgroups made",
    "create: clone",
    "create: cloned",
    "init: namespaces made",
    "init: in cgroups",
    "create: go",
    "init: go",
    "init: mounts",
    "init: mounted",
    "create: hooks",
    "init: hooks",
    "init: pivoted",
    "init: finalize",
    "init: finalized",
    "create: ready",
];

/// Whether the runtime under test has fault points (a debug build of runrs).
fn has_fault_points(env: &TestEnv) -> bool {
    if is_runc() {
        return false;
    }
    let b = env.bundle();
    let out = env
        .rt
        .cmd(["create", "--bundle", &arg(b.path()), &env.id()])
        .env("RUNRS_FAULT", "create: spec loaded")
        .run();
    out.signal == Some(libc::SIGKILL)
}

fn crash_bundle(env: &TestEnv) -> Bundle {
    let mut b = env.bundle();
    b.set_args(&["sleep", "60"]);
    let marker = env.path("hook-ran");
    let touch = format!("touch {}", marker.display());
    b.hook("createRuntime", &["/bin/sh", "-c", &touch], None);
    b.hook("createContainer", &["/bin/sh", "-c", "true"], None);
    b
}

#[test]
fn create_killed_at_every_point_leaves_nothing_after_delete_force() {
    let env = TestEnv::new("crash_points");
    if !has_fault_points(&env) {
        eprintln!("skipped: the runtime under test has no fault points (runc or a release build)");
        return;
    }
    let mut missed = Vec::new();
    for point in POINTS {
        let b = crash_bundle(&env);
        let id = env.id();
        let _guard = env.guard(&id);
        let out = env
            .rt
            .cmd(["create", "--bundle", &arg(b.path()), &id])
            .env("RUNRS_FAULT", *point)
            .run();
        if out.signal != Some(libc::SIGKILL) {
            missed.push(format!("{point}: {:?} {}", out.code, out.stderr));
            continue;
        }
        // Without --force it is not there to delete, and what it made stays recorded.
        let plain = env.rt.run(["delete", &id]);
        assert!(
            !plain.success(),
            "{point}: delete without --force succeeded"
        );
        env.rt
            .cmd(["delete", "--force", &id])
            .timeout(Duration::from_secs(20))
            .run()
            .ok();
        let gone = wait_for(Duration::from_secs(5), || {
            procfs::processes_with_env(&b.mark()).is_empty()
        });
        assert!(
            gone,
            "{point}: processes left: {:?}",
            procfs::processes_with_env(&b.mark())
        );
        assert!(!env.rt.root.join(&id).exists(), "{point}: state dir left");
        let cgroups = procfs::cgroup_dirs_named(&id);
        assert!(cgroups.is_empty(), "{point}: cgroups left: {cgroups:?}");
        let mounts = procfs::mounts_under(b.path());
        assert!(mounts.is_empty(), "{point}: mounts left: {mounts:?}");
        // The id is free again and works.
        env.rt.run(["create", "--bundle", &arg(b.path()), &id]).ok();
        env.rt.run(["delete", "--force", &id]).ok();
        env.assert_no_trace(&id, &b);
    }
    assert!(missed.is_empty(), "points never reached: {missed:#?}");
}

/// `exec`'s points, in the order it passes them; `exec child:` ones are reached by the
/// exec's clone child (in the container's pid namespace) while the runtime waits for it.
const EXEC_POINTS: &[(&str, Started)] = &[
    ("exec: sealing", Started::No),
    ("exec: sealed", Started::No),
    ("exec: process spec loaded", Started::No),
    ("exec: namespaces opened", Started::No),
    ("exec: pid namespace joined", Started::No),
    ("exec: clone", Started::No),
    ("exec: cloned", Started::No),
    // The child, told to go, races the runtime's death: it may exec before its
    // parent-death signal comes, as if the runtime had died just after the exec.
    ("exec: go", Started::Maybe),
    // A child point holds the child until the runtime is dead: its parent-death signal.
    ("exec child: go", Started::No),
    ("exec child: in cgroups", Started::No),
    ("exec child: namespaces joined", Started::No),
    ("exec child: finalized", Started::No),
    ("exec: process executing", Started::Yes),
    ("exec: pid file written", Started::Yes),
    ("exec: started", Started::Yes),
];

/// Whether the exec'd process was already executing when the runtime died.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Started {
    No,
    Maybe,
    Yes,
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn exec_killed_at_every_point_leaves_the_container_running_and_managed() {
    let env = TestEnv::new("crash_exec");
    if !has_fault_points(&env) {
        eprintln!("skipped: the runtime under test has no fault points (runc or a release build)");
        return;
    }
    let mut missed = Vec::new();
    // Every point with --detach (the shim's way), and those where a foreground exec differs
    // (it forwards signals and waits for the process after the last) without it.
    let foreground = [
        "exec: cloned",
        "exec child: finalized",
        "exec: process executing",
        "exec: started",
    ];
    let cases = (EXEC_POINTS.iter().map(|(p, s)| (p, s, true))).chain(
        EXEC_POINTS
            .iter()
            .filter(|(p, _)| foreground.contains(p))
            .map(|(p, s)| (p, s, false)),
    );
    for (n, (point, started, detach)) in cases.enumerate() {
        let point = &format!("{point}{}", if detach { "" } else { " (foreground)" });
        let fault = point.trim_end_matches(" (foreground)");
        let mut b = env.bundle();
        b.set_args(&["sleep", "600"]);
        let (id, mut guard, init) = env.start_running(&b);
        let state_dir = env.rt.root.join(&id);
        let state_files = names_in(&state_dir);
        // The runtime, its clone child before exec and the exec'd process all carry it.
        let marker = format!("RUNRS_CRASH_EXEC={}-{n}", env.dir().display());
        let pid_dir = env.path(&format!("exec-pid-{n}"));
        std::fs::create_dir(&pid_dir).unwrap();
        let pid_file = pid_dir.join("exec.pid");
        let out = env
            .rt
            .cmd(
                ["exec", "--detach", "--pid-file", &arg(&pid_file)]
                    .into_iter()
                    .filter(|a| detach || *a != "--detach")
                    .chain(["--env", &marker, &id, "sleep", "600"]),
            )
            .env("RUNRS_FAULT", fault)
            .env("RUNRS_CRASH_EXEC", format!("{}-{n}", env.dir().display()))
            .run();
        if out.signal != Some(libc::SIGKILL) {
            missed.push(format!("{point}: {:?} {}", out.code, out.stderr));
            continue;
        }
        // A clone child that had not exec'd dies with the runtime (its parent-death
        // signal); what is left is the exec'd `sleep`, if anything.
        let settled = wait_for(Duration::from_secs(5), || {
            procfs::processes_with_env(&marker)
                .iter()
                .all(|p| comm(*p) == "sleep")
        });
        let exec_pids = procfs::processes_with_env(&marker);
        let names: Vec<String> = exec_pids.iter().map(|p| comm(*p)).collect();
        assert!(
            settled,
            "{point}: stray exec processes: {exec_pids:?} {names:?}"
        );
        match started {
            Started::No => assert!(exec_pids.is_empty(), "{point}: {exec_pids:?} run"),
            Started::Yes => assert_eq!(exec_pids.len(), 1, "{point}: {exec_pids:?}"),
            Started::Maybe => assert!(exec_pids.len() <= 1, "{point}: {exec_pids:?}"),
        }
        for &pid in &exec_pids {
            // The exec'd process runs on, as one of the container's own.
            guard.record(pid);
            let ns = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).unwrap();
            assert_eq!(ns(pid), ns(init), "{point}: not in the container's pid ns");
        }
        let mut want = exec_pids.clone();
        want.push(init);
        want.sort();
        // A dying clone child may still be in the cgroup for a moment.
        let settled = wait_for(Duration::from_secs(5), || {
            procfs::cgroup_procs(init) == want
        });
        assert!(
            settled,
            "{point}: the container's cgroup holds {:?}, not {want:?}",
            procfs::cgroup_procs(init)
        );
        // The pid file is whole or absent, no temp file beside it.
        let pid_files = names_in(&pid_dir);
        if fault == "exec: pid file written" || fault == "exec: started" {
            assert_eq!(pid_files, ["exec.pid"], "{point}");
            let written = std::fs::read_to_string(&pid_file).unwrap();
            assert_eq!(written.trim(), exec_pids[0].to_string(), "{point}");
        } else {
            assert!(pid_files.is_empty(), "{point}: {pid_files:?}");
        }
        // Still running and managed: state, a new exec, kill and delete.
        assert_eq!(names_in(&state_dir), state_files, "{point}: state dir");
        assert_eq!(env.rt.status(&id).as_deref(), Some("running"), "{point}");
        let again = env.rt.run(["exec", &id, "echo", "exec works"]);
        again.ok();
        assert_eq!(again.stdout.trim(), "exec works", "{point}");
        if n % 2 == 0 {
            env.rt.run(["kill", &id, "KILL"]).ok();
            wait_until(point, Duration::from_secs(10), || {
                env.rt.status(&id).as_deref() == Some("stopped")
            });
            env.rt.run(["delete", &id]).ok();
        } else {
            env.rt.run(["delete", "--force", &id]).ok();
        }
        env.assert_no_trace(&id, &b);
        let gone = wait_for(Duration::from_secs(5), || {
            exec_pids.iter().all(|p| !procfs::pid_alive(*p))
        });
        assert!(gone, "{point}: the exec'd process outlived delete");
    }
    assert!(missed.is_empty(), "points never reached: {missed:#?}");
}
