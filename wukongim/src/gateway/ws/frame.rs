//! RFC 6455 framing, server side: [`Reader`] takes client frames off a byte buffer (masked,
//! fragmented or not, control frames in between) and appends the data frames' payloads,
//! unmasked, to the session's buffer; [`header`] frames what the server sends (unmasked).
//! Text and binary data are treated alike: the payload is WuKongIM packets either way (text is
//! not checked as UTF-8). Pure code over buffers: no I/O here.

use bytes::{Buf, BytesMut};

/// Frame opcodes (RFC 6455 §5.2).
pub mod op {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// Close status codes the server sends (RFC 6455 §7.4.1).
pub mod code {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const TOO_BIG: u16 = 1009;
}

/// Longest control frame payload.
const MAX_CONTROL: usize = 125;

/// Why a connection must be closed: the close code to send and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("websocket: {reason} (close {code})")]
pub struct FrameError {
    pub code: u16,
    pub reason: &'static str,
}

fn protocol(reason: &'static str) -> FrameError {
    FrameError {
        code: code::PROTOCOL_ERROR,
        reason,
    }
}

/// A frame header read off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Bytes of header (2 to 14).
    len: usize,
    payload: usize,
}

/// Parses the header at the start of `b`: `Ok(None)` until it is complete. Checks everything
/// knowable from the header alone, so an oversized frame is refused before its payload comes.
fn parse_header(b: &[u8], max: usize) -> Result<Option<Header>, FrameError> {
    let [b0, b1, ..] = *b else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(protocol("reserved bits set (no extension was negotiated)"));
    }
    let opcode = b0 & 0x0F;
    let control = opcode & 0x8 != 0;
    if !matches!(
        opcode,
        op::CONTINUATION | op::TEXT | op::BINARY | op::CLOSE | op::PING | op::PONG
    ) {
        return Err(protocol("unknown opcode"));
    }
    if b1 & 0x80 == 0 {
        return Err(protocol("unmasked client frame"));
    }
    let fin = b0 & 0x80 != 0;
    let (payload, at) = match b1 & 0x7F {
        126 => match b.get(2..4) {
            Some(l) => (u64::from(u16::from_be_bytes([l[0], l[1]])), 4),
            None => return Ok(None),
        },
        127 => match b.get(2..10) {
            Some(l) => {
                let n = u64::from_be_bytes(l.try_into().expect("8 bytes"));
                if n >> 63 != 0 {
                    return Err(protocol("64-bit length with the top bit set"));
                }
                (n, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if control && (!fin || payload > MAX_CONTROL as u64) {
        return Err(protocol("fragmented or oversized control frame"));
    }
    if payload > max as u64 {
        return Err(FrameError {
            code: code::TOO_BIG,
            reason: "frame larger than the packet size limit",
        });
    }
    let Some(m) = b.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: m.try_into().expect("4 bytes"),
        len: at + 4,
        payload: payload as usize,
    }))
}

/// XORs `data` with the masking key (RFC 6455 §5.3), `data` starting at payload offset 0.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes((&*c).try_into().expect("4 bytes")) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// What a whole frame taken off the buffer was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A data frame (any part of a message); its payload was appended to the output.
    Data,
    /// A ping: answer with a pong carrying this payload.
    Ping(Vec<u8>),
    /// A pong (ignored).
    Pong,
    /// The client closes; echo this code in the closing frame (`None`: an empty close).
    Close(Option<u16>),
}

/// Client frames to events, tracking fragmented messages and the message size limit.
#[derive(Debug)]
pub struct Reader {
    max: usize,
    /// Bytes of the fragmented message in progress (`None`: between messages).
    message: Option<usize>,
}

impl Reader {
    /// A reader refusing messages larger than `max` bytes (close 1009).
    pub fn new(max: usize) -> Self {
        Reader { max, message: None }
    }

    /// Bytes still missing for the frame at the start of `raw` (0 when not yet known: the
    /// header is incomplete).
    pub fn missing(&self, raw: &[u8]) -> usize {
        match parse_header(raw, self.max) {
            Ok(Some(h)) => (h.len + h.payload).saturating_sub(raw.len()),
            _ => 0,
        }
    }

