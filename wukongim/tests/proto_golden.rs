//! Golden vectors produced by the real JS SDK (`tests/js/golden/gen.js` → `vectors.json`): the
//! bytes the SDK encodes must decode to the recorded fields and re-encode identically; the bytes
//! the SDK was shown to accept must be exactly what our encoder produces; and the session crypto
//! (handshake, AES, both msgKeys) must agree with the SDK's. No Node needed at test time.

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use wukongim::proto::{
    encode, server_handshake_with, ClientKeys, ConnackPacket, ConnectPacket, Decoder,
    DisconnectPacket, HeaderFlags, Packet, ReasonCode, RecvPacket, RecvackPacket, SendPacket,
    SendackPacket, SessionCipher, Setting, SubPacket, SubackPacket,
};

const VECTORS: &str = include_str!("../../tests/js/golden/vectors.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("vectors.json parses")
}

fn unhex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() & 1, 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn text(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("string field {key} in {v}"))
        .to_owned()
}

/// Integers may be JSON numbers or decimal strings (64-bit values do not survive JS numbers).
fn int<T: std::str::FromStr>(v: &Value, key: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    match &v[key] {
        Value::Number(n) => n.to_string().parse().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("integer field {key}: {other}"),
    }
}

fn flags(v: &Value) -> HeaderFlags {
    let f = &v["flags"];
    let b = |k: &str| f[k].as_bool().unwrap();
    HeaderFlags {
        dup: b("dup"),
        sync_once: b("sync_once"),
        red_dot: b("red_dot"),
        no_persist: b("no_persist"),
    }
}

fn reason(v: &Value) -> ReasonCode {
    ReasonCode::from_u8(int(v, "reason_code"))
}

fn payload(v: &Value) -> Bytes {
    Bytes::from(unhex(&text(v, "payload_hex")))
}

fn packet(v: &Value) -> Packet {
    match v["type"].as_str().unwrap() {
        "CONNECT" => Packet::Connect(ConnectPacket {
            version: int(v, "version"),
            device_flag: int(v, "device_flag"),
            device_id: text(v, "device_id"),
            uid: text(v, "uid"),
            token: text(v, "token"),
            client_timestamp: int(v, "client_timestamp"),
            client_key: text(v, "client_key"),
        }),
        "CONNACK" => Packet::Connack(ConnackPacket {
            server_version: int(v, "server_version"),
            time_diff: int(v, "time_diff"),
            reason_code: reason(v),
            server_key: text(v, "server_key"),
            salt: text(v, "salt"),
            node_id: int(v, "node_id"),
        }),
        "SEND" => Packet::Send(SendPacket {
            flags: flags(v),
            setting: Setting(int(v, "setting")),
            client_seq: int(v, "client_seq"),
            client_msg_no: text(v, "client_msg_no"),
            stream_no: text(v, "stream_no"),
            channel_id: text(v, "channel_id"),
            channel_type: int(v, "channel_type"),
            expire: int(v, "expire"),
            msg_key: text(v, "msg_key"),
            topic: text(v, "topic"),
            payload: payload(v),
        }),
        "SENDACK" => Packet::Sendack(SendackPacket {
            message_id: int(v, "message_id"),
            client_seq: int(v, "client_seq"),
            message_seq: int(v, "message_seq"),
            reason_code: reason(v),
        }),
        "RECV" => Packet::Recv(RecvPacket {
            flags: flags(v),
            setting: Setting(int(v, "setting")),
            msg_key: text(v, "msg_key"),
            from_uid: text(v, "from_uid"),
            channel_id: text(v, "channel_id"),
            channel_type: int(v, "channel_type"),
            expire: int(v, "expire"),
            client_msg_no: text(v, "client_msg_no"),
            stream_no: text(v, "stream_no"),
            stream_seq: int(v, "stream_seq"),
            stream_flag: int(v, "stream_flag"),
            message_id: int(v, "message_id"),
            message_seq: int(v, "message_seq"),
            timestamp: int(v, "timestamp"),
            topic: text(v, "topic"),
            payload: payload(v),
        }),
        "RECVACK" => Packet::Recvack(RecvackPacket {
            flags: flags(v),
            message_id: int(v, "message_id"),
            message_seq: int(v, "message_seq"),
        }),
        "PING" => Packet::Ping,
        "PONG" => Packet::Pong,
        "DISCONNECT" => Packet::Disconnect(DisconnectPacket {
            reason_code: reason(v),
            reason: text(v, "reason"),
        }),
        "SUB" => Packet::Sub(SubPacket {
            setting: Setting(int(v, "setting")),
            sub_no: text(v, "sub_no"),
            channel_id: text(v, "channel_id"),
            channel_type: int(v, "channel_type"),
            action: int(v, "action"),
            param: text(v, "param"),
        }),
        "SUBACK" => Packet::Suback(SubackPacket {
            sub_no: text(v, "sub_no"),
            channel_id: text(v, "channel_id"),
            channel_type: int(v, "channel_type"),
            action: int(v, "action"),
            reason_code: reason(v),
        }),
        other => panic!("unknown packet type {other}"),
    }
}

/// Every vector in `section` must decode to its fields (consuming exactly its bytes) and the
/// fields must encode to exactly its bytes.
fn check_section(section: &str) -> usize {
    let all = vectors();
    let list = all[section].as_array().unwrap();
    assert!(!list.is_empty());
    for v in list {
        let name = text(v, "name");
        let version: u8 = int(v, "version");
        let bytes = unhex(&text(v, "hex"));
        let want = packet(&v["packet"]);
        let mut buf = BytesMut::from(&bytes[..]);
        let got = Decoder::default().decode(&mut buf, version);
        assert_eq!(got, Ok(Some(want.clone())), "{section}/{name}: decode");
        assert!(buf.is_empty(), "{section}/{name}: leftover bytes");
        let enc =
            encode(&want, version).unwrap_or_else(|e| panic!("{section}/{name}: encode: {e}"));
        assert_eq!(enc.to_vec(), bytes, "{section}/{name}: encode differs");
    }
    list.len()
}

