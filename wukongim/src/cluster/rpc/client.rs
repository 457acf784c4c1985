//! The calling side: per-peer pools of up to `maxConnections` multiplexed connections, dialled
//! lazily (connect + TLS + handshake within `dialTimeout`) and grown only when every existing
//! connection is busy. A broken connection fails its waiting calls and leaves the pool; the next
//! call dials anew, and so does every call after the server announced its shutdown (GOAWAY).
//! A call whose request provably was not handled — its connection died while the request was
//! still queued here, or closed unanswered after a GOAWAY — is retried once on a new connection;
//! nothing else is retried, because a forwarded write must not be applied twice.

use super::conn::{progress, tune, write_loop, BoxStream, Outgoing, QUEUE};
use super::frame::{flag, Assembler, Event, FrameCodec};
use super::{handshake, tls, RpcError, RpcSettings};
use bytes::Bytes;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

/// Responses being received at once on one connection.
const MAX_OPEN_RESPONSES: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Pooled, multiplexing cluster RPC client; cheap to clone.
#[derive(Clone)]
pub struct RpcClient {
    settings: Arc<RpcSettings>,
    pools: Arc<Mutex<HashMap<String, Arc<Pool>>>>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("peers", &lock(&self.pools).keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RpcClient {
    pub fn new(settings: Arc<RpcSettings>) -> Self {
        RpcClient {
            settings,
            pools: Default::default(),
        }
    }

    /// The settings this client was made with.
    pub fn settings(&self) -> &Arc<RpcSettings> {
        &self.settings
    }

    /// One request/response to `addr` (`host:port`), bounded by `request_timeout`. `kind` is the
    /// tag the server's handler sees.
    pub async fn call(&self, addr: &str, kind: u8, body: Bytes) -> Result<Bytes, RpcError> {
        self.call_timeout(addr, kind, body, self.settings.request_timeout)
            .await
    }

    /// Like [`RpcClient::call`], bounded by `timeout` instead (e.g. for snapshot transfers).
    /// The bound covers waiting for a connection (dialling included) and the answer.
    pub async fn call_timeout(
        &self,
        addr: &str,
        kind: u8,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, RpcError> {
        if body.len() > self.settings.max_frame {
            return Err(RpcError::FrameTooLarge(body.len()));
        }
        match tokio::time::timeout(timeout, self.call_inner(addr, kind, body)).await {
            Ok(res) => res,
            Err(_) => Err(RpcError::Timeout),
        }
    }

    /// Closes the pooled connections to `addr` (calls in flight on them fail with
    /// [`RpcError::Closed`]); a later call dials again.
    pub fn forget(&self, addr: &str) {
        let pool = lock(&self.pools).remove(addr);
        if let Some(pool) = pool {
            for slot in pool.slots.iter() {
                if let Some(conn) = lock(&slot.conn).take() {
                    conn.shared.fail(RpcError::Closed);
                }
            }
        }
    }

    fn pool(&self, addr: &str) -> Arc<Pool> {
        let mut pools = lock(&self.pools);
        if let Some(p) = pools.get(addr) {
            return p.clone();
        }
        let slots = (0..self.settings.max_connections.max(1))
            .map(|_| Slot::default())
            .collect();
        let pool = Arc::new(Pool {
            addr: addr.to_string(),
            slots,
        });
        pools.insert(addr.to_string(), pool.clone());
        pool
    }

    async fn call_inner(&self, addr: &str, kind: u8, body: Bytes) -> Result<Bytes, RpcError> {
        let pool = self.pool(addr);
        for _ in 0..2 {
            let slot = pool.pick();
            let _load = Load::enter(slot);
            let conn = pool.connect(slot, &self.settings).await?;
            match conn.request(kind, body.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(Attempt::Failed(e)) => return Err(e),
                Err(Attempt::NotSent) => {
                    tracing::debug!(peer = %addr, "cluster rpc connection lost before the request was sent, retrying");
                }
            }
        }
        Err(RpcError::Closed)
    }
}

/// Connections to one peer.
struct Pool {
    addr: String,
    slots: Box<[Slot]>,
}

#[derive(Default)]
struct Slot {
    conn: Mutex<Option<Arc<ClientConn>>>,
    /// Calls that picked this slot and have not finished.
    load: AtomicUsize,
    /// Held while dialling, so concurrent callers share one dial.
    dial: tokio::sync::Mutex<DialOutcome>,
    dials: AtomicU64,
}

#[derive(Default)]
struct DialOutcome {
    dials: u64,
    failed: Option<RpcError>,
}

struct Load<'a>(&'a Slot);

impl<'a> Load<'a> {
    fn enter(slot: &'a Slot) -> Self {
        slot.load.fetch_add(1, Ordering::AcqRel);
        Load(slot)
    }
}

impl Drop for Load<'_> {
    fn drop(&mut self) {
        self.0.load.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Slot {
    fn live(&self) -> Option<Arc<ClientConn>> {
        let mut conn = lock(&self.conn);
        if conn.as_ref().is_some_and(|c| !c.shared.usable()) {
            *conn = None;
        }
        conn.clone()
    }
}

impl Pool {
    /// An idle live connection if there is one, else an empty slot to dial, else the least busy.
    fn pick(&self) -> &Slot {
        let mut empty = None;
        let mut least: Option<(usize, &Slot)> = None;
        for slot in self.slots.iter() {
            let load = slot.load.load(Ordering::Acquire);
            let live = slot.live().is_some();
            if live && load == 0 {
                return slot;
            }
            if !live && load == 0 && empty.is_none() {
                empty = Some(slot);
            }
            if least.is_none_or(|(l, _)| load < l) {
                least = Some((load, slot));
            }
        }
        empty.or(least.map(|(_, s)| s)).unwrap_or(&self.slots[0])
    }

    async fn connect(
        &self,
        slot: &Slot,
        settings: &RpcSettings,
    ) -> Result<Arc<ClientConn>, RpcError> {
        if let Some(c) = slot.live() {
            return Ok(c);
        }
        let seen = slot.dials.load(Ordering::Acquire);
        let mut outcome = slot.dial.lock().await;
        if let Some(c) = slot.live() {
            return Ok(c);
        }
        if outcome.dials != seen {
            // Somebody dialled while this call waited, and failed: share their answer.
            if let Some(e) = &outcome.failed {
                return Err(e.clone());
            }
        }
        let res = dial(&self.addr, settings).await;
        outcome.dials += 1;
        slot.dials.store(outcome.dials, Ordering::Release);
        match res {
            Ok(conn) => {
                let conn = Arc::new(conn);
                *lock(&slot.conn) = Some(conn.clone());
                outcome.failed = None;
                Ok(conn)
            }
            Err(e) => {
                tracing::debug!(peer = %self.addr, error = %e, "cluster rpc dial failed");
                outcome.failed = Some(e.clone());
                Err(e)
            }
        }
    }
}

/// Connect, TLS and handshake within `dial_timeout`, then start the connection's tasks. With
/// more than one cluster token in force (after a reload), the current one is tried first and
/// the previous one on an authentication failure, so a peer not reloaded yet is still reached.
async fn dial(addr: &str, settings: &RpcSettings) -> Result<ClientConn, RpcError> {
    let tokens = settings.tokens();
    let tries: Vec<Option<&[u8]>> = if tokens.is_empty() {
        vec![None]
    } else {
        tokens.iter().map(|t| Some(t.as_slice())).collect()
    };
    let mut last = None;
    for token in tries {
        match dial_with(addr, settings, token).await {
            Err(RpcError::Auth(m)) => last = Some(RpcError::Auth(m)),
            other => return other,
        }
    }
    Err(last.unwrap_or(RpcError::Closed))
}

async fn dial_with(
    addr: &str,
    settings: &RpcSettings,
    token: Option<&[u8]>,
) -> Result<ClientConn, RpcError> {
    let dial_err = |source| RpcError::Dial {
        addr: addr.to_string(),
        source,
    };
    let establish = async {
        let tcp = TcpStream::connect(addr).await.map_err(dial_err)?;
        tune(&tcp, settings);
        let mut stream: BoxStream = match settings.tls.as_ref().map(|l| l.get()) {
            Some(t) => {
                let name = tls::server_name(addr)?;
                let tls = tokio_rustls::TlsConnector::from(t.client.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| match RpcError::from(e) {
                        RpcError::Tls(m) => RpcError::Tls(format!("{addr}: {m}")),
                        other => RpcError::Tls(format!(
                            "{addr}: TLS handshake failed ({other}); is cluster.tls enabled on the peer?"
                        )),
                    })?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        };
        handshake::client(&mut stream, token)
            .await
            .map_err(|e| e.at(addr))?;
        Ok::<_, RpcError>(stream)
    };
    let stream = tokio::time::timeout(settings.dial_timeout, establish)
        .await
        .map_err(|_| {
            dial_err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no connection and handshake within the dial timeout of {:?}",
                    settings.dial_timeout
                ),
            ))
        })??;
    tracing::debug!(peer = %addr, "cluster rpc connected");
    Ok(ClientConn::start(stream, addr, settings.max_frame))
}

/// Outcome of one attempt on one connection.
enum Attempt {
    /// The request never reached the socket; safe to retry elsewhere.
    NotSent,
    Failed(RpcError),
}

type Reply = oneshot::Sender<Result<Bytes, RpcError>>;

#[derive(Default)]
struct Pending {
    waiting: HashMap<u32, Reply>,
    failed: Option<RpcError>,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    dead: CancellationToken,
    /// The server announced its shutdown: no new calls here.
    goaway: AtomicBool,
}

impl Shared {
    fn usable(&self) -> bool {
        !self.dead.is_cancelled() && !self.goaway.load(Ordering::Acquire)
    }

