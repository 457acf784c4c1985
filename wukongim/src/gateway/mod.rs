//! Client connections: TCP (:5100) and WebSocket (:5200, binary frames, any path) feed one
//! session implementation ([`session`]); the transports only move bytes.

mod admission;
mod session;
mod traffic;
mod transport;
mod ws;

pub use traffic::Traffic;

use crate::app::App;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Accepts TCP clients until shutdown.
pub async fn serve_tcp(app: Arc<App>, listener: TcpListener) {
    accept_loop(&app, listener, "tcp", |stream, peer| {
        let max = app.config.conn.max_connections as usize;
        let Some(slot) = app.traffic.admission.try_admit(max) else {
            tracing::debug!(%peer, max, "tcp client refused: conn.maxConnections open");
            return;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (r, w) = stream.into_split();
            let io = transport::Tcp::new(r, w);
            session::run(app, io, "tcp", peer.to_string()).await;
        });
    })
    .await
}

/// Accepts connections until shutdown and hands each to `conn` (`what` names the port in
/// logs). No Nagle on either port: a small RECV or SENDACK written while the previous one is
/// unacknowledged would wait for the client's delayed ACK (about 40 ms on Linux).
async fn accept_loop(
    app: &App,
    listener: TcpListener,
    what: &str,
    mut conn: impl FnMut(TcpStream, SocketAddr),
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = app.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                conn(stream, peer);
            }
            Err(e) => {
                tracing::warn!(error = %e, port = what, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Accepts WebSocket clients (on any request path) until shutdown.
pub async fn serve_ws(app: Arc<App>, listener: TcpListener) {
    ws::serve(app, listener).await
}
