//! CVE-2019-5736: a container process must not reach the host `runrs` binary through
//! `/proc/<pid>/exe` of a runtime process that is visible inside the container. Such commands
//! re-execute from a sealed in-memory copy first: the exe link then points at a memfd that
//! cannot be written.

use anyhow::{Context, Result};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Are we already running from a sealed copy?
pub fn is_sealed() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: fcntl on an fd we own.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Re-exec from a sealed memfd copy of ourselves, with the same argv and environment, unless
/// we already run from one. Returns only when nothing needed doing.
pub fn ensure_sealed() -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let exe = File::open("/proc/self/exe").context("open /proc/self/exe")?;
    let size = exe.metadata()?.len() as usize;
    // SAFETY: memfd_create with a static NUL-terminated name.
    let fd = unsafe {
        libc::memfd_create(
            c"runrs".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create");
    }
    // SAFETY: fd was just created and is owned here.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut left = size;
    while left > 0 {
        // SAFETY: sendfile between two fds we own, with a null offset (uses the file offset).
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                left,
            )
        };
        if n <= 0 {
            return Err(std::io::Error::last_os_error()).context("copy runrs into memfd");
        }
        left -= n as usize;
    }
    // SAFETY: fcntl on an fd we own.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(std::io::Error::last_os_error()).context("seal runrs memfd");
    }
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
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: execveat with AT_EMPTY_PATH on our memfd; both arrays are null-terminated and
    // point into live CStrings.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            memfd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(std::io::Error::last_os_error()).context("re-exec runrs from its sealed copy")
}
