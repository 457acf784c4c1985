//! SEND handling: verifies and decrypts the payload, checks the channel, and queues the message
//! on the write path in arrival order. What comes back is the SENDACK to write, or the outcome
//! to wait for ([`PendingAck`]).

use super::acks::PendingAck;
use super::Session;
use crate::proto::{ReasonCode, SendPacket};
use crate::store::{Command, Header, SendCmd};

/// Turns a SEND into its pending SENDACK.
pub(super) async fn submit(s: &Session, p: SendPacket) -> PendingAck {
    let since = std::time::Instant::now();
    let client_seq = p.client_seq;
    let refused = |reason| PendingAck::Refused {
        client_seq,
        reason,
        since,
    };
    if !s.app.memory.admit() {
        return refused(ReasonCode::RateLimit);
    }
    let payload = if p.setting.no_encrypt() {
        p.payload.to_vec()
    } else {
        match s.cipher.open_send(&p) {
            Ok(plain) => plain,
            Err(e) => {
                tracing::info!(uid = %s.uid, error = %e, "SEND refused: payload decode");
                return refused(ReasonCode::PayloadDecodeError);
            }
        }
    };
    if p.channel_id.is_empty() {
        return refused(ReasonCode::ChannelIDError);
    }
    let cmd = Command::Send(SendCmd {
        from_uid: s.uid.clone(),
        from_device: s.device_id.clone(),
        channel_id: p.channel_id,
        channel_type: p.channel_type,
        client_msg_no: p.client_msg_no,
        setting: p.setting.0,
        header: Header {
            no_persist: p.flags.no_persist,
            red_dot: p.flags.red_dot,
            sync_once: p.flags.sync_once,
        },
        expire: p.expire,
        topic: (!p.topic.is_empty()).then_some(p.topic),
        stream_no: p.stream_no,
        payload,
        timestamp: crate::core::now_secs(),
        trusted: false,
    });
    match s.app.core.submit(cmd).await {
        Ok(rx) => PendingAck::Waiting {
            client_seq,
            rx,
            since,
        },
        Err(_) => refused(ReasonCode::SystemError),
    }
}
