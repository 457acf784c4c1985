//! The serving side: accepts peers, runs TLS and the handshake (bounded in time), then reads
//! requests and runs each in its own task — at most [`MAX_CONCURRENT`] per connection, after
//! which the connection is not read until one finishes. A peer that fails the handshake or
//! breaks the protocol is logged and disconnected; the others are unaffected. On shutdown the
//! listener closes and each connection stops reading, sends GOAWAY, and gives the requests it
//! already runs `request_timeout` to answer (those cut off get an error answer) before closing.

use super::conn::{tune, write_loop, BoxStream, Outgoing, QUEUE};
use super::frame::{flag, Assembler, Event, FrameCodec};
use super::{handshake, RpcError, RpcSettings};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

/// Requests of one connection handled at once.
pub const MAX_CONCURRENT: usize = 256;

/// What the server does with a request. An `Err` reaches the caller as [`RpcError::Remote`].
pub trait RpcHandler: Send + Sync + 'static {
    fn handle(&self, kind: u8, body: Bytes) -> impl Future<Output = Result<Bytes, String>> + Send;
}

/// Serves cluster RPC on `listener` until `shutdown` is cancelled, then drains (see the module
/// docs) and returns.
pub async fn serve<H: RpcHandler>(
    listener: TcpListener,
    settings: Arc<RpcSettings>,
    handler: Arc<H>,
    shutdown: CancellationToken,
) {
    let mut conns = JoinSet::new();
    // Open connections by remote address: a peer's pool never needs more than
    // `max_connections` (cluster.maxConnections), so more from one address are refused.
    let mut open: HashMap<IpAddr, usize> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Ok(ip) = done {
                    release(&mut open, ip);
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let n = open.entry(peer.ip()).or_default();
                    if *n >= settings.max_connections {
                        tracing::warn!(
                            %peer,
                            limit = settings.max_connections,
                            "cluster rpc connection refused: cluster.maxConnections already \
                             open from this address"
                        );
                        drop(tcp);
                        continue;
                    }
                    *n += 1;
                    let (s, h, stop) = (settings.clone(), handler.clone(), shutdown.clone());
                    conns.spawn(async move {
                        connection(tcp, peer, s, h, stop).await;
                        peer.ip()
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "cluster rpc accept failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            },
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    let grace = settings.request_timeout + Duration::from_secs(1);
    if tokio::time::timeout(grace, drain).await.is_err() {
        conns.abort_all();
    }
}

fn release(open: &mut HashMap<IpAddr, usize>, ip: IpAddr) {
    if let Some(n) = open.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            open.remove(&ip);
        }
    }
}

/// One peer connection, from TLS to close; logs how it ended.
async fn connection<H: RpcHandler>(
    tcp: TcpStream,
    peer: SocketAddr,
    settings: Arc<RpcSettings>,
    handler: Arc<H>,
    shutdown: CancellationToken,
) {
    tune(&tcp, &settings);
    let opened = tokio::select! {
        r = open(tcp, &settings) => r,
        _ = shutdown.cancelled() => return,
    };
    let stream = match opened {
        Ok(s) => s,
        Err(e) => {
            match &e {
                RpcError::Closed => {
                    tracing::debug!(%peer, "cluster rpc peer left during the handshake")
                }
                _ => tracing::warn!(%peer, error = %e, "cluster rpc peer rejected"),
            }
            return;
        }
    };
    tracing::debug!(%peer, "cluster rpc peer connected");
    match serve_requests(stream, &settings, handler, &shutdown).await {
        Ok(()) | Err(RpcError::Closed) => tracing::debug!(%peer, "cluster rpc peer disconnected"),
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cluster rpc peer disconnected after a protocol error")
        }
    }
}

/// TLS (if configured) and the handshake, within the handshake time limit.
async fn open(tcp: TcpStream, s: &RpcSettings) -> Result<BoxStream, RpcError> {
    let limit = s.dial_timeout.max(Duration::from_secs(1));
    let work = async {
        let mut stream: BoxStream = match s.tls.as_ref().map(|l| l.get()) {
            Some(t) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(t.server.clone());
                let tls = acceptor
                    .accept(tcp)
                    .await
                    .map_err(|e| match RpcError::from(e) {
                        // Connected and left without a word (e.g. a leader-liveness probe,
                        // `cluster/failover.rs`): not a TLS failure worth a warning.
                        e @ (RpcError::Tls(_) | RpcError::Closed) => e,
                        other => RpcError::Tls(format!("TLS handshake failed: {other}")),
                    })?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        };
        handshake::server(&mut stream, &s.tokens()).await?;
        Ok(stream)
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| RpcError::Protocol(format!("no handshake within {limit:?}")))?
}

/// Requests being handled, by task, so that those cut off by shutdown can still be answered.
type Running = HashMap<tokio::task::Id, (u32, u8)>;

