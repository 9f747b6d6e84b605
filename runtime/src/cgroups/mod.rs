//! Cgroups: layout detection (v1, hybrid, v2), the container's directories in every hierarchy,
//! joining, listing and removal; resources through the v1 or the v2 backend, freezing,
//! signalling every process, stats and OOM events.
//!
//! A container's cgroup is the list of its directories, one per hierarchy (kept in
//! `state.json`). Directories with `cgroup.controllers` are v2; if any v1 directory exists
//! (legacy or hybrid layout) the v1 backend drives resources, otherwise the v2 one.

pub mod bpf;
pub mod devices;
pub mod events;
pub mod running;
pub mod stats;
pub mod systemd;
pub mod v1;
pub mod v2;

use anyhow::{Context, Result};
use oci_spec::runtime::LinuxResources;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// One mounted hierarchy: where it is mounted, the cgroup path of the mount's root, and our
/// own cgroup in it.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    pub mount_root: String,
    pub own_path: String,
    /// `true` for the cgroup2 (unified) hierarchy.
    pub unified: bool,
    /// Controllers (v1), e.g. `["cpu"]` or `["name=systemd"]`.
    pub controllers: Vec<String>,
}

/// Every cgroup hierarchy this process is in and that is mounted.
///
/// The v1 freezer's hierarchy comes last: a container's directories, and what is made of
/// them (its state's `cgroup_paths`), keep that order, so a process entering them enters
/// the freezer last (a thread that enters a frozen cgroup stops there) without looking
/// which one it is.
pub fn hierarchies() -> Result<Vec<Hierarchy>> {
    let own = crate::kernfs::read("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    let mut found = parse_hierarchies(&own, &crate::mountinfo::read_mountinfo()?);
    found.sort_by_key(|h| h.controllers.iter().any(|c| c == "freezer"));
    Ok(found)
}

pub(crate) fn parse_hierarchies(
    own: &str,
    mountinfo: &[crate::mountinfo::MountInfo],
) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let unified = ctrls.is_empty();
        let controllers: Vec<String> = ctrls
            .split(',')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        let found = mountinfo.iter().find(|m| {
            if unified {
                m.fs_type == "cgroup2"
            } else {
                m.fs_type == "cgroup"
                    && controllers
                        .iter()
                        .all(|c| m.super_options.split(',').any(|o| o == c.as_str()))
            }
        });
        if let Some(m) = found {
            if out.iter().any(|h| h.mount_point == m.mount_point) {
                continue;
            }
            out.push(Hierarchy {
                mount_point: m.mount_point.clone(),
                mount_root: m.root.to_string_lossy().into_owned(),
                own_path: path.to_string(),
                unified,
                controllers,
            });
        }
    }
    out
}

impl Hierarchy {
    /// The directory for `cgroups_path`: absolute paths from the hierarchy root, relative ones
    /// under `base` (see [`relative_base`]).
    pub fn dir_for_under(&self, cgroups_path: &str, base: &str) -> PathBuf {
        let inner = if cgroups_path.starts_with('/') {
            cgroups_path.to_string()
        } else {
            format!("{}/{}", base.trim_end_matches('/'), cgroups_path)
        };
        let rel = inner
            .strip_prefix(self.mount_root.trim_end_matches('/'))
            .unwrap_or(&inner);
        let mut p = self.mount_point.clone();
        for c in rel
            .split('/')
            .filter(|c| !c.is_empty() && *c != "." && *c != "..")
        {
            p.push(c);
        }
        p
    }

    /// The directory for `cgroups_path`, relative paths under our own cgroup (v1's rule).
    pub fn dir_for(&self, cgroups_path: &str) -> PathBuf {
        self.dir_for_under(cgroups_path, &self.own_path)
    }
}

/// Where a relative `cgroupsPath` starts (runc's rule): our own cgroup on v1 and hybrid hosts;
/// on a pure v2 host its parent, because our own cgroup has processes (us), and the kernel's
/// no-internal-process rule lets neither controllers be enabled there nor a child domain be
/// joined (e.g. `/system.slice/x.service/ID` is refused with EOPNOTSUPP; runc uses
/// `/system.slice/ID`).
pub fn relative_base(own_path: &str, pure_v2: bool) -> &str {
    if !pure_v2 {
        return own_path;
    }
    match own_path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((parent, _)) => parent,
    }
}

