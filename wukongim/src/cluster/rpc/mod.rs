//! The cluster RPC: byte-level request/response calls between nodes on `serverAddr`, multiplexed
//! over a small pool of TCP connections per peer (optionally rustls TLS / mTLS), with a
//! handshake that checks the protocol and authenticates peers by the cluster token without ever
//! sending it. The Raft layer encodes its own messages; this module only moves `(kind, bytes)`.
//!
//! # Wire format (version 1)
//!
//! **Handshake** (after TLS, if enabled). Every handshake message is `u32` big-endian length +
//! payload, at most 64 bytes — anything longer (an HTTP request, a TLS ClientHello) is refused:
//!
//! 1. client → server `"WKRPC" · version u8 · client_nonce[32]`
//! 2. server → client `"WKRPC" · version u8 · auth u8 (0 none, 1 token) · server_nonce[32]`
//! 3. with `auth = 1` only:
//!    client → server `HMAC-SHA256(token, "wukongim-rpc/1 client" · server_nonce · client_nonce)`;
//!    server → client `0x00 · HMAC-SHA256(token, "wukongim-rpc/1 server" · client_nonce ·
//!    server_nonce)` when the proof matched, else `0x01` and the server closes. The client checks
//!    the server's proof too, so both sides prove they hold the token; a client with a token
//!    refuses a server that asks for none, and the other way round.
//!
//! **Frames** (after the handshake), both directions:
//!
//! ```text
//! u32 BE len | flags u8 | id u32 BE | kind u8 | payload (len - 6 bytes, at most 64 KiB)
//! ```
//!
//! `flags`: `0x01` END (last chunk of a message), `0x02` ERROR (response is the handler's error
//! text), `0x04` ABORT (the sender gave up a partly sent message; discard it), `0x08` GOAWAY
//! (server shutting down: it reads no more requests and answers every request it read, so a
//! request still unanswered when the connection closes was never handled and is retried on a
//! new connection), `0x80` RESPONSE.
//! A message (request or response body, at most [`RpcSettings::max_frame`] bytes) travels as one
//! or more chunks with the same `id`; the writer interleaves chunks of different messages, so a
//! large snapshot never holds up a heartbeat on the same connection. Requests carry the caller's
//! `id`; the response reuses it and may come back in any order. A frame longer than
//! `6 + 64 KiB`, unknown flag bits, or a response sent to a server closes the connection.

mod client;
mod conn;
mod frame;
mod handshake;
mod server;
mod settings;
mod tls;

pub use client::RpcClient;
pub use server::{serve, RpcHandler};
pub use settings::{
    frame_limit, read_tokens, reload_secrets, Reloadable, RpcSettings, TokenRing,
    DEFAULT_MAX_MESSAGE, SNAPSHOT_CHUNK, TEST_MAX_MESSAGE_ENV,
};
pub use tls::{TlsLive, TlsSettings};

/// Failures of a cluster RPC call. Where the failure concerns a peer, the message names it.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot connect to cluster peer {addr}: {source}")]
    Dial {
        addr: String,
        source: std::io::Error,
    },
    #[error("cluster rpc timed out")]
    Timeout,
    #[error("cluster peer authentication failed: {0}")]
    Auth(String),
    #[error("cluster rpc tls: {0}")]
    Tls(String),
    #[error("cluster rpc i/o: {0}")]
    Io(String),
    #[error("cluster rpc message of {0} bytes exceeds the limit")]
    FrameTooLarge(usize),
    #[error("cluster peer answered with an error: {0}")]
    Remote(String),
    /// The peer broke the wire protocol (or is not a cluster RPC endpoint at all).
    #[error("cluster rpc protocol error: {0}")]
    Protocol(String),
    #[error("cluster rpc connection closed")]
    Closed,
    #[error("{key}: {message}")]
    Config { key: String, message: String },
}

impl Clone for RpcError {
    fn clone(&self) -> Self {
        match self {
            RpcError::Dial { addr, source } => RpcError::Dial {
                addr: addr.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            RpcError::Timeout => RpcError::Timeout,
            RpcError::Auth(m) => RpcError::Auth(m.clone()),
            RpcError::Tls(m) => RpcError::Tls(m.clone()),
            RpcError::Io(m) => RpcError::Io(m.clone()),
            RpcError::FrameTooLarge(n) => RpcError::FrameTooLarge(*n),
            RpcError::Remote(m) => RpcError::Remote(m.clone()),
            RpcError::Protocol(m) => RpcError::Protocol(m.clone()),
            RpcError::Closed => RpcError::Closed,
            RpcError::Config { key, message } => RpcError::Config {
                key: key.clone(),
                message: message.clone(),
            },
        }
    }
}

impl From<std::io::Error> for RpcError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return RpcError::Tls(tls.to_string());
        }
        match e.kind() {
            UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => RpcError::Closed,
            _ => RpcError::Io(e.to_string()),
        }
    }
}

impl RpcError {
    /// Adds the peer's address to a message that lacks it.
    pub(crate) fn at(self, peer: &str) -> RpcError {
        match self {
            RpcError::Tls(m) => RpcError::Tls(format!("{peer}: {m}")),
            RpcError::Io(m) => RpcError::Io(format!("{peer}: {m}")),
            RpcError::Protocol(m) => RpcError::Protocol(format!("{peer}: {m}")),
            RpcError::Auth(m) => RpcError::Auth(format!("{peer}: {m}")),
            other => other,
        }
    }
}
