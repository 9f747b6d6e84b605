//! What a binary started from C's `main` (no std `lang_start`) needs of std's start-up, for
//! both binaries (the shim links the runtime crate for it and for the cgroup interface).

/// fds 0, 1 and 2 open (on /dev/null when closed, so that no file opened later lands on
/// them) and SIGPIPE ignored (a write to a closed pipe is EPIPE, not death). Aborts, as std
/// does, when /dev/null cannot be opened.
pub fn std_start() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll on a local array; open/signal with constant arguments. Opening takes the
    // lowest free number, which is the closed fd being checked (the lower ones are open).
    unsafe {
        while libc::poll(fds.as_mut_ptr(), 3, 0) < 0 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                libc::abort();
            }
        }
        for p in &fds {
            if p.revents & libc::POLLNVAL != 0
                && libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) != p.fd
            {
                libc::abort();
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
