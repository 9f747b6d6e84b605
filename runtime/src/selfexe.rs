//! CVE-2019-5736: a container process must not reach the host `runrs` binary through
//! `/proc/<pid>/exe` of a runtime process that is visible inside the container, and write to
//! it. Such commands first re-execute runrs from a read-only bind mount of itself, made in a
//! private mount namespace: `/proc/<pid>/exe` then leads to a mount on which every open for
//! writing fails with EROFS, and that no container process can remount. A binary that already
//! lives on a read-only mount needs nothing. (Cheaper than copying the binary into a sealed
//! memfd: no copy of megabytes per command.) Rootless, a user may make no mount: a binary the
//! user cannot write needs nothing either; one the user can write is re-executed from a
//! sealed memfd copy, as runc does.

use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// Is our executable on a read-only mount (the re-executed runrs, or a read-only install), or
/// a sealed memfd?
pub fn is_protected() -> bool {
    // SAFETY: statvfs on a NUL-terminated path into a zeroed struct we own.
    let read_only = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::statvfs(c"/proc/self/exe".as_ptr(), &mut st) == 0 && st.f_flag & libc::ST_RDONLY != 0
    };
    read_only
        || std::fs::read_link("/proc/self/exe")
            .is_ok_and(|p| p.as_os_str().as_bytes().starts_with(b"/memfd:runrs"))
}

/// Re-exec from a read-only bind mount of ourselves, with the same argv and environment,
/// unless we already run from a read-only mount. Returns only when nothing needed doing.
pub fn ensure_sealed() -> Result<()> {
    if is_protected() {
        return Ok(());
    }
    let exe = std::fs::read_link("/proc/self/exe").context("read /proc/self/exe")?;
    let exe_c = CString::new(exe.as_os_str().as_bytes()).context("runrs path")?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // SAFETY: access on a NUL-terminated path.
        if unsafe { libc::access(exe_c.as_ptr(), libc::W_OK) } != 0 {
            return Ok(());
        }
        return reexec_from_memfd(&exe);
    }
    // SAFETY: plain syscalls with NUL-terminated paths; we are single-threaded, as unshare of
    // the mount namespace requires.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error())
                .context("unshare a mount namespace to protect the runrs binary");
        }
        // Our bind mount must not propagate back to the host.
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_SLAVE | libc::MS_REC,
            std::ptr::null(),
        ) != 0
            // The path, not /proc/self/exe: that one names a mount of the old namespace.
            || libc::mount(
                exe_c.as_ptr(),
                exe_c.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            || libc::mount(
                std::ptr::null(),
                exe_c.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            ) != 0
        {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("bind {} read-only", exe.display()));
        }
    }
    let (args, env) = argv_envp();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: execve with a NUL-terminated path and null-terminated arrays of live CStrings.
    unsafe { libc::execve(exe_c.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Err(std::io::Error::last_os_error()).context("re-exec runrs from its read-only mount")
}

/// Our argv and environment, for the re-exec.
fn argv_envp() -> (Vec<CString>, Vec<CString>) {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend_from_slice(v.as_bytes());
            CString::new(b).unwrap_or_default()
        })
        .collect();
    (args, env)
}

/// Rootless with a binary the user can write: re-exec from a sealed copy in a memfd.
fn reexec_from_memfd(exe: &std::path::Path) -> Result<()> {
    // SAFETY: memfd_create with a NUL-terminated name; the fd is ours.
    let fd = unsafe {
        libc::memfd_create(
            c"runrs".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create for the runrs copy");
    }
    // SAFETY: a new fd we own.
    let mut copy = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut from = std::fs::File::open(exe).with_context(|| format!("open {}", exe.display()))?;
    std::io::copy(&mut from, &mut copy).context("copy runrs into a memfd")?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our fd with integer arguments.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
        return Err(std::io::Error::last_os_error()).context("seal the runrs copy");
    }
    let (args, env) = argv_envp();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: fexecve of our sealed fd with null-terminated arrays of live CStrings.
    unsafe { libc::fexecve(fd, argv.as_ptr(), envp.as_ptr()) };
    Err(std::io::Error::last_os_error()).context("re-exec runrs from its sealed copy")
}
