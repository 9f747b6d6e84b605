//! The CRI streaming server as `kubectl exec/attach/port-forward` reach it: Exec, Attach
//! and PortForward return a URL on containerd's streaming server, spoken to here over
//! WebSocket with the `v4.channel.k8s.io` framing (each binary frame: one channel byte,
//! then data; 0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize). The server listens
//! on 127.0.0.1 inside the node's network namespace: the connecting thread joins it.

use super::node::Node;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

pub struct Ws(TcpStream);

/// Output per channel and the status JSON from channel 3, after the server closed.
#[derive(Default, Debug)]
pub struct Streams {
    pub out: Vec<Vec<u8>>,
}

impl Streams {
    pub fn text(&self, channel: usize) -> String {
        String::from_utf8_lossy(self.out.get(channel).map_or(&[][..], |v| &v[..])).into_owned()
    }
}

/// A TCP connection to `addr` made from inside the network namespace of `pid`.
fn connect_in_netns(pid: u32, addr: String) -> TcpStream {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("open netns");
        // SAFETY: setns on a valid namespace fd; it moves only this short-lived thread.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    })
    .join()
    .expect("connect thread")
}

impl Ws {
    /// Opens `url` (http://host:port/path?query) with the WebSocket handshake.
    pub fn open(node: &Node, url: &str, protocol: &str) -> Ws {
        let rest = url.strip_prefix("http://").expect("an http:// URL");
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let sock = connect_in_netns(node.holder_pid(), host.to_string());
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut w = &sock;
        write!(
            w,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: cnVucnMtY3JpLXRlc3Qtaw==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: {protocol}\r\nOrigin: http://{host}\r\n\r\n"
        )
        .unwrap();
        // The response's headers, byte by byte: frames may follow in the same packet.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            (&sock)
                .read_exact(&mut byte)
                .expect("read the upgrade response");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(
            head.starts_with("HTTP/1.1 101 "),
            "no WebSocket upgrade: {head}"
        );
        Ws(sock)
    }

    /// Sends `data` on `channel` (a masked binary frame, as a client must).
    pub fn send(&mut self, channel: u8, data: &[u8]) {
        let mut payload = vec![channel];
        payload.extend_from_slice(data);
        let mut frame = vec![0x82];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0, 0, 0, 0]); // a zero mask leaves the payload as is
        frame.extend_from_slice(&payload);
        self.0.write_all(&frame).unwrap();
    }

    /// The next frame: (opcode, payload), None at EOF.
    fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        self.0.read_exact(&mut head).ok()?;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            self.0.read_exact(&mut b).ok()?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            self.0.read_exact(&mut b).ok()?;
            len = u64::from_be_bytes(b);
        }
        let mut payload = vec![0u8; len as usize];
        self.0.read_exact(&mut payload).ok()?;
        Some((head[0] & 0x0f, payload))
    }

    /// Reads frames until `done(streams)` holds or the server closes, within `timeout`.
    pub fn read_until(&mut self, timeout: Duration, done: impl Fn(&Streams) -> bool) -> Streams {
        let deadline = Instant::now() + timeout;
        let mut s = Streams {
            out: vec![Vec::new(); 5],
        };
        while !done(&s) && Instant::now() < deadline {
            match self.frame() {
                Some((8, _)) | None => break,
                Some((1 | 2, p)) if !p.is_empty() => {
                    let ch = usize::from(p[0]);
                    if s.out.len() <= ch {
                        s.out.resize(ch + 1, Vec::new());
                    }
                    s.out[ch].extend_from_slice(&p[1..]);
                }
                Some(_) => {}
            }
        }
        s
    }
}

use super::client::{api, CALL};
use super::pod::*;

const PROTOCOL: &str = "v4.channel.k8s.io";

fn exec_url(node: &Node, id: &str, cmd: &[&str], tty: bool, stdin: bool) -> String {
    let req = api::ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    };
    node.cri()
        .call("Exec", CALL, |mut c| async move { c.exec(req).await })
        .expect("Exec")
        .url
}

