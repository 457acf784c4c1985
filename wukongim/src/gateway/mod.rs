//! Client connections: TCP (:5100) and WebSocket (:5200, binary frames, any path) feed one
//! session implementation ([`session`]); the transports only move bytes.

mod admission;
mod session;
mod traffic;
mod transport;
mod ws;

pub use traffic::Traffic;

use crate::app::App;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Accepts TCP clients until shutdown.
pub async fn serve_tcp(app: Arc<App>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = app.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let max = app.config.conn.max_connections as usize;
                let Some(slot) = app.traffic.admission.try_admit(max) else {
                    tracing::debug!(%peer, max, "tcp client refused: conn.maxConnections open");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let (r, w) = stream.into_split();
                    let io = transport::Tcp::new(r, w);
                    session::run(app, io, "tcp", peer.to_string()).await;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Accepts WebSocket clients (on any request path) until shutdown.
pub async fn serve_ws(app: Arc<App>, listener: TcpListener) {
    ws::serve(app, listener).await
}
