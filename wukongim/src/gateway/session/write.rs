//! The writer: owns the socket's writing half and writes what the session queues — replies the
//! read loop encoded and hub pushes (RECV, kicks), all through one channel — until the session
//! closes.

use super::{disconnect, recv, Session};
use crate::core::Outbound;
use crate::gateway::transport::Outbound as Out;
use crate::proto::ReasonCode;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Owns the writing half: session replies and hub pushes, until closed or kicked.
pub(super) async fn write_loop<W: Out>(
    s: Arc<Session>,
    mut w: W,
    mut rx: mpsc::Receiver<Outbound>,
    closed: CancellationToken,
) {
    let deadline = s.app.config.conn.write_timeout.0;
    // A write that makes no progress within `conn.writeTimeout` drops the client: a slow
    // reader is disconnected, never buffered without bound.
    loop {
        let frame = tokio::select! {
            biased;
            h = rx.recv() => match h {
                Some(Outbound::Frame(f)) => f,
                Some(Outbound::Recv(m)) => recv::frame(&s, &m),
                Some(Outbound::Kick { reason, text }) => {
                    tracing::info!(uid = %s.uid, device = %s.device_id, reason, %text, "disconnecting client");
                    let _ = send(&mut w, disconnect(ReasonCode::from_u8(reason), &text, s.version), deadline).await;
                    break;
                }
                Some(Outbound::Close) => {
                    tracing::info!(uid = %s.uid, device = %s.device_id, "closing client connection (shutdown)");
                    break;
                }
                None => break,
            },
            _ = closed.cancelled() => {
                // Flush the replies the session already queued (e.g. a final DISCONNECT).
                while let Ok(o) = rx.try_recv() {
                    if let Outbound::Frame(f) = o {
                        if !send(&mut w, f, deadline).await {
                            break;
                        }
                    }
                }
                break;
            }
        };
        s.app.traffic.out_bytes.inc_by(frame.len() as u64);
        if let Some(b) = frame.first() {
            s.app.traffic.packets_out.inc(b >> 4);
        }
        if !send(&mut w, frame, deadline).await {
            tracing::info!(
                uid = %s.uid,
                device = %s.device_id,
                "client not reading (no write progress within conn.writeTimeout): disconnecting"
            );
            break;
        }
    }
    closed.cancel();
    w.close().await;
}

/// One write within `deadline`; false when it failed or made no progress in time.
async fn send<W: Out>(w: &mut W, frame: Bytes, deadline: std::time::Duration) -> bool {
    matches!(
        tokio::time::timeout(deadline, w.send(frame)).await,
        Ok(Ok(()))
    )
}
