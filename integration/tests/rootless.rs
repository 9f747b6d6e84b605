//! Rootless: the runtime run by a user other than root (here a uid with no other rights,
//! through `setpriv`), with the configuration `spec --rootless` writes: a user namespace
//! mapping the user's own id to root. State under `$XDG_RUNTIME_DIR/<runtime>`, cgroups
//! only where the user may make them, runc's words where a config needs more.

use runrs_integration::procfs::{self, status_field};
use runrs_integration::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The user the runtime runs as: no passwd entry, no groups, no capabilities.
const UID: u32 = 41500;

/// The runtime as `UID`, in the world of one test.
struct User<'a> {
    env: &'a TestEnv,
    xdg: PathBuf,
    /// A cgroup2 directory to start the runtime in (the delegated case), if any.
    cgroup: Option<PathBuf>,
}

impl<'a> User<'a> {
    fn new(env: &'a TestEnv) -> User<'a> {
        let xdg = env.path("xdg");
        std::fs::create_dir(&xdg).unwrap();
        std::os::unix::fs::chown(&xdg, Some(UID), Some(UID)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        User {
            env,
            xdg,
            cgroup: None,
        }
    }

    /// The state directory runc's rule gives: `$XDG_RUNTIME_DIR/runc` for runc.
    fn root(&self) -> PathBuf {
        self.xdg.join(self.env.rt.bin.file_name().unwrap())
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut script = String::new();
        if let Some(cg) = &self.cgroup {
            script.push_str(&format!("echo $$ > {}/cgroup.procs && ", cg.display()));
        }
        script.push_str("exec setpriv --reuid=$U --regid=$U --clear-groups --inh-caps=-all \"$@\"");
        let mut c = Command::new("sh");
        c.args(["-c", &script, "sh"])
            .arg(&self.env.rt.bin)
            .args(args)
            .env("U", UID.to_string())
            .env("XDG_RUNTIME_DIR", &self.xdg)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .current_dir(self.env.dir());
        c
    }

    /// Runs to the end; stdout, stderr and success.
    fn run(&self, args: &[&str]) -> (String, String, bool) {
        let out = self
            .cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run the runtime as the user");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (text(&out.stdout), text(&out.stderr), out.status.success())
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (out, err, ok) = self.run(args);
        assert!(ok, "{args:?} failed: {err}");
        out
    }

    /// Nothing under the user's state directory: a refused config left no state behind.
    #[track_caller]
    fn assert_no_state(&self) {
        let left = std::fs::read_dir(self.root())
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(left, 0, "state left behind");
    }

    /// `create` with the container's stdio away from our pipes.
    #[track_caller]
    fn create(&self, bundle: &Path, id: &str) {
        let status = self
            .cmd(&["create", "--bundle", &arg(bundle), id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "create {id} as the user failed");
    }
}

/// Force-deletes the user's container when the test ends, however it ends.
struct Cleanup<'a>(&'a User<'a>, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["delete", "--force", &self.1]);
    }
}

/// A bundle with the configuration `spec --rootless` writes, for `UID`.
fn rootless_bundle(env: &TestEnv, args: &[&str]) -> Bundle {
    bundle_for(env, UID, args)
}

/// The same for user `uid`.
fn bundle_for(env: &TestEnv, uid: u32, args: &[&str]) -> Bundle {
    let dir = env.path(&format!("spec-{}", env.id()));
    std::fs::create_dir(&dir).unwrap();
    env.rt
        .cmd(["spec", "--rootless"])
        .current_dir(&dir)
        .run()
        .ok();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let map = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    config["linux"]["uidMappings"] = map.clone();
    config["linux"]["gidMappings"] = map;
    config["process"]["terminal"] = json!(false);
    let mut b = env.bundle();
    config["root"] = b.config()["root"].clone();
    b.set_config(config);
    b.set_args(args);
    b
}

#[test]
fn a_user_runs_execs_kills_and_deletes_a_container() {
    let env = TestEnv::new("rootless_lifecycle");
    let user = User::new(&env);
    let b = rootless_bundle(&env, &["sleep", "1000"]);
    let id = env.id();
    let _cleanup = Cleanup(&user, id.clone());
    user.create(b.path(), &id);
    // The state is the user's, under $XDG_RUNTIME_DIR.
    assert!(user.root().join(&id).join("state.json").exists());
    user.ok(&["start", &id]);
    let state: Value = serde_json::from_str(&user.ok(&["state", &id])).unwrap();
    assert_eq!(state["status"], "running");
    let pid = state["pid"].as_i64().unwrap();
    // Root in the container is the user on the host.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let host_uid = status_field(&status, "Uid")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert_eq!(host_uid, UID.to_string());
    let out = user.ok(&["exec", &id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["0", "0", &UID.to_string(), "1"], "{out}");
    user.ok(&["kill", &id, "KILL"]);
    wait_until(
        "the container stopped",
        std::time::Duration::from_secs(30),
        || user.run(&["state", &id]).0.contains("\"stopped\""),
    );
    user.ok(&["delete", &id]);
    assert!(!user.root().join(&id).exists(), "state left behind");
}

#[test]
fn a_limit_without_a_cgroup_of_the_users_is_refused_in_runcs_words() {
    let env = TestEnv::new("rootless_limit");
    let user = User::new(&env);
    let mut b = rootless_bundle(&env, &["true"]);
    b.set(
        "/linux/resources",
        json!({"memory": {"limit": 100_000_000}}),
    );
    let id = env.id();
    let _cleanup = Cleanup(&user, id.clone());
    let (_, err, ok) = user.run(&["run", "--bundle", &arg(b.path()), &id]);
    assert!(!ok);
    if is_runc() {
        // runc's cgroup v1 and v2 managers word it differently.
        assert_contains(&err, "limit");
        assert_contains(&err, "cgroup");
    } else {
        assert_contains(
            &err,
            "cannot set memory limit: container could not join or create cgroup",
        );
    }
    user.assert_no_state();
}

#[test]
fn a_config_asking_for_more_than_a_user_has_is_refused_and_leaves_nothing() {
    let env = TestEnv::new("rootless_bad");
    let user = User::new(&env);
    // A map of ids that are not the user's needs newuidmap and /etc/subuid.
    let mut b = rootless_bundle(&env, &["true"]);
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    let id = env.id();
    let _cleanup = Cleanup(&user, id.clone());
    let (_, err, ok) = user.run(&["run", "--bundle", &arg(b.path()), &id]);
    assert!(!ok, "a map of ids the user does not own worked");
    assert!(!err.trim().is_empty());
    // A hard limit above the user's own.
    let mut b = rootless_bundle(&env, &["true"]);
    b.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1u64 << 40}]),
    );
    let (_, err, ok) = user.run(&["run", "--bundle", &arg(b.path()), &id]);
    assert!(!ok, "a hard rlimit above the user's worked");
    // runrs names the limit (RLIMIT_NOFILE); runc 1.1 its number (type 7).
    assert_contains(&err.to_lowercase(), "rlimit");
    user.assert_no_state();
}

