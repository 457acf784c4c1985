//! The typed packets: one plain struct with public fields per packet type, gathered in the
//! [`Packet`] enum. Field layouts per protocol version are documented on each struct; the
//! byte-level work lives in `codec.rs`.
//!
//! Integer widths follow the wire: `client_seq` is u32 (Go keeps a u64 but writes 4 bytes),
//! `message_seq` is u64 in memory because version 6 sends 8 bytes (versions 2..=5 send 4 and
//! reject larger values on encode).

use bytes::Bytes;

use super::reason::ReasonCode;
use super::setting::Setting;

/// The 4-bit packet type in the high nibble of byte 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    Connect = 1,
    Connack = 2,
    Send = 3,
    Sendack = 4,
    Recv = 5,
    Recvack = 6,
    Ping = 7,
    Pong = 8,
    Disconnect = 9,
    Sub = 10,
    Suback = 11,
}

impl PacketType {
    /// The type for a nibble, `None` for 0 and 12..=15 (EVENT = 12 exists in the newer Go
    /// server, server → client only; the 1.0.4 SDK does not know it, so neither do we).
    pub fn from_u8(v: u8) -> Option<Self> {
        use PacketType::*;
        Some(match v {
            1 => Connect,
            2 => Connack,
            3 => Send,
            4 => Sendack,
            5 => Recv,
            6 => Recvack,
            7 => Ping,
            8 => Pong,
            9 => Disconnect,
            10 => Sub,
            11 => Suback,
            _ => return None,
        })
    }

    /// Whether the body layout depends on the protocol version (CONNACK, SEND, SENDACK, RECV,
    /// RECVACK). Only these need a negotiated version (2..=6) to be encoded or decoded; the others
    /// accept any version value, which is how a CONNECT is decoded before the version is known.
    pub fn is_version_dependent(self) -> bool {
        use PacketType::*;
        matches!(self, Connack | Send | Sendack | Recv | Recvack)
    }
}

/// The low nibble of byte 0 for SEND, RECV and RECVACK: bit3 DUP, bit2 syncOnce, bit1 redDot,
/// bit0 noPersist. (The SDK sets redDot on every SEND and copies the RECV's flags into its
/// RECVACK.) Other packet types carry no flags: their low nibble is written as 0 and ignored on
/// decode, except CONNACK whose bit0 means "serverVersion byte follows".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HeaderFlags {
    pub dup: bool,
    pub sync_once: bool,
    pub red_dot: bool,
    pub no_persist: bool,
}

impl HeaderFlags {
    pub fn from_bits(b: u8) -> Self {
        HeaderFlags {
            dup: b & 0x08 != 0,
            sync_once: b & 0x04 != 0,
            red_dot: b & 0x02 != 0,
            no_persist: b & 0x01 != 0,
        }
    }

    pub fn bits(self) -> u8 {
        (self.dup as u8) << 3
            | (self.sync_once as u8) << 2
            | (self.red_dot as u8) << 1
            | self.no_persist as u8
    }
}

/// CONNECT (client → server). Same layout in every version:
/// version u8 · deviceFlag u8 · deviceID str · uid str · token str · clientTimestamp i64 (ms) ·
/// clientKey str (base64 Curve25519 public key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectPacket {
    pub version: u8,
    pub device_flag: u8,
    pub device_id: String,
    pub uid: String,
    pub token: String,
    pub client_timestamp: i64,
    pub client_key: String,
}

/// CONNACK (server → client):
/// [serverVersion u8, v > 3] · timeDiff i64 · reasonCode u8 · serverKey str · salt str ·
/// [nodeId u64, v >= 4].
///
/// Encoding at version > 3 sets header bit0 and writes `server_version` (Go:
/// `connack.HasServerVersion = connect.Version > 3`); at 2..=3 neither is written, which is what
/// the 1.0.4 SDK needs: it reads timeDiff from the first body byte and ignores trailing bytes.
/// Decoding follows header bit0 (as Go and newer SDKs do); without it `server_version` is 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnackPacket {
    pub server_version: u8,
    pub time_diff: i64,
    pub reason_code: ReasonCode,
    pub server_key: String,
    pub salt: String,
    pub node_id: u64,
}

/// SEND (client → server):
/// setting u8 · clientSeq u32 · clientMsgNo str · [streamNo str, 2 <= v < 5 and setting.stream] ·
/// channelID str · channelType u8 · [expire u32, v >= 3] · msgKey str ·
/// [topic str, setting.topic] · payload (rest of the body).
///
/// Fields absent in the given version (or whose setting bit is clear) are not written on encode
/// and come back as empty/0 on decode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendPacket {
    pub flags: HeaderFlags,
    pub setting: Setting,
    pub client_seq: u32,
    pub client_msg_no: String,
    pub stream_no: String,
    pub channel_id: String,
    pub channel_type: u8,
    pub expire: u32,
    pub msg_key: String,
    pub topic: String,
    /// On the wire: the base64 text of the AES-encrypted payload (when encryption is on).
    pub payload: Bytes,
}