fn reap(done: Option<Result<(tokio::task::Id, ()), JoinError>>, running: &mut Running) {
    match done {
        Some(Ok((task, ()))) => running.remove(&task),
        Some(Err(e)) => running.remove(&e.id()),
        None => None,
    };
}

async fn serve_requests<H: RpcHandler>(
    stream: BoxStream,
    settings: &RpcSettings,
    handler: Arc<H>,
    shutdown: &CancellationToken,
) -> Result<(), RpcError> {
    let (r, w) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(QUEUE);
    let writer = tokio::spawn(write_loop(w, rx));
    let stop_writer = writer.abort_handle();
    let mut frames = FramedRead::new(r, FrameCodec);
    let mut asm = Assembler::new(settings.max_frame, MAX_CONCURRENT);
    let mut tasks = JoinSet::new();
    let mut running = Running::new();
    let ended = loop {
        if tasks.len() >= MAX_CONCURRENT {
            tokio::select! {
                done = tasks.join_next_with_id() => { reap(done, &mut running); continue }
                _ = shutdown.cancelled() => break Ok(()),
            }
        }
        let next = tokio::select! {
            f = frames.next() => f,
            done = tasks.join_next_with_id(), if !tasks.is_empty() => {
                reap(done, &mut running);
                continue;
            }
            _ = shutdown.cancelled() => break Ok(()),
        };
        let frame = match next {
            None => break Ok(()),
            Some(Err(e)) => break Err(e),
            Some(Ok(f)) => f,
        };
        if frame.flags & (flag::RESPONSE | flag::ERROR | flag::GOAWAY) != 0 {
            break Err(RpcError::Protocol("response flags on a request".into()));
        }
        match asm.push(frame) {
            Err(e) => break Err(e),
            Ok(None) => {}
            Ok(Some(Event::TooLarge { id, kind, size })) => {
                let msg = format!(
                    "request of at least {size} bytes exceeds this node's limit of {} bytes",
                    settings.max_frame
                );
                let _ = tx.send(error_response(id, kind, msg)).await;
            }
            Ok(Some(Event::Message { id, kind, body, .. })) => {
                let (handler, tx, max) = (handler.clone(), tx.clone(), settings.max_frame);
                let task = tasks.spawn(async move {
                    let out = answer(&*handler, id, kind, body, max).await;
                    let _ = tx.send(out).await;
                });
                running.insert(task.id(), (id, kind));
            }
        }
    };
    drop(frames);
    if ended.is_err() {
        // A peer that broke the protocol gets no more answers.
        tasks.abort_all();
        stop_writer.abort();
        return ended;
    }
    let grace = settings.request_timeout;
    if shutdown.is_cancelled() {
        // Tell the peer that what it sent from now on is not handled (it retries elsewhere).
        let goaway = Outgoing {
            id: 0,
            kind: 0,
            flags: flag::RESPONSE | flag::GOAWAY,
            body: Bytes::new(),
            progress: None,
        };
        let _ = tokio::time::timeout(grace, tx.send(goaway)).await;
    }
    // Let running requests answer (bounded); cut-off ones are answered with an error so the
    // caller does not take them for unhandled.
    let drain = async {
        while let Some(done) = tasks.join_next_with_id().await {
            reap(Some(done), &mut running);
        }
    };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tasks.abort_all();
        for (_, (id, kind)) in running.drain() {
            let msg = "the request was cut off by the node shutting down".to_string();
            let _ = tx.try_send(error_response(id, kind, msg));
        }
    }
    drop(tx);
    match tokio::time::timeout(Duration::from_secs(1).max(grace / 4), writer).await {
        Ok(Ok(Err(e))) => Err(e),
        Ok(_) => Ok(()),
        Err(_) => {
            stop_writer.abort();
            Ok(())
        }
    }
}

/// Runs the handler (a panic becomes an error answer) and frames its result.
async fn answer<H: RpcHandler>(
    handler: &H,
    id: u32,
    kind: u8,
    body: Bytes,
    max: usize,
) -> Outgoing {
    let res = AssertUnwindSafe(handler.handle(kind, body))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err("the request handler panicked".into()));
    match res {
        Ok(body) if body.len() > max => error_response(
            id,
            kind,
            format!(
                "response of {} bytes exceeds the limit of {max}",
                body.len()
            ),
        ),
        Ok(body) => Outgoing {
            id,
            kind,
            flags: flag::RESPONSE,
            body,
            progress: None,
        },
        Err(msg) => error_response(id, kind, msg),
    }
}

fn error_response(id: u32, kind: u8, msg: String) -> Outgoing {
    Outgoing {
        id,
        kind,
        flags: flag::RESPONSE | flag::ERROR,
        body: Bytes::from(msg),
        progress: None,
    }
}