/// An idmapped bind mount needs what a user does not have: a detached copy of a host mount
/// (open_tree(OPEN_TREE_CLONE)) and mount_setattr on it, which the kernel allows only with
/// privilege over the host's mount namespace. Refused in runc 1.3's words before anything
/// is made, and no state is left.
#[test]
fn an_idmapped_mount_is_refused_for_a_user_and_leaves_nothing() {
    if runc_lacks("idmapped mounts", (1, 2)) {
        return;
    }
    let env = TestEnv::new("rootless_idmap");
    let user = User::new(&env);
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    let mut b = rootless_bundle(&env, &["true"]);
    let mut mounts = b.config()["mounts"].clone();
    let map = json!([{"containerID": 0, "hostID": UID, "size": 1}]);
    mounts.as_array_mut().unwrap().push(json!({
        "destination": "/shared",
        "type": "bind",
        "source": shared,
        "options": ["bind"],
        "uidMappings": map,
        "gidMappings": map,
    }));
    b.set("/mounts", mounts);
    let id = env.id();
    let _cleanup = Cleanup(&user, id.clone());
    let (_, err, ok) = user.run(&["run", "--bundle", &arg(b.path()), &id]);
    assert!(!ok, "a user's idmapped mount worked");
    assert_contains(
        &err,
        "id-mapped mounts are not supported for rootless containers",
    );
    user.assert_no_state();
}

