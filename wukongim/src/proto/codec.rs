//! Packet bodies ↔ bytes, per protocol version. `encode` produces whole frames; the streaming
//! [`super::Decoder`] cuts frames out of a byte stream and calls [`decode_body`] here.
//!
//! Version rules, checked against the SDK 1.0.4 `proto.js` (which always speaks v2) and the Go
//! `wkproto` codec (`pkg/protocol/codec`, and the older `WuKongIMGoProto` repository):
//! - v >= 3: SEND and RECV carry `expire u32` right after channelType.
//! - v >= 4: CONNACK ends with `nodeId u64`; v > 3: CONNACK starts with serverVersion (header bit0).
//! - 2 <= v < 5: stream fields exist when the setting's stream bit (0x04) is set.
//! - v >= 6: messageSeq is u64 in SENDACK, RECV and RECVACK; before it is u32.
//!
//! Decoders ignore bytes left after the last field of fixed-layout packets (the SDK and Go do
//! too; it lets newer peers append fields). SEND and RECV end with the payload, so for them
//! nothing is ever left over.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::ProtoError;
use super::packet::*;
use super::reason::ReasonCode;
use super::setting::Setting;
use super::wire::{put_varint, Reader, Writer};
use super::{MAX_VERSION, MIN_VERSION};

fn has_stream_fields(version: u8, setting: Setting) -> bool {
    (2..5).contains(&version) && setting.stream()
}

fn check_version(packet: PacketType, version: u8) -> Result<(), ProtoError> {
    if packet.is_version_dependent() && !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(ProtoError::UnsupportedVersion { packet, version });
    }
    Ok(())
}

fn write_seq(w: &mut Writer, seq: u64, version: u8) -> Result<(), ProtoError> {
    if version >= 6 {
        w.u64(seq);
    } else {
        let s = u32::try_from(seq).map_err(|_| ProtoError::MessageSeqOverflow { seq, version })?;
        w.u32(s);
    }
    Ok(())
}

fn read_seq(r: &mut Reader, version: u8) -> Result<u64, ProtoError> {
    if version >= 6 {
        r.u64("messageSeq")
    } else {
        r.u32("messageSeq").map(u64::from)
    }
}

/// Encodes one packet as a complete frame for a session speaking `version`.
///
/// CONNECT, PING, PONG, DISCONNECT, SUB and SUBACK accept any `version` (their layout never
/// changes); the others need 2..=6. Fields that do not exist in `version` (or whose setting bit is
/// clear) are silently left out, exactly like the Go encoder.
pub fn encode(packet: &Packet, version: u8) -> Result<Bytes, ProtoError> {
    let mut dst = BytesMut::new();
    encode_into(packet, version, &mut dst)?;
    Ok(dst.freeze())
}

/// Like [`encode`], appending the frame to `dst`. On error nothing is appended.
pub fn encode_into(packet: &Packet, version: u8, dst: &mut BytesMut) -> Result<(), ProtoError> {
    let ptype = packet.packet_type();
    check_version(ptype, version)?;
    let kind = (ptype as u8) << 4;
    let mut w = Writer::new();
    let flags: u8 = match packet {
        Packet::Ping | Packet::Pong => {
            dst.put_u8(kind);
            return Ok(());
        }
        Packet::Connect(p) => {
            w.u8(p.version);
            w.u8(p.device_flag);
            w.string(&p.device_id, "deviceID")?;
            w.string(&p.uid, "uid")?;
            w.string(&p.token, "token")?;
            w.i64(p.client_timestamp);
            w.string(&p.client_key, "clientKey")?;
            0
        }
        Packet::Connack(p) => {
            let has_server_version = version > 3;
            if has_server_version {
                w.u8(p.server_version);
            }
            w.i64(p.time_diff);
            w.u8(p.reason_code.to_u8());
            w.string(&p.server_key, "serverKey")?;
            w.string(&p.salt, "salt")?;
            if version >= 4 {
                w.u64(p.node_id);
            }
            has_server_version as u8
        }
        Packet::Send(p) => {
            w.u8(p.setting.0);
            w.u32(p.client_seq);
            w.string(&p.client_msg_no, "clientMsgNo")?;
            if has_stream_fields(version, p.setting) {
                w.string(&p.stream_no, "streamNo")?;
            }
            w.string(&p.channel_id, "channelID")?;
            w.u8(p.channel_type);
            if version >= 3 {
                w.u32(p.expire);
            }
            w.string(&p.msg_key, "msgKey")?;
            if p.setting.topic() {
                w.string(&p.topic, "topic")?;
            }
            w.bytes(&p.payload);
            p.flags.bits()
        }
        Packet::Sendack(p) => {
            w.i64(p.message_id);
            w.u32(p.client_seq);
            write_seq(&mut w, p.message_seq, version)?;
            w.u8(p.reason_code.to_u8());
            0
        }
        Packet::Recv(p) => {
            w.u8(p.setting.0);
            w.string(&p.msg_key, "msgKey")?;
            w.string(&p.from_uid, "fromUID")?;
            w.string(&p.channel_id, "channelID")?;
            w.u8(p.channel_type);
            if version >= 3 {
                w.u32(p.expire);
            }
            w.string(&p.client_msg_no, "clientMsgNo")?;
            if has_stream_fields(version, p.setting) {
                w.string(&p.stream_no, "streamNo")?;
                w.u32(p.stream_seq);
                w.u8(p.stream_flag);
            }
            w.i64(p.message_id);
            write_seq(&mut w, p.message_seq, version)?;
            w.i32(p.timestamp);
            if p.setting.topic() {
                w.string(&p.topic, "topic")?;
            }
            w.bytes(&p.payload);
            p.flags.bits()
        }
        Packet::Recvack(p) => {
            w.i64(p.message_id);
            write_seq(&mut w, p.message_seq, version)?;
            p.flags.bits()
        }
        Packet::Disconnect(p) => {
            w.u8(p.reason_code.to_u8());
            w.string(&p.reason, "reason")?;
            0
        }
        Packet::Sub(p) => {
            w.u8(p.setting.0);
            w.string(&p.sub_no, "subNo")?;
            w.string(&p.channel_id, "channelID")?;
            w.u8(p.channel_type);
            w.u8(p.action);
            w.string(&p.param, "param")?;
            0
        }
        Packet::Suback(p) => {
            w.string(&p.sub_no, "subNo")?;
            w.string(&p.channel_id, "channelID")?;
            w.u8(p.channel_type);
            w.u8(p.action);
            w.u8(p.reason_code.to_u8());
            0
        }
    };
    let body = w.buf;
    let mut header = BytesMut::with_capacity(5);
    header.put_u8(kind | flags);
    put_varint(&mut header, body.len())?;
    dst.reserve(header.len() + body.len());
    dst.put_slice(&header);
    dst.put_slice(&body);
    Ok(())
}