/// Streaming Exec: output and exit status, stdin, a TTY and its resize.
pub fn exec(node: &mut Node, handler: &str) {
    let pod = node.run_pod("stream", handler);
    let c = pod.start_sh("app", "sleep 1000");
    let url = exec_url(
        node,
        &c,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        false,
        false,
    );
    let s = Ws::open(node, &url, PROTOCOL).read_until(Duration::from_secs(30), |_| false);
    assert_eq!((s.text(1).as_str(), s.text(2).as_str()), ("out\n", "err\n"));
    let status = s.text(3);
    assert!(
        status.contains("NonZeroExitCode") && status.contains("\"3\""),
        "status {status}"
    );

    let url = exec_url(node, &c, &["head", "-n1"], false, true);
    let mut ws = Ws::open(node, &url, PROTOCOL);
    ws.send(0, b"through stdin\n");
    let s = ws.read_until(Duration::from_secs(30), |_| false);
    assert_eq!(s.text(1), "through stdin\n");
    assert!(s.text(3).contains("Success"), "status {}", s.text(3));

    let url = exec_url(
        node,
        &c,
        &["sh", "-c", "sleep 1; stty size; tty"],
        true,
        true,
    );
    let mut ws = Ws::open(node, &url, PROTOCOL);
    ws.send(4, br#"{"Width":123,"Height":45}"#);
    let s = ws.read_until(Duration::from_secs(30), |_| false);
    let out = s.text(1);
    assert!(
        out.contains("45 123\r\n"),
        "stty size after a resize: {out:?}"
    );
    assert!(out.contains("/dev/pts/"), "no tty: {out:?}");
    pod.remove();
}

/// Attach to a container's stdin/stdout, as `kubectl attach -i`.
pub fn attach(node: &mut Node, handler: &str) {
    let pod = node.run_pod("attach", handler);
    let mut config =
        pod.container_config("echo", &["sh", "-c", "while read l; do echo got:$l; done"]);
    config.stdin = true;
    let c = pod.start(config);
    let req = api::AttachRequest {
        container_id: c.clone(),
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let url = node
        .cri()
        .call("Attach", CALL, |mut cl| async move { cl.attach(req).await })
        .expect("Attach")
        .url;
    let mut ws = Ws::open(node, &url, PROTOCOL);
    ws.send(0, b"ping\n");
    let s = ws.read_until(Duration::from_secs(20), |s| {
        s.text(1).contains("got:ping\n")
    });
    assert!(
        s.text(1).contains("got:ping\n"),
        "attached output {:?}",
        s.text(1)
    );
    drop(ws);
    assert_eq!(
        pod.status(&c).0.state,
        RUNNING,
        "detaching stopped the container"
    );
    pod.remove();
}

/// PortForward into the pod's network namespace (busybox httpd on port 8080).
pub fn port_forward(node: &mut Node, handler: &str) {
    let pod = node.run_pod("portfwd", handler);
    pod.start_sh("web", "mkdir -p /tmp/www && echo served > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www");
    // httpd may not listen yet: retry, with a new URL each time (a URL serves once).
    let body = poll(
        "a response through the port forward",
        Duration::from_secs(20),
        || {
            let req = api::PortForwardRequest {
                pod_sandbox_id: pod.id.clone(),
                port: vec![8080],
            };
            let url = node
                .cri()
                .call("PortForward", CALL, |mut cl| async move {
                    cl.port_forward(req).await
                })
                .expect("PortForward")
                .url;
            let mut ws = Ws::open(node, &format!("{url}?port=8080"), PROTOCOL);
            ws.send(0, b"GET /index.html HTTP/1.0\r\n\r\n");
            let s = ws.read_until(Duration::from_secs(5), |s| s.text(0).contains("served"));
            let data = s.text(0);
            data.contains("served").then_some(data)
        },
    );
    assert!(body.contains("200 OK"), "{body}");
    pod.remove();
}