/// A cgroup2 directory handed to `UID` the way systemd delegates one (`Delegate=yes`):
/// owned by the user with its `cgroup.procs`, `cgroup.subtree_control` and `cgroup.threads`,
/// memory and pids enabled for its children; and a child of it for the runtime to start in.
struct Delegated(PathBuf);

impl Delegated {
    fn make(name: &str) -> Option<Delegated> {
        if !procfs::pure_cgroup_v2() {
            return None;
        }
        let dir = PathBuf::from(format!("/sys/fs/cgroup/{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let d = Delegated(dir.clone());
        for f in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            std::os::unix::fs::chown(dir.join(f), Some(UID), Some(UID)).ok()?;
        }
        std::fs::write(dir.join("cgroup.subtree_control"), "+memory +pids").ok()?;
        std::fs::create_dir(dir.join("runtime")).ok()?;
        for f in ["", "cgroup.procs"] {
            std::os::unix::fs::chown(dir.join("runtime").join(f), Some(UID), Some(UID)).ok()?;
        }
        Some(d)
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        for _ in 0..50 {
            let mut dirs = vec![];
            for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    dirs.push(e.path());
                }
            }
            for d in dirs {
                let _ = std::fs::remove_dir(d);
            }
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

#[test]
fn a_memory_limit_holds_in_a_delegated_cgroup() {
    let Some(delegated) = Delegated::make("runrs-rootless") else {
        eprintln!("skipped: needs a pure cgroup v2 host to delegate a cgroup to the user");
        return;
    };
    let env = TestEnv::new("rootless_delegated");
    let mut user = User::new(&env);
    user.cgroup = Some(delegated.0.join("runtime"));
    let mut b = rootless_bundle(&env, &["sh", "-c", "cat /proc/self/cgroup; sleep 1000"]);
    b.set(
        "/linux/resources",
        json!({"memory": {"limit": 67_108_864}, "pids": {"limit": 20}}),
    );
    let id = env.id();
    let _cleanup = Cleanup(&user, id.clone());
    user.create(b.path(), &id);
    user.ok(&["start", &id]);
    // The container's cgroup is in the delegated one, with its limits.
    let dir = delegated.0.join(&id);
    assert_eq!(
        std::fs::read_to_string(dir.join("memory.max"))
            .unwrap()
            .trim(),
        "67108864"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("pids.max"))
            .unwrap()
            .trim(),
        "20"
    );
    let state: Value = serde_json::from_str(&user.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    user.ok(&["delete", "--force", &id]);
    assert!(!dir.exists(), "the container's cgroup was left");
}

/// A user with a passwd entry and a lingering systemd session (`loginctl enable-linger`): its
/// own `systemd --user` and bus at /run/user/UID, as on a desktop or a rootless Podman host.
/// Removed with its session when the test ends.
struct SessionUser {
    name: &'static str,
    uid: u32,
}

impl SessionUser {
    /// None where there is no systemd (PID 1) on cgroup v2 to run a user's manager. Each
    /// test has its own user (tests run in parallel; one's end removes its user).
    fn make(name: &'static str, uid: u32) -> Option<SessionUser> {
        if !Path::new("/run/systemd/system").is_dir() || !procfs::pure_cgroup_v2() {
            return None;
        }
        let u = SessionUser { name, uid };
        let first = u64::from(uid) * 100_000;
        let sub = format!("{first}-{}", first + 65535);
        let _ = Command::new("useradd")
            .args(["-u", &u.uid.to_string(), "-M", "-d", "/nonexistent"])
            .args(["-s", "/usr/sbin/nologin", u.name])
            .status();
        // Subordinate ids, as `useradd` gives a login user: rootless Podman maps them.
        let _ = Command::new("usermod")
            .args(["--add-subuids", &sub, "--add-subgids", &sub])
            .arg(u.name)
            .status();
        let ok = Command::new("loginctl")
            .args(["enable-linger", u.name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "loginctl enable-linger {} failed", u.name);
        // Its manager starts, then its dbus.socket (dbus-user-session).
        wait_until(
            "the user's bus",
            std::time::Duration::from_secs(120),
            || u.xdg().join("bus").exists(),
        );
        Some(u)
    }

    fn xdg(&self) -> PathBuf {
        PathBuf::from(format!("/run/user/{}", self.uid))
    }

    /// `cmd` as the user in a service of the user's systemd (`systemd-run --user`), so the
    /// runtime runs in a cgroup the user's manager owns and may move processes out of, as
    /// under rootless Podman. Its stdout and stderr, and whether it succeeded.
    fn run(&self, cmd: &[&str]) -> (String, String, bool) {
        self.run_with(&[], cmd)
    }

    /// The same with more `systemd-run` options (unit properties: `-p KEY=VALUE`).
    fn run_with(&self, options: &[&str], cmd: &[&str]) -> (String, String, bool) {
        let out = Command::new("setpriv")
            .args([
                &format!("--reuid={}", self.uid),
                &format!("--regid={}", self.uid),
                "--init-groups",
                "--inh-caps=-all",
                "systemd-run",
                "--user",
                "--quiet",
                "--wait",
                "--pipe",
                "--collect",
                "--working-directory=/",
            ])
            .args(options)
            .arg("--")
            .args(cmd)
            .env("XDG_RUNTIME_DIR", self.xdg())
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .output()
            .expect("systemd-run as the user");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (text(&out.stdout), text(&out.stderr), out.status.success())
    }

    /// A property of one of the user's units, as `systemctl --user show` gives it.
    fn unit_property(&self, unit: &str, property: &str) -> String {
        let (out, _, _) = self.run(&[
            "systemctl",
            "--user",
            "show",
            "-p",
            property,
            "--value",
            unit,
        ]);
        out.trim().to_string()
    }
}

impl Drop for SessionUser {
    fn drop(&mut self) {
        let _ = Command::new("loginctl")
            .args(["disable-linger", self.name])
            .status();
        let _ = Command::new("systemctl")
            .args(["stop", &format!("user@{}.service", self.uid)])
            .status();
        let _ = Command::new("userdel").arg(self.name).status();
    }
}

/// The runtime with `--systemd-cgroup` as a session user; force-deletes its container at
/// the end, however the test ends.
struct UserRuntime<'a> {
    user: &'a SessionUser,
    rt: String,
    root: String,
    id: String,
}

impl UserRuntime<'_> {
    fn run(&self, args: &[&str]) -> (String, String, bool) {
        let mut cmd = vec![self.rt.as_str(), "--root", &self.root, "--systemd-cgroup"];
        cmd.extend_from_slice(args);
        self.user.run(&cmd)
    }

    /// `create`, its stderr to a file: the container's init keeps the runtime's stdio, which
    /// must not be our pipes (reading them would wait for the container to end).
    #[track_caller]
    fn create(&self, bundle: &str) {
        let log = format!("{}.create-log", self.root);
        let script = r#"log=$1; shift; exec "$@" </dev/null >/dev/null 2>"$log""#;
        let mut cmd = vec![
            "sh", "-c", script, "sh", &log, &self.rt, "--root", &self.root,
        ];
        cmd.extend(["--systemd-cgroup", "create", "--bundle", bundle, &self.id]);
        let (_, _, ok) = self.user.run(&cmd);
        let err = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        assert!(ok, "create as the user with --systemd-cgroup failed: {err}");
    }
}

impl Drop for UserRuntime<'_> {
    fn drop(&mut self) {
        self.run(&["delete", "--force", &self.id.clone()]);
    }
}