/// Decodes the body of one frame whose header byte was `header` (type nibble already validated).
pub(crate) fn decode_body(
    ptype: PacketType,
    header: u8,
    body: Bytes,
    version: u8,
) -> Result<Packet, ProtoError> {
    check_version(ptype, version)?;
    let flags = HeaderFlags::from_bits(header & 0x0F);
    let mut r = Reader::new(body);
    let reason = |r: &mut Reader, f| r.u8(f).map(ReasonCode::from_u8);
    Ok(match ptype {
        PacketType::Ping => Packet::Ping,
        PacketType::Pong => Packet::Pong,
        PacketType::Connect => Packet::Connect(ConnectPacket {
            version: r.u8("version")?,
            device_flag: r.u8("deviceFlag")?,
            device_id: r.string("deviceID")?,
            uid: r.string("uid")?,
            token: r.string("token")?,
            client_timestamp: r.i64("clientTimestamp")?,
            client_key: r.string("clientKey")?,
        }),
        PacketType::Connack => {
            let server_version = if header & 0x01 != 0 {
                r.u8("serverVersion")?
            } else {
                0
            };
            Packet::Connack(ConnackPacket {
                server_version,
                time_diff: r.i64("timeDiff")?,
                reason_code: reason(&mut r, "reasonCode")?,
                server_key: r.string("serverKey")?,
                salt: r.string("salt")?,
                node_id: if version >= 4 { r.u64("nodeId")? } else { 0 },
            })
        }
        PacketType::Send => {
            let setting = Setting(r.u8("setting")?);
            let client_seq = r.u32("clientSeq")?;
            let client_msg_no = r.string("clientMsgNo")?;
            let stream_no = if has_stream_fields(version, setting) {
                r.string("streamNo")?
            } else {
                String::new()
            };
            let channel_id = r.string("channelID")?;
            let channel_type = r.u8("channelType")?;
            let expire = if version >= 3 { r.u32("expire")? } else { 0 };
            let msg_key = r.string("msgKey")?;
            let topic = if setting.topic() {
                r.string("topic")?
            } else {
                String::new()
            };
            Packet::Send(SendPacket {
                flags,
                setting,
                client_seq,
                client_msg_no,
                stream_no,
                channel_id,
                channel_type,
                expire,
                msg_key,
                topic,
                payload: r.rest(),
            })
        }
        PacketType::Sendack => Packet::Sendack(SendackPacket {
            message_id: r.i64("messageID")?,
            client_seq: r.u32("clientSeq")?,
            message_seq: read_seq(&mut r, version)?,
            reason_code: reason(&mut r, "reasonCode")?,
        }),
        PacketType::Recv => {
            let setting = Setting(r.u8("setting")?);
            let msg_key = r.string("msgKey")?;
            let from_uid = r.string("fromUID")?;
            let channel_id = r.string("channelID")?;
            let channel_type = r.u8("channelType")?;
            let expire = if version >= 3 { r.u32("expire")? } else { 0 };
            let client_msg_no = r.string("clientMsgNo")?;
            let (stream_no, stream_seq, stream_flag) = if has_stream_fields(version, setting) {
                (
                    r.string("streamNo")?,
                    r.u32("streamSeq")?,
                    r.u8("streamFlag")?,
                )
            } else {
                (String::new(), 0, 0)
            };
            let message_id = r.i64("messageID")?;
            let message_seq = read_seq(&mut r, version)?;
            let timestamp = r.i32("timestamp")?;
            let topic = if setting.topic() {
                r.string("topic")?
            } else {
                String::new()
            };
            Packet::Recv(RecvPacket {
                flags,
                setting,
                msg_key,
                from_uid,
                channel_id,
                channel_type,
                expire,
                client_msg_no,
                stream_no,
                stream_seq,
                stream_flag,
                message_id,
                message_seq,
                timestamp,
                topic,
                payload: r.rest(),
            })
        }
        PacketType::Recvack => Packet::Recvack(RecvackPacket {
            flags,
            message_id: r.i64("messageID")?,
            message_seq: read_seq(&mut r, version)?,
        }),
        PacketType::Disconnect => Packet::Disconnect(DisconnectPacket {
            reason_code: reason(&mut r, "reasonCode")?,
            reason: r.string("reason")?,
        }),
        PacketType::Sub => Packet::Sub(SubPacket {
            setting: Setting(r.u8("setting")?),
            sub_no: r.string("subNo")?,
            channel_id: r.string("channelID")?,
            channel_type: r.u8("channelType")?,
            action: r.u8("action")?,
            param: r.string("param")?,
        }),
        PacketType::Suback => Packet::Suback(SubackPacket {
            sub_no: r.string("subNo")?,
            channel_id: r.string("channelID")?,
            channel_type: r.u8("channelType")?,
            action: r.u8("action")?,
            reason_code: reason(&mut r, "reasonCode")?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_pong_are_one_byte() {
        assert_eq!(&encode(&Packet::Ping, 0).unwrap()[..], [0x70]);
        assert_eq!(&encode(&Packet::Pong, 6).unwrap()[..], [0x80]);
    }

    #[test]
    fn connack_server_version_only_above_v3() {
        let p = Packet::Connack(ConnackPacket {
            server_version: 4,
            reason_code: ReasonCode::Success,
            ..Default::default()
        });
        let v3 = encode(&p, 3).unwrap();
        assert_eq!(v3[0], 0x20);
        assert_eq!(v3[1] as usize, 8 + 1 + 2 + 2);
        let v4 = encode(&p, 4).unwrap();
        assert_eq!(v4[0], 0x21);
        assert_eq!(v4[1] as usize, 1 + 8 + 1 + 2 + 2 + 8);
        assert_eq!(v4[2], 4);
    }

    #[test]
    fn version_dependent_packets_need_a_version() {
        let p = Packet::Recvack(RecvackPacket::default());
        for v in [0, 1, 7, 255] {
            assert!(matches!(
                encode(&p, v),
                Err(ProtoError::UnsupportedVersion { .. })
            ));
        }
        assert!(encode(&Packet::Connect(ConnectPacket::default()), 0).is_ok());
        assert!(encode(&Packet::Disconnect(DisconnectPacket::default()), 0).is_ok());
    }

    #[test]
    fn seq_overflow_below_v6() {
        let p = Packet::Sendack(SendackPacket {
            message_seq: 1 << 32,
            ..Default::default()
        });
        assert!(matches!(
            encode(&p, 5),
            Err(ProtoError::MessageSeqOverflow { .. })
        ));
        assert!(encode(&p, 6).is_ok());
    }

    #[test]
    fn long_string_is_an_error() {
        let p = Packet::Disconnect(DisconnectPacket {
            reason: "x".repeat(70_000),
            ..Default::default()
        });
        assert!(matches!(
            encode(&p, 2),
            Err(ProtoError::StringTooLong {
                field: "reason",
                ..
            })
        ));
    }

    #[test]
    fn send_v2_layout_by_hand() {
        let p = Packet::Send(SendPacket {
            flags: HeaderFlags {
                red_dot: true,
                ..Default::default()
            },
            setting: Setting(Setting::STREAM),
            client_seq: 1,
            client_msg_no: "m".into(),
            stream_no: "s".into(),
            channel_id: "c".into(),
            channel_type: 1,
            expire: 0,
            msg_key: "k".into(),
            topic: String::new(),
            payload: Bytes::from_static(b"P"),
        });
        let b = encode(&p, 2).unwrap();
        let want: &[u8] = &[
            0x32, 19, 0x04, 0, 0, 0, 1, 0, 1, b'm', 0, 1, b's', 0, 1, b'c', 1, 0, 1, b'k', b'P',
        ];
        assert_eq!(&b[..], want);
        // v5: no stream field, expire present.
        let b5 = encode(&p, 5).unwrap();
        let want5: &[u8] = &[
            0x32, 20, 0x04, 0, 0, 0, 1, 0, 1, b'm', 0, 1, b'c', 1, 0, 0, 0, 0, 0, 1, b'k', b'P',
        ];
        assert_eq!(&b5[..], want5);
    }
}
