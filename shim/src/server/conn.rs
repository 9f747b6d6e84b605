//! One connection of the ttrpc server: its bytes in and out, cut into ttrpc's frames.
//!
//! Wire format (ttrpc): a 10-byte header (payload length u32 BE, stream id u32 BE, type
//! u8: 1 request, 2 response; flags u8), then the payload.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;

use crate::log::log;

const HEADER_LEN: usize = 10;
/// ttrpc's limit for one message.
const MESSAGE_MAX: usize = 4 << 20;
pub(super) const TYPE_REQUEST: u8 = 1;
const TYPE_RESPONSE: u8 = 2;

pub(super) struct Conn {
    pub(super) stream: UnixStream,
    /// Received bytes not yet a whole message.
    input: Vec<u8>,
    /// Encoded responses not yet written.
    pub(super) output: Vec<u8>,
    pub(super) closed: bool,
}

/// A whole message received: its stream id, type and payload.
pub(super) struct Frame {
    pub(super) stream_id: u32,
    pub(super) kind: u8,
    pub(super) payload: Vec<u8>,
}

impl Conn {
    pub(super) fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            input: Vec::new(),
            output: Vec::new(),
            closed: false,
        }
    }

    /// Reads what the client sent, without blocking; EOF or an error closes.
    pub(super) fn read_available(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.closed = true;
                    break;
                }
            }
        }
    }

    /// The next whole message in what was received, None until there is one. A message
    /// over ttrpc's limit closes the connection.
    pub(super) fn next_frame(&mut self) -> Option<Frame> {
        if self.input.len() < HEADER_LEN {
            return None;
        }
        let len = u32::from_be_bytes(self.input[0..4].try_into().expect("4 bytes")) as usize;
        let stream_id = u32::from_be_bytes(self.input[4..8].try_into().expect("4 bytes"));
        let kind = self.input[8];
        if len > MESSAGE_MAX {
            log(&format!(
                "ttrpc message of {len} bytes: closing the connection"
            ));
            self.closed = true;
            return None;
        }
        if self.input.len() < HEADER_LEN + len {
            return None;
        }
        let payload: Vec<u8> = self
            .input
            .drain(..HEADER_LEN + len)
            .skip(HEADER_LEN)
            .collect();
        Some(Frame {
            stream_id,
            kind,
            payload,
        })
    }

    /// Gives back the input buffer's memory once it holds nothing.
    pub(super) fn release_input(&mut self) {
        if self.input.is_empty() {
            self.input = Vec::new();
        }
    }

    /// Queues an encoded `ttrpc.Response` on `stream_id`.
    pub(super) fn queue_response(&mut self, stream_id: u32, body: &[u8]) {
        self.output
            .extend_from_slice(&(body.len() as u32).to_be_bytes());
        self.output.extend_from_slice(&stream_id.to_be_bytes());
        self.output.extend_from_slice(&[TYPE_RESPONSE, 0]);
        self.output.extend_from_slice(body);
    }

    /// Writes what is pending without blocking.
    pub(super) fn flush(&mut self) {
        while !self.output.is_empty() && !self.closed {
            match self.stream.write(&self.output) {
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => self.closed = true,
            }
        }
        if self.output.is_empty() {
            self.output = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: usize, stream_id: u32, kind: u8) -> Vec<u8> {
        let mut h = (len as u32).to_be_bytes().to_vec();
        h.extend_from_slice(&stream_id.to_be_bytes());
        h.extend_from_slice(&[kind, 0]);
        h
    }

    #[test]
    fn frames_are_cut_whole_and_an_oversized_one_closes() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let mut c = Conn::new(ours);
        c.input = [header(3, 1, TYPE_REQUEST), b"abc".to_vec(), header(2, 3, 1)].concat();
        c.input.push(b'x');
        let f = c.next_frame().unwrap();
        assert_eq!(
            (f.stream_id, f.kind, f.payload),
            (1, TYPE_REQUEST, b"abc".to_vec())
        );
        assert!(c.next_frame().is_none(), "half a message");
        c.input.push(b'y');
        assert_eq!(c.next_frame().unwrap().payload, b"xy");
        assert!(!c.closed);
        c.input = header(MESSAGE_MAX + 1, 5, TYPE_REQUEST);
        assert!(c.next_frame().is_none());
        assert!(c.closed);
    }

    #[test]
    fn responses_are_framed_and_written() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut c = Conn::new(ours);
        c.queue_response(7, b"ok");
        c.flush();
        assert!(c.output.is_empty());
        let mut got = [0u8; 12];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(
            got[..],
            [header(2, 7, TYPE_RESPONSE), b"ok".to_vec()].concat()[..]
        );
    }
}
