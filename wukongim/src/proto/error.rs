//! The single error type of the wire codec. Kept apart so every codec file can return it and
//! callers can match on framing failures (which poison the byte stream) versus body failures
//! (which only concern one, already consumed, frame).

use super::packet::PacketType;

/// Everything that can go wrong while encoding or decoding WuKongIM packets.
///
/// Header-level errors ([`ProtoError::UnknownPacketType`], [`ProtoError::VarintTooLong`],
/// [`ProtoError::FrameTooLarge`], and [`ProtoError::UnsupportedVersion`] from the decoder) are
/// reported by [`super::Decoder`] without consuming any input: the stream cannot be resynchronised
/// and the connection should be closed. Body errors (`Truncated`, `InvalidUtf8`) are reported
/// after the offending frame has been removed from the buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The high nibble of byte 0 is not a packet type this codec knows (0, 12..=15).
    #[error("unknown packet type {0}")]
    UnknownPacketType(u8),
    /// The remaining-length varint has a continuation bit on its 4th byte.
    #[error("remaining length varint longer than 4 bytes")]
    VarintTooLong,
    /// The remaining length announced by the header (or the body being encoded) exceeds the limit.
    #[error("frame body of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
    /// A version-dependent packet was encoded/decoded with a version outside 2..=6
    /// (0 = "session not negotiated yet").
    #[error("{packet:?} needs a negotiated protocol version in 2..=6, got {version}")]
    UnsupportedVersion { packet: PacketType, version: u8 },
    /// The body ended before `field` was complete.
    #[error("packet body truncated while reading {field}")]
    Truncated { field: &'static str },
    /// A string field is not valid UTF-8.
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    /// A string field does not fit the u16 length prefix.
    #[error("field {field} is {len} bytes, more than the 65535 a u16 length allows")]
    StringTooLong { field: &'static str, len: usize },
    /// A messageSeq above u32::MAX cannot be sent to a client speaking version <= 5.
    #[error("message seq {seq} does not fit the u32 used by protocol version {version}")]
    MessageSeqOverflow { seq: u64, version: u8 },
}