/// Whether /sys/fs/cgroup is cgroup2, the whole hierarchy (runc's `IsCgroup2UnifiedMode`).
pub fn unified_mode() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// runc's `cgroupsPath` forms for the cgroupfs driver: a path; systemd's `slice:prefix:name`
/// is refused (runc would make a directory named so), pointing at `--systemd-cgroup`.
pub fn resolve_path(cgroups_path: Option<&str>, id: &str) -> Result<String> {
    match cgroups_path {
        None | Some("") => Ok(id.to_string()),
        Some(p) if systemd::is_systemd_form(p) => anyhow::bail!(
            "cgroupsPath {p:?} is in systemd form (slice:prefix:name): use --systemd-cgroup for the systemd cgroup driver"
        ),
        Some(p) => Ok(p.to_string()),
    }
}

/// The container's cgroups as its `type: "cgroup"` mount shows them. `create` works this out
/// before the clone, so that the init need not read mountinfo and /proc/self/cgroup again.
#[derive(Debug, Clone, Default)]
pub struct MountView {
    /// One per v1 hierarchy, in /proc/self/cgroup order.
    pub v1: Vec<V1Dir>,
    /// The container's directory in the unified hierarchy, if one is mounted.
    pub unified: Option<PathBuf>,
}

/// A v1 hierarchy in the container's `/sys/fs/cgroup`.
#[derive(Debug, Clone)]
pub struct V1Dir {
    /// The name of the host's mount point (`memory`, `cpu,cpuacct`, `systemd`).
    pub name: std::ffi::OsString,
    /// Its controllers as /proc/self/cgroup lists them (`cpu,cpuacct`, `name=systemd`).
    pub controllers: String,
    /// The container's directory in it, on the host.
    pub dir: PathBuf,
}

impl MountView {
    /// A host with only the unified hierarchy: `type: "cgroup"` means cgroup2 there (runc).
    pub fn is_pure_v2(&self) -> bool {
        self.v1.is_empty() && self.unified.is_some()
    }

    /// The cgroups this process is in.
    pub fn of_self() -> Result<MountView> {
        let mut view = MountView::default();
        for h in hierarchies()? {
            view.add(&h, h.dir_for(&h.own_path));
        }
        Ok(view)
    }

    fn add(&mut self, h: &Hierarchy, dir: PathBuf) {
        if h.unified {
            self.unified = Some(dir);
        } else if let Some(name) = h.mount_point.file_name() {
            self.v1.push(V1Dir {
                name: name.to_os_string(),
                controllers: h.controllers.join(","),
                dir,
            });
        }
    }
}

/// The container's directory in every mounted hierarchy, worked out but not made yet.
pub struct Planned {
    hierarchies: Vec<Hierarchy>,
    /// One per hierarchy, in /proc/self/cgroup order (what `state.json` keeps).
    pub dirs: Vec<PathBuf>,
    pub view: MountView,
}

impl Planned {
    /// `linux.resources` at create (every resource, device rules included) in the planned
    /// directories, made by now: the hierarchies are known, so neither the backend nor a
    /// controller's directory is looked for (by the files in each).
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        let backend = if !self.view.v1.is_empty() {
            let v1 = self.view.v1.iter();
            Some(Backend::V1(v1::V1::known(
                v1.map(|d| (d.controllers.as_str(), d.dir.as_path())),
            )))
        } else {
            (self.view.unified.clone()).map(|d| Backend::V2(v2::V2::new(d)))
        };
        apply_to(backend, r)
    }
}

/// Where the container's cgroup goes in each hierarchy (`cgroupsPath` resolved).
pub fn plan(cgroups_path: &str) -> Result<Planned> {
    let hierarchies = hierarchies()?;
    let pure_v2 = hierarchies.iter().all(|h| h.unified);
    let mut view = MountView::default();
    let dirs = hierarchies
        .iter()
        .map(|h| {
            let dir = h.dir_for_under(cgroups_path, relative_base(&h.own_path, pure_v2));
            view.add(h, dir.clone());
            dir
        })
        .collect();
    Ok(Planned {
        hierarchies,
        dirs,
        view,
    })
}

