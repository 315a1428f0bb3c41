//! HTTP/1.1 plaintext: "Hello, World!" with keep-alive and pipelining, parsed with `httparse`.
//! A malformed request gets a 400 and the connection is closed.

use std::io;
use std::sync::Arc;

use runtime::net::TcpStream;

use crate::requests::{self, Respond};
use crate::Handling;

/// The answer to every well-formed request.
pub const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nServer: runtime\r\nContent-Type: text/plain\r\n\
Content-Length: 13\r\n\r\nHello, World!";

/// A request head larger than this is refused.
pub const MAX_HEAD: usize = 16 * 1024;

/// What the start of a buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request of `len` bytes (head and body); `close` if the client asked to close.
    Request {
        /// Bytes of the request.
        len: usize,
        /// `Connection: close`, or HTTP/1.0 without keep-alive.
        close: bool,
    },
    /// Not a whole request yet.
    Partial,
    /// Not HTTP this server accepts; the reason goes in the 400.
    Invalid(&'static str),
}

/// Parses the request at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Parsed::Invalid("request head too large")
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid("malformed request"),
    };
    let mut body = 0usize;
    let mut close = req.version == Some(0);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            else {
                return Parsed::Invalid("bad content-length");
            };
            body = n;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Invalid("transfer-encoding is not supported");
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value.to_ascii_lowercase();
            if v == b"close" {
                close = true;
            } else if v == b"keep-alive" {
                close = false;
            }
        }
    }
    if body > MAX_HEAD {
        return Parsed::Invalid("request body too large");
    }
    match head.checked_add(body) {
        Some(len) if buf.len() >= len => Parsed::Request { len, close },
        Some(_) => Parsed::Partial,
        None => Parsed::Invalid("request body too large"),
    }
}

fn bad_request(reason: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
Connection: close\r\n\r\n{reason}",
        reason.len()
    )
    .into_bytes()
}

/// Answers every whole request at the start of `pending` (removing them); returns the responses
/// and whether the connection must close after them.
pub fn respond(pending: &mut Vec<u8>) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut used = 0;
    let mut close = false;
    loop {
        match parse(&pending[used..]) {
            Parsed::Request { len, close: c } => {
                out.extend_from_slice(HELLO);
                used += len;
                if c {
                    close = true;
                    break;
                }
            }
            Parsed::Partial => break,
            Parsed::Invalid(reason) => {
                out.extend_from_slice(&bad_request(reason));
                close = true;
                break;
            }
        }
    }
    pending.drain(..used);
    (out, close)
}

/// The HTTP protocol for [`requests::serve`].
#[derive(Debug, Default)]
pub struct Http;

impl Respond for Http {
    fn respond(&self, pending: &mut Vec<u8>) -> (Vec<u8>, bool) {
        respond(pending)
    }
}

/// Serves HTTP on `stream` until the client closes, asks to close, or sends garbage.
pub async fn serve(stream: TcpStream, handling: impl Into<Handling>) -> io::Result<()> {
    requests::serve(stream, Arc::new(Http), handling.into()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests::Rng;

    const GET: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";

    #[test]
    fn pipelined_requests_each_get_an_answer() {
        let mut pending = [GET, GET, GET].concat();
        pending.extend_from_slice(&GET[..10]);
        let (out, close) = respond(&mut pending);
        assert_eq!(out, [HELLO, HELLO, HELLO].concat());
        assert!(!close);
        assert_eq!(
            pending,
            &GET[..10],
            "the partial request waits for the rest"
        );
    }

    #[test]
    fn garbage_gets_a_400_and_closes() {
        let mut pending = b"\x16\x03\x01 hello?\r\n\r\n".to_vec();
        let (out, close) = respond(&mut pending);
        assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(close);
    }

    #[test]
    fn connection_close_and_bodies_are_honoured() {
        let req = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        assert_eq!(
            parse(req),
            Parsed::Request {
                len: req.len(),
                close: true
            }
        );
        assert_eq!(parse(&req[..req.len() - 1]), Parsed::Partial);
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Parsed::Invalid("transfer-encoding is not supported")
        );
    }

    /// Random bytes and random mutations of valid requests never panic the parser, never make
    /// it claim more bytes than it was given, and always end in an answer or a wait.
    #[test]
    fn property_parser_survives_arbitrary_input() {
        let mut rng = Rng(0x4854_5450);
        for round in 0..20_000 {
            let mut input = if round % 2 == 0 {
                (0..rng.next() % 300)
                    .map(|_| rng.next() as u8)
                    .collect::<Vec<u8>>()
            } else {
                let mut v = [GET, GET].concat();
                for _ in 0..1 + rng.next() % 4 {
                    let i = rng.next() as usize % v.len();
                    v[i] = rng.next() as u8;
                }
                v.truncate(rng.next() as usize % (v.len() + 1));
                v
            };
            if let Parsed::Request { len, .. } = parse(&input) {
                assert!(
                    len <= input.len(),
                    "round {round}: claimed {len} of {}",
                    input.len()
                );
            }
            let before = input.len();
            let (out, _) = respond(&mut input);
            assert!(input.len() <= before);
            assert!(out.is_empty() || out.starts_with(b"HTTP/1.1 "));
        }
    }
}
