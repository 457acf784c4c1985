//! Properties of the session crypto: both handshake sides always derive the same cipher, AES
//! round-trips any payload, sealed packets open on the other side, and any tampering with a field
//! covered by the msgKey is detected.

use bytes::Bytes;
use proptest::prelude::*;
use wukongim::proto::{
    server_handshake, server_handshake_with, ClientKeys, CryptoError, RecvPacket, SendPacket,
    SessionCipher,
};

fn cipher() -> impl Strategy<Value = SessionCipher> {
    (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(k, iv)| SessionCipher::new(k, iv))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn handshake_sides_agree(client in any::<[u8; 32]>(), server in any::<[u8; 32]>(), salt in "[A-Za-z0-9]{16,24}") {
        let c = ClientKeys::from_secret(client);
        let hs = server_handshake_with(&c.public_key(), server, &salt).unwrap();
        let derived = c.derive(&hs.server_key, &hs.salt).unwrap();
        prop_assert_eq!(&derived, &hs.cipher);
        prop_assert_eq!(&derived.iv[..], &salt.as_bytes()[..16]);
        prop_assert!(derived.aes_key.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
    }

    #[test]
    fn aes_round_trips(c in cipher(), plain in proptest::collection::vec(any::<u8>(), 0..200)) {
        let text = c.encrypt(&plain);
        prop_assert!(text.iter().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b)));
        prop_assert_eq!(text.len() % 4, 0);
        prop_assert_eq!(c.decrypt(&text).unwrap(), plain);
    }

    #[test]
    fn decrypt_of_garbage_is_an_error_not_a_panic(c in cipher(), junk in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = c.decrypt(&junk);
    }

    #[test]
    fn sealed_send_opens_and_tampering_is_caught(
        c in cipher(), seq in any::<u32>(), no in ".{0,10}", ch in ".{0,10}", ty in any::<u8>(),
        plain in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut p = SendPacket { client_seq: seq, client_msg_no: no, channel_id: ch, channel_type: ty, payload: Bytes::from(plain.clone()), ..Default::default() };
        c.seal_send(&mut p);
        prop_assert_eq!(c.open_send(&p).unwrap(), plain);
        let mut bad = p.clone();
        bad.client_seq = bad.client_seq.wrapping_add(1);
        prop_assert_eq!(c.open_send(&bad), Err(CryptoError::MsgKeyMismatch));
        let mut bad = p.clone();
        bad.channel_type = bad.channel_type.wrapping_add(1);
        // channelType is the last number before the (unchanged) payload text, so the verify
        // string always changes.
        prop_assert_eq!(c.open_send(&bad), Err(CryptoError::MsgKeyMismatch));
    }

    #[test]
    fn sealed_recv_opens_and_tampering_is_caught(
        c in cipher(), id in any::<i64>(), seq in any::<u64>(), ts in any::<i32>(), from in ".{0,8}",
        plain in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut p = RecvPacket { message_id: id, message_seq: seq, timestamp: ts, from_uid: from, channel_id: "g".into(), channel_type: 2, client_msg_no: "n".into(), payload: Bytes::from(plain.clone()), ..Default::default() };
        c.seal_recv(&mut p);
        prop_assert_eq!(c.open_recv(&p).unwrap(), plain);
        let mut bad = p.clone();
        bad.channel_id = "h".into();
        prop_assert_eq!(c.open_recv(&bad), Err(CryptoError::MsgKeyMismatch));
    }
}

#[test]
fn fresh_handshakes_differ() {
    let c = ClientKeys::generate();
    let a = server_handshake(&c.public_key()).unwrap();
    let b = server_handshake(&c.public_key()).unwrap();
    assert_ne!(a.server_key, b.server_key);
    assert_ne!(a.salt, b.salt);
    assert_eq!(c.derive(&a.server_key, &a.salt).unwrap(), a.cipher);
}

#[test]
fn recv_verify_string_formats_like_the_sdk() {
    // messageID and timestamp are read unsigned by the SDK; ordinary values print the same.
    let p = RecvPacket {
        message_id: 1234567890123456789,
        message_seq: 7,
        client_msg_no: "cmn".into(),
        timestamp: 1700000000,
        from_uid: "bob".into(),
        channel_id: "bob".into(),
        channel_type: 1,
        payload: Bytes::from_static(b"QUJD"),
        ..Default::default()
    };
    assert_eq!(
        wukongim::proto::crypto::recv_verify_bytes(&p),
        b"12345678901234567897cmn1700000000bobbob1QUJD".to_vec()
    );
    let s = SendPacket {
        client_seq: 5,
        client_msg_no: "m".into(),
        channel_id: "g1".into(),
        channel_type: 2,
        payload: Bytes::from_static(b"QUJD"),
        ..Default::default()
    };
    assert_eq!(
        wukongim::proto::crypto::send_verify_bytes(&s),
        b"5mg12QUJD".to_vec()
    );
}
