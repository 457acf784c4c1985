//! SENDACK ordering: SENDs are pipelined (the next is read while earlier ones commit), and
//! their SENDACKs are written strictly in SEND order as the outcomes arrive.

use super::Session;
use crate::core::ProposeError;
use crate::proto::{encode, Packet, ReasonCode, SendackPacket};
use crate::store::Outcome;
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// A SENDACK waiting for its outcome, in the order the SENDs arrived.
pub(super) enum PendingAck {
    Ready(SendackPacket, Instant),
    Waiting {
        client_seq: u32,
        rx: oneshot::Receiver<Result<Outcome, ProposeError>>,
        since: Instant,
    },
}

pub(super) fn sendack(
    client_seq: u32,
    message_id: i64,
    message_seq: u64,
    reason: ReasonCode,
) -> SendackPacket {
    SendackPacket {
        message_id,
        client_seq,
        message_seq,
        reason_code: reason,
    }
}

/// Writes SENDACKs in SEND order as their outcomes arrive.
pub(super) async fn ack_loop(
    s: Arc<Session>,
    mut rx: mpsc::Receiver<PendingAck>,
    out: mpsc::Sender<Bytes>,
) {
    while let Some(p) = rx.recv().await {
        let (ack, since) = match p {
            PendingAck::Ready(a, since) => (a, since),
            PendingAck::Waiting {
                client_seq,
                rx,
                since,
            } => (answer(client_seq, rx.await), since),
        };
        if ack.reason_code == ReasonCode::SystemError && s.app.draining.load(Relaxed) {
            // Not stored because the node is stopping: no answer, so the client resends it.
            continue;
        }
        s.app
            .traffic
            .send_ack
            .observe(since.elapsed().as_secs_f64());
        if out
            .send(encode(&Packet::Sendack(ack), s.version).unwrap_or_default())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The SENDACK for a write's outcome.
fn answer(
    client_seq: u32,
    outcome: Result<Result<Outcome, ProposeError>, oneshot::error::RecvError>,
) -> SendackPacket {
    match outcome {
        Ok(Ok(Outcome::Sent {
            message_id,
            message_seq,
            ..
        })) => sendack(client_seq, message_id, message_seq, ReasonCode::Success),
        Ok(Ok(Outcome::Rejected { reason, .. })) => {
            sendack(client_seq, 0, 0, ReasonCode::from_u8(reason))
        }
        Ok(Ok(Outcome::Done)) => sendack(client_seq, 0, 0, ReasonCode::Success),
        Ok(Err(_)) | Err(_) => sendack(client_seq, 0, 0, ReasonCode::SystemError),
    }
}