/// `dir` exists and we may write its files and make directories in it, or the nearest
/// directory above it that exists lets us make it.
fn writable_or_makeable(dir: &Path) -> bool {
    let can_write = |p: &Path| {
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
            return false;
        };
        // SAFETY: a NUL-terminated path; access only reads it.
        unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
    };
    let mut p = dir;
    loop {
        if p.is_dir() {
            return can_write(p);
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

/// Processes in `dir` and below it.
fn processes_in(dir: &Path) -> usize {
    let here = crate::kernfs::read(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0);
    let below: usize = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| processes_in(&e.path()))
        .sum();
    here + below
}

/// Frozen in any hierarchy: the v1 freezer, `cgroup.freeze` of a cgroup2 directory, or a
/// freeze inherited from an ancestor (`frozen 1` in cgroup.events), which runc 1.1 lets
/// through and then hangs on.
fn is_frozen_dir(dir: &Path) -> bool {
    let read = |f: &str| crate::kernfs::read(dir.join(f));
    read("freezer.state").is_ok_and(|s| matches!(s.trim(), "FROZEN" | "FREEZING"))
        || read("cgroup.freeze").is_ok_and(|s| s.trim() == "1")
        || read("cgroup.events").is_ok_and(|s| s.lines().any(|l| l.trim() == "frozen 1"))
}

impl Planned {
    /// runc's checks of a container's cgroup that exists already (see [`check_reusable_dir`]),
    /// made before anything is made (under systemd, which makes the directories; restore):
    /// only directories that exist are read (a new container's do not: one stat each).
    pub fn check_reusable(&self) -> Result<()> {
        (self.dirs.iter())
            .filter(|d| d.is_dir())
            .try_for_each(|d| check_reusable_dir(d))
    }

    /// Rootless: keep only the hierarchies where this user may make (or use) the container's
    /// directory, e.g. a cgroup2 subtree systemd delegated to the user; the container has no
    /// cgroup in the others, as with runc's rootless cgroup manager. Returns how many were
    /// dropped.
    pub fn keep_writable(&mut self) -> usize {
        let keep: Vec<bool> = self.dirs.iter().map(|d| writable_or_makeable(d)).collect();
        let before = self.dirs.len();
        let mut view = MountView::default();
        let mut hierarchies = Vec::new();
        let mut dirs = Vec::new();
        for ((h, d), k) in self
            .hierarchies
            .drain(..)
            .zip(self.dirs.drain(..))
            .zip(keep)
        {
            if k {
                view.add(&h, d.clone());
                hierarchies.push(h);
                dirs.push(d);
            }
        }
        (self.hierarchies, self.dirs, self.view) = (hierarchies, dirs, view);
        before - self.dirs.len()
    }

    /// Only the unified hierarchy is mounted.
    pub fn is_pure_v2(&self) -> bool {
        self.hierarchies.iter().all(|h| h.unified)
    }

    /// Make the directories of the hierarchies `which` picks (existing ones are fine), each
    /// added to `made` first, for the caller to remove should anything fail.
    pub fn make(&self, made: &mut Vec<PathBuf>, which: impl Fn(&Hierarchy) -> bool) -> Result<()> {
        self.make_with(made, which, false)
    }

    /// [`Planned::make`] of a new container's directories, where one that exists already must
    /// pass runc's checks ([`check_reusable_dir`]): checked only then (a new directory is
    /// empty and not frozen), so a create stats nothing first; one that fails is not added
    /// to `made`, and a failed create leaves it alone.
    pub fn make_fresh(
        &self,
        made: &mut Vec<PathBuf>,
        which: impl Fn(&Hierarchy) -> bool,
    ) -> Result<()> {
        self.make_with(made, which, true)
    }

    fn make_with(
        &self,
        made: &mut Vec<PathBuf>,
        which: impl Fn(&Hierarchy) -> bool,
        check_existing: bool,
    ) -> Result<()> {
        let pure_v2 = self.hierarchies.iter().all(|h| h.unified);
        for (h, dir) in self.hierarchies.iter().zip(&self.dirs) {
            if !which(h) {
                continue;
            }
            let cpuset = h.controllers.iter().any(|c| c == "cpuset");
            let result = make_dirs(&h.mount_point, dir, cpuset);
            if check_existing && matches!(result, Ok(false)) {
                // Not ours: should it fail the check, it stays out of `made`, and so alone.
                check_reusable_dir(dir)?;
            }
            // Recorded even when making it failed midway (say after its mkdir).
            made.push(dir.clone());
            result.with_context(|| format!("create cgroup {}", dir.display()))?;
            // In a hybrid layout the v2 tree is shared bookkeeping: leave its controllers be.
            if pure_v2 {
                v2::V2::enable_controllers(&h.mount_point, dir)?;
            }
        }
        Ok(())
    }
}

/// runc's checks of a container's cgroup directory that exists already: it must hold no
/// process, in it or below it (another container's, or a unit's), and it must not be
/// frozen, or the init would stop in it and `create` never return.
fn check_reusable_dir(dir: &Path) -> Result<()> {
    let n = processes_in(dir);
    if n > 0 {
        anyhow::bail!("container's cgroup is not empty: {n} process(es) found");
    }
    if is_frozen_dir(dir) {
        anyhow::bail!("container's cgroup unexpectedly frozen");
    }
    Ok(())
}

/// A container's cgroup, whichever driver made it: its directories (one per hierarchy) and,
/// under the systemd driver, the scope unit that holds them. Every command that acts on a
/// container's cgroup goes through this; the backends (cgroupfs v1, cgroupfs v2, systemd)
/// stand side by side below it.
pub struct Cgroup<'a> {
    pub paths: &'a [PathBuf],
    /// The scope unit under the systemd driver.
    pub scope: Option<Scope<'a>>,
}

