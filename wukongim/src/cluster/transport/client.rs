//! The calling side: per-peer pools of authenticated connections, dialled lazily with
//! `dialTimeout`, TCP keep-alive, and a per-call timeout. A connection that fails is dropped; the
//! next call dials a fresh one.

use super::{frame, handshake, RpcError, RpcSettings};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// A byte stream, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
pub type Conn = Box<dyn Stream>;

struct Pool {
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// Pooled RPC client; cheap to clone.
#[derive(Clone)]
pub struct RpcClient {
    settings: Arc<RpcSettings>,
    pools: Arc<Mutex<HashMap<String, Arc<Pool>>>>,
}

/// Applies TCP options shared by both sides.
pub fn tune(s: &TcpStream, keep_alive: Option<Duration>) {
    let _ = s.set_nodelay(true);
    if let Some(period) = keep_alive {
        let ka = socket2::TcpKeepalive::new()
            .with_time(period)
            .with_interval(period);
        let _ = socket2::SockRef::from(s).set_tcp_keepalive(&ka);
    }
}

impl RpcClient {
    pub fn new(settings: Arc<RpcSettings>) -> Self {
        RpcClient {
            settings,
            pools: Default::default(),
        }
    }

    fn pool(&self, addr: &str) -> Arc<Pool> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .entry(addr.to_string())
            .or_insert_with(|| {
                Arc::new(Pool {
                    idle: Mutex::new(Vec::new()),
                    permits: Semaphore::new(self.settings.max_connections),
                })
            })
            .clone()
    }

    /// Drops pooled connections to `addr` (e.g. after the peer was removed).
    pub fn forget(&self, addr: &str) {
        self.pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(addr);
    }

    async fn dial(&self, addr: &str) -> Result<Conn, RpcError> {
        let s = &self.settings;
        let tcp = tokio::time::timeout(s.dial_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| RpcError::Dial {
                addr: addr.into(),
                source: std::io::ErrorKind::TimedOut.into(),
            })?
            .map_err(|e| RpcError::Dial {
                addr: addr.into(),
                source: e,
            })?;
        tune(&tcp, s.keep_alive);
        let mut conn: Conn = match &s.tls_client {
            Some(cfg) => {
                let host = addr
                    .rsplit_once(':')
                    .map(|x| x.0)
                    .unwrap_or(addr)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = rustls_pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| RpcError::Tls(format!("server name {host}: {e}")))?;
                let tls = tokio_rustls::TlsConnector::from(cfg.clone());
                let stream = tokio::time::timeout(s.dial_timeout, tls.connect(name, tcp))
                    .await
                    .map_err(|_| RpcError::Timeout)?
                    .map_err(|e| RpcError::Tls(format!("{addr}: {e}")))?;
                Box::new(stream)
            }
            None => Box::new(tcp),
        };
        tokio::time::timeout(
            s.dial_timeout,
            handshake::client(&mut conn, s.token.as_deref()),
        )
        .await
        .map_err(|_| RpcError::Timeout)??;
        Ok(conn)
    }

    /// One request with the default `requestTimeout`.
    pub async fn call(&self, addr: &str, kind: u8, body: Bytes) -> Result<Bytes, RpcError> {
        self.call_timeout(addr, kind, body, self.settings.request_timeout)
            .await
    }

    /// One request/response to `addr`, bounded by `timeout` (dial included).
    pub async fn call_timeout(
        &self,
        addr: &str,
        kind: u8,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, RpcError> {
        tokio::time::timeout(timeout, self.call_inner(addr, kind, body))
            .await
            .map_err(|_| RpcError::Timeout)?
    }

    async fn call_inner(&self, addr: &str, kind: u8, body: Bytes) -> Result<Bytes, RpcError> {
        let pool = self.pool(addr);
        let _permit = pool.permits.acquire().await.map_err(|_| RpcError::Closed)?;
        let pooled = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.dial(addr).await?,
        };
        frame::write(&mut conn, &[&[kind], &body]).await?;
        let resp = frame::read(&mut conn, self.settings.max_frame).await?;
        let (status, body) = resp.split_first().ok_or(RpcError::Closed)?;
        let body = Bytes::copy_from_slice(body);
        pool.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        match status {
            0 => Ok(body),
            _ => Err(RpcError::Remote(
                String::from_utf8_lossy(&body).into_owned(),
            )),
        }
    }
}