#[test]
fn a_users_own_systemd_makes_the_scope_with_its_limits() {
    let Some(user) = SessionUser::make("runrs-session", 41501) else {
        eprintln!("skipped: needs systemd as PID 1 on cgroup v2 for a user's systemd");
        return;
    };
    let env = TestEnv::new("rootless_systemd");
    let id = env.id();
    let mut b = bundle_for(&env, user.uid, &["sleep", "1000"]);
    b.set("/linux/cgroupsPath", json!(format!(":rootless:{id}")));
    b.set(
        "/linux/resources",
        json!({"memory": {"limit": 67_108_864}, "pids": {"limit": 30}}),
    );
    let runtime = UserRuntime {
        user: &user,
        rt: arg(&env.rt.bin),
        root: format!("{}/rt-{id}", user.xdg().display()),
        id: id.clone(),
    };
    runtime.create(&arg(b.path()));
    let (out, err, ok) = runtime.run(&["state", &id]);
    assert!(ok, "state: {err}");
    let pid = serde_json::from_str::<Value>(&out).unwrap()["pid"]
        .as_i64()
        .unwrap();
    // The user's systemd runs the scope, in user.slice under its own cgroup.
    let unit = format!("rootless-{id}.scope");
    assert_eq!(user.unit_property(&unit, "ActiveState"), "active");
    let expected = format!(
        "/user.slice/user-{uid}.slice/user@{uid}.service/user.slice/{unit}",
        uid = user.uid
    );
    assert_eq!(user.unit_property(&unit, "ControlGroup"), expected);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(cgroup.trim(), format!("0::{expected}"));
    // Its limits hold there: systemd's MemoryMax and TasksMax, the files the same.
    let dir = PathBuf::from(format!("/sys/fs/cgroup{expected}"));
    let file = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(file("memory.max"), "67108864");
    assert_eq!(file("pids.max"), "30");
    assert_eq!(user.unit_property(&unit, "MemoryMax"), "67108864");
    let (_, err, ok) = runtime.run(&["start", &id]);
    assert!(ok, "start: {err}");
    let (_, err, ok) = runtime.run(&["delete", "--force", &id]);
    assert!(ok, "delete: {err}");
    // Nothing left: no unit, no cgroup, no state.
    wait_until("the scope gone", std::time::Duration::from_secs(30), || {
        user.unit_property(&unit, "LoadState") == "not-found"
    });
    assert!(!dir.exists(), "the scope's cgroup was left");
    assert!(
        !Path::new(&runtime.root).join(&id).exists(),
        "state left behind"
    );
}