    fn answer(&self, id: u32, res: Result<Bytes, RpcError>) {
        if let Some(tx) = lock(&self.pending).waiting.remove(&id) {
            let _ = tx.send(res);
        }
    }

    /// Marks the connection dead and fails every waiting call (first error wins).
    fn fail(&self, e: RpcError) {
        let (waiting, e) = {
            let mut p = lock(&self.pending);
            let e = p.failed.get_or_insert(e).clone();
            (std::mem::take(&mut p.waiting), e)
        };
        self.dead.cancel();
        for (_, tx) in waiting {
            let _ = tx.send(Err(e.clone()));
        }
    }
}

/// One multiplexed connection: a writer task, a reader task and the calls waiting for answers.
struct ClientConn {
    tx: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
    next_id: AtomicU32,
}

impl Drop for ClientConn {
    fn drop(&mut self) {
        // Nobody can call on it any more: stop both tasks.
        self.shared.dead.cancel();
    }
}

/// Removes the call's entry and stops its request from being (fully) written once the caller
/// is gone — answered, timed out or cancelled.
struct Waiting<'a> {
    shared: &'a Shared,
    id: u32,
    progress: Arc<AtomicU8>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.progress.store(progress::ABANDONED, Ordering::Release);
        lock(&self.shared.pending).waiting.remove(&self.id);
    }
}

