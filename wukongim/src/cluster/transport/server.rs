//! The serving side: accepts peers on `serverAddr`, runs the handshake (TLS, then token), and
//! answers requests one after another per connection. A peer that fails the handshake or sends
//! garbage is logged and disconnected; others are unaffected.

use super::client::{tune, Conn};
use super::{frame, handshake, RpcError, RpcSettings};
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What the server does with a request.
pub trait RpcHandler: Send + Sync + 'static {
    fn handle(&self, kind: u8, body: Bytes) -> impl Future<Output = Result<Bytes, String>> + Send;
}

/// Serves until `shutdown` is cancelled.
pub async fn serve<H: RpcHandler>(
    listener: TcpListener,
    settings: Arc<RpcSettings>,
    handler: Arc<H>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "cluster rpc accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tune(&tcp, settings.keep_alive);
        let (settings, handler, stop) = (settings.clone(), handler.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                res = connection(tcp, &settings, &*handler) => {
                    if let Err(e) = res {
                        match e {
                            RpcError::Closed => {}
                            RpcError::Auth(_) | RpcError::Tls(_) => tracing::warn!(%peer, error = %e, "cluster rpc peer rejected"),
                            _ => tracing::debug!(%peer, error = %e, "cluster rpc connection ended"),
                        }
                    }
                }
                _ = stop.cancelled() => {}
            }
        });
    }
}

async fn connection<H: RpcHandler>(
    tcp: tokio::net::TcpStream,
    s: &RpcSettings,
    handler: &H,
) -> Result<(), RpcError> {
    let hs_timeout = s.dial_timeout.max(Duration::from_secs(1));
    let mut conn: Conn = match &s.tls_server {
        Some(cfg) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg.clone());
            let tls = tokio::time::timeout(hs_timeout, acceptor.accept(tcp))
                .await
                .map_err(|_| RpcError::Timeout)?
                .map_err(|e| RpcError::Tls(e.to_string()))?;
            Box::new(tls)
        }
        None => Box::new(tcp),
    };
    tokio::time::timeout(hs_timeout, handshake::server(&mut conn, s.token.as_deref()))
        .await
        .map_err(|_| RpcError::Timeout)??;
    loop {
        let req = frame::read(&mut conn, s.max_frame).await?;
        let Some((kind, body)) = req.split_first() else {
            return Err(RpcError::Io("empty request frame".into()));
        };
        match handler.handle(*kind, Bytes::copy_from_slice(body)).await {
            Ok(resp) => frame::write(&mut conn, &[&[0], &resp]).await?,
            Err(msg) => frame::write(&mut conn, &[&[1], msg.as_bytes()]).await?,
        }
    }
}
