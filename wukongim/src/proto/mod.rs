//! The WuKongIM binary wire protocol ("wkproto"), pure and I/O-free: typed packets, a
//! version-aware encoder, a streaming decoder that is safe against hostile input, reason codes,
//! and the session crypto (Curve25519 handshake, AES-CBC payloads, msgKey).
//!
//! The judge of compatibility is the real client, `wukongimjssdk` 1.0.4 (`tests/js`); the Go
//! server's `wkproto` fills in what the SDK never exercises. Golden vectors produced by the SDK
//! itself (`tests/js/golden/gen.js` → `vectors.json`) are checked by `tests/proto_golden.rs`.
//!
//! Framing: byte 0 = `type << 4 | flags`; PING (`0x70`) and PONG (`0x80`) are that byte alone;
//! every other packet continues with its body length as a 1–4 byte MQTT varint, then the body.
//! Integers are big-endian, strings are a u16 byte length + UTF-8, the payload runs to the end.
//!
//! ```
//! use bytes::BytesMut;
//! use wukongim::proto::{encode, Decoder, Packet, DisconnectPacket, ReasonCode};
//! let p = Packet::Disconnect(DisconnectPacket { reason_code: ReasonCode::ConnectKick, reason: "kicked".into() });
//! let mut buf = BytesMut::from(&encode(&p, 2).unwrap()[..]);
//! assert_eq!(Decoder::default().decode(&mut buf, 2).unwrap(), Some(p));
//! ```

pub mod client;
mod codec;
pub mod crypto;
mod decoder;
mod error;
mod packet;
mod reason;
mod setting;
mod wire;

pub use codec::{encode, encode_into};
pub use crypto::{
    server_handshake, server_handshake_with, ClientKeys, CryptoError, ServerHandshake,
    SessionCipher,
};
pub use decoder::{Decoder, DEFAULT_MAX_FRAME};
pub use error::ProtoError;
pub use packet::{
    ConnackPacket, ConnectPacket, DisconnectPacket, HeaderFlags, Packet, PacketType, RecvPacket,
    RecvackPacket, SendPacket, SendackPacket, SubPacket, SubackPacket,
};
pub use reason::ReasonCode;
pub use setting::Setting;
pub use wire::MAX_REMAINING_LENGTH;

/// Oldest protocol version this codec speaks (the 1.0.4 JS SDK announces 2).
pub const MIN_VERSION: u8 = 2;
/// Newest protocol version this codec speaks (u64 messageSeq).
pub const MAX_VERSION: u8 = 6;

/// The version a session uses for a client announcing `client_version` in CONNECT: the Go server
/// answers 0 and anything above its latest with its latest; we additionally lift 1 to 2 (v1 only
/// lacked the stream fields, which need a setting bit no v1 client sets).
pub fn negotiate_version(client_version: u8) -> u8 {
    match client_version {
        0 => MAX_VERSION,
        v => v.clamp(MIN_VERSION, MAX_VERSION),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate_version(0), 6);
        assert_eq!(negotiate_version(1), 2);
        assert_eq!(negotiate_version(2), 2);
        assert_eq!(negotiate_version(5), 5);
        assert_eq!(negotiate_version(6), 6);
        assert_eq!(negotiate_version(200), 6);
    }
}