/// SENDACK (server → client): messageID i64 · clientSeq u32 · messageSeq (u32, v <= 5 | u64, v 6) ·
/// reasonCode u8. (The newest Go tree may append clientMsgNo; trailing bytes are ignored.)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendackPacket {
    pub message_id: i64,
    pub client_seq: u32,
    pub message_seq: u64,
    pub reason_code: ReasonCode,
}

/// RECV (server → client):
/// setting u8 · msgKey str · fromUID str · channelID str · channelType u8 · [expire u32, v >= 3] ·
/// clientMsgNo str · [streamNo str · streamSeq u32 · streamFlag u8, 2 <= v < 5 and setting.stream] ·
/// messageID i64 · messageSeq (u32 | u64 at v 6) · timestamp i32 (unix s) · [topic str, setting.topic] ·
/// payload.
///
/// The stream-field order is the SDK 1.0.4 one (`decodeRecvPacket`), identical to the Go server
/// of 2023-07..2025-02; today's Go tree writes streamFlag u8 · streamNo str · streamId u64
/// instead (with stream bit 0x02), see `setting.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecvPacket {
    pub flags: HeaderFlags,
    pub setting: Setting,
    pub msg_key: String,
    pub from_uid: String,
    pub channel_id: String,
    pub channel_type: u8,
    pub expire: u32,
    pub client_msg_no: String,
    pub stream_no: String,
    pub stream_seq: u32,
    pub stream_flag: u8,
    pub message_id: i64,
    pub message_seq: u64,
    pub timestamp: i32,
    pub topic: String,
    /// On the wire: the base64 text of the AES-encrypted payload (when encryption is on).
    pub payload: Bytes,
}

/// RECVACK (client → server): messageID i64 · messageSeq (u32 | u64 at v 6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecvackPacket {
    pub flags: HeaderFlags,
    pub message_id: i64,
    pub message_seq: u64,
}

/// DISCONNECT (either way): reasonCode u8 · reason str.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectPacket {
    pub reason_code: ReasonCode,
    pub reason: String,
}

/// SUB (client → server): setting u8 · subNo str · channelID str · channelType u8 ·
/// action u8 (0 subscribe, 1 unsubscribe) · param str. (The SDK names subNo `clientMsgNo` and
/// leaves it and the setting unset, i.e. "" and 0.)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubPacket {
    pub setting: Setting,
    pub sub_no: String,
    pub channel_id: String,
    pub channel_type: u8,
    pub action: u8,
    pub param: String,
}

/// SUBACK (server → client): subNo str · channelID str · channelType u8 · action u8 · reasonCode u8.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubackPacket {
    pub sub_no: String,
    pub channel_id: String,
    pub channel_type: u8,
    pub action: u8,
    pub reason_code: ReasonCode,
}

/// Any WuKongIM packet. PING (`0x70`) and PONG (`0x80`) are one byte with no length and no body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(ConnectPacket),
    Connack(ConnackPacket),
    Send(SendPacket),
    Sendack(SendackPacket),
    Recv(RecvPacket),
    Recvack(RecvackPacket),
    Ping,
    Pong,
    Disconnect(DisconnectPacket),
    Sub(SubPacket),
    Suback(SubackPacket),
}

impl Packet {
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::Connack(_) => PacketType::Connack,
            Packet::Send(_) => PacketType::Send,
            Packet::Sendack(_) => PacketType::Sendack,
            Packet::Recv(_) => PacketType::Recv,
            Packet::Recvack(_) => PacketType::Recvack,
            Packet::Ping => PacketType::Ping,
            Packet::Pong => PacketType::Pong,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Sub(_) => PacketType::Sub,
            Packet::Suback(_) => PacketType::Suback,
        }
    }
}

macro_rules! impl_from_packet {
    ($($ty:ident => $var:ident),* $(,)?) => {
        $(impl From<$ty> for Packet {
            fn from(p: $ty) -> Packet {
                Packet::$var(p)
            }
        })*
    };
}

impl_from_packet!(
    ConnectPacket => Connect,
    ConnackPacket => Connack,
    SendPacket => Send,
    SendackPacket => Sendack,
    RecvPacket => Recv,
    RecvackPacket => Recvack,
    DisconnectPacket => Disconnect,
    SubPacket => Sub,
    SubackPacket => Suback,
);
