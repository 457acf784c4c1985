//! The WebSocket port (RFC 6455, any request path): our own handshake ([`handshake`]) on the
//! accepted TCP stream, then frames ([`frame`]) over the stream shared by the session's reader
//! and writer ([`socket`]). An idle connection costs what a TCP one does (no read buffer, no
//! split lock, no boxed upgraded stream).

mod frame;
mod handshake;
mod socket;

use crate::app::App;
use handshake::Request;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Accepts WebSocket clients until shutdown.
pub async fn serve(app: Arc<App>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = app.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                // No Nagle, as on the TCP port: a small RECV or SENDACK written while the
                // previous one is unacknowledged would wait for the client's delayed ACK.
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(app.clone(), stream, peer));
            }
            Err(e) => {
                tracing::warn!(error = %e, "websocket accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One connection: handshake, admission (`conn.maxConnections`, else 503), session.
async fn connection(app: Arc<App>, mut stream: TcpStream, peer: SocketAddr) {
    // The request head within `conn.connectTimeout` (the CONNECT then has as long again).
    // Boxed: the handshake's future is large and lives only until the 101.
    let head_timeout = app.config.conn.connect_timeout.0;
    let request = tokio::select! {
        r = tokio::time::timeout(head_timeout, Box::pin(handshake::read_request(&mut stream))) => r,
        _ = app.shutdown.cancelled() => return,
    };
    let (accept, rest) = match request {
        Ok(Ok(Some(Request::Upgrade { accept, rest }))) => (accept, rest),
        Ok(Ok(Some(Request::Refused(r)))) => {
            tracing::debug!(%peer, status = r.status, "websocket upgrade refused");
            return refuse(stream, &r, head_timeout).await;
        }
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "websocket handshake read failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "websocket handshake timed out");
            return;
        }
    };
    let cap = app.config.conn.max_connections as usize;
    let Some(slot) = app.traffic.admission.try_admit(cap) else {
        tracing::debug!(%peer, max = cap, "websocket client refused: conn.maxConnections open");
        return refuse(stream, &handshake::TOO_MANY, head_timeout).await;
    };
    let deadline = app.config.conn.write_timeout.0;
    let answer = handshake::switching_protocols(&accept);
    if !matches!(
        tokio::time::timeout(deadline, stream.write_all(&answer)).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let max = app.config.conn.max_packet_size.0 as usize + 16;
    let io = socket::Ws::new(stream, rest, max, deadline);
    let _slot = slot;
    super::session::run(app, io, "ws", peer.to_string()).await;
}

/// Answers a refused request and closes.
async fn refuse(mut stream: TcpStream, r: &handshake::Refusal, deadline: Duration) {
    let _ = tokio::time::timeout(deadline, async {
        stream.write_all(&r.response()).await?;
        stream.shutdown().await
    })
    .await;
}
