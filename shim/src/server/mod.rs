//! The ttrpc server: one thread (the shim's main thread) serves every connection from
//! one poll loop, instead of ttrpc-rust's threads per connection and worker pool.
//!
//! Each message (framed in `conn`) is a protobuf `ttrpc.Request` (service, method,
//! payload, ...) answered by a `ttrpc.Response` (status, payload) on the same stream id.
//! RPCs run one at a time in the loop, except Wait: it is parked and answered when the
//! reaper records the exit (it wakes the loop through an eventfd) and the process's
//! output has been copied out.

mod conn;

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use runrs_proto::protobuf::Message;
use runrs_proto::shim::WaitRequest;
use runrs_proto::ttrpc::{self, Code, Request, Response};

use crate::log::log;
use crate::task::error::rpc_error;
use crate::task::TaskService;
use conn::{Conn, TYPE_REQUEST};

const SERVICE: &str = "containerd.task.v2.Task";
/// How often parked Waits whose process exited look again at its output copying.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// A Wait not answered yet.
struct Parked {
    conn: u64,
    stream_id: u32,
    req: WaitRequest,
    /// When the process was first seen exited (output copying gets a bounded time).
    exited: Option<Instant>,
}

struct Server<'a> {
    task: &'a TaskService,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    parked: Vec<Parked>,
}

