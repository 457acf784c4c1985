//! The cluster RPC: framed binary requests over pooled TCP connections (optionally TLS), with a
//! challenge–response handshake that authenticates peers by the cluster token without sending
//! it. Byte-level: the Raft layer encodes its own messages. One request is in flight per
//! connection; concurrency comes from the pool (`cluster.maxConnections` per peer).
//!
//! Frames: `u32` big-endian length, then the payload. Request payload: `kind u8 · body`.
//! Response payload: `status u8 (0 ok, 1 remote error) · body`.

mod client;
mod frame;
mod handshake;
mod server;
mod settings;

pub use client::RpcClient;
pub use server::{serve, RpcHandler};
pub use settings::RpcSettings;

/// Failures of a cluster RPC call; messages name the peer.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot connect to {addr}: {source}")]
    Dial {
        addr: String,
        source: std::io::Error,
    },
    #[error("request timed out")]
    Timeout,
    #[error("peer authentication failed: {0}")]
    Auth(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("i/o: {0}")]
    Io(String),
    #[error("frame of {0} bytes is larger than allowed")]
    FrameTooLarge(usize),
    #[error("peer answered with an error: {0}")]
    Remote(String),
    #[error("connection closed")]
    Closed,
    #[error("{key}: {message}")]
    Config { key: String, message: String },
}

impl From<std::io::Error> for RpcError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => RpcError::Closed,
            _ => RpcError::Io(e.to_string()),
        }
    }
}
