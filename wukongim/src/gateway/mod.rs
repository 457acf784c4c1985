//! Client connections: TCP (:5100) and WebSocket (:5200, binary frames, any path) feed one
//! session implementation ([`session`]); the transports only move bytes.

mod admission;
mod session;
mod traffic;
mod transport;

pub use traffic::Traffic;

use crate::app::App;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
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
    let router = axum::Router::new()
        .fallback(ws_upgrade)
        .with_state(app.clone());
    let stop = app.shutdown.clone();
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    // No Nagle, as on the TCP port: a small RECV or SENDACK written while the previous one is
    // unacknowledged would wait for the client's delayed ACK (about 40 ms on Linux).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if let Err(e) = axum::serve(listener, service)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        tracing::error!(error = %e, "websocket listener failed");
    }
}

/// WebSocket read buffer per connection: tungstenite keeps it for the connection's life (even
/// idle) and reads at most this much per system call; a larger frame grows it to its length.
/// Client packets are small (an IM message under 1 KiB is one read).
const WS_READ_BUFFER: usize = 1024;

async fn ws_upgrade(
    State(app): State<Arc<App>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let cap = app.config.conn.max_connections as usize;
    let Some(slot) = app.traffic.admission.try_admit(cap) else {
        tracing::debug!(%peer, max = cap, "websocket client refused: conn.maxConnections open");
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many client connections\n",
        )
            .into_response();
    };
    let max = app.config.conn.max_packet_size.0 as usize + 16;
    // tungstenite allocates its read buffer up front, 128 KiB by default: 1.4 GiB for 10,000
    // idle WebSocket clients (bench/connections.sh).
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            session::run(app, transport::Ws::new(socket), "ws", peer.to_string()).await;
        })
}