/// A container's systemd scope: the unit's name and the systemd it belongs to (the user's,
/// rootless).
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub unit: &'a str,
    pub manager: systemd::Manager,
}

impl Cgroup<'_> {
    /// `update`: the unit's properties first (runtime only, as runc), then the files. Device
    /// rules are left as they are, as runc's update does.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        if let Some(scope) = self.scope {
            let v1 = matches!(backend(self.paths), Some(Backend::V1(_)));
            let mut props = systemd::properties::from_resources(r, v1)?;
            props.retain(|(name, _)| !name.starts_with("Device"));
            systemd::Systemd::connect(scope.manager)?.set_properties(scope.unit, props)?;
        }
        update(self.paths, r)
    }

    pub fn freeze(&self, frozen: bool) -> Result<()> {
        freeze(self.paths, frozen)
    }

    pub fn is_frozen(&self) -> bool {
        is_frozen(self.paths)
    }

    pub fn signal_all(&self, sig: i32) -> Result<()> {
        signal_all(self.paths, sig)
    }

    pub fn pids(&self) -> Vec<i32> {
        pids(self.paths)
    }

    /// Thaw it, best effort (a frozen process cannot die).
    pub fn thaw(&self) {
        for d in self.paths {
            for (file, value) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
                if d.join(file).exists() {
                    let _ = fs::write(d.join(file), value);
                }
            }
        }
    }

    /// SIGKILL whatever is still in it, until it is empty (half a second at most). Nothing
    /// to do in an empty cgroup (the common case: `run` once its init exited).
    pub fn kill_remaining(&self) {
        if self.pids().is_empty() {
            return;
        }
        self.thaw();
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                // SAFETY: kill of a process in the container's cgroup.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Remove it (its processes are gone): stop and reset the unit, remove the directories.
    pub fn destroy(&self) {
        if let Some(scope) = self.scope {
            if let Err(e) = systemd::stop(scope.unit, scope.manager) {
                crate::logging::warn(&format!("{e:#}"));
            }
        }
        remove(self.paths);
    }
}

/// The backend that drives a container's resources.
pub enum Backend {
    V1(v1::V1),
    V2(v2::V2),
}

/// Pick the backend for the container's directories (see the module comment).
pub fn backend(paths: &[PathBuf]) -> Option<Backend> {
    let (v2s, v1s): (Vec<PathBuf>, Vec<PathBuf>) = paths
        .iter()
        .cloned()
        .partition(|d| d.join("cgroup.controllers").exists());
    if !v1s.is_empty() {
        Some(Backend::V1(v1::V1::new(v1s)))
    } else {
        v2s.into_iter().next().map(|d| Backend::V2(v2::V2::new(d)))
    }
}

