//! Byte-level primitives shared by every packet body: big-endian integers, u16-length-prefixed
//! UTF-8 strings, the trailing payload, and the MQTT-style remaining-length varint. Reads are
//! bounds-checked and never allocate more than the bytes actually present, so lengths taken from
//! the wire cannot trigger large allocations.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::ProtoError;

/// Largest value a 4-byte remaining-length varint can carry (2^28 - 1).
pub const MAX_REMAINING_LENGTH: usize = 0x0FFF_FFFF;

/// Cursor over one packet body. Strings are validated as UTF-8; the payload is a zero-copy slice.
pub(crate) struct Reader {
    body: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(body: Bytes) -> Self {
        Reader { body, pos: 0 }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], ProtoError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.body.len());
        match end {
            Some(end) => {
                let s = &self.body[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(ProtoError::Truncated { field }),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProtoError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtoError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtoError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, ProtoError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, ProtoError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    /// u16 big-endian byte length, then that many bytes of UTF-8.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, ProtoError> {
        let len = u16::from_be_bytes(self.array(field)?) as usize;
        let raw = self.take(len, field)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| ProtoError::InvalidUtf8 { field })
    }

    /// Everything not read yet (the payload has no length prefix).
    pub(crate) fn rest(&mut self) -> Bytes {
        let out = self.body.slice(self.pos..);
        self.pos = self.body.len();
        out
    }
}

/// Body writer; the only fallible write is a string longer than 65535 bytes.
pub(crate) struct Writer {
    pub(crate) buf: BytesMut,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Writer {
            buf: BytesMut::with_capacity(64),
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.put_u64(v);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    pub(crate) fn string(&mut self, s: &str, field: &'static str) -> Result<(), ProtoError> {
        let len = u16::try_from(s.len()).map_err(|_| ProtoError::StringTooLong {
            field,
            len: s.len(),
        })?;
        self.buf.put_u16(len);
        self.buf.put_slice(s.as_bytes());
        Ok(())
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.put_slice(b);
    }
}

/// Appends `len` as an MQTT varint: 7 bits per byte, low group first, high bit = more follows.
/// Zero is one `0x00` byte (the SDK and Go would write no byte at all for 0, but no packet they
/// exchange has an empty body, and both decoders read a `0x00` correctly).
pub(crate) fn put_varint(dst: &mut BytesMut, len: usize) -> Result<(), ProtoError> {
    if len > MAX_REMAINING_LENGTH {
        return Err(ProtoError::FrameTooLarge {
            len,
            max: MAX_REMAINING_LENGTH,
        });
    }
    let mut rest = len;
    loop {
        let mut digit = (rest % 0x80) as u8;
        rest /= 0x80;
        if rest > 0 {
            digit |= 0x80;
        }
        dst.put_u8(digit);
        if rest == 0 {
            return Ok(());
        }
    }
}

/// Outcome of reading a varint from the bytes after the header byte.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Varint {
    /// The value and how many bytes it used (1..=4).
    Done { value: usize, len: usize },
    /// More bytes are needed; `at_least` is the value accumulated so far (a lower bound).
    Partial { at_least: usize },
}

/// Reads a remaining-length varint of at most 4 bytes. A continuation bit on the 4th byte is
/// [`ProtoError::VarintTooLong`] even before a 5th byte arrives.
pub(crate) fn read_varint(src: &[u8]) -> Result<Varint, ProtoError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&b) = src.get(i) else {
            return Ok(Varint::Partial { at_least: value });
        };
        value |= ((b & 0x7F) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Varint::Done { value, len: i + 1 });
        }
    }
    Err(ProtoError::VarintTooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(len: usize) -> Vec<u8> {
        let mut b = BytesMut::new();
        put_varint(&mut b, len).unwrap();
        b.to_vec()
    }

    #[test]
    fn varint_boundaries() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(127), [0x7F]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(16_383), [0xFF, 0x7F]);
        assert_eq!(enc(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(enc(MAX_REMAINING_LENGTH), [0xFF, 0xFF, 0xFF, 0x7F]);
        assert!(matches!(
            put_varint(&mut BytesMut::new(), MAX_REMAINING_LENGTH + 1),
            Err(ProtoError::FrameTooLarge { .. })
        ));
        for v in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            MAX_REMAINING_LENGTH,
        ] {
            let e = enc(v);
            assert_eq!(
                read_varint(&e).unwrap(),
                Varint::Done {
                    value: v,
                    len: e.len()
                }
            );
        }
    }

    #[test]
    fn varint_partial_and_too_long() {
        assert_eq!(read_varint(&[]).unwrap(), Varint::Partial { at_least: 0 });
        assert_eq!(
            read_varint(&[0x85]).unwrap(),
            Varint::Partial { at_least: 5 }
        );
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80]),
            Err(ProtoError::VarintTooLong)
        );
        assert_eq!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0x80, 0x01]),
            Err(ProtoError::VarintTooLong)
        );
    }

    #[test]
    fn reader_is_bounds_checked() {
        let mut r = Reader::new(Bytes::from_static(&[0xFF, 0xFF, b'a']));
        assert_eq!(r.string("s"), Err(ProtoError::Truncated { field: "s" }));
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x02, 0xC3, 0x28]));
        assert_eq!(r.string("s"), Err(ProtoError::InvalidUtf8 { field: "s" }));
        let mut r = Reader::new(Bytes::from_static(&[1, 2, 3]));
        assert_eq!(r.u32("n"), Err(ProtoError::Truncated { field: "n" }));
    }
}
