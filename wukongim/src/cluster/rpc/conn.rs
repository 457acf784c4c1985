//! What both sides of a connection share: the byte-stream type (plain TCP or TLS), socket
//! options, and the writer task that turns queued messages into frames, interleaving chunks of
//! long messages round-robin and batching small ones into few writes.

use super::frame::{flag, put_frame, MAX_CHUNK};
use super::{RpcError, RpcSettings};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A connection's byte stream, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
pub type BoxStream = Box<dyn Stream>;

/// Messages queued for the writer, per connection.
pub const QUEUE: usize = 1024;
/// Write once this much is buffered, even if more is queued.
const FLUSH_AT: usize = 128 * 1024;
/// Messages the writer interleaves at once; the rest wait in the channel.
const ROUND: usize = 64;

/// Sets TCP_NODELAY and keep-alive as configured. Failures only cost tuning, so they are logged.
pub fn tune(s: &TcpStream, settings: &RpcSettings) {
    if let Err(e) = s.set_nodelay(true) {
        tracing::debug!(error = %e, "cluster rpc: cannot set TCP_NODELAY");
    }
    let sock = socket2::SockRef::from(s);
    let res = if settings.keep_alive {
        let period = settings.keep_alive_period.max(Duration::from_secs(1));
        let ka = socket2::TcpKeepalive::new()
            .with_time(period)
            .with_interval(period);
        sock.set_tcp_keepalive(&ka)
    } else {
        sock.set_keepalive(false)
    };
    if let Err(e) = res {
        tracing::debug!(error = %e, "cluster rpc: cannot set TCP keep-alive");
    }
}

/// Progress of a request, shared by the caller and the writer so that a request that was never
/// written can be retried elsewhere and one the caller gave up is not (fully) sent.
pub mod progress {
    pub const QUEUED: u8 = 0;
    pub const WRITING: u8 = 1;
    pub const ABANDONED: u8 = 2;
}

/// One message for the writer.
pub struct Outgoing {
    pub id: u32,
    pub kind: u8,
    /// RESPONSE / ERROR bits; END is added on the last chunk.
    pub flags: u8,
    pub body: Bytes,
    pub progress: Option<Arc<AtomicU8>>,
}

/// Writes queued messages until every sender is gone, then shuts the stream's write side.
pub async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::Receiver<Outgoing>,
) -> Result<(), RpcError> {
    let mut queue: VecDeque<(Outgoing, usize)> = VecDeque::new();
    let mut buf = BytesMut::with_capacity(FLUSH_AT * 2);
    loop {
        if queue.is_empty() {
            match rx.recv().await {
                Some(m) => queue.push_back((m, 0)),
                None => {
                    let _ = w.shutdown().await;
                    return Ok(());
                }
            }
        }
        while queue.len() < ROUND {
            match rx.try_recv() {
                Ok(m) => queue.push_back((m, 0)),
                Err(_) => break,
            }
        }
        for _ in 0..queue.len() {
            let Some((m, offset)) = queue.pop_front() else {
                break;
            };
            if let Some(p) = &m.progress {
                if offset == 0 {
                    let started = p.compare_exchange(
                        progress::QUEUED,
                        progress::WRITING,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    if started.is_err() {
                        continue; // abandoned before a byte was written
                    }
                } else if p.load(Ordering::Acquire) == progress::ABANDONED {
                    put_frame(&mut buf, flag::ABORT | m.flags, m.id, m.kind, &[]);
                    continue;
                }
            }
            let end = m.body.len().min(offset + MAX_CHUNK);
            let last = end == m.body.len();
            let flags = if last { m.flags | flag::END } else { m.flags };
            put_frame(&mut buf, flags, m.id, m.kind, &m.body[offset..end]);
            if !last {
                queue.push_back((m, end));
            }
            if buf.len() >= FLUSH_AT {
                w.write_all(&buf).await?;
                buf.clear();
            }
        }
        if !buf.is_empty() {
            w.write_all(&buf).await?;
            buf.clear();
        }
        w.flush().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::{Assembler, Event, FrameCodec};
    use super::*;
    use futures::StreamExt;
    use tokio_util::codec::FramedRead;

    #[tokio::test]
    async fn long_messages_are_chunked_and_interleaved() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (tx, rx) = mpsc::channel(8);
        let writer = tokio::spawn(write_loop(a, rx));
        let big = Bytes::from(vec![7u8; 3 * MAX_CHUNK + 5]);
        for (id, body) in [(1, big.clone()), (2, Bytes::from_static(b"small"))] {
            tx.send(Outgoing {
                id,
                kind: 9,
                flags: 0,
                body,
                progress: None,
            })
            .await
            .unwrap();
        }
        drop(tx);
        let mut frames = FramedRead::new(b, FrameCodec);
        let mut asm = Assembler::new(1 << 20, 8);
        let mut done = Vec::new();
        while let Some(f) = frames.next().await {
            if let Some(Event::Message { id, body, .. }) = asm.push(f.unwrap()).unwrap() {
                done.push((id, body));
            }
        }
        writer.await.unwrap().unwrap();
        // The small message does not wait for the big one.
        assert_eq!(done[0], (2, Bytes::from_static(b"small")));
        assert_eq!(done[1], (1, big));
    }

    #[tokio::test]
    async fn abandoned_messages_are_skipped_or_aborted() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (tx, rx) = mpsc::channel(8);
        let p = Arc::new(AtomicU8::new(progress::ABANDONED));
        tx.send(Outgoing {
            id: 1,
            kind: 1,
            flags: 0,
            body: Bytes::from_static(b"never"),
            progress: Some(p),
        })
        .await
        .unwrap();
        drop(tx);
        write_loop(a, rx).await.unwrap();
        let mut frames = FramedRead::new(b, FrameCodec);
        assert!(frames.next().await.is_none());
    }
}
