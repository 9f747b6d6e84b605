//! `checkpoint` and `restore` with CRIU: a busybox container counting into a file in its
//! rootfs is checkpointed (killed by the dump) and restored, and the count goes on from
//! where it was, not from 1; into the same id or a new one, detached or in the foreground;
//! `--leave-running`; a pre-dump then a dump on top of it (`--parent-path`); bad input.
//!
//! CRIU must work here: the tests that need it run `criu check` once and skip, saying so in
//! one line, where it fails (this project's host: CRIU 3.17 on a 6.18 kernel). The Debian 13
//! guest has CRIU 4.1 (`RUNRS_GUEST_SUITES=checkpoint hack/test-guest`); there, where the
//! image is ours (`RUNRS_REQUIRE_CLIENTS`), a CRIU that fails its check fails the tests.
//! The bad-input tests that need no CRIU run everywhere.

use runrs_integration::console::read_until;
use runrs_integration::procfs::{self, pid_alive};
use runrs_integration::*;
use serde_json::json;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// Generous: the guest runs under emulation, where a dump or a restore takes many seconds.
const WAIT: Duration = Duration::from_secs(120);
const CRIU_TIMEOUT: Duration = Duration::from_secs(300);

/// Counts into /count, one line a tick, its stdio moved off the runtime's (host files CRIU
/// could not reopen inside the container) onto the container's own /dev/null.
const COUNTER: &str = "exec </dev/null >/dev/null 2>&1; i=0; \
                       while :; do i=$((i+1)); echo $i >> /count; usleep 50000; done";

/// Why CRIU cannot be used here, once per test process (`criu check`).
fn criu_unusable() -> Option<&'static str> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        let out = std::process::Command::new("criu").arg("check").output();
        match out {
            Err(e) => Some(format!("criu is not installed ({e})")),
            Ok(o) if !o.status.success() => {
                let text = String::from_utf8_lossy(&o.stderr).into_owned()
                    + &String::from_utf8_lossy(&o.stdout);
                let last = text.lines().rev().find(|l| !l.trim().is_empty());
                Some(format!("`criu check` fails: {}", last.unwrap_or("").trim()))
            }
            Ok(_) => None,
        }
    })
    .as_deref()
}

/// The test's environment, or `None` (and one line saying why) where CRIU does not work.
fn env_with_criu(test: &str) -> Option<TestEnv> {
    if let Some(why) = criu_unusable() {
        if std::env::var_os("RUNRS_REQUIRE_CLIENTS").is_some() {
            panic!("{test}: CRIU must work in this guest, but {why}");
        }
        eprintln!("SKIPPED {test}: {why}");
        say_skipped_once(why);
        return None;
    }
    Some(TestEnv::new(test))
}