/// Apply `linux.resources` at create: every resource, device rules included.
fn apply_to(backend: Option<Backend>, r: &LinuxResources) -> Result<()> {
    match backend {
        Some(Backend::V1(b)) => b.apply(r, true),
        Some(Backend::V2(b)) => {
            b.apply(r)?;
            let rules = devices::with_defaults(r.devices().as_deref().unwrap_or(&[]));
            bpf::attach(&b.dir, &devices::reduce(&rules))
        }
        None => Ok(()),
    }
    .context("apply linux.resources")
}

/// Apply a change of resources to a running container (`update`): devices are left as they
/// are, as runc does.
pub fn update(paths: &[PathBuf], r: &LinuxResources) -> Result<()> {
    match backend(paths) {
        Some(Backend::V1(b)) => b.apply(r, false),
        Some(Backend::V2(b)) => b.apply(r),
        None => anyhow::bail!("the container has no cgroup"),
    }
}

/// Freeze (`true`) or thaw every process of the container.
pub fn freeze(paths: &[PathBuf], frozen: bool) -> Result<()> {
    match backend(paths) {
        Some(Backend::V1(b)) if b.dir("freezer").is_some() => b.freeze(frozen),
        Some(Backend::V1(_)) => {
            // Legacy layout without a freezer hierarchy: the v2 tree of a hybrid may do.
            let v2 = paths.iter().find(|d| d.join("cgroup.freeze").exists());
            match v2 {
                Some(d) => v2::V2::new(d).freeze(frozen),
                None => anyhow::bail!(
                    "no freezer: neither the v1 freezer controller nor cgroup.freeze is available"
                ),
            }
        }
        Some(Backend::V2(b)) => b.freeze(frozen),
        None => anyhow::bail!("the container has no cgroup"),
    }
}

/// Signal every process of the container: freeze, signal each, thaw (so that no process
/// forks away between the listing and the signal). SIGKILL on v2 uses `cgroup.kill`.
pub fn signal_all(paths: &[PathBuf], sig: i32) -> Result<()> {
    if sig == libc::SIGKILL {
        if let Some(Backend::V2(b)) = backend(paths) {
            if b.kill()? {
                return Ok(());
            }
        }
    }
    // A paused container stays paused, unless it is being killed (v1 frozen tasks cannot die).
    let was_frozen = is_frozen(paths);
    let frozen = was_frozen || freeze(paths, true).is_ok();
    for pid in pids(paths) {
        // SAFETY: kill(2) with a pid read from the container's own cgroup.
        unsafe { libc::kill(pid, sig) };
    }
    if frozen && (!was_frozen || sig == libc::SIGKILL) {
        freeze(paths, false)?;
    }
    Ok(())
}

/// Write `value` to `dir/file` as the cgroup interface wants it: one write, no creation.
pub fn write_file(dir: &Path, file: &str, value: &str) -> Result<()> {
    use std::io::Write;
    let path = dir.join(file);
    let r = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    r.map_err(|e| {
        anyhow::Error::new(WriteError {
            errno: e.raw_os_error(),
            msg: format!(
                "failed to write {value:?}: write {}: {}",
                path.display(),
                errno_text(&e)
            ),
        })
    })
}

/// A failed cgroup write in runc's words (`failed to write "99": write PATH: numerical
/// result out of range`), keeping the errno for [`is_errno`].
#[derive(Debug)]
pub struct WriteError {
    errno: Option<i32>,
    msg: String,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for WriteError {}

/// Go's text of an errno: strerror(3), lowercased.
fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            // SAFETY: strerror returns a pointer to a static string.
            let s = unsafe { std::ffi::CStr::from_ptr(libc::strerror(n)) };
            s.to_string_lossy().to_lowercase()
        }
        None => e.to_string(),
    }
}

/// A number from a cgroup file (`max` and garbage read as `None`).
pub fn read_u64(path: &Path) -> Option<u64> {
    crate::kernfs::read(path).ok()?.trim().parse().ok()
}

/// Is the root cause of `e` the errno `n`?
pub fn is_errno(e: &anyhow::Error, n: i32) -> bool {
    let root = e.root_cause();
    root.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.raw_os_error() == Some(n))
        || root
            .downcast_ref::<WriteError>()
            .is_some_and(|w| w.errno == Some(n))
}