#[test]
fn the_systemd_driver_without_a_users_bus_is_refused_and_leaves_nothing() {
    if !Path::new("/run/systemd/system").is_dir() || !procfs::pure_cgroup_v2() {
        eprintln!("skipped: needs systemd as PID 1 on cgroup v2");
        return;
    }
    let env = TestEnv::new("rootless_nobus");
    // UID has no session: $XDG_RUNTIME_DIR is an empty directory of its own, no bus in it.
    let user = User::new(&env);
    let b = rootless_bundle(&env, &["true"]);
    let id = env.id();
    let _cleanup = Cleanup(&user, id.clone());
    let (_, err, ok) = user.run(&["--systemd-cgroup", "run", "--bundle", &arg(b.path()), &id]);
    assert!(!ok, "ran without the user's systemd");
    if is_runc() {
        // runc 1.1 tries `systemctl --user show-environment` and says so.
        assert_contains(&err, "dbus");
    } else {
        assert_contains(&err, "DBUS_SESSION_BUS_ADDRESS");
    }
    user.assert_no_state();
}

/// Podman run by a session user, its storage, state and home under the user's runtime
/// directory, the runtime under test as its OCI runtime; removes its containers and storage
/// at the end.
struct UserPodman<'a> {
    user: &'a SessionUser,
    home: String,
    rt: String,
}

