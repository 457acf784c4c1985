//! Streaming frame decoder: cuts whole packets out of a growing byte buffer (TCP reads or
//! WebSocket frames appended one after another; packets need not align with either) and rejects
//! hostile headers before buffering their bodies.

use bytes::BytesMut;

use super::codec::decode_body;
use super::error::ProtoError;
use super::packet::{Packet, PacketType};
use super::wire::{read_varint, Varint};

/// Default bound on the remaining length of one frame: 1 MiB, the Go server's
/// `MaxRemaingLength`.
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024;

/// Incremental decoder. `max_frame` bounds the *remaining length* (the body, not counting the
/// 1–5 header bytes).
///
/// `decode` behaviour:
/// - `Ok(None)`: no complete packet yet; **nothing was consumed**. Append more bytes and call again.
/// - `Ok(Some(p))`: exactly one frame was removed from the front of `buf`; call again, more whole
///   packets may already be buffered.
/// - `Err(UnknownPacketType | VarintTooLong | FrameTooLarge)`: framing error, detected from the
///   header bytes alone (before the body arrives); nothing consumed; the stream is unusable.
/// - `Err(UnsupportedVersion)` for a version-dependent type is reported as soon as the header
///   byte is seen, nothing consumed.
/// - `Err(Truncated | InvalidUtf8)`: the frame was complete but its body is malformed; that frame
///   **was** consumed.
///
/// `version` is the session's negotiated protocol version. Before CONNECT has been processed,
/// pass `0` (or anything): CONNECT (whose version byte is inside its own body), PING, PONG,
/// DISCONNECT, SUB and SUBACK decode regardless; CONNACK, SEND, SENDACK, RECV and RECVACK then
/// fail with `UnsupportedVersion`.
///
/// The decoder never allocates based on a length read from the wire: bodies are split off the
/// caller's buffer, and string fields are only copied once their bytes are present.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub max_frame: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl Decoder {
    pub fn new(max_frame: usize) -> Self {
        Decoder { max_frame }
    }

    /// Decodes the next packet from the front of `buf`; see the type docs.
    pub fn decode(
        &mut self,
        buf: &mut BytesMut,
        version: u8,
    ) -> Result<Option<Packet>, ProtoError> {
        let Some(&header) = buf.first() else {
            return Ok(None);
        };
        let nibble = header >> 4;
        let ptype = PacketType::from_u8(nibble).ok_or(ProtoError::UnknownPacketType(nibble))?;
        if matches!(ptype, PacketType::Ping | PacketType::Pong) {
            let _ = buf.split_to(1);
            return Ok(Some(if ptype == PacketType::Ping {
                Packet::Ping
            } else {
                Packet::Pong
            }));
        }
        if ptype.is_version_dependent()
            && !(super::MIN_VERSION..=super::MAX_VERSION).contains(&version)
        {
            return Err(ProtoError::UnsupportedVersion {
                packet: ptype,
                version,
            });
        }
        let (len, len_bytes) = match read_varint(&buf[1..])? {
            Varint::Partial { at_least } => {
                if at_least > self.max_frame {
                    return Err(ProtoError::FrameTooLarge {
                        len: at_least,
                        max: self.max_frame,
                    });
                }
                return Ok(None);
            }
            Varint::Done { value, len } => (value, len),
        };
        if len > self.max_frame {
            return Err(ProtoError::FrameTooLarge {
                len,
                max: self.max_frame,
            });
        }
        let total = 1 + len_bytes + len;
        if buf.len() < total {
            return Ok(None);
        }
        let mut frame = buf.split_to(total).freeze();
        let body = frame.split_off(1 + len_bytes);
        decode_body(ptype, header, body, version).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{encode, DisconnectPacket, ReasonCode, RecvackPacket};

    fn disconnect() -> Packet {
        Packet::Disconnect(DisconnectPacket {
            reason_code: ReasonCode::ConnectKick,
            reason: "bye".into(),
        })
    }

    #[test]
    fn partial_input_consumes_nothing() {
        let bytes = encode(&disconnect(), 2).unwrap();
        let mut d = Decoder::default();
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(d.decode(&mut buf, 2), Ok(None));
            assert_eq!(buf.len(), cut);
        }
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(d.decode(&mut buf, 2), Ok(Some(disconnect())));
        assert!(buf.is_empty());
    }

    #[test]
    fn several_packets_in_one_buffer() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&encode(&Packet::Ping, 2).unwrap());
        buf.extend_from_slice(&encode(&disconnect(), 2).unwrap());
        buf.extend_from_slice(&encode(&Packet::Pong, 2).unwrap());
        buf.extend_from_slice(&encode(&disconnect(), 2).unwrap()[..3]);
        let mut d = Decoder::default();
        assert_eq!(d.decode(&mut buf, 2), Ok(Some(Packet::Ping)));
        assert_eq!(d.decode(&mut buf, 2), Ok(Some(disconnect())));
        assert_eq!(d.decode(&mut buf, 2), Ok(Some(Packet::Pong)));
        assert_eq!(d.decode(&mut buf, 2), Ok(None));
        assert_eq!(buf.len(), 3);
    }

    #[test]
    fn frame_too_large_from_header_alone() {
        let mut d = Decoder::new(100);
        // 0x90 = DISCONNECT, remaining length 200 = [0xC8, 0x01]; no body yet.
        let mut buf = BytesMut::from(&[0x90u8, 0xC8, 0x01][..]);
        assert_eq!(
            d.decode(&mut buf, 2),
            Err(ProtoError::FrameTooLarge { len: 200, max: 100 })
        );
        assert_eq!(buf.len(), 3);
        // Even a partial varint already above the limit is refused.
        let mut buf = BytesMut::from(&[0x90u8, 0xFF][..]);
        assert_eq!(
            d.decode(&mut buf, 2),
            Err(ProtoError::FrameTooLarge { len: 127, max: 100 })
        );
        // 1 MiB default: 0x10_0001 = [0x81, 0x80, 0x40]
        let mut buf = BytesMut::from(&[0x30u8, 0x81, 0x80, 0x40][..]);
        assert!(matches!(
            Decoder::default().decode(&mut buf, 2),
            Err(ProtoError::FrameTooLarge { len: 0x10_0001, .. })
        ));
    }

    #[test]
    fn varint_too_long_and_unknown_type() {
        let mut d = Decoder::new(usize::MAX);
        let mut buf = BytesMut::from(&[0x90u8, 0x80, 0x80, 0x80, 0x80][..]);
        assert_eq!(d.decode(&mut buf, 2), Err(ProtoError::VarintTooLong));
        for t in [0u8, 12, 13, 14, 15] {
            let mut buf = BytesMut::from(&[t << 4][..]);
            assert_eq!(d.decode(&mut buf, 2), Err(ProtoError::UnknownPacketType(t)));
        }
    }

    #[test]
    fn truncated_body_is_consumed_and_reported() {
        // RECVACK at v2 needs 12 bytes; announce and send 5.
        let mut buf = BytesMut::from(&[0x60u8, 5, 1, 2, 3, 4, 5, 0x70][..]);
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(&mut buf, 2),
            Err(ProtoError::Truncated { field: "messageID" })
        );
        assert_eq!(d.decode(&mut buf, 2), Ok(Some(Packet::Ping)));
    }

    #[test]
    fn version_zero_only_for_version_independent_packets() {
        let mut d = Decoder::default();
        let ack = encode(&Packet::Recvack(RecvackPacket::default()), 2).unwrap();
        let mut buf = BytesMut::from(&ack[..]);
        assert!(matches!(
            d.decode(&mut buf, 0),
            Err(ProtoError::UnsupportedVersion { .. })
        ));
        let mut buf = BytesMut::from(&encode(&disconnect(), 2).unwrap()[..]);
        assert_eq!(d.decode(&mut buf, 0), Ok(Some(disconnect())));
    }
}
