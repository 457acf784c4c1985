//! Byte transports under a session: the traits, and the TCP stream. The WebSocket transport
//! (data frames, binary or text, concatenated into one byte stream as the Go server does;
//! outbound, one packet per binary frame) is in [`super::ws`].

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Reading half: appends the next chunk of bytes to `buf`; Ok(false) at end of stream.
pub trait Inbound: Send + 'static {
    fn read_into(
        &mut self,
        buf: &mut BytesMut,
    ) -> impl std::future::Future<Output = std::io::Result<bool>> + Send;
}

/// Writing half.
pub trait Outbound: Send + 'static {
    fn send(
        &mut self,
        packet: Bytes,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
    fn close(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

/// A transport that splits into the two halves.
pub trait Transport: Send + 'static {
    type R: Inbound;
    type W: Outbound;
    fn split(self) -> (Self::R, Self::W);
}

pub struct Tcp {
    r: OwnedReadHalf,
    w: OwnedWriteHalf,
}

impl Tcp {
    pub fn new(r: OwnedReadHalf, w: OwnedWriteHalf) -> Self {
        Tcp { r, w }
    }
}

impl Transport for Tcp {
    type R = OwnedReadHalf;
    type W = OwnedWriteHalf;
    fn split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        (self.r, self.w)
    }
}

/// Bytes reserved for one TCP read.
const TCP_READ_CHUNK: usize = 4096;

impl Inbound for OwnedReadHalf {
    /// Waits for the socket to be readable before growing `buf`, so a silent connection holds
    /// no read buffer (the session releases it when empty). Cancel-safe.
    async fn read_into(&mut self, buf: &mut BytesMut) -> std::io::Result<bool> {
        loop {
            self.readable().await?;
            buf.reserve(TCP_READ_CHUNK);
            match self.try_read_buf(buf) {
                Ok(n) => return Ok(n > 0),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // Readiness was stale (tokio keeps it after a short read): nothing came, so
                    // nothing is held while waiting.
                    if buf.is_empty() {
                        *buf = BytesMut::new();
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Outbound for OwnedWriteHalf {
    async fn send(&mut self, packet: Bytes) -> std::io::Result<()> {
        self.write_all(&packet).await
    }
    async fn close(&mut self) {
        let _ = self.shutdown().await;
    }
}