impl UserPodman<'_> {
    fn argv(&self, args: &[&str]) -> Vec<String> {
        let home = &self.home;
        let mut cmd: Vec<String> = ["env", &format!("HOME={home}"), "podman"]
            .map(String::from)
            .to_vec();
        cmd.extend([
            format!("--root={home}/root"),
            format!("--runroot={home}/run"),
            format!("--tmpdir={home}/tmp"),
            "--storage-driver=vfs".into(),
            "--cgroup-manager=systemd".into(),
            "--events-backend=file".into(),
            format!("--runtime={}", self.rt),
        ]);
        cmd.extend(args.iter().map(|a| a.to_string()));
        cmd
    }

    /// Podman's conmon outlives the podman command that starts it, in the same unit: the
    /// unit's end must not kill it (`KillMode=process`, as a login session keeps it).
    fn run(&self, args: &[&str]) -> (String, String, bool) {
        let argv = self.argv(args);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.user.run_with(&["-p", "KillMode=process"], &argv)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (out, err, ok) = self.run(args);
        assert!(ok, "podman {args:?} as the user failed: {err}");
        out.trim().to_string()
    }

    /// The exit status of `podman args`, as a shell sees it.
    fn status(&self, args: &[&str]) -> String {
        let mut cmd = vec!["sh", "-c", "\"$@\" >/dev/null 2>&1; echo $?", "sh"];
        let argv = self.argv(args);
        cmd.extend(argv.iter().map(String::as_str));
        let out = self.user.run_with(&["-p", "KillMode=process"], &cmd).0;
        out.trim().to_string()
    }
}

impl Drop for UserPodman<'_> {
    fn drop(&mut self) {
        self.run(&["rm", "--force", "--all"]);
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

#[test]
fn rootless_podman_runs_containers_through_the_users_systemd() {
    if !std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("podman").is_file()))
    {
        eprintln!("skipped: podman is not installed");
        return;
    }
    let Some(user) = SessionUser::make("runrs-podman", 41502) else {
        eprintln!("skipped: needs systemd as PID 1 on cgroup v2 for a user's systemd");
        return;
    };
    let env = TestEnv::new("rootless_podman");
    let tar = env.path("busybox.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(env.bundle().rootfs())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let podman = UserPodman {
        user: &user,
        home: format!("{}/podman-{}", user.xdg().display(), std::process::id()),
        rt: arg(&env.rt.bin),
    };
    let (_, err, ok) = user.run(&["mkdir", "-p", &podman.home]);
    assert!(ok, "mkdir {}: {err}", podman.home);
    podman.ok(&["import", "--quiet", &arg(&tar), "bb:1"]);
    // An exit code comes back through the runtime.
    let exit3 = [
        "run",
        "--rm",
        "--network=none",
        "bb:1",
        "sh",
        "-c",
        "exit 3",
    ];
    assert_eq!(podman.status(&exit3), "3");
    // A detached one with a memory limit: the runtime under test runs it, in a scope of the
    // user's systemd, with the limit.
    podman.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "--network=none",
        "--memory=64m",
        "bb:1",
        "sleep",
        "1000",
    ]);
    assert_eq!(
        podman.ok(&["inspect", "--format", "{{.OCIRuntime}}", "c"]),
        podman.rt
    );
    let pid = podman.ok(&["inspect", "--format", "{{.State.Pid}}", "c"]);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cgroup.trim().strip_prefix("0::").unwrap().to_string();
    let manager = format!(
        "/user.slice/user-{uid}.slice/user@{uid}.service/",
        uid = user.uid
    );
    assert!(
        path.starts_with(&manager) && path.contains("libpod-"),
        "{path}"
    );
    let scope = PathBuf::from(format!("/sys/fs/cgroup{path}"));
    let limit = std::fs::read_to_string(scope.join("memory.max")).unwrap();
    assert_eq!(limit.trim(), "67108864");
    assert_eq!(
        podman.ok(&["exec", "c", "sh", "-c", "echo hi; id -u"]),
        "hi\n0"
    );
    podman.ok(&["stop", "--time=1", "c"]);
    podman.ok(&["rm", "c"]);
    assert!(!scope.exists(), "the container's scope was left: {path}");
}
