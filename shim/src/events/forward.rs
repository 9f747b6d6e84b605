//! The connection events go out on: `Events/Forward` requests over ttrpc, one at a time,
//! each answered before the next is sent, all on the publisher's thread (ttrpc-rust's
//! client kept two more threads per connection, each with its stack and its code).
//!
//! Wire format (ttrpc): a 10-byte header (payload length u32 BE, stream id u32 BE, type
//! u8: 1 request, 2 response; flags u8), then a protobuf `ttrpc.Request` or `Response`.

use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::Duration;

use runrs_proto::events::ForwardRequest;
use runrs_proto::protobuf::Message;
use runrs_proto::ttrpc::{Code, Request, Response};

const SERVICE: &str = "containerd.services.events.ttrpc.v1.Events";
const HEADER_LEN: usize = 10;
const TYPE_REQUEST: u8 = 1;
const TYPE_RESPONSE: u8 = 2;
/// ttrpc's limit for one message.
const MESSAGE_MAX: usize = 4 << 20;

pub(super) struct Connection {
    stream: UnixStream,
    /// A client's stream ids are odd and go up by two.
    next_stream: u32,
    timeout: Duration,
}

impl Connection {
    /// Connects to containerd's ttrpc address (`unix://PATH`, a bare path, or `@NAME` for
    /// an abstract socket, as ttrpc-rust reads it); a request not answered within
    /// `timeout` fails (and the caller drops the connection).
    pub(super) fn connect(address: &str, timeout: Duration) -> std::io::Result<Connection> {
        let path = address.strip_prefix("unix://").unwrap_or(address);
        let stream = match path.strip_prefix('@') {
            Some(name) => UnixStream::connect_addr(&SocketAddr::from_abstract_name(name)?)?,
            None => UnixStream::connect(path)?,
        };
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Connection {
            stream,
            next_stream: 1,
            timeout,
        })
    }

    /// Sends one event and waits for containerd's answer.
    pub(super) fn forward(&mut self, req: &ForwardRequest) -> Result<(), String> {
        let mut request = Request::new();
        request.service = SERVICE.to_string();
        request.method = "Forward".to_string();
        request.payload = req.write_to_bytes().map_err(|e| e.to_string())?;
        request.timeout_nano = self.timeout.as_nanos() as i64;
        let body = request.write_to_bytes().map_err(|e| e.to_string())?;
        let id = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(2);
        let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&id.to_be_bytes());
        frame.extend_from_slice(&[TYPE_REQUEST, 0]);
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .map_err(|e| format!("sending an event: {e}"))?;

        let mut header = [0u8; HEADER_LEN];
        self.stream
            .read_exact(&mut header)
            .map_err(|e| format!("waiting for containerd's answer: {e}"))?;
        let len = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let stream_id = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
        if header[8] != TYPE_RESPONSE || stream_id != id || len > MESSAGE_MAX {
            return Err(format!(
                "unexpected ttrpc message (type {}, stream {stream_id}, {len} bytes)",
                header[8]
            ));
        }
        let mut payload = vec![0u8; len];
        self.stream
            .read_exact(&mut payload)
            .map_err(|e| format!("reading containerd's answer: {e}"))?;
        let response = Response::parse_from_bytes(&payload).map_err(|e| e.to_string())?;
        let status = response.status();
        if status.code() != Code::OK {
            return Err(format!("containerd: {}", status.message));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runrs_proto::events::Envelope;
    use runrs_proto::ttrpc::get_status;
    use std::os::unix::net::UnixListener;

    /// A containerd that reads one request and answers it with `code`.
    fn answer_once(listener: UnixListener, code: Code) -> std::thread::JoinHandle<Request> {
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut header = [0u8; HEADER_LEN];
            s.read_exact(&mut header).unwrap();
            let len = u32::from_be_bytes(header[0..4].try_into().unwrap()) as usize;
            assert_eq!(header[8], TYPE_REQUEST);
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).unwrap();
            let mut res = Response::new();
            res.set_status(get_status(code, "no"));
            let out = res.write_to_bytes().unwrap();
            s.write_all(&(out.len() as u32).to_be_bytes()).unwrap();
            s.write_all(&header[4..8]).unwrap();
            s.write_all(&[TYPE_RESPONSE, 0]).unwrap();
            s.write_all(&out).unwrap();
            Request::parse_from_bytes(&body).unwrap()
        })
    }

    #[test]
    fn an_event_is_forwarded_and_the_answer_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ttrpc.sock");
        let server = answer_once(UnixListener::bind(&path).unwrap(), Code::OK);
        let address = format!("unix://{}", path.display());
        let mut c = Connection::connect(&address, Duration::from_secs(5)).unwrap();
        let mut req = ForwardRequest::new();
        let mut env = Envelope::new();
        env.topic = "/tasks/exit".into();
        req.envelope = Some(env).into();
        c.forward(&req).unwrap();
        let got = server.join().unwrap();
        assert_eq!(
            (got.service.as_str(), got.method.as_str()),
            (SERVICE, "Forward")
        );
        assert_eq!(got.timeout_nano, 5_000_000_000);
        let sent = ForwardRequest::parse_from_bytes(&got.payload).unwrap();
        assert_eq!(sent.envelope.topic, "/tasks/exit");
    }

    #[test]
    fn an_error_status_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ttrpc.sock");
        let server = answer_once(UnixListener::bind(&path).unwrap(), Code::UNAVAILABLE);
        let mut c = Connection::connect(path.to_str().unwrap(), Duration::from_secs(5)).unwrap();
        let err = c.forward(&ForwardRequest::new()).unwrap_err();
        assert!(err.contains("no"), "{err}");
        server.join().unwrap();
    }
}
