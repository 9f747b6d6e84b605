//! Errors of system calls, worded as runc (Go) words them.

/// An io error the way Go prints it ("no such file or directory").
pub fn io_msg(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            // SAFETY: strerror returns a pointer to a static string.
            let s = unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)) };
            let s = s.to_string_lossy();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        }
        None => e.to_string(),
    }
}

pub(crate) fn errno_err(what: &str) -> anyhow::Error {
    let e = std::io::Error::last_os_error();
    anyhow::anyhow!("{what}: {}", io_msg(&e))
}
