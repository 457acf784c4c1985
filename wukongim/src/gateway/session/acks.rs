//! SENDACK ordering: SENDs are pipelined (the next is read while earlier ones commit), and
//! their SENDACKs are written strictly in SEND order as the outcomes arrive. The queue lives in
//! the read loop (no task or channel of its own, so an idle connection pays nothing for it).

use super::Session;
use crate::core::{Outbound, ProposeError};
use crate::proto::{encode, Packet, ReasonCode, SendackPacket};
use crate::store::Outcome;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// SENDs whose SENDACK is not written yet; past this the read loop stops reading the socket.
pub(super) const MAX_IN_FLIGHT: usize = 1024;

/// A SENDACK waiting for its outcome, in the order the SENDs arrived.
pub(super) enum PendingAck {
    /// Refused before the write path: the reason is known.
    Refused {
        client_seq: u32,
        reason: ReasonCode,
        since: Instant,
    },
    Waiting {
        client_seq: u32,
        rx: oneshot::Receiver<Result<Outcome, ProposeError>>,
        since: Instant,
    },
}

/// The SENDACKs owed, oldest first.
#[derive(Default)]
pub(super) struct Acks(VecDeque<PendingAck>);

impl Acks {
    pub fn push(&mut self, p: PendingAck) {
        self.0.push_back(p);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Waits for the oldest SENDACK's outcome (never resolves when none is owed). Cancel-safe:
    /// the entry leaves the queue only once its outcome is in.
    pub async fn next(&mut self) -> (SendackPacket, Instant) {
        let ack = match self.0.front_mut() {
            None => std::future::pending().await,
            Some(PendingAck::Refused {
                client_seq,
                reason,
                since,
            }) => (sendack(*client_seq, 0, 0, *reason), *since),
            Some(PendingAck::Waiting {
                client_seq,
                rx,
                since,
            }) => (answer(*client_seq, rx.await), *since),
        };
        self.0.pop_front();
        if self.0.is_empty() {
            self.0.shrink_to(4); // a burst's queue is not kept while idle
        }
        ack
    }

    /// Writes every SENDACK still owed, in order (the client closed its side, or the session
    /// ends); stops when the writer is gone.
    pub async fn finish(&mut self, s: &Session, out: &mpsc::Sender<Outbound>) {
        while !self.is_empty() {
            let (ack, since) = self.next().await;
            if !write(s, out, ack, since).await {
                return;
            }
        }
    }
}

fn sendack(
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

/// Queues one SENDACK for the writer; false when the session's writer is gone.
pub(super) async fn write(
    s: &Session,
    out: &mpsc::Sender<Outbound>,
    ack: SendackPacket,
    since: Instant,
) -> bool {
    if ack.reason_code == ReasonCode::SystemError && s.app.draining.load(Relaxed) {
        // Not stored because the node is stopping: no answer, so the client resends it.
        return true;
    }
    s.app
        .traffic
        .send_ack
        .observe(since.elapsed().as_secs_f64());
    let frame = encode(&Packet::Sendack(ack), s.version).unwrap_or_default();
    out.send(Outbound::Frame(frame)).await.is_ok()
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
