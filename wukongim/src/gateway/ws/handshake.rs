//! The HTTP/1.1 opening handshake (RFC 6455 §4.2) on an accepted TCP stream: reads the request
//! head, checks it is a WebSocket upgrade (any path) and words the answer — 101 with
//! `Sec-WebSocket-Accept`, or the refusal (the statuses and texts axum's upgrade gave before:
//! 405 for a method other than GET, 400 for a missing or wrong upgrade header, 426 for a
//! request that cannot be upgraded). No subprotocol or extension is negotiated.

use base64::Engine as _;
use bytes::BytesMut;
use sha1::{Digest, Sha1};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Longest request head accepted (browsers send cookies; proxies add headers).
const MAX_HEAD: usize = 64 * 1024;
/// Read step while the head comes in.
const HEAD_CHUNK: usize = 1024;

/// A refused request: status, reason phrase, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
    pub body: &'static str,
}

impl Refusal {
    /// The whole HTTP response; the connection is closed after it.
    pub fn response(&self) -> Vec<u8> {
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
            self.status,
            self.reason,
            self.body.len(),
            self.body
        )
        .into_bytes()
    }
}

/// 503 when `conn.maxConnections` connections are open.
pub const TOO_MANY: Refusal = Refusal {
    status: 503,
    reason: "Service Unavailable",
    body: "too many client connections\n",
};

fn bad_request(body: &'static str) -> Refusal {
    Refusal {
        status: 400,
        reason: "Bad Request",
        body,
    }
}

/// What the client asked.
#[derive(Debug)]
pub enum Request {
    /// An upgrade: the `Sec-WebSocket-Accept` value to answer, and the bytes that followed the
    /// head (frames the client sent without waiting for the 101).
    Upgrade {
        accept: String,
        rest: BytesMut,
    },
    Refused(Refusal),
}

/// Reads the request head off `s` (the caller bounds the time) and checks it. `Ok(None)` when
/// the client left before a whole head.
pub async fn read_request(s: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = BytesMut::new();
    loop {
        match parse(&buf) {
            Parsed::Partial if buf.len() >= MAX_HEAD => {
                return Ok(Some(Request::Refused(Refusal {
                    status: 431,
                    reason: "Request Header Fields Too Large",
                    body: "request head too large\n",
                })))
            }
            Parsed::Partial => {}
            Parsed::Done(head, Ok(accept)) => {
                let _ = buf.split_to(head);
                return Ok(Some(Request::Upgrade { accept, rest: buf }));
            }
            Parsed::Done(_, Err(r)) => return Ok(Some(Request::Refused(r))),
        }
        buf.reserve(HEAD_CHUNK);
        if s.read_buf(&mut buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// The 101 answer.
pub fn switching_protocols(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

/// A head checked, or not yet whole.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Partial,
    /// Head length, and the accept value or the refusal.
    Done(usize, Result<String, Refusal>),
}

fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Ok(httparse::Status::Complete(n)) => Parsed::Done(n, check(&req)),
        Err(httparse::Error::TooManyHeaders) => Parsed::Done(
            buf.len(),
            Err(Refusal {
                status: 431,
                reason: "Request Header Fields Too Large",
                body: "too many request headers\n",
            }),
        ),
        Err(_) => Parsed::Done(buf.len(), Err(bad_request("malformed HTTP request\n"))),
    }
}

/// Whether a comma-separated header (any of its occurrences) lists `token`, any case.
fn lists(req: &httparse::Request, name: &str, token: &str) -> bool {
    req.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn check(req: &httparse::Request) -> Result<String, Refusal> {
    if req.method != Some("GET") {
        return Err(Refusal {
            status: 405,
            reason: "Method Not Allowed",
            body: "Request method must be `GET`",
        });
    }
    if req.version != Some(1) {
        return Err(Refusal {
            status: 426,
            reason: "Upgrade Required",
            body: "WebSocket request couldn't be upgraded since no upgrade state was present",
        });
    }
    if !lists(req, "connection", "upgrade") {
        return Err(bad_request("Connection header did not include 'upgrade'"));
    }
    if !lists(req, "upgrade", "websocket") {
        return Err(bad_request("`Upgrade` header did not include 'websocket'"));
    }
    if !lists(req, "sec-websocket-version", "13") {
        return Err(bad_request(
            "`Sec-WebSocket-Version` header did not include '13'",
        ));
    }
    let key = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
        .ok_or_else(|| bad_request("`Sec-WebSocket-Key` header missing"))?;
    Ok(accept_key(key.value))
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key.trim_ascii());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /any/path?x=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    #[test]
    fn the_rfc_example_key() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn an_upgrade_on_any_path_is_accepted_and_the_rest_kept() {
        let mut b = GOOD.as_bytes().to_vec();
        assert_eq!(
            parse(&b),
            Parsed::Done(GOOD.len(), Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()))
        );
        b.truncate(GOOD.len() - 1);
        assert_eq!(parse(&b), Parsed::Partial);
    }

    fn status(req: &str) -> u16 {
        match parse(req.as_bytes()) {
            Parsed::Done(_, Err(r)) => r.status,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(status(&GOOD.replace("GET", "POST")), 405);
        assert_eq!(
            status(&GOOD.replace("keep-alive, Upgrade", "keep-alive")),
            400
        );
        assert_eq!(
            status(&GOOD.replace("Upgrade: websocket", "Upgrade: h2c")),
            400
        );
        assert_eq!(status(&GOOD.replace("Version: 13", "Version: 8")), 400);
        assert_eq!(status(&GOOD.replace("Sec-WebSocket-Key", "X-Key")), 400);
        assert_eq!(status(&GOOD.replace("HTTP/1.1", "HTTP/1.0")), 426);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("\x16\x03\x01 not http\r\n\r\n"), 400);
        let r = TOO_MANY.response();
        assert!(r.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(r.ends_with(b"\r\n\r\ntoo many client connections\n"));
    }
}