/// One line on the real stderr (not the test harness's captured one), the first time a test
/// skips: the suite's output says that these tests did not run, and why.
fn say_skipped_once(why: &str) {
    static SAID: OnceLock<()> = OnceLock::new();
    SAID.get_or_init(|| {
        use std::io::Write;
        let line = format!(
            "checkpoint suite: the tests that need CRIU are SKIPPED (they pass without running): \
             {why}; CRIU runs in the guest: RUNRS_GUEST_SUITES=checkpoint hack/test-guest\n"
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    });
}

/// The counts written so far.
fn counts(b: &Bundle) -> Vec<u64> {
    std::fs::read_to_string(b.host_path("/count"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn last_count(b: &Bundle) -> u64 {
    counts(b).last().copied().unwrap_or(0)
}

/// Waits until the count passes `n`.
#[track_caller]
fn wait_count_past(b: &Bundle, n: u64) {
    wait_until(&format!("the count to pass {n}"), WAIT, || {
        last_count(b) > n
    });
}

/// The count never started over: 1, 2, 3, ... with no gap and no repeat.
#[track_caller]
fn assert_one_count(b: &Bundle) {
    let c = counts(b);
    let broken = c.windows(2).find(|w| w[1] != w[0] + 1);
    assert!(
        broken.is_none() && c.first() == Some(&1),
        "the count did not go on ({broken:?} in {c:?})"
    );
}

/// A running counter: its id, guard and init pid, once it has counted a little.
fn running_counter(env: &TestEnv, b: &mut Bundle) -> (String, ContainerGuard, i32) {
    b.sh(COUNTER);
    let running = env.start_running(b);
    wait_count_past(b, 3);
    running
}

/// A failure of CRIU's, reported as runc 1.1 reports errors (`fails_with`); runc 1.2+ quotes
/// CRIU's log on stderr first, a warning a line, so from it only the words are checked.
#[track_caller]
fn assert_criu_failed(out: &Output, needles: &[&str]) {
    if runrs_integration::runtime::runc_version().is_some_and(|v| v >= (1, 2)) {
        assert!(matches!(out.code, Some(c) if c != 0), "{out:?}");
        assert_contains(&out.stderr, "criu failed");
    } else {
        out.fails_with(needles);
    }
}

fn checkpoint(env: &TestEnv, args: &[&str]) -> Output {
    let mut all = vec!["checkpoint"];
    all.extend_from_slice(args);
    env.rt.cmd(all).timeout(CRIU_TIMEOUT).run()
}

fn restore_detached(env: &TestEnv, b: &Bundle, images: &Path, id: &str) -> Output {
    let bundle = arg(b.path());
    let images = arg(images);
    env.rt
        .cmd([
            "restore",
            "-d",
            "--bundle",
            &bundle,
            "--image-path",
            &images,
            id,
        ])
        .timeout(CRIU_TIMEOUT)
        .run()
}

/// Dumped, the counter is gone with its container; the count stops.
#[track_caller]
fn assert_dumped(env: &TestEnv, id: &str, pid: i32, b: &Bundle) -> u64 {
    env.rt.run(["state", id]).fails_with(&["does not exist"]);
    assert!(
        wait_for(WAIT, || !pid_alive(pid)),
        "the dumped init {pid} still runs"
    );
    let stopped_at = last_count(b);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        last_count(b),
        stopped_at,
        "the count went on after the dump"
    );
    stopped_at
}

/// Restored, `id` runs again and counts on from `stopped_at`.
#[track_caller]
fn assert_counts_on(env: &TestEnv, id: &str, b: &Bundle, stopped_at: u64) -> i32 {
    let state = env.rt.state(id);
    assert_eq!(state["status"], "running", "{state}");
    let pid = state["pid"].as_i64().unwrap_or(0) as i32;
    assert!(pid > 0 && pid_alive(pid), "restored init {pid}: {state}");
    wait_count_past(b, stopped_at + 3);
    assert_one_count(b);
    pid
}

/// The restored `id` killed, seen stopped, deleted: nothing of it is left.
#[track_caller]
fn kill_and_delete(env: &TestEnv, id: &str, b: &Bundle) {
    env.rt.run(["kill", id, "KILL"]).ok();
    wait_until("the restored container to stop", WAIT, || {
        env.rt.status(id).as_deref() == Some("stopped")
    });
    env.rt.run(["delete", id]).ok();
    env.assert_no_trace(id, b);
}

#[test]
fn a_checkpointed_counter_counts_on_after_restore() {
    let Some(env) = env_with_criu("ckpt_counts_on") else {
        return;
    };
    let mut b = env.bundle();
    let (id, mut guard, pid) = running_counter(&env, &mut b);
    // No --image-path: runc's default, ./checkpoint under the current directory.
    let out = env
        .rt
        .cmd(["checkpoint", &id])
        .current_dir(env.dir())
        .timeout(CRIU_TIMEOUT)
        .run();
    out.ok();
    let images = env.path("checkpoint");
    assert!(
        images.join("inventory.img").exists(),
        "no images in {images:?}"
    );
    assert!(
        images.join("descriptors.json").exists(),
        "no descriptors.json"
    );
    let stopped_at = assert_dumped(&env, &id, pid, &b);

    let bundle = arg(b.path());
    env.rt
        .cmd(["restore", "-d", "--bundle", &bundle, &id])
        .current_dir(env.dir())
        .timeout(CRIU_TIMEOUT)
        .run()
        .ok();
    let restored = assert_counts_on(&env, &id, &b, stopped_at);
    guard.record(restored);
    kill_and_delete(&env, &id, &b);
}

/// Restored under another id, in the foreground: `restore` waits like `run`, returns the
/// container's exit (137 after SIGKILL) and deletes it.
#[test]
fn restore_into_a_new_id_in_the_foreground() {
    let Some(env) = env_with_criu("ckpt_new_id") else {
        return;
    };
    let mut b = env.bundle();
    let (id, _guard, pid) = running_counter(&env, &mut b);
    let images = env.path("images");
    checkpoint(&env, &["--image-path", &arg(&images), &id]).ok();
    let stopped_at = assert_dumped(&env, &id, pid, &b);

    let new_id = env.id();
    let mut guard = env.guard(&new_id);
    let bundle = arg(b.path());
    let foreground = env
        .rt
        .cmd([
            "restore",
            "--bundle",
            &bundle,
            "--image-path",
            &arg(&images),
            &new_id,
        ])
        .timeout(CRIU_TIMEOUT)
        .spawn();
    wait_until("the restored container to run", WAIT, || {
        env.rt.status(&new_id).as_deref() == Some("running")
    });
    guard.record(assert_counts_on(&env, &new_id, &b, stopped_at));
    env.rt.run(["state", &id]).fails_with(&["does not exist"]);
    env.rt.run(["kill", &new_id, "KILL"]).ok();
    foreground.wait().code(137);
    env.assert_no_trace(&new_id, &b);
}

/// `--leave-running`: the images are written and the container goes on counting.
#[test]
fn leave_running_keeps_the_container_counting() {
    let Some(env) = env_with_criu("ckpt_leave_running") else {
        return;
    };
    let mut b = env.bundle();
    let (id, _guard, pid) = running_counter(&env, &mut b);
    let images = env.path("images");
    checkpoint(
        &env,
        &["--leave-running", "--image-path", &arg(&images), &id],
    )
    .ok();
    assert!(
        images.join("inventory.img").exists(),
        "no images in {images:?}"
    );
    assert_eq!(env.rt.status(&id).as_deref(), Some("running"));
    assert!(pid_alive(pid), "the init died");
    let n = last_count(&b);
    wait_count_past(&b, n + 3);
    assert_one_count(&b);
    env.rt.run(["delete", "--force", &id]).ok();
    env.assert_no_trace(&id, &b);
}

/// A pre-dump (the container runs on), then the dump with `--parent-path` pointing at it:
/// only the memory changed since is written, and the restore from it counts on.
#[test]
fn pre_dump_then_dump_on_its_parent() {
    let Some(env) = env_with_criu("ckpt_pre_dump") else {
        return;
    };
    let mut b = env.bundle();
    let (id, mut guard, pid) = running_counter(&env, &mut b);
    let (pre, last) = (env.path("images/pre"), env.path("images/last"));
    checkpoint(&env, &["--pre-dump", "--image-path", &arg(&pre), &id]).ok();
    assert_eq!(env.rt.status(&id).as_deref(), Some("running"));
    let n = last_count(&b);
    wait_count_past(&b, n + 2);
    checkpoint(
        &env,
        &["--image-path", &arg(&last), "--parent-path", "../pre", &id],
    )
    .ok();
    assert!(last.join("parent").exists(), "no parent link in {last:?}");
    let stopped_at = assert_dumped(&env, &id, pid, &b);
    restore_detached(&env, &b, &last, &id).ok();
    guard.record(assert_counts_on(&env, &id, &b, stopped_at));
    env.rt.run(["delete", "--force", &id]).ok();
    env.assert_no_trace(&id, &b);
}

/// The `org.criu.config` annotation names a CRIU configuration file for this container, read
/// after the runtime's own settings and over them (runc's rule): here it renames CRIU's log
/// in the work directory, at the dump and at the restore, and the restore counts on.
#[test]
fn a_containers_criu_config_file_overrides_the_runtimes_settings() {
    let Some(env) = env_with_criu("ckpt_criu_config") else {
        return;
    };
    // It replaces /etc/criu/runc.conf, so it starts with what that file says (the guest's
    // longer freeze timeout).
    let mut text = std::fs::read_to_string("/etc/criu/runc.conf").unwrap_or_default();
    text.push_str("\nlog-file from-config.log\n");
    let conf = env.path("criu.conf");
    std::fs::write(&conf, text).unwrap();
    let mut b = env.bundle();
    b.set("/annotations", json!({ "org.criu.config": arg(&conf) }));
    let (id, mut guard, pid) = running_counter(&env, &mut b);
    let (images, work) = (env.path("images"), env.path("work"));
    let paths = ["--image-path", &arg(&images), "--work-path", &arg(&work)];
    checkpoint(&env, &[&paths[..], &[id.as_str()]].concat()).ok();
    let logs = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".log"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(logs(&work), ["from-config.log"], "CRIU's logs in {work:?}");
    let stopped_at = assert_dumped(&env, &id, pid, &b);

    std::fs::remove_file(work.join("from-config.log")).unwrap();
    let bundle = arg(b.path());
    env.rt
        .cmd([&["restore", "-d", "--bundle", &bundle][..], &paths, &[&id]].concat())
        .timeout(CRIU_TIMEOUT)
        .run()
        .ok();
    assert_eq!(logs(&work), ["from-config.log"], "CRIU's logs in {work:?}");
    guard.record(assert_counts_on(&env, &id, &b, stopped_at));
    kill_and_delete(&env, &id, &b);
}

/// Only a running (or paused) container can be checkpointed; the created one is left as it
/// was and no image directory is made. Needs no CRIU (runc checks the status first).
#[test]
fn a_created_container_cannot_be_checkpointed() {
    let env = TestEnv::new("ckpt_created");
    let mut b = env.bundle();
    b.sh("sleep 1000");
    let id = env.id();
    let _guard = env.guard(&id);
    env.rt.run(["create", "--bundle", &arg(b.path()), &id]).ok();
    let images = env.path("images");
    checkpoint(&env, &["--image-path", &arg(&images), &id])
        .fails_with(&["cannot be checkpointed in created state"]);
    assert_eq!(env.rt.status(&id).as_deref(), Some("created"));
    assert!(!images.exists(), "an image dir was made for nothing");
    checkpoint(&env, &["--image-path", &arg(&images), "no-such-container"])
        .fails_with(&["does not exist"]);
}

/// A detached container whose stdin is the host's `/dev/null` (conmon gives one to every
/// podman container without `-i`; `run -d` passes the caller's) has it replaced by its own
/// `/dev/null` at start, as runc does: CRIU dumps only files on the container's mounts.
/// Needs no CRIU: fd 0 ends on the mount of the `/dev/null` the container opens itself.
/// (In the foreground runc puts pipes between, so the test runs detached.)
#[test]
fn the_host_dev_null_on_stdin_becomes_the_containers_own() {
    let env = TestEnv::new("ckpt_devnull");
    let mut b = env.bundle();
    b.sh("exec 3</dev/null; echo $(grep mnt_id /proc/self/fdinfo/0) \
          $(grep mnt_id /proc/self/fdinfo/3) > /ids; sleep 1000");
    let id = env.id();
    let _guard = env.guard(&id);
    env.rt
        .run(["run", "-d", "--bundle", &arg(b.path()), &id])
        .ok();
    let read = || std::fs::read_to_string(b.host_path("/ids")).unwrap_or_default();
    wait_until("the container to write /ids", WAIT, || {
        read().ends_with('\n')
    });
    let text = read();
    let ids: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(ids.len(), 4, "{text}");
    assert_eq!(
        ids[1], ids[3],
        "fd 0 is not on the container's /dev/null mount: {text}"
    );
    env.rt.run(["delete", "--force", &id]).ok();
}

/// Without a `criu` binary: an error that names it. runrs leaves the container running
/// (runc 1.1 destroys it: its checkpoint deletes the container whatever the dump did).
#[test]
fn checkpoint_without_criu_names_it() {
    let env = TestEnv::new("ckpt_no_criu");
    let mut b = env.bundle();
    let (id, _guard, pid) = running_counter(&env, &mut b);
    let images = env.path("images");
    let out = env
        .rt
        .cmd(["checkpoint", "--image-path", &arg(&images), &id])
        .env("PATH", env.path("no-bin"))
        .run();
    out.fails_with(&["criu", "not found"]);
    if !is_runc() {
        assert_eq!(env.rt.status(&id).as_deref(), Some("running"));
        assert!(
            pid_alive(pid),
            "the container died with the failed checkpoint"
        );
        let n = last_count(&b);
        wait_count_past(&b, n + 1);
    }
    env.rt.run(["delete", "--force", &id]).ok();
    env.assert_no_trace(&id, &b);
}

/// A container CRIU cannot dump (its init's stdio are the runtime's, host files outside
/// the container's mounts): the error is CRIU's, names its log, and runrs leaves the
/// container running (runc 1.1 deletes it whatever the dump did).
#[test]
fn a_dump_criu_refuses_names_its_log_and_keeps_the_container() {
    let Some(env) = env_with_criu("ckpt_refused") else {
        return;
    };
    let mut b = env.bundle();
    b.sh("i=0; while :; do i=$((i+1)); echo $i >> /count; echo $i; usleep 50000; done");
    let (id, _guard, pid) = env.start_running(&b);
    wait_count_past(&b, 3);
    let images = env.path("images");
    let out = checkpoint(&env, &["--image-path", &arg(&images), &id]);
    assert_criu_failed(&out, &["criu failed", "dump.log"]);
    assert!(
        images.join("dump.log").exists(),
        "no CRIU log in {images:?}"
    );
    if !is_runc() {
        assert_eq!(env.rt.status(&id).as_deref(), Some("running"));
        assert!(pid_alive(pid), "the container died with the refused dump");
        let n = last_count(&b);
        wait_count_past(&b, n + 1);
        assert_one_count(&b);
    }
    env.rt.run(["delete", "--force", &id]).ok();
    env.assert_no_trace(&id, &b);
}

/// A restore from a directory that does not exist, or holds no checkpoint: an error naming
/// the directory, and nothing of the container left (state, cgroup, process, mount).
#[test]
fn restore_from_a_missing_or_foreign_image_dir_fails_cleanly() {
    let Some(env) = env_with_criu("ckpt_bad_images") else {
        return;
    };
    let mut b = env.bundle();
    b.sh(COUNTER);
    let foreign = env.path("foreign-images");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "not a checkpoint\n").unwrap();
    for dir in [env.path("missing-images"), foreign] {
        let id = env.id();
        let _guard = env.guard(&id);
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        restore_detached(&env, &b, &dir, &id).fails_with(&[&name]);
        env.rt.run(["state", &id]).fails_with(&["does not exist"]);
        env.assert_no_trace(&id, &b);
    }
}

/// A `criu` that answers the version question as CRIU 2.0 would (runc's minimum is 3.0) and
/// nothing else: a restore is refused in runc's words and leaves nothing of the container.
/// Runs where no CRIU works too: the fake is all that is asked.
#[test]
fn a_criu_too_old_is_refused_and_the_restore_leaves_nothing() {
    let env = TestEnv::new("ckpt_old_criu");
    let bin = env.path("old-criu");
    std::fs::create_dir(&bin).unwrap();
    // CriuResp { type: VERSION (10), success: true, version: { major 2, minor 0 } }, sent
    // for whatever comes on the swrk socket (`criu swrk FD`: runrs passes 3, go-criu its own
    // number).
    let fake = bin.join("criu");
    std::fs::write(
        &fake,
        "#!/bin/sh\n\
         eval \"dd bs=65536 count=1 status=none <&$2 >/dev/null\"\n\
         eval \"printf '\\010\\012\\020\\001\\122\\004\\010\\002\\020\\000' >&$2\"\n\
         eval \"cat <&$2 >/dev/null\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // A directory that looks like a checkpoint: CRIU is never asked to read it.
    let images = env.path("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::write(images.join("inventory.img"), "").unwrap();
    std::fs::write(
        images.join("descriptors.json"),
        r#"["/dev/null","/dev/null","/dev/null"]"#,
    )
    .unwrap();
    let mut b = env.bundle();
    b.sh(COUNTER);
    let id = env.id();
    let _guard = env.guard(&id);
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
    let out = (env.rt)
        .cmd([
            "restore",
            "--detach",
            "--image-path",
            &arg(&images),
            "--bundle",
            &arg(b.path()),
            &id,
        ])
        .env("PATH", path)
        .run();
    out.fails_with(&["CRIU version 20000 must be 30000 or higher"]);
    env.rt.run(["state", &id]).fails_with(&["does not exist"]);
    env.assert_no_trace(&id, &b);
}

/// Counts on its stdout (a pipe or a terminal), not into a file.
const STDOUT_COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i; usleep 50000; done";

/// The numbers in what was read from a pipe or a terminal, one a line.
fn numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.trim_matches(['\r', '\n', ' ']).parse().ok())
        .collect()
}

/// What a restored stdout shows goes on from `stopped_at`: after what it may show again of
/// the old output, `stopped_at + 1`, `+ 2`, ... (never 1 again).
#[track_caller]
fn assert_goes_on(text: &str, stopped_at: u64) {
    let new: Vec<u64> = numbers(text)
        .into_iter()
        .filter(|n| *n > stopped_at)
        .collect();
    let consecutive = new.windows(2).all(|w| w[1] == w[0] + 1);
    assert!(
        new.first() == Some(&(stopped_at + 1)) && consecutive && !numbers(text).contains(&1),
        "the restored output does not go on from {stopped_at}: {text:?}"
    );
}

/// Reads until the other side is gone (EOF or EIO) or a few seconds pass.
fn drain(fd: &std::os::fd::OwnedFd) -> String {
    read_until(fd, "\u{0}never\u{0}", Duration::from_secs(5))
}

/// The init's stdio were pipes: `descriptors.json` names them, and the restore hands the
/// restored init the restoring runtime's own stdio in their place (CRIU's `inherit_fd`).
#[test]
fn stdio_pipes_are_handed_to_the_restored_init() {
    let Some(env) = env_with_criu("ckpt_pipes") else {
        return;
    };
    let mut b = env.bundle();
    b.sh(STDOUT_COUNTER);
    let id = env.id();
    let mut guard = env.guard(&id);
    let with_pipes = |args: Vec<String>| {
        let (in_r, _in_w) = runrs_integration::runtime::pipe();
        let (out_r, out_w) = runrs_integration::runtime::pipe();
        let err_w = out_w.try_clone().unwrap();
        let cmd = env.rt.cmd(args).timeout(CRIU_TIMEOUT);
        let out = cmd
            .pass_fd(0, in_r)
            .pass_fd(1, out_w)
            .pass_fd(2, err_w)
            .run();
        (out, out_r, _in_w)
    };
    let bundle = arg(b.path());
    let create = ["create", "--bundle", &bundle, &id]
        .map(String::from)
        .to_vec();
    let (created, old_out, _old_in) = with_pipes(create);
    created.ok();
    env.rt.run(["start", &id]).ok();
    guard.record(env.rt.state(&id)["pid"].as_i64().unwrap() as i32);
    read_until(&old_out, "\n3\n", WAIT);
    let images = arg(&env.path("images"));
    checkpoint(&env, &["--image-path", &images, &id]).ok();
    let stopped_at = numbers(&drain(&old_out)).into_iter().max().unwrap_or(0);
    assert!(stopped_at >= 3, "the old pipe showed no count");

    let restore = [
        "restore",
        "-d",
        "--bundle",
        &bundle,
        "--image-path",
        &images,
        &id,
    ];
    let (restored, new_out, _new_in) = with_pipes(restore.map(String::from).to_vec());
    let shown = read_until(&new_out, &format!("\n{}\n", stopped_at + 3), WAIT);
    assert!(
        restored.success(),
        "restore failed; its stdout and stderr: {shown}"
    );
    assert_goes_on(&shown, stopped_at);
    env.rt.run(["delete", "--force", &id]).ok();
    env.assert_no_trace(&id, &b);
}

/// A terminal container: the restored terminal's master (CRIU's `orphan-pts-master`) goes
/// to the restore's `--console-socket`, and the count goes on there.
#[test]
fn a_terminal_goes_to_the_restore_console_socket() {
    let Some(env) = env_with_criu("ckpt_tty") else {
        return;
    };
    let mut b = env.bundle();
    b.sh(STDOUT_COUNTER)
        .set("/process/terminal", serde_json::json!(true));
    let id = env.id();
    let mut guard = env.guard(&id);
    let (sock1, sock2) = (env.path("c1.sock"), env.path("c2.sock"));
    let console = ConsoleSocket::bind(&sock1);
    let bundle = arg(b.path());
    let create = [
        "create",
        "--bundle",
        &bundle,
        "--console-socket",
        &arg(&sock1),
        &id,
    ];
    let creating = env.rt.cmd(create).spawn();
    let old_master = console.receive_master(WAIT);
    creating.wait().ok();
    env.rt.run(["start", &id]).ok();
    guard.record(env.rt.state(&id)["pid"].as_i64().unwrap() as i32);
    read_until(&old_master, "3\r\n", WAIT);
    let images = arg(&env.path("images"));
    checkpoint(&env, &["--image-path", &images, &id]).ok();
    let stopped_at = numbers(&drain(&old_master)).into_iter().max().unwrap_or(0);
    assert!(stopped_at >= 3, "the old terminal showed no count");

    let console = ConsoleSocket::bind(&sock2);
    let restore = [
        "restore",
        "-d",
        "--bundle",
        &bundle,
        "--image-path",
        &images,
        "--console-socket",
        &arg(&sock2),
        &id,
    ];
    let restoring = env.rt.cmd(restore).timeout(CRIU_TIMEOUT).spawn();
    let master = console.receive_master(CRIU_TIMEOUT);
    restoring.wait().ok();
    let shown = read_until(&master, &format!("\n{}\r\n", stopped_at + 3), WAIT);
    assert_goes_on(&shown, stopped_at);
    env.rt.run(["delete", "--force", &id]).ok();
    env.assert_no_trace(&id, &b);
}

/// Under the systemd cgroup driver (the guest: systemd PID 1, cgroup v2) the restored
/// container is a scope unit again, made with CRIU in it, `linux.resources` set on it.
#[test]
fn a_systemd_scope_is_made_again_at_restore() {
    let Some(env) = env_with_criu("ckpt_systemd") else {
        return;
    };
    if !Path::new("/run/systemd/system").is_dir() || !procfs::pure_cgroup_v2() {
        eprintln!("SKIPPED ckpt_systemd: needs systemd as PID 1 on pure cgroup v2");
        return;
    }
    let id = env.id();
    let scope = format!("runrs-ckpt-{id}.scope");
    let mut b = env.bundle();
    b.sh(COUNTER)
        .set(
            "/linux/cgroupsPath",
            json!(format!("system.slice:runrs-ckpt:{id}")),
        )
        .set(
            "/linux/resources/memory",
            json!({"limit": 64 * 1024 * 1024}),
        );
    let mut guard = env.guard(&id);
    let sd = |args: &[&str]| {
        let mut all = vec!["--systemd-cgroup"];
        all.extend_from_slice(args);
        env.rt.cmd(all).timeout(CRIU_TIMEOUT).run()
    };
    sd(&["create", "--bundle", &arg(b.path()), &id]).ok();
    sd(&["start", &id]).ok();
    let pid = env.rt.state(&id)["pid"].as_i64().unwrap() as i32;
    guard.record(pid);
    wait_count_past(&b, 3);
    let images = arg(&env.path("images"));
    sd(&["checkpoint", "--image-path", &images, &id]).ok();
    let stopped_at = assert_dumped(&env, &id, pid, &b);

    sd(&[
        "restore",
        "-d",
        "--bundle",
        &arg(b.path()),
        "--image-path",
        &images,
        &id,
    ])
    .ok();
    let pid = assert_counts_on(&env, &id, &b, stopped_at);
    guard.record(pid);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroup.contains(&scope),
        "the restored init is not in {scope}: {cgroup}"
    );
    let dir = procfs::cgroup_dir(pid, "");
    let max = std::fs::read_to_string(dir.join("memory.max")).unwrap();
    assert_eq!(
        max.trim(),
        (64 * 1024 * 1024).to_string(),
        "memory.max of {dir:?}"
    );
    sd(&["delete", "--force", &id]).ok();
    env.assert_no_trace(&id, &b);
}

/// Whether something listens on TCP `port` of the loopback (`/proc/net/tcp`, state 0A).
fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{port:04X} ");
    table
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(3) == Some("0A") && l.contains(&local))
}

