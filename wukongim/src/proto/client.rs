//! The client side of a WuKongIM session, I/O-free: the CONNECT with a fresh Curve25519 key, the
//! session cipher derived from the CONNACK, encrypted text SENDs with increasing clientSeq,
//! RECV verification/decryption and the RECVACK that answers it — what `wukongimjssdk` does on
//! top of its socket. Shared by the test client (`tests/src/client.rs`) and `wk-bench`; each
//! brings its own transport (TCP or WebSocket) and only moves the packets built here.

use super::crypto::{ClientKeys, CryptoError, SessionCipher};
use super::packet::{
    ConnackPacket, ConnectPacket, HeaderFlags, Packet, RecvPacket, RecvackPacket, SendPacket,
};
use super::reason::ReasonCode;
use super::setting::Setting;

/// A session before its CONNACK: the key pair whose public half the CONNECT carries.
#[derive(Debug)]
pub struct ClientHello {
    keys: ClientKeys,
    version: u8,
}

impl ClientHello {
    /// A fresh key pair and the CONNECT packet to send first.
    pub fn new(
        version: u8,
        uid: &str,
        token: &str,
        device_flag: u8,
        device_id: &str,
    ) -> (ClientHello, Packet) {
        let keys = ClientKeys::generate();
        let connect = Packet::Connect(ConnectPacket {
            version,
            device_flag,
            device_id: device_id.into(),
            uid: uid.into(),
            token: token.into(),
            client_timestamp: 0,
            client_key: keys.public_key(),
        });
        (ClientHello { keys, version }, connect)
    }

    /// The session after a successful CONNACK; the CONNACK's reason code when it refused us.
    pub fn finish(self, ack: &ConnackPacket) -> Result<ClientSession, ConnectError> {
        if ack.reason_code != ReasonCode::Success {
            return Err(ConnectError::Refused(ack.reason_code));
        }
        let cipher = self.keys.derive(&ack.server_key, &ack.salt)?;
        Ok(ClientSession::new(self.version, cipher))
    }
}

/// Why a CONNECT did not produce a session.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("CONNACK refused the connection: {0:?}")]
    Refused(ReasonCode),
    #[error("CONNACK keys unusable: {0}")]
    Crypto(#[from] CryptoError),
}

/// An established session: its negotiated version, its cipher and the next clientSeq.
#[derive(Debug, Clone)]
pub struct ClientSession {
    pub version: u8,
    pub cipher: SessionCipher,
    next_seq: u32,
}

impl ClientSession {
    pub fn new(version: u8, cipher: SessionCipher) -> Self {
        ClientSession {
            version,
            cipher,
            next_seq: 1,
        }
    }

    /// An encrypted SEND (redDot set, as the SDK does) carrying `plain` as its payload; the
    /// clientSeq is the session's next one.
    pub fn send_packet(
        &mut self,
        channel_id: &str,
        channel_type: u8,
        plain: &[u8],
        client_msg_no: &str,
    ) -> SendPacket {
        let client_seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut p = SendPacket {
            flags: HeaderFlags {
                red_dot: true,
                ..Default::default()
            },
            setting: Setting(0),
            client_seq,
            client_msg_no: client_msg_no.into(),
            stream_no: String::new(),
            channel_id: channel_id.into(),
            channel_type,
            expire: 0,
            msg_key: String::new(),
            topic: String::new(),
            payload: plain.to_vec().into(),
        };
        self.cipher.seal_send(&mut p);
        p
    }

    /// Checks a RECV's msgKey and returns its decrypted payload.
    pub fn open_recv(&self, r: &RecvPacket) -> Result<Vec<u8>, CryptoError> {
        self.cipher.open_recv(r)
    }
}

/// The RECVACK for a RECV (the SDK copies the RECV's header flags).
pub fn recvack_for(r: &RecvPacket) -> Packet {
    Packet::Recvack(RecvackPacket {
        flags: r.flags,
        message_id: r.message_id,
        message_seq: r.message_seq,
    })
}

/// The JSON payload of a text message as the SDK builds it: `{"type":1,"content":…}`.
pub fn text_payload(text: &str) -> Vec<u8> {
    serde_json::json!({ "type": 1, "content": text })
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::server_handshake;

    #[test]
    fn a_send_sealed_by_the_client_opens_on_the_server() {
        let (hello, connect) = ClientHello::new(4, "u1", "", 0, "d1");
        let Packet::Connect(c) = connect else {
            panic!("not a CONNECT")
        };
        let hs = server_handshake(&c.client_key).unwrap();
        let ack = ConnackPacket {
            reason_code: ReasonCode::Success,
            server_key: hs.server_key.clone(),
            salt: hs.salt.clone(),
            ..Default::default()
        };
        let mut s = hello.finish(&ack).unwrap();
        let p = s.send_packet("g1", 2, &text_payload("hi"), "no1");
        assert_eq!(p.client_seq, 1);
        assert_eq!(hs.cipher.open_send(&p).unwrap(), text_payload("hi"));
        assert_eq!(s.send_packet("g1", 2, b"x", "no2").client_seq, 2);
    }

    #[test]
    fn a_refusal_is_an_error() {
        let (hello, _) = ClientHello::new(4, "u1", "", 0, "d1");
        let ack = ConnackPacket {
            reason_code: ReasonCode::AuthFail,
            ..Default::default()
        };
        assert!(matches!(
            hello.finish(&ack),
            Err(ConnectError::Refused(ReasonCode::AuthFail))
        ));
    }
}
