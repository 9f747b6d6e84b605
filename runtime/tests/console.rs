//! Terminals: pty allocation, the console socket protocol, and the foreground relay.

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{read, write, ForkResult};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

fn pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap()
}

fn read_until(fd: &OwnedFd, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while Instant::now() < deadline && !String::from_utf8_lossy(&got).contains(want) {
        let mut p = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut p, nix::poll::PollTimeout::from(100u16)).unwrap() == 0 {
            continue;
        }
        let mut buf = [0u8; 1024];
        match read(fd.as_raw_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn master_travels_over_a_socket() {
    let (master, slave) = runrs::console::open_pty().unwrap();
    let name = runrs::console::pty_name(&master).unwrap();
    assert!(name.to_str().unwrap().starts_with("/dev/pts/"), "{name:?}");
    let (a, b) = pair();
    runrs::console::send_master(a.as_raw_fd(), &master).unwrap();
    drop(master);
    let received = runrs::console::recv_master(b.as_raw_fd()).unwrap();
    assert_eq!(runrs::console::pty_name(&received).unwrap(), name);
    runrs::console::clear_onlcr(received.as_fd()).unwrap();
    write(&slave, b"hello from the slave\n").unwrap();
    assert!(read_until(&received, "hello from the slave\n").contains("hello from the slave\n"));
}

#[test]
fn message_data_is_the_master_name_like_runc() {
    let (master, _slave) = runrs::console::open_pty().unwrap();
    let (a, b) = pair();
    runrs::console::send_master(a.as_raw_fd(), &master).unwrap();
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        b.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .unwrap();
    let n = msg.bytes;
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                nix::unistd::close(fd).unwrap();
            }
        }
    }
    assert_eq!(&buf[..n], b"/dev/ptmx");
}

#[test]
fn recv_on_a_closed_socket_is_an_error() {
    let (a, b) = pair();
    drop(a);
    let e = runrs::console::recv_master(b.as_raw_fd()).unwrap_err();
    assert!(e.to_string().contains("closed"), "{e}");
}

#[test]
fn connect_socket_reaches_a_listener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let sock = runrs::console::connect_socket(&path).unwrap();
    let (conn, _) = listener.accept().unwrap();
    let (master, slave) = runrs::console::open_pty().unwrap();
    runrs::console::send_master(sock.as_raw_fd(), &master).unwrap();
    let got = runrs::console::recv_master(conn.as_raw_fd()).unwrap();
    write(&slave, b"x\n").unwrap();
    assert!(read_until(&got, "x").contains('x'));
    let missing = dir.path().join("nope.sock");
    let e = runrs::console::connect_socket(&missing).unwrap_err();
    assert!(e.to_string().contains("nope.sock"), "{e}");
}

/// A child on the slave as its controlling tty, relayed through pipes.
#[test]
fn relay_copies_both_ways_and_resizes() {
    let (master, slave) = runrs::console::open_pty().unwrap();
    let sh = CString::new("/bin/sh").unwrap();
    let script = CString::new("read x; echo \"got $x\"; stty size; exit 3").unwrap();
    let argv = [
        sh.as_ptr(),
        c"-c".as_ptr(),
        script.as_ptr(),
        std::ptr::null(),
    ];
    // SAFETY: the child makes only async-signal-safe calls, then execs.
    let pid = match unsafe { nix::unistd::fork() }.unwrap() {
        ForkResult::Child => {
            // SAFETY: async-signal-safe calls on valid fds and prepared pointers.
            unsafe {
                libc::setsid();
                libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0);
                for t in 0..3 {
                    libc::dup2(slave.as_raw_fd(), t);
                }
                libc::execv(sh.as_ptr(), argv.as_ptr());
                libc::_exit(127);
            }
        }
        ForkResult::Parent { child } => child,
    };
    drop(slave);
    let (in_r, in_w) = nix::unistd::pipe().unwrap();
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    runrs::console::set_size(master.as_fd(), 33, 101).unwrap();
    let mut relay =
        runrs::console::Relay::with_fds(master, in_r.as_raw_fd(), out_w.as_raw_fd(), None).unwrap();
    write(&in_w, b"hello\n").unwrap();
    drop(in_w);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        assert!(Instant::now() < deadline, "child did not exit");
        relay
            .pump(nix::poll::PollTimeout::from(50u16), &[])
            .unwrap();
        match waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)).unwrap() {
            WaitStatus::StillAlive => {}
            s => break s,
        }
    };
    relay.finish().unwrap();
    drop(relay);
    drop(out_w);
    let out = read_until(&out_r, "\u{0}");
    assert!(matches!(status, WaitStatus::Exited(_, 3)), "{status:?}");
    assert!(out.contains("got hello\n"), "{out:?}");
    assert!(out.contains("33 101"), "{out:?}");
    assert!(!out.contains("\r\n"), "ONLCR must be cleared: {out:?}");
}
