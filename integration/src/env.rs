//! One test's private world (temp dir, `--root`, ids) and the guards that clean it up.

use crate::bundle::Bundle;
use crate::procfs::{self, ProcRef};
use crate::runtime::{runtime_path, Output, Runtime};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tempfile::TempDir;

/// A test's temp dir (bundles, `--root`, command output) and its runtime. Dropping it
/// force-deletes whatever containers are still in its root, detaches mounts left under
/// its dir and removes the dir.
pub struct TestEnv {
    pub name: String,
    pub rt: Runtime,
    dir: TempDir,
    seq: AtomicUsize,
}

impl TestEnv {
    /// A fresh environment for the test `name` (letters, digits and `_` only).
    pub fn new(name: &str) -> TestEnv {
        TestEnv::with_runtime(name, runtime_path())
    }

    /// Like [`TestEnv::new`] with an explicit runtime binary.
    pub fn with_runtime(name: &str, bin: PathBuf) -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix(&format!("runrs-it-{name}-"))
            .tempdir_in("/tmp")
            .expect("create temp dir");
        // Traversable by a container root mapped to another uid (user namespaces).
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod temp dir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).expect("create --root dir");
        let rt = Runtime::new(bin, root, dir.path().join("logs"));
        TestEnv {
            name: name.to_owned(),
            rt,
            dir,
            seq: AtomicUsize::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new path inside the temp dir (`<dir>/<name>`), not created.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A container id unique to this test and process: `<test>-<pid>-<n>`.
    pub fn id(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        format!("{}-{}-{n}", self.name, std::process::id())
    }

    /// A new busybox bundle in the temp dir.
    pub fn bundle(&self) -> Bundle {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        Bundle::create(&self.dir.path().join(format!("bundle-{n}")))
    }

    /// A guard that deletes container `id` when dropped.
    pub fn guard(&self, id: &str) -> ContainerGuard {
        ContainerGuard {
            rt: self.rt.clone(),
            id: id.to_owned(),
            pids: Vec::new(),
        }
    }

    /// Runs `bundle` in the foreground (`run --bundle`) under a fresh id and returns
    /// what the runtime printed (the container's stdout and stderr included).
    pub fn run_bundle(&self, bundle: &Bundle) -> Output {
        self.run_bundle_with(bundle, &[])
    }

    /// Like [`TestEnv::run_bundle`], with extra flags for `run`.
    pub fn run_bundle_with(&self, bundle: &Bundle, flags: &[&str]) -> Output {
        let id = self.id();
        let _guard = self.guard(&id);
        let bundle_path = bundle.path().to_string_lossy().into_owned();
        let mut args = vec!["run", "--bundle", &bundle_path];
        args.extend_from_slice(flags);
        args.push(&id);
        self.rt.run(args)
    }

    /// Runs `bundle` in the foreground and returns its stdout, panicking unless it
    /// exited 0.
    #[track_caller]
    pub fn run_ok(&self, bundle: &Bundle) -> String {
        self.run_bundle(bundle).ok().stdout.clone()
    }

    /// `create` then `start` of `bundle` as `id`, panicking if either fails.
    #[track_caller]
    pub fn create_start(&self, bundle: &Bundle, id: &str) -> Output {
        let bundle_path = bundle.path().to_string_lossy().into_owned();
        let out = self.rt.run(["create", "--bundle", &bundle_path, id]);
        out.ok();
        self.rt.run(["start", id]).ok();
        out
    }

    /// A running container of `bundle` under a fresh id: the id, the guard that removes it
    /// (its init recorded), and the init's pid.
    #[track_caller]
    pub fn start_running(&self, bundle: &Bundle) -> (String, ContainerGuard, i32) {
        let id = self.id();
        let mut guard = self.guard(&id);
        self.create_start(bundle, &id);
        let init = self.rt.state(&id)["pid"]
            .as_i64()
            .expect("state has the pid") as i32;
        guard.record(init);
        (id, guard, init)
    }

    /// Panics if anything of container `id` (of `bundle`) is left: its state dir, a
    /// cgroup named after it, a process with the bundle's marker, a mount under the bundle.
    #[track_caller]
    pub fn assert_no_trace(&self, id: &str, bundle: &Bundle) {
        if !id.is_empty() && id != "." && id != ".." && !id.contains('/') {
            let state_dir = self.rt.root.join(id);
            assert!(
                !state_dir.exists(),
                "state dir {} is left behind",
                state_dir.display()
            );
            let cgroups = procfs::cgroup_dirs_named(id);
            assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
        }
        let leftovers = self.rt_root_entries();
        assert!(leftovers.is_empty(), "state left in --root: {leftovers:?}");
        // A dying process may linger for a moment after the runtime returned.
        let mark = bundle.mark();
        let gone = crate::wait_for(Duration::from_secs(2), || {
            procfs::processes_with_env(&mark).is_empty()
        });
        assert!(
            gone,
            "container processes left behind: {:?}",
            procfs::processes_with_env(&mark)
        );
        let mounts = procfs::mounts_under(bundle.path());
        assert!(mounts.is_empty(), "mounts left behind: {mounts:?}");
    }

    /// What is in the `--root` dir (container state dirs).
    pub fn rt_root_entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.rt.root)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for id in self.rt_root_entries() {
            let _ = self
                .rt
                .cmd(["delete", "--force", &id])
                .timeout(Duration::from_secs(15))
                .try_run();
        }
        procfs::unmount_all_under(self.dir.path());
    }
}

/// Deletes its container when dropped (`delete --force`, even if the test failed) and
/// SIGKILLs the processes recorded with [`ContainerGuard::record`].
pub struct ContainerGuard {
    rt: Runtime,
    id: String,
    pids: Vec<ProcRef>,
}

impl ContainerGuard {
    /// A guard that deletes `id` with this runtime.
    pub fn new(rt: Runtime, id: &str) -> ContainerGuard {
        ContainerGuard {
            rt,
            id: id.to_owned(),
            pids: Vec::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Remembers a process of this container to kill at cleanup.
    pub fn record(&mut self, pid: i32) {
        if let Some(p) = ProcRef::of(pid) {
            self.pids.push(p);
        }
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        // Never panics (this may run while a failed test unwinds); a runtime that hangs
        // here is killed after the timeout.
        let _ = self
            .rt
            .cmd(["delete", "--force", &self.id])
            .timeout(Duration::from_secs(15))
            .try_run();
        for p in &self.pids {
            p.kill();
        }
    }
}