impl ClientConn {
    fn start(stream: BoxStream, addr: &str, max_frame: usize) -> ClientConn {
        let (r, w) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared::default());
        let peer = addr.to_string();
        let s = shared.clone();
        tokio::spawn(async move {
            let res = tokio::select! {
                r = write_loop(w, rx) => r,
                _ = s.dead.cancelled() => Ok(()),
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "cluster rpc connection write failed");
                s.fail(e.at(&peer));
            }
        });
        let peer = addr.to_string();
        let s = shared.clone();
        tokio::spawn(async move {
            let e = read_loop(r, &s, &peer, max_frame).await;
            if !matches!(e, RpcError::Closed) {
                tracing::warn!(%peer, error = %e, "cluster rpc connection dropped");
            } else {
                tracing::debug!(%peer, "cluster rpc connection closed");
            }
            s.fail(e);
        });
        ClientConn {
            tx,
            shared,
            next_id: AtomicU32::new(1),
        }
    }

    async fn request(&self, kind: u8, body: Bytes) -> Result<Bytes, Attempt> {
        let (reply, answer) = oneshot::channel();
        let id = {
            let mut p = lock(&self.shared.pending);
            if p.failed.is_some() || self.shared.goaway.load(Ordering::Acquire) {
                return Err(Attempt::NotSent);
            }
            let mut id = self.next_id.fetch_add(1, Ordering::Relaxed);
            while p.waiting.contains_key(&id) {
                id = self.next_id.fetch_add(1, Ordering::Relaxed);
            }
            p.waiting.insert(id, reply);
            id
        };
        let progress = Arc::new(AtomicU8::new(progress::QUEUED));
        let _waiting = Waiting {
            shared: &self.shared,
            id,
            progress: progress.clone(),
        };
        let out = Outgoing {
            id,
            kind,
            flags: 0,
            body,
            progress: Some(progress.clone()),
        };
        if self.tx.send(out).await.is_err() {
            return Err(Attempt::NotSent);
        }
        match answer.await.unwrap_or(Err(RpcError::Closed)) {
            Ok(body) => Ok(body),
            Err(e) => {
                // Claim the request back; if the writer never started on it, it never left.
                let unsent = progress
                    .compare_exchange(
                        progress::QUEUED,
                        progress::ABANDONED,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok();
                // After a GOAWAY the server answers every request it read before it closes.
                let unanswered = self.shared.goaway.load(Ordering::Acquire)
                    && !matches!(e, RpcError::Remote(_) | RpcError::FrameTooLarge(_));
                Err(if unsent || unanswered {
                    Attempt::NotSent
                } else {
                    Attempt::Failed(e)
                })
            }
        }
    }
}

