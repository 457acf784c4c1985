//! Hostile-input properties of the streaming decoder: arbitrary bytes in arbitrary chunk splits
//! never panic, `Ok(None)` never consumes, every success consumes exactly one frame, framing
//! limits hold for any `max_frame`, and a mutated valid frame never panics either.

use bytes::BytesMut;
use proptest::prelude::*;
use wukongim::proto::{
    encode, Decoder, DisconnectPacket, Packet, ProtoError, ReasonCode, RecvPacket,
};

/// Feeds `data` in chunks, decoding greedily; stops at the first error (as a server would).
fn feed(data: &[u8], cuts: &[usize], version: u8, max_frame: usize) -> Result<(), TestCaseError> {
    let mut dec = Decoder { max_frame };
    let mut buf = BytesMut::new();
    let (mut pos, mut i) = (0, 0);
    while pos < data.len() {
        let n = cuts[i % cuts.len()].clamp(1, data.len() - pos);
        i += 1;
        buf.extend_from_slice(&data[pos..pos + n]);
        pos += n;
        loop {
            let before = buf.len();
            match dec.decode(&mut buf, version) {
                Ok(Some(_)) => prop_assert!(buf.len() < before, "success must consume"),
                Ok(None) => {
                    prop_assert_eq!(buf.len(), before, "Ok(None) must not consume");
                    break;
                }
                Err(ProtoError::FrameTooLarge { len, max }) => {
                    prop_assert!(len > max);
                    prop_assert_eq!(max, max_frame);
                    prop_assert_eq!(buf.len(), before);
                    return Ok(());
                }
                Err(
                    ProtoError::UnknownPacketType(_)
                    | ProtoError::VarintTooLong
                    | ProtoError::UnsupportedVersion { .. },
                ) => {
                    prop_assert_eq!(buf.len(), before, "framing errors consume nothing");
                    return Ok(());
                }
                Err(_) => {
                    prop_assert!(buf.len() < before, "body errors consume the bad frame");
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

fn version() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), 2u8..=6, any::<u8>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(1usize..32, 1..16),
        version in version(),
        max_frame in prop_oneof![Just(1024usize * 1024), 0usize..300],
    ) {
        feed(&data, &cuts, version, max_frame)?;
    }

    #[test]
    fn bodies_of_every_type_with_random_bytes_never_panic(
        ptype in 1u8..=11,
        flags in 0u8..16,
        body in proptest::collection::vec(any::<u8>(), 0..200),
        version in 2u8..=6,
    ) {
        // Well-framed garbage: a correct header announcing exactly the random body.
        let mut data = vec![ptype << 4 | flags];
        let mut len = body.len();
        loop {
            let mut d = (len % 128) as u8;
            len /= 128;
            if len > 0 { d |= 0x80; }
            data.push(d);
            if len == 0 { break; }
        }
        data.extend_from_slice(&body);
        let mut buf = BytesMut::from(&data[..]);
        let r = Decoder::default().decode(&mut buf, version);
        if ptype == 7 || ptype == 8 {
            prop_assert!(matches!(r, Ok(Some(_))));
        } else {
            prop_assert!(!matches!(r, Ok(None)), "a complete frame yields a packet or an error");
            prop_assert!(buf.is_empty());
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        flip_at in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        truncate in any::<prop::sample::Index>(),
        version in 2u8..=6,
    ) {
        let p = Packet::Recv(RecvPacket {
            setting: wukongim::proto::Setting(0x0C),
            msg_key: "k".into(), from_uid: "u".into(), channel_id: "c".into(), channel_type: 1,
            client_msg_no: "n".into(), stream_no: "s".into(), topic: "t".into(),
            payload: bytes::Bytes::from_static(b"payload"), ..Default::default()
        });
        let mut data = encode(&p, version).unwrap().to_vec();
        for (at, b) in flip_at {
            let i = at.index(data.len());
            data[i] ^= b;
        }
        let keep = truncate.index(data.len() + 1);
        data.truncate(keep.max(1));
        feed(&data, &[usize::MAX], version, 1024)?;
    }
}

#[test]
fn huge_announced_length_is_refused_before_the_body() {
    // DISCONNECT claiming 268_435_455 bytes (max 4-byte varint): refused from 5 bytes of input,
    // and no allocation of that size happens.
    let mut buf = BytesMut::from(&[0x90u8, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(
        Decoder::default().decode(&mut buf, 2),
        Err(ProtoError::FrameTooLarge {
            len: 268_435_455,
            max: 1024 * 1024
        })
    );
    assert_eq!(buf.len(), 5);
}

#[test]
fn string_length_beyond_body_is_truncation_not_allocation() {
    // DISCONNECT body: reason 12, string length 0xFFFF but only 2 bytes follow.
    let mut buf = BytesMut::from(&[0x90u8, 0x05, 12, 0xFF, 0xFF, b'h', b'i'][..]);
    assert_eq!(
        Decoder::default().decode(&mut buf, 2),
        Err(ProtoError::Truncated { field: "reason" })
    );
    assert!(buf.is_empty());
}

#[test]
fn trailing_bytes_after_fixed_fields_are_ignored() {
    // Newer peers append fields (e.g. the newest Go SENDACK appends clientMsgNo); like the SDK
    // and Go, fixed-layout packets ignore what follows their last field.
    let p = Packet::Disconnect(DisconnectPacket {
        reason_code: ReasonCode::ConnectKick,
        reason: "x".into(),
    });
    let mut body = encode(&p, 2).unwrap().to_vec();
    body[1] += 3;
    body.extend_from_slice(&[1, 2, 3]);
    let mut buf = BytesMut::from(&body[..]);
    assert_eq!(Decoder::default().decode(&mut buf, 2), Ok(Some(p)));
    assert!(buf.is_empty());
}
