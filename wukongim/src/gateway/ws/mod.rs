//! The WebSocket port (RFC 6455, any request path): our own handshake ([`handshake`]) on the
//! accepted TCP stream, then frames ([`frame`]) over the stream shared by the session's reader
//! and writer ([`socket`]). An idle connection costs what a TCP one does (no read buffer, no
//! split lock, no boxed upgraded stream).

mod frame;
mod handshake;
mod socket;

use super::admission::Slot;
use crate::app::App;
use bytes::BytesMut;
use handshake::Request;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Accepts WebSocket clients until shutdown.
pub async fn serve(app: Arc<App>, listener: TcpListener) {
    super::accept_loop(&app, listener, "websocket", |stream, peer| {
        tokio::spawn(connection(app.clone(), stream, peer));
    })
    .await
}

/// One connection: handshake, admission (`conn.maxConnections`, else 503), session.
async fn connection(app: Arc<App>, mut stream: TcpStream, peer: SocketAddr) {
    // Boxed: the handshake's state (request buffer, answer) is freed before the session starts,
    // not kept in the connection's task for its whole life.
    let Some((rest, slot)) = Box::pin(handshake(&app, &mut stream, peer)).await else {
        return;
    };
    let _slot = slot;
    let max = app.config.conn.max_packet_size.0 as usize + 16;
    let io = socket::Ws::new(stream, rest, max, app.config.conn.write_timeout.0);
    super::session::run(app, io, "ws", peer.to_string()).await;
}

/// Reads the request head (within `conn.connectTimeout`: the CONNECT then has as long again)
/// and answers it: the 101 with a connection slot, or a refusal and `None`. On success, the
/// bytes that came after the head.
async fn handshake(
    app: &App,
    stream: &mut TcpStream,
    peer: SocketAddr,
) -> Option<(BytesMut, Slot)> {
    let timeout = app.config.conn.connect_timeout.0;
    let request = tokio::select! {
        r = tokio::time::timeout(timeout, handshake::read_request(stream)) => r,
        _ = app.shutdown.cancelled() => return None,
    };
    let (accept, rest) = match request {
        Ok(Ok(Some(Request::Upgrade { accept, rest }))) => (accept, rest),
        Ok(Ok(Some(Request::Refused(r)))) => {
            tracing::debug!(%peer, status = r.status, "websocket upgrade refused");
            refuse(stream, &r, timeout).await;
            return None;
        }
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "websocket handshake read failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "websocket handshake timed out");
            return None;
        }
    };
    let cap = app.config.conn.max_connections as usize;
    let Some(slot) = app.traffic.admission.try_admit(cap) else {
        tracing::debug!(%peer, max = cap, "websocket client refused: conn.maxConnections open");
        refuse(stream, &handshake::TOO_MANY, timeout).await;
        return None;
    };
    let answer = handshake::switching_protocols(&accept);
    let deadline = app.config.conn.write_timeout.0;
    match tokio::time::timeout(deadline, stream.write_all(&answer)).await {
        Ok(Ok(())) => Some((rest, slot)),
        _ => None,
    }
}

/// Answers a refused request and closes.
async fn refuse(stream: &mut TcpStream, r: &handshake::Refusal, deadline: Duration) {
    let _ = tokio::time::timeout(deadline, async {
        stream.write_all(&r.response()).await?;
        stream.shutdown().await
    })
    .await;
}
