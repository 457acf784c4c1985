//! Frames of the multiplexed connection and the reassembly of chunked messages. Pure code (no
//! I/O) so it can be fed arbitrary bytes in tests: the decoder checks the announced length against
//! a fixed cap before reserving anything, and reassembly grows buffers only as bytes arrive.

use super::RpcError;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::HashMap;
use tokio_util::codec::Decoder;

/// `flags u8 · id u32 · kind u8` after the length prefix.
pub const HEADER_LEN: usize = 6;
/// Largest payload of one frame; longer messages are split into chunks of this size.
pub const MAX_CHUNK: usize = 64 * 1024;
/// Largest value the length prefix may announce.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_CHUNK;

/// Flag bits.
pub mod flag {
    /// Last chunk of a message.
    pub const END: u8 = 0x01;
    /// The response body is the handler's error text.
    pub const ERROR: u8 = 0x02;
    /// The sender abandoned a partly sent message.
    pub const ABORT: u8 = 0x04;
    /// Server → client, id 0, no payload: "shutting down — I read no more requests; every request
    /// I read will be answered before I close". Unanswered requests were never handled.
    pub const GOAWAY: u8 = 0x08;
    /// Server → client.
    pub const RESPONSE: u8 = 0x80;
    pub(crate) const KNOWN: u8 = END | ERROR | ABORT | GOAWAY | RESPONSE;
}

/// One frame as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub flags: u8,
    pub id: u32,
    pub kind: u8,
    pub payload: Bytes,
}

/// Appends one frame to `buf`; `payload` must be at most [`MAX_CHUNK`] bytes.
pub fn put_frame(buf: &mut BytesMut, flags: u8, id: u32, kind: u8, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_CHUNK);
    buf.reserve(4 + HEADER_LEN + payload.len());
    // At most MAX_FRAME_LEN, which fits a u32.
    buf.put_u32((HEADER_LEN + payload.len()) as u32);
    buf.put_u8(flags);
    buf.put_u32(id);
    buf.put_u8(kind);
    buf.put_slice(payload);
}

/// Splits the byte stream into [`Frame`]s.
#[derive(Debug, Default)]
pub struct FrameCodec;

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = RpcError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, RpcError> {
        let Some(prefix) = src.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > MAX_FRAME_LEN {
            return Err(RpcError::FrameTooLarge(len));
        }
        if len < HEADER_LEN {
            return Err(RpcError::Protocol(format!(
                "frame of {len} bytes is shorter than its header"
            )));
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let mut f = src.split_to(len);
        let flags = f.get_u8();
        let id = f.get_u32();
        let kind = f.get_u8();
        if flags & !flag::KNOWN != 0 {
            return Err(RpcError::Protocol(format!(
                "unknown frame flags {flags:#04x}"
            )));
        }
        Ok(Some(Frame {
            flags,
            id,
            kind,
            payload: f.freeze(),
        }))
    }
}

/// What reassembly produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole message. `flags` are the first chunk's, without [`flag::END`].
    Message {
        id: u32,
        kind: u8,
        flags: u8,
        body: Bytes,
    },
    /// A message grew past the limit; its remaining chunks are dropped as they arrive.
    TooLarge { id: u32, kind: u8, size: usize },
}

enum Partial {
    Filling { kind: u8, flags: u8, buf: BytesMut },
    Discarding,
}

/// Joins chunks into messages, bounded in message size, open messages and buffered bytes.
pub struct Assembler {
    max_message: usize,
    max_open: usize,
    max_buffered: usize,
    buffered: usize,
    open: HashMap<u32, Partial>,
}

impl Assembler {
    /// `max_message`: largest body; `max_open`: messages being received at once.
    pub fn new(max_message: usize, max_open: usize) -> Self {
        Assembler {
            max_message,
            max_open,
            max_buffered: max_message.saturating_mul(2),
            buffered: 0,
            open: HashMap::new(),
        }
    }