/// `mlx5_1 hca_handle=3 hca_object=max` for `rdma.max`.
pub fn rdma_line(dev: &str, l: &oci_spec::runtime::LinuxRdma) -> String {
    let n = |v: Option<u32>| v.map_or("max".to_string(), |v| v.to_string());
    format!(
        "{dev} hca_handle={} hca_object={}",
        n(l.hca_handles()),
        n(l.hca_objects())
    )
}

/// `mkdir -p` below the mount point. In a v1 cpuset hierarchy every level, new or not, whose
/// `cpuset.cpus` or `cpuset.mems` is empty gets its parent's, top down, as runc's
/// `cpusetEnsureParent` does: an empty cpuset refuses every process (ENOSPC), and a
/// `/kubepods/pod…` level made by someone else (a `mkdir` leaves both empty) is common.
/// Whether `dir` itself was made (it was not there before).
fn make_dirs(mount_point: &Path, dir: &Path, cpuset: bool) -> std::io::Result<bool> {
    if !cpuset {
        // One mkdir where the parent exists (the common case), no stat before it.
        match fs::create_dir(dir) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(parent) = dir.parent() {
        if parent != mount_point && parent.starts_with(mount_point) {
            make_dirs(mount_point, parent, cpuset)?;
        }
    }
    let new = match fs::create_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e),
    };
    if cpuset {
        copy_cpuset_if_empty(dir, new)?;
    }
    Ok(new)
}

/// `cpuset.cpus` and `cpuset.mems` from the parent where `dir`'s are empty: a directory just
/// made has none (or, under `cgroup.clone_children`, its parent's already), so it is not read.
fn copy_cpuset_if_empty(dir: &Path, new: bool) -> std::io::Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if new || crate::kernfs::read(dir.join(f))?.trim().is_empty() {
            let v = crate::kernfs::read(parent.join(f))?;
            fs::write(dir.join(f), v.trim()).map_err(|e| {
                let what = format!("copy {f} {:?} from the parent: {e}", v.trim());
                std::io::Error::new(e.kind(), what)
            })?;
        }
    }
    Ok(())
}

/// The container's cgroups, opened by the runtime before the clone so that the single-threaded
/// child moves *itself*: writing `0` to a v1 `tasks` file migrates the calling thread without
/// the global threadgroup rwsem, whose write side waits for an RCU grace period (0.2-20 ms
/// per container here) whenever another process writes a pid. Every fd is close-on-exec.
pub struct SelfJoin {
    /// (directory, its `tasks` or, in cgroup2, `cgroup.procs`), the freezer last.
    files: Vec<(PathBuf, fs::File)>,
    /// The cgroup2 directory, for `clone3(CLONE_INTO_CGROUP)`, and its index in `files`.
    cgroup2: Option<(usize, fs::File)>,
}

impl SelfJoin {
    /// `tasks` in each v1 directory, `cgroup.procs` in a cgroup2 one (it has no `tasks`), in
    /// the order given: a container's directories come with the freezer last
    /// (`hierarchies`).
    pub fn open(paths: &[PathBuf]) -> Result<SelfJoin> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut join = SelfJoin {
            files: Vec::with_capacity(paths.len()),
            cgroup2: None,
        };
        for dir in paths {
            let open = |name: &str| fs::OpenOptions::new().write(true).open(dir.join(name));
            let f = match open("tasks") {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let d = fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_DIRECTORY)
                        .open(dir)
                        .with_context(|| format!("open cgroup {}", dir.display()))?;
                    join.cgroup2 = Some((join.files.len(), d));
                    open("cgroup.procs")
                }
                r => r,
            }
            .with_context(|| format!("join cgroup {}", dir.display()))?;
            join.files.push((dir.clone(), f));
        }
        Ok(join)
    }

    /// Every file's fd, in order: to send the files to the process that joins.
    pub fn fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.files.iter().map(|(_, f)| f.as_raw_fd()).collect()
    }

    /// The v1 `tasks` files of `paths` (in that order) as another process opened them and
    /// sent them (`fds`).
    pub fn received(paths: &[PathBuf], fds: Vec<std::os::fd::OwnedFd>) -> Result<SelfJoin> {
        if fds.len() != paths.len() {
            anyhow::bail!(
                "join cgroups: {} files received for {} directories",
                fds.len(),
                paths.len()
            );
        }
        let files = paths
            .iter()
            .cloned()
            .zip(fds.into_iter().map(fs::File::from));
        Ok(SelfJoin {
            files: files.collect(),
            cgroup2: None,
        })
    }

    /// The cgroup2 directory to clone into, if there is one.
    pub fn cgroup2_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.cgroup2.as_ref().map(|(_, d)| d.as_raw_fd())
    }

    /// In the clone child, before anything else: move into every cgroup but the cgroup2 one
    /// when `CLONE_INTO_CGROUP` already put it there, then close the files.
    pub fn join(self, cloned_into_cgroup2: bool) -> Result<()> {
        let skip = self.cgroup2.filter(|_| cloned_into_cgroup2).map(|(i, _)| i);
        for (i, (dir, mut f)) in self.files.into_iter().enumerate() {
            if Some(i) != skip {
                std::io::Write::write_all(&mut f, b"0")
                    .with_context(|| format!("join cgroup {}", dir.display()))?;
            }
        }
        Ok(())
    }
}