/// Serves the Task API on `listener` until Shutdown is accepted and answered.
pub fn serve(listener: UnixListener, task: &TaskService) -> Result<(), String> {
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("task socket: {e}"))?;
    let mut server = Server {
        task,
        conns: HashMap::new(),
        next_conn: 0,
        parked: Vec::new(),
    };
    let shim = &task.0;
    loop {
        let timeout = if server.parked.iter().any(|p| p.exited.is_some()) {
            PollTimeout::from(DRAIN_POLL.as_millis() as u16)
        } else {
            // Going idle, maybe for the container's lifetime: hand the heap's free pages
            // (request buffers, runtime output, parsed config) back to the kernel.
            // SAFETY: malloc_trim only releases free memory of the allocator.
            unsafe { libc::malloc_trim(0) };
            release_stack_below();
            PollTimeout::NONE
        };
        let ids: Vec<u64> = server.conns.keys().copied().collect();
        let ready: Vec<bool> = {
            let mut fds = vec![
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(shim.waker.as_fd(), PollFlags::POLLIN),
            ];
            for id in &ids {
                let c = &server.conns[id];
                let mut flags = PollFlags::POLLIN;
                if !c.output.is_empty() {
                    flags |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(c.stream.as_fd(), flags));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => fds
                    .iter()
                    .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                    .collect(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
        };
        if ready[0] {
            server.accept(&listener);
        }
        if ready[1] {
            let _ = shim.waker.read();
        }
        for (i, id) in ids.iter().enumerate() {
            if ready[i + 2] {
                server.receive(*id);
            }
        }
        server.answer_waits();
        server.flush_all();
        if shim.shutdown.load(Ordering::SeqCst)
            && server.conns.values().all(|c| c.output.is_empty())
        {
            return Ok(());
        }
    }
}

/// Where the main thread's stack began: the address of `argv`, set by `main`; 0 in tests.
pub static MAIN_STACK_TOP: AtomicUsize = AtomicUsize::new(0);

/// Gives the kernel back the pages of this (the main) thread's stack below the loop's
/// frame: the deepest RPCs (Create and its runtime call) left ~20 KiB of it resident
/// that an idle shim does not use. What lies below the stack pointer is dead; a page below
/// this frame's is kept for madvise's. Down to 128 KiB below `argv`: the kernel maps the
/// main stack that far at exec (setup_arg_pages), so the range is all stack.
#[inline(never)]
fn release_stack_below() {
    const PAGE: usize = 4096;
    let start = MAIN_STACK_TOP.load(Ordering::Relaxed);
    if start == 0 {
        return;
    }
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    let top = (here & !(PAGE - 1)) - PAGE;
    let bottom = (start.saturating_sub(128 * 1024) + PAGE - 1) & !(PAGE - 1);
    if top <= bottom {
        return;
    }
    // SAFETY: [bottom, top) is main-stack memory below every live frame of this thread
    // (the stack grows down from `here`, and no signal handler runs on it: signals are
    // read from a signalfd): only dead stack pages are dropped (they read as zeros if
    // touched again).
    unsafe {
        libc::madvise(
            bottom as *mut libc::c_void,
            top - bottom,
            libc::MADV_DONTNEED,
        )
    };
}

/// Whether the peer runs as our user (SO_PEERCRED), as the Go shim's ttrpc handshaker
/// requires; anyone else is hung up on before a byte is read.
fn same_user(stream: &std::os::unix::net::UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    match getsockopt(stream, PeerCredentials) {
        Ok(cred) if cred.uid() == nix::unistd::geteuid().as_raw() => true,
        Ok(cred) => {
            log(&format!(
                "refused a connection from uid {} (pid {})",
                cred.uid(),
                cred.pid()
            ));
            false
        }
        Err(e) => {
            log(&format!("SO_PEERCRED: {e}"));
            false
        }
    }
}

impl Server<'_> {
    fn accept(&mut self, listener: &UnixListener) {
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    if !same_user(&stream) || stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.next_conn += 1;
                    self.conns.insert(self.next_conn, Conn::new(stream));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    if e.kind() != ErrorKind::WouldBlock {
                        log(&format!("accept: {e}"));
                    }
                    return;
                }
            }
        }
    }

    /// Reads what `id` sent and handles every whole message in it.
    fn receive(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.read_available();
        while let Some(frame) = self.conns.get_mut(&id).and_then(Conn::next_frame) {
            if frame.kind == TYPE_REQUEST {
                self.request(id, frame.stream_id, &frame.payload);
            }
        }
        if let Some(c) = self.conns.get_mut(&id) {
            c.release_input();
        }
        self.flush(id);
    }

    fn request(&mut self, conn: u64, stream_id: u32, payload: &[u8]) {
        let req = match Request::parse_from_bytes(payload) {
            Ok(r) => r,
            Err(e) => {
                let e = rpc_error(Code::INVALID_ARGUMENT, e);
                return self.respond(conn, stream_id, Err(e));
            }
        };
        if req.service == SERVICE && req.method == "Wait" {
            match WaitRequest::parse_from_bytes(&req.payload) {
                Ok(req) => self.parked.push(Parked {
                    conn,
                    stream_id,
                    req,
                    exited: None,
                }),
                Err(e) => self.respond(conn, stream_id, Err(rpc_error(Code::INVALID_ARGUMENT, e))),
            }
            return;
        }
        let result = if req.service == SERVICE {
            self.task.call(&req.method, &req.payload)
        } else {
            Err(rpc_error(
                Code::UNIMPLEMENTED,
                format!("/{}/{} is not implemented", req.service, req.method),
            ))
        };
        self.respond(conn, stream_id, result);
    }

    /// Answers the parked Waits whose process has exited and whose output is out.
    fn answer_waits(&mut self) {
        let mut i = 0;
        while i < self.parked.len() {
            let p = &mut self.parked[i];
            let gone = self.conns.get(&p.conn).is_none_or(|c| c.closed);
            if gone {
                self.parked.swap_remove(i);
                continue;
            }
            match self.task.poll_wait(&p.req, &mut p.exited) {
                None => i += 1,
                Some(result) => {
                    let p = self.parked.swap_remove(i);
                    let result = result
                        .and_then(|r| r.write_to_bytes().map_err(|e| rpc_error(Code::UNKNOWN, e)));
                    self.respond(p.conn, p.stream_id, result);
                }
            }
        }
    }

    fn respond(&mut self, conn: u64, stream_id: u32, result: ttrpc::Result<Vec<u8>>) {
        let mut res = Response::new();
        match result {
            Ok(payload) => {
                res.set_status(ttrpc::get_status(Code::OK, ""));
                res.payload = payload;
            }
            Err(ttrpc::Error::RpcStatus(s)) => res.set_status(s),
            Err(e) => res.set_status(ttrpc::get_status(Code::UNKNOWN, format!("{e:?}"))),
        }
        let body = match res.write_to_bytes() {
            Ok(b) => b,
            Err(e) => {
                log(&format!("encoding a ttrpc response: {e}"));
                return;
            }
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.queue_response(stream_id, &body);
        }
    }

    /// Writes what `id` has pending without blocking.
    fn flush(&mut self, id: u64) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.flush();
        }
    }

    /// Flushes every connection and forgets the closed ones (and their Waits).
    fn flush_all(&mut self) {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.flush(id);
        }
        self.conns.retain(|_, c| !c.closed);
        let conns = &self.conns;
        self.parked.retain(|p| conns.contains_key(&p.conn));
    }
}