    /// Feeds one frame; a protocol violation is an error (the connection should close).
    pub fn push(&mut self, f: Frame) -> Result<Option<Event>, RpcError> {
        if f.flags & flag::ABORT != 0 {
            if let Some(Partial::Filling { buf, .. }) = self.open.remove(&f.id) {
                self.buffered -= buf.len();
            }
            return Ok(None);
        }
        let end = f.flags & flag::END != 0;
        let flags = f.flags & !flag::END;
        let Some(partial) = self.open.get_mut(&f.id) else {
            return self.first_chunk(f, flags, end);
        };
        let (kind, buf) = match partial {
            Partial::Discarding => {
                if end {
                    self.open.remove(&f.id);
                }
                return Ok(None);
            }
            Partial::Filling {
                kind,
                flags: first,
                buf,
            } => {
                if *kind != f.kind || *first != flags {
                    return Err(RpcError::Protocol(format!(
                        "chunk of message {} changed its kind or flags",
                        f.id
                    )));
                }
                (*kind, buf)
            }
        };
        let size = buf.len() + f.payload.len();
        if size > self.max_message {
            self.buffered -= buf.len();
            if end {
                self.open.remove(&f.id);
            } else {
                *partial = Partial::Discarding;
            }
            return Ok(Some(Event::TooLarge {
                id: f.id,
                kind,
                size,
            }));
        }
        if self.buffered + f.payload.len() > self.max_buffered {
            return Err(RpcError::Protocol(
                "too many bytes buffered in partial messages".into(),
            ));
        }
        buf.extend_from_slice(&f.payload);
        self.buffered += f.payload.len();
        if !end {
            return Ok(None);
        }
        let body = match self.open.remove(&f.id) {
            Some(Partial::Filling { buf, .. }) => buf,
            _ => return Ok(None),
        };
        self.buffered -= body.len();
        Ok(Some(Event::Message {
            id: f.id,
            kind,
            flags,
            body: body.freeze(),
        }))
    }

    fn first_chunk(&mut self, f: Frame, flags: u8, end: bool) -> Result<Option<Event>, RpcError> {
        let size = f.payload.len();
        if size > self.max_message {
            if !end {
                self.admit()?;
                self.open.insert(f.id, Partial::Discarding);
            }
            return Ok(Some(Event::TooLarge {
                id: f.id,
                kind: f.kind,
                size,
            }));
        }
        if end {
            return Ok(Some(Event::Message {
                id: f.id,
                kind: f.kind,
                flags,
                body: f.payload,
            }));
        }
        self.admit()?;
        if self.buffered + size > self.max_buffered {
            return Err(RpcError::Protocol(
                "too many bytes buffered in partial messages".into(),
            ));
        }
        self.buffered += size;
        let mut buf = BytesMut::with_capacity(size * 2);
        buf.extend_from_slice(&f.payload);
        self.open.insert(
            f.id,
            Partial::Filling {
                kind: f.kind,
                flags,
                buf,
            },
        );
        Ok(None)
    }