/// `exec --cgroup`: the container's directories with runc's sub-cgroup arguments applied.
/// `PATH` alone (given once) goes below every directory; `CTRL[,CTRL]:PATH` below those of
/// the v1 hierarchies carrying the controllers. A path may not leave the container's cgroup.
pub fn sub_cgroups(dirs: &[PathBuf], args: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = dirs.to_vec();
    if args.is_empty() {
        return Ok(out);
    }
    let hierarchies = hierarchies()?;
    for arg in args {
        let (controllers, sub) = match arg.split(':').collect::<Vec<_>>()[..] {
            [sub] if args.len() == 1 => (None, sub),
            [_] => anyhow::bail!("invalid --cgroup argument: {arg} (missing <controller>: prefix)"),
            [ctrls, sub] => (Some(ctrls), sub),
            _ => anyhow::bail!("invalid --cgroup argument: {arg}"),
        };
        for (i, dir) in dirs.iter().enumerate() {
            if let Some(ctrls) = controllers {
                let of_dir = hierarchies.iter().find(|h| dir.starts_with(&h.mount_point));
                let carries =
                    |c: &str| of_dir.is_some_and(|h| h.controllers.iter().any(|x| x == c));
                if !ctrls.split(',').any(carries) {
                    continue;
                }
            }
            out[i] = sub_path(dir, sub)?;
        }
        for c in controllers.into_iter().flat_map(|c| c.split(',')) {
            if !hierarchies
                .iter()
                .any(|h| h.controllers.iter().any(|x| x == c))
            {
                anyhow::bail!("unknown controller {c} in SubCgroupPaths");
            }
        }
    }
    Ok(out)
}

/// `dir/sub` cleaned lexically; refused when it is not `dir` or below it.
fn sub_path(dir: &Path, sub: &str) -> Result<PathBuf> {
    let mut p = dir.to_path_buf();
    for c in sub.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                p.pop();
            }
            name => p.push(name),
        }
    }
    if !p.starts_with(dir) {
        anyhow::bail!("{sub} is not a sub cgroup path");
    }
    Ok(p)
}

/// Move `pid` into each directory from outside (`cgroup.procs`; v1's `tasks` where a
/// directory has no `cgroup.procs`). Slower than a process moving itself (an RCU grace
/// period): only where the process cannot (a user namespace under the systemd driver).
pub fn move_into(dirs: &[PathBuf], pid: i32) -> Result<()> {
    for dir in dirs {
        let file = if dir.join("cgroup.procs").exists() {
            "cgroup.procs"
        } else {
            "tasks"
        };
        write_file(dir, file, &pid.to_string())
            .with_context(|| format!("move the init into {}", dir.display()))?;
    }
    Ok(())
}

/// The pids in the container's cgroup (read from the first hierarchy that answers).
pub fn pids(paths: &[PathBuf]) -> Vec<i32> {
    // The freezer or pids hierarchy is the most likely to hold every process; any will do.
    for dir in paths {
        if let Ok(s) = crate::kernfs::read(dir.join("cgroup.procs")) {
            return s.lines().filter_map(|l| l.trim().parse().ok()).collect();
        }
    }
    Vec::new()
}

