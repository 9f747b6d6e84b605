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
    let dir = env.path(&format!("spec-{}", env.id()));
    std::fs::create_dir(&dir).unwrap();
    env.rt
        .cmd(["spec", "--rootless"])
        .current_dir(&dir)
        .run()
        .ok();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let map = json!([{"containerID": 0, "hostID": UID, "size": 1}]);
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
    let left = std::fs::read_dir(user.root())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "state left behind");
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
    let left = std::fs::read_dir(user.root())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "state left behind");
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