    fn admit(&self) -> Result<(), RpcError> {
        if self.open.len() >= self.max_open {
            return Err(RpcError::Protocol(format!(
                "more than {} messages in flight at once",
                self.max_open
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(flags: u8, id: u32, payload: &[u8]) -> Frame {
        Frame {
            flags,
            id,
            kind: 7,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut buf = BytesMut::new();
        put_frame(&mut buf, flag::END | flag::RESPONSE, 42, 3, b"hello");
        put_frame(&mut buf, flag::END, 43, 4, b"");
        let mut codec = FrameCodec;
        let a = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(a, frame_kind(flag::END | flag::RESPONSE, 42, 3, b"hello"));
        let b = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(b, frame_kind(flag::END, 43, 4, b""));
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    fn frame_kind(flags: u8, id: u32, kind: u8, payload: &[u8]) -> Frame {
        Frame {
            kind,
            ..frame(flags, id, payload)
        }
    }

    #[test]
    fn partial_input_waits_and_big_lengths_are_refused_before_allocating() {
        let mut codec = FrameCodec;
        let mut buf = BytesMut::from(&[0u8, 0, 0][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff, 1][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(RpcError::FrameTooLarge(0xffff_ffff))
        ));
        assert!(buf.capacity() < 1024);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 2, 1, 2][..]);
        assert!(matches!(codec.decode(&mut buf), Err(RpcError::Protocol(_))));
        let mut buf = BytesMut::new();
        put_frame(&mut buf, 0x40, 1, 1, b"");
        assert!(matches!(codec.decode(&mut buf), Err(RpcError::Protocol(_))));
    }

    #[test]
    fn chunks_reassemble_interleaved() {
        let mut a = Assembler::new(100, 4);
        assert_eq!(a.push(frame(0, 1, b"ab")).unwrap(), None);
        assert_eq!(a.push(frame(0, 2, b"xy")).unwrap(), None);
        assert_eq!(
            a.push(frame(flag::END, 1, b"cd")).unwrap(),
            Some(Event::Message {
                id: 1,
                kind: 7,
                flags: 0,
                body: Bytes::from_static(b"abcd")
            })
        );
        assert_eq!(a.push(frame(flag::ABORT, 2, b"")).unwrap(), None);
        assert_eq!(a.buffered, 0);
        assert!(a.open.is_empty());
    }

    #[test]
    fn oversized_message_is_reported_once_and_skipped() {
        let mut a = Assembler::new(3, 4);
        assert_eq!(a.push(frame(0, 1, b"ab")).unwrap(), None);
        assert_eq!(
            a.push(frame(0, 1, b"cd")).unwrap(),
            Some(Event::TooLarge {
                id: 1,
                kind: 7,
                size: 4
            })
        );
        assert_eq!(a.push(frame(0, 1, b"ef")).unwrap(), None);
        assert_eq!(a.push(frame(flag::END, 1, b"gh")).unwrap(), None);
        assert!(a.open.is_empty());
        assert_eq!(a.buffered, 0);
        // The id is free again afterwards.
        assert!(matches!(
            a.push(frame(flag::END, 1, b"ok")).unwrap(),
            Some(Event::Message { .. })
        ));
    }

    #[test]
    fn too_many_open_messages_is_a_protocol_error() {
        let mut a = Assembler::new(100, 2);
        a.push(frame(0, 1, b"a")).unwrap();
        a.push(frame(0, 2, b"a")).unwrap();
        assert!(matches!(
            a.push(frame(0, 3, b"a")),
            Err(RpcError::Protocol(_))
        ));
    }

    proptest! {
        // Cheap cases: a big share of the suite's fuzzing of the cluster port.
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn random_byte_streams_never_panic(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20)
        ) {
            let mut codec = FrameCodec;
            let mut asm = Assembler::new(512, 8);
            let mut buf = BytesMut::new();
            'feed: for c in chunks {
                buf.extend_from_slice(&c);
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(f)) => {
                            if asm.push(f).is_err() {
                                break 'feed;
                            }
                        }
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }

        #[test]
        fn random_frames_never_panic_and_stay_bounded(
            frames in prop::collection::vec(
                (any::<u8>(), 0u32..6, 0u8..3, prop::collection::vec(any::<u8>(), 0..80)),
                0..200,
            )
        ) {
            let mut asm = Assembler::new(200, 4);
            for (flags, id, kind, payload) in frames {
                let f = Frame { flags: flags & flag::KNOWN, id, kind, payload: payload.into() };
                match asm.push(f) {
                    Ok(Some(Event::Message { body, .. })) => prop_assert!(body.len() <= 200),
                    Ok(_) => {}
                    Err(_) => break,
                }
                prop_assert!(asm.open.len() <= 4);
                prop_assert!(asm.buffered <= 400);
            }
        }
    }
}