/// Remove the directories (deepest first), and the sub-cgroups made in them (`exec
/// --cgroup`, a container managing its own), as runc's `RemovePath`; retrying while exiting
/// processes still hold them.
pub fn remove(paths: &[PathBuf]) {
    for dir in paths.iter().rev() {
        remove_tree(dir);
    }
}

/// rmdir of `dir`; only when that is refused (EBUSY: children, or exiting processes) are
/// its children looked for and removed first, so a plain delete reads no directory.
fn remove_tree(dir: &Path) {
    for attempt in 0..50 {
        match fs::remove_dir(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::NotFound => break,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 49 => {
                if attempt == 0 {
                    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                        if entry.file_type().is_ok_and(|t| t.is_dir()) {
                            remove_tree(&entry.path());
                        }
                    }
                    continue;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => {
                crate::logging::warn(&format!("remove cgroup {}: {e}", dir.display()));
                break;
            }
        }
    }
}

/// Is the container's cgroup frozen (v1 freezer or v2 `cgroup.freeze`)?
pub fn is_frozen(paths: &[PathBuf]) -> bool {
    for dir in paths {
        if let Ok(s) = crate::kernfs::read(dir.join("freezer.state")) {
            return s.trim() == "FROZEN";
        }
    }
    paths
        .iter()
        .any(|d| crate::kernfs::read(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "9:name=systemd:/\n4:memory:/sandbox/x\n1:cpu,cpuacct:/\n0::/\n";
    const MI: &str = "\
30 25 0:26 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
31 25 0:27 / /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct
33 25 0:29 / /sys/fs/cgroup/unified rw,relatime shared:12 - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_layout_is_detected() {
        let hs = parse_hierarchies(OWN, &crate::mountinfo::parse(MI));
        assert_eq!(hs.len(), 4);
        let mem = hs.iter().find(|h| h.controllers == ["memory"]).unwrap();
        assert_eq!(
            mem.dir_for("c1"),
            Path::new("/sys/fs/cgroup/memory/sandbox/x/c1")
        );
        assert_eq!(
            mem.dir_for("/abs/c1"),
            Path::new("/sys/fs/cgroup/memory/abs/c1")
        );
        let v2 = hs.iter().find(|h| h.unified).unwrap();
        assert_eq!(v2.dir_for("c1"), Path::new("/sys/fs/cgroup/unified/c1"));
    }

    #[test]
    fn relative_paths_start_beside_our_cgroup_on_pure_v2() {
        let mi = crate::mountinfo::parse(
            "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        let hs = parse_hierarchies("0::/system.slice/agent.service\n", &mi);
        let base = relative_base(&hs[0].own_path, true);
        assert_eq!(base, "/system.slice");
        assert_eq!(
            hs[0].dir_for_under("c1", base),
            Path::new("/sys/fs/cgroup/system.slice/c1")
        );
        assert_eq!(relative_base("/init.scope", true), "/");
        assert_eq!(relative_base("/", true), "/");
        assert_eq!(relative_base("/a/b", false), "/a/b");
    }

    #[test]
    fn dotdot_cannot_escape_the_hierarchy() {
        let hs = parse_hierarchies(OWN, &crate::mountinfo::parse(MI));
        assert_eq!(
            hs[0].dir_for("/../../etc"),
            Path::new("/sys/fs/cgroup/systemd/etc")
        );
    }

    #[test]
    fn sub_cgroup_paths_stay_below_the_container() {
        let dir = Path::new("/sys/fs/cgroup/memory/ctr");
        assert_eq!(sub_path(dir, "/").unwrap(), dir);
        assert_eq!(sub_path(dir, "a/./b/").unwrap(), dir.join("a/b"));
        assert_eq!(sub_path(dir, "a/..").unwrap(), dir);
        let e = sub_path(dir, "..").unwrap_err().to_string();
        assert_eq!(e, ".. is not a sub cgroup path");
        assert!(sub_path(dir, "../ctr2").is_err());
    }

    #[test]
    fn systemd_form_is_refused_clearly() {
        let e = resolve_path(Some("system.slice:runrs:x"), "x").unwrap_err();
        assert!(e.to_string().contains("systemd"));
        assert_eq!(resolve_path(None, "x").unwrap(), "x");
    }
}
