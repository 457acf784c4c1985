//! The read loop: decodes whole packets as bytes arrive (until `idleTimeout` passes without
//! any), answers each one and writes the SENDACKs as their outcomes arrive, in SEND order. A
//! protocol error sends DISCONNECT and ends the session. The read buffer is released whenever
//! it is empty, so an idle connection holds none.

use super::acks::{self, Acks, MAX_IN_FLIGHT};
use super::{disconnect, send, Session};
use crate::core::Outbound;
use crate::gateway::transport::Inbound;
use crate::proto::{encode, Decoder, Packet, ProtoError, ReasonCode, SubackPacket};
use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What woke the loop.
enum Event {
    Read(Result<std::io::Result<bool>, tokio::time::error::Elapsed>),
    Ack(crate::proto::SendackPacket, std::time::Instant),
    Stop,
}

/// Reads until the client leaves, the session is closed or the node stops; the SENDACKs still
/// owed are written before it returns.
pub(super) async fn read_loop<R: Inbound>(
    s: &Session,
    r: &mut R,
    buf: &mut BytesMut,
    dec: &mut Decoder,
    out: &mpsc::Sender<Outbound>,
    closed: &CancellationToken,
) {
    let mut acks = Acks::default();
    if read_packets(s, r, buf, dec, out, closed, &mut acks).await {
        acks.finish(s, out).await;
    }
}

/// The loop proper; false when the writer is gone (nothing more can be written).
async fn read_packets<R: Inbound>(
    s: &Session,
    r: &mut R,
    buf: &mut BytesMut,
    dec: &mut Decoder,
    out: &mpsc::Sender<Outbound>,
    closed: &CancellationToken,
    acks: &mut Acks,
) -> bool {
    let idle = s.app.config.conn.idle_timeout.0;
    loop {
        // Drain every whole packet already buffered (while SENDACKs are not too far behind).
        while acks.len() < MAX_IN_FLIGHT {
            match dec.decode(buf, s.version) {
                Ok(Some(p)) => {
                    s.app.traffic.packets_in.inc(p.packet_type() as u8);
                    match handle(s, p, out, acks).await {
                        Some(true) => {}
                        Some(false) => return true,
                        None => return false,
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
                        .send(Outbound::Frame(disconnect(
                            ReasonCode::SystemError,
                            reason,
                            s.version,
                        )))
                        .await;
                    return true;
                }
            }
        }
        if buf.is_empty() && buf.capacity() > 0 {
            *buf = BytesMut::new(); // idle connections hold no read buffer
        }
        let before = buf.len();
        let room = acks.len() < MAX_IN_FLIGHT;
        let event = tokio::select! {
            biased;
            (ack, since) = acks.next(), if !acks.is_empty() => Event::Ack(ack, since),
            r = tokio::time::timeout(idle, r.read_into(buf)), if room => Event::Read(r),
            _ = closed.cancelled() => Event::Stop,
            _ = s.app.shutdown.cancelled() => Event::Stop,
        };
        match event {
            Event::Ack(ack, since) => {
                if !acks::write(s, out, ack, since).await {
                    return false;
                }
            }
            Event::Read(Ok(Ok(true))) => {
                s.app.traffic.in_bytes.inc_by((buf.len() - before) as u64);
            }
            Event::Read(Ok(Ok(false)) | Ok(Err(_))) | Event::Stop => return true,
            Event::Read(Err(_)) => {
                tracing::debug!(uid = %s.uid, "idle timeout");
                return true;
            }
        }
    }
}

/// Handles one packet: Some(false) = close the session, None = the writer is gone.
async fn handle(
    s: &Session,
    p: Packet,
    out: &mpsc::Sender<Outbound>,
    acks: &mut Acks,
) -> Option<bool> {
    let reply = |p: &Packet| Outbound::Frame(encode(p, s.version).unwrap_or_default());
    match p {
        Packet::Ping => out.send(reply(&Packet::Pong)).await.ok().map(|_| true),
        Packet::Send(p) => {
            s.app.traffic.in_msgs.inc();
            acks.push(Box::pin(send::submit(s, p)).await); // boxed: see session::run
            Some(true)
        }
        Packet::Recvack(a) => {
            let acked = s.app.core.recvack(&s.uid, a.message_id);
            super::cmdack::on_recvack(s, &a, &acked);
            Some(true)
        }
        Packet::Sub(sub) => {
            let ack = Packet::Suback(SubackPacket {
                sub_no: sub.sub_no,
                channel_id: sub.channel_id,
                channel_type: sub.channel_type,
                action: sub.action,
                reason_code: ReasonCode::Success,
            });
            out.send(reply(&ack)).await.ok().map(|_| true)
        }
        Packet::Disconnect(_) => Some(false),
        other => {
            tracing::info!(uid = %s.uid, packet = ?other.packet_type(), "unexpected packet from client, closing");
            let _ = out
                .send(Outbound::Frame(disconnect(
                    ReasonCode::SystemError,
                    "unexpected packet",
                    s.version,
                )))
                .await;
            Some(false)
        }
    }
}