#[test]
fn golden_c2s_sdk_encoded_packets_round_trip() {
    assert!(check_section("c2s") >= 10);
}

#[test]
fn golden_s2c_our_encoding_is_what_the_sdk_accepts() {
    assert!(check_section("s2c") >= 8);
}

#[test]
fn golden_layout_versions_3_to_6() {
    let all = vectors();
    let versions: Vec<u8> = all["layout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| int(v, "version"))
        .collect();
    for v in 3..=6 {
        assert!(versions.contains(&v), "no layout vector for v{v}");
    }
    check_section("layout");
}

#[test]
fn golden_sdk_stream_decodes_in_one_buffer() {
    // The SDK's packets back to back, split at every byte boundary, still decode in order.
    let all = vectors();
    let list = all["c2s"].as_array().unwrap();
    let stream: Vec<u8> = list.iter().flat_map(|v| unhex(&text(v, "hex"))).collect();
    let want: Vec<Packet> = list.iter().map(|v| packet(&v["packet"])).collect();
    let mut dec = Decoder::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in stream {
        buf.extend_from_slice(&[b]);
        while let Some(p) = dec.decode(&mut buf, 2).unwrap() {
            got.push(p);
        }
    }
    assert_eq!(got, want);
    assert!(buf.is_empty());
}

fn cipher() -> SessionCipher {
    let c = &vectors()["crypto"];
    let key: [u8; 16] = text(c, "aes_key").as_bytes().try_into().unwrap();
    let iv: [u8; 16] = text(c, "aes_iv").as_bytes().try_into().unwrap();
    SessionCipher::new(key, iv)
}

#[test]
fn golden_handshake_derives_the_sdk_session_key() {
    let all = vectors();
    let c = &all["crypto"];
    let seed: [u8; 32] = unhex(&text(c, "client_seed_hex")).try_into().unwrap();
    let server_secret: [u8; 32] = unhex(&text(c, "server_secret_hex")).try_into().unwrap();
    let client = ClientKeys::from_secret(seed);
    assert_eq!(
        client.public_key(),
        text(c, "client_public_key"),
        "curve25519-js and x25519-dalek agree"
    );
    let hs = server_handshake_with(&client.public_key(), server_secret, &text(c, "salt")).unwrap();
    assert_eq!(hs.server_key, text(c, "server_public_key"));
    assert_eq!(hs.salt, text(c, "salt"));
    assert_eq!(
        hs.cipher,
        cipher(),
        "server derives the key the SDK derived in ConnectManager.onPacket"
    );
    assert_eq!(client.derive(&hs.server_key, &hs.salt).unwrap(), cipher());
    // The CONNACK vector that drove the SDK's key derivation carries exactly these values.
    let connack = all["s2c"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "connack_success_v2")
        .unwrap();
    assert_eq!(text(&connack["packet"], "server_key"), hs.server_key);
    assert_eq!(text(&connack["packet"], "salt"), hs.salt);
}

#[test]
fn golden_aes_matches_sdk_security_manager() {
    let all = vectors();
    let c = cipher();
    for v in all["crypto"]["aes"].as_array().unwrap() {
        let plain = unhex(&text(v, "plain_hex"));
        let ct = text(v, "cipher_text");
        assert_eq!(String::from_utf8(c.encrypt(&plain)).unwrap(), ct);
        assert_eq!(c.decrypt(ct.as_bytes()).unwrap(), plain);
    }
}

#[test]
fn golden_send_msg_key_and_payload_match_sdk() {
    let all = vectors();
    let c = cipher();
    let mut n = 0;
    for v in all["c2s"].as_array().unwrap() {
        let Packet::Send(p) = packet(&v["packet"]) else {
            continue;
        };
        let plain = unhex(&text(v, "plain_hex"));
        assert_eq!(c.send_msg_key(&p), p.msg_key, "{}", text(v, "name"));
        assert_eq!(c.open_send(&p).unwrap(), plain);
        // A Rust test client seals the plaintext into the very same packet.
        let mut mine = SendPacket {
            payload: plain.into(),
            msg_key: String::new(),
            ..p.clone()
        };
        c.seal_send(&mut mine);
        assert_eq!(mine, p);
        n += 1;
    }
    assert!(n >= 4);
}

#[test]
fn golden_recv_sealed_by_us_is_what_the_sdk_accepted() {
    let all = vectors();
    let c = cipher();
    let mut n = 0;
    for v in all["s2c"].as_array().unwrap() {
        let Packet::Recv(p) = packet(&v["packet"]) else {
            continue;
        };
        let plain = unhex(&text(v, "plain_hex"));
        assert_eq!(c.recv_msg_key(&p), p.msg_key, "{}", text(v, "name"));
        let mut mine = RecvPacket {
            payload: plain.clone().into(),
            msg_key: String::new(),
            ..p.clone()
        };
        c.seal_recv(&mut mine);
        assert_eq!(mine, p);
        assert_eq!(c.open_recv(&p).unwrap(), plain);
        n += 1;
    }
    assert!(n >= 3);
}

#[test]
fn golden_tampered_msg_key_is_rejected() {
    let all = vectors();
    let c = cipher();
    let send = all["c2s"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["packet"]["type"] == "SEND")
        .unwrap();
    let Packet::Send(mut p) = packet(&send["packet"]) else {
        unreachable!()
    };
    p.channel_id.push('x');
    assert!(c.open_send(&p).is_err());
}