/// `checkpoint --page-server ADDRESS:PORT`: the dump's memory pages go to a `criu
/// page-server`, the rest to the image directory; the two put together restore the counter,
/// which counts on.
#[test]
fn a_dump_sends_its_pages_to_a_page_server() {
    let Some(env) = env_with_criu("ckpt_page_server") else {
        return;
    };
    let mut b = env.bundle();
    let (id, mut guard, pid) = running_counter(&env, &mut b);
    let served = env.path("page-server");
    std::fs::create_dir(&served).unwrap();
    let port = 27000 + (std::process::id() % 2000) as u16;
    let mut server = std::process::Command::new("criu")
        .args(["page-server", "--images-dir", &arg(&served)])
        .args(["--port", &port.to_string(), "-v4"])
        .arg("--log-file")
        .arg(env.path("page-server.log"))
        .spawn()
        .expect("criu page-server");
    assert!(
        wait_for(WAIT, || listening(port)),
        "criu page-server does not listen on {port}"
    );
    let images = env.path("images");
    let address = format!("127.0.0.1:{port}");
    let out = checkpoint(
        &env,
        &[
            "--page-server",
            &address,
            "--image-path",
            &arg(&images),
            &id,
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    out.ok();
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let pages = |dir: &Path| names(dir).iter().any(|n| n.starts_with("pages-"));
    assert!(
        pages(&served),
        "no pages at the page server: {:?}",
        names(&served)
    );
    assert!(
        !pages(&images),
        "pages in the image dir: {:?}",
        names(&images)
    );
    let stopped_at = assert_dumped(&env, &id, pid, &b);
    for name in names(&served) {
        if name.ends_with(".img") {
            std::fs::copy(served.join(&name), images.join(&name)).unwrap();
        }
    }
    restore_detached(&env, &b, &images, &id).ok();
    let restored = assert_counts_on(&env, &id, &b, stopped_at);
    guard.record(restored);
    kill_and_delete(&env, &id, &b);
}

/// Whether this CRIU and kernel can restore memory lazily (userfaultfd for a non-cooperative
/// process, as runc's test asks); where they cannot, the test says so (in the guest, fails).
fn lazy_pages_unusable(test: &str) -> bool {
    let ok = std::process::Command::new("criu")
        .args(["check", "--feature", "uffd-noncoop"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let why = "`criu check --feature uffd-noncoop` fails";
        assert!(
            std::env::var_os("RUNRS_REQUIRE_CLIENTS").is_none(),
            "{test}: lazy pages must work in this guest, but {why}"
        );
        eprintln!("SKIPPED {test}: {why}");
    }
    !ok
}

/// One byte from `fd`, waiting at most `timeout` for it.
fn read_byte(fd: &std::os::fd::OwnedFd, timeout: Duration) -> Option<u8> {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    if n != 1 {
        return None;
    }
    let mut byte = 0u8;
    // SAFETY: reads at most one byte into `byte`.
    let r = unsafe { libc::read(fd.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
    (r == 1).then_some(byte)
}

/// Lazy migration, as runc's test drives it: `checkpoint --lazy-pages --page-server
/// --status-fd` dumps everything but the memory, then serves the pages from the frozen
/// container and writes a NUL on the status fd; `criu lazy-pages` and `restore
/// --lazy-pages` into a new id fetch them as the restored copy touches them. The copy counts
/// on from where the dump froze the original; the dump returns once every page has moved,
/// and the original is gone.
#[test]
fn lazy_pages_move_to_a_restored_copy_on_demand() {
    let test = "ckpt_lazy_pages";
    let Some(env) = env_with_criu(test) else {
        return;
    };
    if lazy_pages_unusable(test) {
        return;
    }
    // runc names the cgroup v2 root with an empty controller, which CRIU does not take for
    // all of them: in cgroup mode soft the copy lands in the original's cgroup (runc's own
    // test uses `ignore`, runc 1.2's). runrs restores into the copy's in the default mode.
    let cgroup_mode: &[&str] = if is_runc() {
        if runc_lacks("--manage-cgroups-mode ignore", (1, 2)) {
            return;
        }
        &["--manage-cgroups-mode", "ignore"]
    } else {
        &[]
    };
    let mut b = env.bundle();
    let (id, _guard, pid) = running_counter(&env, &mut b);
    let images = env.path("images");
    std::fs::create_dir(&images).unwrap();
    let port = 29000 + (std::process::id() % 2000) as u16;
    // A --status-fd that is not open: runc's words, and the container goes on.
    let no_fd = [
        "--lazy-pages",
        "--status-fd",
        "99",
        "--image-path",
        &arg(&images),
        &id,
    ];
    checkpoint(&env, &no_fd).fails_with(&["invalid --status-fd argument 99"]);
    assert_eq!(env.rt.status(&id).as_deref(), Some("running"));
    let (ready_r, ready_w) = runrs_integration::runtime::pipe();
    let listen = format!("0.0.0.0:{port}");
    let images_arg = arg(&images);
    let mut args = vec!["checkpoint", "--lazy-pages", "--page-server", &listen];
    args.extend(["--status-fd", "3", "--image-path", &images_arg]);
    args.extend(cgroup_mode);
    args.push(&id);
    let dump = env
        .rt
        .cmd(args)
        .pass_fd(3, ready_w)
        .timeout(CRIU_TIMEOUT)
        .spawn();
    let ready = read_byte(&ready_r, WAIT);
    if ready != Some(0) {
        let out = dump.wait();
        panic!("no NUL on --status-fd ({ready:?}): the lazy page server is not ready: {out:?}");
    }
    assert!(images.join("inventory.img").exists(), "no inventory.img");
    let stopped_at = last_count(&b);
    let mut lazy = KillOnDrop(
        std::process::Command::new("criu")
            .args(["lazy-pages", "--page-server", "--address", "127.0.0.1"])
            .args(["--port", &port.to_string(), "-D", &arg(&images), "-v4"])
            .arg("--log-file")
            .arg(env.path("lazy-pages.log"))
            .spawn()
            .expect("criu lazy-pages"),
    );
    let new_id = env.id();
    let mut new_guard = env.guard(&new_id);
    let bundle_arg = arg(b.path());
    let mut args = vec!["restore", "-d", "--lazy-pages", "--bundle", &bundle_arg];
    args.extend(["--image-path", &images_arg]);
    args.extend(cgroup_mode);
    args.push(&new_id);
    env.rt.cmd(args).timeout(CRIU_TIMEOUT).run().ok();
    let copy = assert_counts_on(&env, &new_id, &b, stopped_at);
    new_guard.record(copy);
    // In its own cgroup, not the frozen original's (which goes with the original).
    let cgroup = std::fs::read_to_string(format!("/proc/{copy}/cgroup")).unwrap();
    assert!(
        cgroup.contains(&new_id) && !cgroup.contains(&format!("{id}\n")),
        "the copy is not in its own cgroup: {cgroup}"
    );
    dump.wait().ok();
    let lazy_status = lazy.0.wait().expect("criu lazy-pages");
    assert!(lazy_status.success(), "criu lazy-pages: {lazy_status}");
    assert!(
        wait_for(WAIT, || !pid_alive(pid)),
        "the original init {pid} outlived the migration"
    );
    env.rt.run(["state", &id]).fails_with(&["does not exist"]);
    kill_and_delete(&env, &new_id, &b);
}

/// A helper process killed with the test, should the test fail before it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `restore --lsm-profile apparmor:NAME`: the restored processes run in that profile, not in
/// the one they had at the dump (CRIU changes only a profile there was: the container runs
/// in one, `process.apparmorProfile`); an LSM the kernel does not have, or a profile it has
/// not loaded, fails the restore and leaves nothing behind.
#[test]
fn restore_puts_the_processes_in_the_lsm_profile_given() {
    let test = "ckpt_lsm_profile";
    let Some(env) = env_with_criu(test) else {
        return;
    };
    let (dumped, restored_in) = ("runrs-test-dumped", "runrs-test-restored");
    if let Err(why) = load_apparmor_profile(dumped).and(load_apparmor_profile(restored_in)) {
        assert!(
            std::env::var_os("RUNRS_REQUIRE_CLIENTS").is_none(),
            "{test}: AppArmor must work in this guest, but {why}"
        );
        eprintln!("SKIPPED {test}: {why}");
        return;
    }
    let mut b = env.bundle();
    b.set("/process/apparmorProfile", json!(dumped));
    let (id, _guard, pid) = running_counter(&env, &mut b);
    let label = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/attr/current"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(label(pid), format!("{dumped} (unconfined)"));
    let images = env.path("images");
    checkpoint(&env, &["--image-path", &arg(&images), &id]).ok();
    let stopped_at = assert_dumped(&env, &id, pid, &b);

    let restore = |lsm: &str, new_id: &str| {
        env.rt
            .cmd([
                "restore",
                "-d",
                "--lsm-profile",
                lsm,
                "--bundle",
                &arg(b.path()),
                "--image-path",
                &arg(&images),
                new_id,
            ])
            .timeout(CRIU_TIMEOUT)
            .run()
    };
    // An LSM this kernel does not have: CRIU's words in runrs's error, nothing left.
    let bad = env.id();
    let out = restore("selinux:container_t", &bad);
    assert_criu_failed(&out, &["criu failed"]);
    if !is_runc() {
        assert_contains(
            &out.stderr,
            "selinux LSM specified but selinux not supported",
        );
    }
    env.assert_no_trace(&bad, &b);
    // A profile the kernel has not loaded: the restored tasks cannot enter it, and CRIU 4.1
    // then hangs for good (runc 1.1 and 1.3 hang with it, and leave the container's state
    // behind when killed). runrs refuses it first, naming the profile, and leaves nothing.
    if !is_runc() {
        let unloaded = env.id();
        let out = restore("apparmor:runrs-test-never-loaded", &unloaded);
        out.fails_with(&["runrs-test-never-loaded", "not loaded in the kernel"]);
        env.assert_no_trace(&unloaded, &b);
        assert_eq!(last_count(&b), stopped_at, "a failed restore counted");
    }

    let new_id = env.id();
    let mut guard = env.guard(&new_id);
    restore(&format!("apparmor:{restored_in}"), &new_id).ok();
    let restored = assert_counts_on(&env, &new_id, &b, stopped_at);
    guard.record(restored);
    assert_eq!(label(restored), format!("{restored_in} (unconfined)"));
    kill_and_delete(&env, &new_id, &b);
}
