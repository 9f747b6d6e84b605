//! Crash at every step: `create` SIGKILLed at each of its points (a debug build's
//! `RUNRS_FAULT`, see runtime/src/fault.rs), then `delete --force`: nothing may be left
//! (state dir, cgroup, process, mount), and a new create of the same id works.

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