/// Delivers responses to their callers until the connection ends; returns why it ended.
async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    r: R,
    shared: &Shared,
    peer: &str,
    max_frame: usize,
) -> RpcError {
    let mut frames = FramedRead::new(r, FrameCodec);
    let mut asm = Assembler::new(max_frame, MAX_OPEN_RESPONSES);
    loop {
        let next = tokio::select! {
            f = frames.next() => f,
            _ = shared.dead.cancelled() => return RpcError::Closed,
        };
        let frame = match next {
            None => return RpcError::Closed,
            Some(Err(e)) => return e.at(peer),
            Some(Ok(f)) => f,
        };
        if frame.flags & flag::RESPONSE == 0 {
            return RpcError::Protocol(format!("{peer}: sent a request on a client connection"));
        }
        if frame.flags & flag::GOAWAY != 0 {
            tracing::debug!(%peer, "cluster rpc peer is shutting down (goaway)");
            shared.goaway.store(true, Ordering::Release);
            continue;
        }
        match asm.push(frame) {
            Err(e) => return e.at(peer),
            Ok(None) => {}
            Ok(Some(Event::Message {
                id, flags, body, ..
            })) => {
                let res = if flags & flag::ERROR != 0 {
                    Err(RpcError::Remote(
                        String::from_utf8_lossy(&body).into_owned(),
                    ))
                } else {
                    Ok(body)
                };
                shared.answer(id, res);
            }
            Ok(Some(Event::TooLarge { id, size, .. })) => {
                shared.answer(id, Err(RpcError::FrameTooLarge(size)));
            }
        }
    }
}