    /// Takes the next whole frame off `raw`: a data frame's payload goes to `out`. `Ok(None)`
    /// when `raw` holds no whole frame. After an error or [`Event::Close`], stop reading.
    pub fn next(
        &mut self,
        raw: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Option<Event>, FrameError> {
        let Some(h) = parse_header(raw, self.max)? else {
            return Ok(None);
        };
        if raw.len() - h.len < h.payload {
            return Ok(None);
        }
        match h.opcode {
            op::TEXT | op::BINARY | op::CONTINUATION => {
                let so_far = match (h.opcode, self.message) {
                    (op::CONTINUATION, Some(n)) => n,
                    (op::CONTINUATION, None) => {
                        return Err(protocol("continuation frame outside a message"))
                    }
                    (_, Some(_)) => return Err(protocol("new message inside a fragmented one")),
                    (_, None) => 0,
                };
                let total = so_far + h.payload;
                if total > self.max {
                    return Err(FrameError {
                        code: code::TOO_BIG,
                        reason: "message larger than the packet size limit",
                    });
                }
                self.message = (!h.fin).then_some(total);
                raw.advance(h.len);
                let start = out.len();
                out.extend_from_slice(&raw[..h.payload]);
                unmask(&mut out[start..], h.mask);
                raw.advance(h.payload);
                Ok(Some(Event::Data))
            }
            _ => {
                raw.advance(h.len);
                let mut p = raw.split_to(h.payload);
                unmask(&mut p, h.mask);
                Ok(Some(match h.opcode {
                    op::PING => Event::Ping(p.to_vec()),
                    op::PONG => Event::Pong,
                    _ => Event::Close(close_code(&p)?),
                }))
            }
        }
    }
}

/// The status code of a close frame's (unmasked) payload, checked (RFC 6455 §7.4).
fn close_code(p: &[u8]) -> Result<Option<u16>, FrameError> {
    match p {
        [] => Ok(None),
        [_] => Err(protocol("close frame with a 1-byte payload")),
        [a, b, ..] => {
            let c = u16::from_be_bytes([*a, *b]);
            if matches!(c, 1000..=1003 | 1007..=1011 | 3000..=4999) {
                Ok(Some(c))
            } else {
                Err(protocol("invalid close code"))
            }
        }
    }
}

/// A server frame header (final, unmasked) for a `len`-byte payload: the bytes and how many.
pub fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if let Ok(l) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&l.to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// A whole close frame with `code`.
pub fn close_frame(code: u16) -> [u8; 4] {
    let c = code.to_be_bytes();
    [0x80 | op::CLOSE, 2, c[0], c[1]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A client frame as a client encodes it.
    fn client_frame(fin: bool, opcode: u8, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let (h, n) = header(opcode, payload.len());
        let mut v = h[..n].to_vec();
        v[0] = (u8::from(fin) << 7) | opcode;
        v[1] |= 0x80;
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        v
    }

    /// Feeds `bytes` in the given chunk sizes; the events, output and first error.
    fn feed(
        max: usize,
        bytes: &[u8],
        chunks: &[usize],
    ) -> (Vec<Event>, Vec<u8>, Option<FrameError>) {
        let mut r = Reader::new(max);
        let (mut raw, mut out, mut events) = (BytesMut::new(), BytesMut::new(), Vec::new());
        let mut rest = bytes;
        let mut sizes = chunks.iter().copied().cycle();
        loop {
            loop {
                match r.next(&mut raw, &mut out) {
                    Ok(Some(e)) => {
                        let stop = matches!(e, Event::Close(_));
                        events.push(e);
                        if stop {
                            return (events, out.to_vec(), None);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return (events, out.to_vec(), Some(e)),
                }
            }
            if rest.is_empty() {
                return (events, out.to_vec(), None);
            }
            let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
            raw.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
    }

    #[test]
    fn lengths_7_16_and_64_bit_round_trip() {
        for len in [0usize, 1, 125, 126, 65535, 65536, 70000] {
            let p: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let f = client_frame(true, op::BINARY, [1, 2, 3, 4], &p);
            let (ev, out, err) = feed(1 << 20, &f, &[f.len()]);
            assert_eq!((ev, err), (vec![Event::Data], None), "len {len}");
            assert_eq!(out, p);
        }
    }

    #[test]
    fn control_frames_between_fragments() {
        let mut b = client_frame(false, op::TEXT, [9, 8, 7, 6], b"hel");
        b.extend(client_frame(true, op::PING, [1, 1, 1, 1], b"are you there"));
        b.extend(client_frame(true, op::PONG, [2, 2, 2, 2], b""));
        b.extend(client_frame(true, op::CONTINUATION, [5, 5, 5, 5], b"lo"));
        b.extend(client_frame(
            true,
            op::CLOSE,
            [0, 0, 0, 0],
            &1000u16.to_be_bytes(),
        ));
        b.extend(client_frame(true, op::BINARY, [0, 0, 0, 0], b"after close"));
        let (ev, out, err) = feed(100, &b, &[1]);
        assert_eq!(err, None);
        assert_eq!(out, b"hello");
        assert_eq!(
            ev,
            vec![
                Event::Data,
                Event::Ping(b"are you there".to_vec()),
                Event::Pong,
                Event::Data,
                Event::Close(Some(1000))
            ]
        );
    }

    fn error_of(bytes: &[u8], max: usize) -> Option<u16> {
        feed(max, bytes, &[bytes.len()]).2.map(|e| e.code)
    }

    #[test]
    fn refusals_and_their_close_codes() {
        let ok = client_frame(true, op::BINARY, [1, 2, 3, 4], b"abc");
        let mut unmasked = ok.clone();
        unmasked[1] &= 0x7F;
        assert_eq!(error_of(&unmasked, 100), Some(code::PROTOCOL_ERROR));
        let mut rsv = ok.clone();
        rsv[0] |= 0x40;
        assert_eq!(error_of(&rsv, 100), Some(code::PROTOCOL_ERROR));
        for opcode in [3u8, 7, 0xB, 0xF] {
            let mut f = ok.clone();
            f[0] = 0x80 | opcode;
            assert_eq!(
                error_of(&f, 100),
                Some(code::PROTOCOL_ERROR),
                "opcode {opcode}"
            );
        }
        let cont = client_frame(true, op::CONTINUATION, [0; 4], b"x");
        assert_eq!(error_of(&cont, 100), Some(code::PROTOCOL_ERROR));
        let mut twice = client_frame(false, op::BINARY, [0; 4], b"x");
        twice.extend(client_frame(true, op::BINARY, [0; 4], b"y"));
        assert_eq!(error_of(&twice, 100), Some(code::PROTOCOL_ERROR));
        let frag_ping = client_frame(false, op::PING, [0; 4], b"");
        assert_eq!(error_of(&frag_ping, 100), Some(code::PROTOCOL_ERROR));
        let big_ping = client_frame(true, op::PING, [0; 4], &[0; 126]);
        assert_eq!(error_of(&big_ping, 1000), Some(code::PROTOCOL_ERROR));
        let bad_close = client_frame(true, op::CLOSE, [0; 4], &1005u16.to_be_bytes());
        assert_eq!(error_of(&bad_close, 100), Some(code::PROTOCOL_ERROR));
        // Too big: a frame, announced before its payload came; a fragmented message.
        let big = client_frame(true, op::BINARY, [0; 4], &[0; 101]);
        assert_eq!(error_of(&big[..8], 100), Some(code::TOO_BIG));
        let mut frags = client_frame(false, op::BINARY, [0; 4], &[0; 60]);
        frags.extend(client_frame(true, op::CONTINUATION, [0; 4], &[0; 41]));
        assert_eq!(error_of(&frags, 100), Some(code::TOO_BIG));
        assert_eq!(error_of(&frags, 101), None);
        // 64-bit length with the top bit set.
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert_eq!(error_of(&huge, usize::MAX), Some(code::PROTOCOL_ERROR));
    }

    #[test]
    fn empty_and_coded_close_frames() {
        let f = client_frame(true, op::CLOSE, [3; 4], b"");
        assert_eq!(feed(10, &f, &[1]).0, vec![Event::Close(None)]);
        let mut p = 4000u16.to_be_bytes().to_vec();
        p.extend_from_slice(b"bye");
        let f = client_frame(true, op::CLOSE, [3; 4], &p);
        assert_eq!(feed(10, &f, &[2]).0, vec![Event::Close(Some(4000))]);
        let f = client_frame(true, op::CLOSE, [3; 4], b"x");
        assert_eq!(error_of(&f, 10), Some(code::PROTOCOL_ERROR));
    }

    #[test]
    fn server_headers() {
        assert_eq!(
            header(op::BINARY, 5),
            ([0x82, 5, 0, 0, 0, 0, 0, 0, 0, 0], 2)
        );
        assert_eq!(header(op::BINARY, 300).1, 4);
        assert_eq!(&header(op::BINARY, 300).0[..4], &[0x82, 126, 1, 44]);
        assert_eq!(header(op::PONG, 70000).1, 10);
        assert_eq!(close_frame(1002), [0x88, 2, 0x03, 0xEA]);
    }

    proptest! {
        /// Any message split into any fragments, with pings between them, read in any chunk
        /// sizes, comes out whole and in order.
        #[test]
        fn fragmented_messages_round_trip(
            messages in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..300), 1usize..5, any::<bool>()),
                1..5,
            ),
            mask in any::<[u8; 4]>(),
            chunks in proptest::collection::vec(1usize..40, 1..8),
        ) {
            let (mut bytes, mut want, mut events) = (Vec::new(), Vec::new(), Vec::new());
            for (payload, parts, ping) in &messages {
                let step = payload.len().div_ceil(*parts).max(1);
                let pieces: Vec<&[u8]> = if payload.is_empty() { vec![&[]] } else { payload.chunks(step).collect() };
                for (i, piece) in pieces.iter().enumerate() {
                    let opcode = if i == 0 { op::BINARY } else { op::CONTINUATION };
                    bytes.extend(client_frame(i + 1 == pieces.len(), opcode, mask, piece));
                    events.push(Event::Data);
                    if *ping && i == 0 {
                        bytes.extend(client_frame(true, op::PING, mask, b"p"));
                        events.push(Event::Ping(b"p".to_vec()));
                    }
                }
                want.extend_from_slice(payload);
            }
            let (ev, out, err) = feed(300, &bytes, &chunks);
            prop_assert_eq!(err, None);
            prop_assert_eq!(ev, events);
            prop_assert_eq!(out, want);
        }

        /// Arbitrary bytes never panic, and what is consumed is never more than was given.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            chunks in proptest::collection::vec(1usize..64, 1..4),
            max in 0usize..400,
        ) {
            let (_, out, _) = feed(max, &bytes, &chunks);
            prop_assert!(out.len() <= bytes.len());
            let mut raw = BytesMut::from(&bytes[..]);
            let _ = Reader::new(max).missing(&raw);
            let _ = Reader::new(max).next(&mut raw, &mut BytesMut::new());
        }
    }
}
