//! RECV framing: a stored message as this session sees it (the person channel named after the
//! other party), encrypted with the session key unless the sender opted out.

use super::Session;
use crate::proto::{encode, HeaderFlags, Packet, RecvPacket};
use crate::store::Message;
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;

/// `m` as this session's RECV frame.
pub(super) fn frame(s: &Session, m: &Message) -> Bytes {
    let mut p = RecvPacket {
        flags: HeaderFlags {
            dup: false,
            sync_once: m.header.sync_once,
            red_dot: m.header.red_dot,
            no_persist: m.header.no_persist,
        },
        setting: crate::proto::Setting(m.setting),
        msg_key: String::new(),
        from_uid: m.from_uid.clone(),
        channel_id: m.recv_channel_for(&s.uid),
        channel_type: m.channel_type,
        expire: m.expire,
        client_msg_no: m.client_msg_no.clone(),
        stream_no: m.stream_no.clone(),
        stream_seq: 0,
        stream_flag: 0,
        message_id: m.message_id,
        message_seq: m.message_seq,
        timestamp: m.timestamp,
        topic: m.topic.clone().unwrap_or_default(),
        payload: Bytes::copy_from_slice(&m.payload),
    };
    if !p.setting.no_encrypt() {
        s.cipher.seal_recv(&mut p);
    }
    s.app.traffic.out_msgs.fetch_add(1, Relaxed);
    encode(&Packet::Recv(p), s.version).unwrap_or_default()
}
