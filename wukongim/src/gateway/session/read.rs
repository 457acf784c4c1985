//! The read loop: decodes whole packets as bytes arrive (until `idleTimeout` passes without
//! any) and answers each one. A protocol error sends DISCONNECT and ends the session.

use super::acks::PendingAck;
use super::{disconnect, send, Session};
use crate::gateway::transport::Inbound;
use crate::proto::{encode, Decoder, Packet, ProtoError, ReasonCode, SubackPacket};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) async fn read_loop<R: Inbound>(
    s: &Session,
    r: &mut R,
    buf: &mut BytesMut,
    dec: &mut Decoder,
    out: &mpsc::Sender<Bytes>,
    acks: &mpsc::Sender<PendingAck>,
    closed: &CancellationToken,
) {
    let idle = s.app.config.conn.idle_timeout.0;
    loop {
        // Drain every whole packet already buffered.
        loop {
            match dec.decode(buf, s.version) {
                Ok(Some(p)) => {
                    s.app.traffic.packets_in.inc(p.packet_type() as u8);
                    if !handle(s, p, out, acks).await {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(uid = %s.uid, error = %e, "protocol error, closing");
                    let reason = match e {
                        ProtoError::FrameTooLarge { .. } => "packet too large",
                        _ => "malformed packet",
                    };
                    let _ = out
                        .send(disconnect(ReasonCode::SystemError, reason, s.version))
                        .await;
                    return;
                }
            }
        }
        let before = buf.len();
        let read = tokio::select! {
            r = tokio::time::timeout(idle, r.read_into(buf)) => r,
            _ = closed.cancelled() => return,
            _ = s.app.shutdown.cancelled() => return,
        };
        match read {
            Ok(Ok(true)) => s.app.traffic.in_bytes.inc_by((buf.len() - before) as u64),
            Ok(Ok(false)) | Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!(uid = %s.uid, "idle timeout");
                return;
            }
        };
    }
}

/// Handles one packet; false = close the session.
async fn handle(
    s: &Session,
    p: Packet,
    out: &mpsc::Sender<Bytes>,
    acks: &mpsc::Sender<PendingAck>,
) -> bool {
    match p {
        Packet::Ping => out
            .send(encode(&Packet::Pong, s.version).unwrap_or_default())
            .await
            .is_ok(),
        Packet::Send(p) => {
            s.app.traffic.in_msgs.inc();
            let pending = send::submit(s, p).await;
            acks.send(pending).await.is_ok()
        }
        Packet::Recvack(a) => {
            let acked = s.app.core.recvack(&s.uid, a.message_id);
            super::cmdack::on_recvack(s, &a, &acked);
            true
        }
        Packet::Sub(sub) => {
            let ack = Packet::Suback(SubackPacket {
                sub_no: sub.sub_no,
                channel_id: sub.channel_id,
                channel_type: sub.channel_type,
                action: sub.action,
                reason_code: ReasonCode::Success,
            });
            out.send(encode(&ack, s.version).unwrap_or_default())
                .await
                .is_ok()
        }
        Packet::Disconnect(_) => false,
        other => {
            tracing::info!(uid = %s.uid, packet = ?other.packet_type(), "unexpected packet from client, closing");
            let _ = out
                .send(disconnect(
                    ReasonCode::SystemError,
                    "unexpected packet",
                    s.version,
                ))
                .await;
            false
        }
    }
}
