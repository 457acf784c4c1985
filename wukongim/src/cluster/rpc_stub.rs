//! TEMPORARY stub of the cluster RPC API (replaced by cluster/rpc/).
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("dial {addr}: {source}")]
    Dial { addr: String, source: std::io::Error },
    #[error("timeout")]
    Timeout,
    #[error("closed")]
    Closed,
    #[error("remote: {0}")]
    Remote(String),
}
pub struct RpcSettings;
impl RpcSettings {
    pub fn from_config(_c: &crate::config::Cluster) -> Result<RpcSettings, RpcError> { Ok(RpcSettings) }
}
#[derive(Clone)]
pub struct RpcClient;
impl RpcClient {
    pub fn new(_s: Arc<RpcSettings>) -> Self { RpcClient }
    pub async fn call_timeout(&self, _addr: &str, _kind: u8, _body: Bytes, _t: Duration) -> Result<Bytes, RpcError> { Err(RpcError::Closed) }
    pub fn forget(&self, _addr: &str) {}
}
pub trait RpcHandler: Send + Sync + 'static {
    fn handle(&self, kind: u8, body: Bytes) -> impl std::future::Future<Output = Result<Bytes, String>> + Send;
}
pub async fn serve<H: RpcHandler>(_l: tokio::net::TcpListener, _s: Arc<RpcSettings>, _h: Arc<H>, _c: tokio_util::sync::CancellationToken) {}
