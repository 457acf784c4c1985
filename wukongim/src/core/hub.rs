//! Who is connected to this node, and delivery of applied messages to them. Applying a committed
//! message is the trigger: the hub pushes it to every online device of every recipient and keeps
//! it in the recipient's pending list until a RECVACK arrives, so a device that reconnects (or
//! comes online later) is sent what it missed. Also enforces WuKongIM's multi-device rules.

use crate::store::{Delivery, Message};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most unacknowledged messages kept per user.
pub const PENDING_PER_USER: usize = 1000;
/// Unacknowledged messages older than this are dropped (clients catch up through message sync).
pub const PENDING_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default bound of the pending store in bytes (`conn.maxPendingBytes`).
pub const DEFAULT_PENDING_BYTES: usize = 256 << 20;
/// Go's DISCONNECT text when a master device's login kicks another device (event_connect.go).
pub const LOGIN_KICK_TEXT: &str = "login in other device";
/// Bytes a pending entry is charged beyond its payload (ids, strings, queue slots).
const ENTRY_OVERHEAD: usize = 256;

/// What the hub asks a session to do.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Write this frame as it is (a reply the session itself encoded: SENDACK, PONG, ...).
    Frame(bytes::Bytes),
    /// Send this message as RECV.
    Recv(Arc<Message>),
    /// Send DISCONNECT with the reason and close.
    Kick { reason: u8, text: String },
    /// Close without DISCONNECT, so the client reconnects (shutdown).
    Close,
}

/// A registered connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub id: u64,
    pub uid: String,
    pub device_id: String,
    pub device_flag: u8,
    pub device_level: u8,
    pub transport: &'static str,
}

struct Conn {
    info: ConnInfo,
    tx: mpsc::Sender<Outbound>,
    /// Ends the session without going through `tx` (a full queue is a slow client).
    closed: CancellationToken,
    /// When it registered (unix ms): replicated kicks spare connections made after them.
    since_ms: i64,
}

/// One message waiting for a RECVACK: insertion number (node-wide order), time, message.
type Pending = (u64, Instant, Arc<Message>);

/// A uid shared by its pending queue and its entries in the node-wide order (one allocation
/// per user with pending messages, not one per message and recipient).
type Uid = Arc<str>;

/// The hub's maps are looked up once or twice per recipient of every message: foldhash
/// (seeded per process) rather than SipHash, which was an eighth of a delivery's time.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Inner {
    conns: FastMap<String, Vec<Conn>>,
    pending: FastMap<Uid, VecDeque<Pending>>,
    /// Node-wide insertion order of pending entries (uid, number), for oldest-first eviction;
    /// entries already acknowledged are skipped when met and compacted away now and then.
    order: VecDeque<(u64, Uid)>,
    next_seq: u64,
    /// Bytes charged for every pending entry (payload + [`ENTRY_OVERHEAD`]).
    bytes: usize,
    entries: usize,
}

/// Per-node registry of client connections.
pub struct Hub {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    /// Bound of the pending store in bytes; the oldest entries of any user go first.
    max_pending_bytes: usize,
    pub metrics: HubMetrics,
    /// Where connects and disconnects go for the `user.onlinestatus` webhook (when on).
    presence: std::sync::OnceLock<Arc<crate::webhook::PresenceQueue>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            inner: Mutex::default(),
            next_id: AtomicU64::new(0),
            max_pending_bytes: DEFAULT_PENDING_BYTES,
            metrics: HubMetrics::default(),
            presence: std::sync::OnceLock::new(),
        }
    }
}

fn charge(m: &Message) -> usize {
    m.payload.len() + ENTRY_OVERHEAD
}

impl Inner {
    fn forget(&mut self, m: &Message) {
        self.bytes = self.bytes.saturating_sub(charge(m));
        self.entries = self.entries.saturating_sub(1);
    }

    /// Drops the node-wide oldest pending entry; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((seq, uid)) = self.order.pop_front() {
            let Some(q) = self.pending.get_mut(&*uid) else {
                continue;
            };
            // Entries before `seq` in this queue were removed already (acks, per-user cap).
            if q.front().is_some_and(|(s, _, _)| *s == seq) {
                let (_, _, m) = q.pop_front().expect("front exists");
                if q.is_empty() {
                    self.pending.remove(&*uid);
                }
                self.forget(&m);
                return true;
            }
        }
        false
    }

    /// Rebuilds `order` from the live entries when stale ones dominate (amortised O(1)).
    fn compact_order(&mut self) {
        if self.order.len() <= 2 * self.entries + 1024 {
            return;
        }
        let mut live: Vec<(u64, Uid)> = self
            .pending
            .iter()
            .flat_map(|(uid, q)| q.iter().map(move |(s, _, _)| (*s, uid.clone())))
            .collect();
        live.sort_unstable_by_key(|(s, _)| *s);
        self.order = live.into();
    }
}

/// Delivery and connection metrics of this node's hub.
#[derive(Debug, Default)]
pub struct HubMetrics {
    pub delivered: Counter,
    connections: Family<[(&'static str, &'static str); 1], Gauge>,
    /// Pending entries dropped because the store was over `conn.maxPendingBytes`.
    pub pending_dropped: Counter,
    pending_bytes: Gauge,
}

impl HubMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "wukongim_messages_delivered",
            "Messages pushed to online devices of this node.",
            self.delivered.clone(),
        );
        r.register(
            "wukongim_connections",
            "Client connections by transport.",
            self.connections.clone(),
        );
        r.register(
            "wukongim_pending_dropped",
            "Undelivered messages dropped oldest-first because the pending store was over \
             conn.maxPendingBytes (their recipients get them through message sync).",
            self.pending_dropped.clone(),
        );
        r.register(
            "wukongim_pending_bytes",
            "Bytes charged to messages kept for redelivery to their recipients.",
            self.pending_bytes.clone(),
        );
    }
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// A hub whose pending store holds at most `max_pending_bytes`.
    pub fn with_pending_limit(max_pending_bytes: usize) -> Arc<Hub> {
        Arc::new(Hub {
            max_pending_bytes,
            ..Hub::default()
        })
    }

    /// Reports every later connect and disconnect to `q` (the `user.onlinestatus` webhook).
    pub fn watch_presence(&self, q: Arc<crate::webhook::PresenceQueue>) {
        let _ = self.presence.set(q);
    }

    /// Records a presence change of `info` with the counts of `list` (after the change).
    fn report(&self, info: &ConnInfo, online: bool, list: &[Conn]) {
        if let Some(q) = self.presence.get() {
            let same_flag = list
                .iter()
                .filter(|c| c.info.device_flag == info.device_flag)
                .count();
            q.record(
                &info.uid,
                info.device_flag,
                online,
                info.id,
                same_flag,
                list.len(),
            );
        }
    }

    /// Bytes charged to pending entries now.
    pub fn pending_bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a connection. Kicks what it replaces (a master device replaces every older
    /// connection of the same uid and device flag; any device replaces an older connection with
    /// the same device id) and returns the messages pending for the user, oldest first.
    pub fn register(
        &self,
        info: ConnInfo,
        tx: mpsc::Sender<Outbound>,
        closed: CancellationToken,
    ) -> Vec<Arc<Message>> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let list = g.conns.entry(info.uid.clone()).or_default();
        let mut gone = Vec::new();
        list.retain(|c| {
            let replaced = c.info.device_flag == info.device_flag
                && (info.device_level == 1 || c.info.device_id == info.device_id);
            if replaced {
                let _ = c.tx.try_send(Outbound::Kick {
                    reason: 12,
                    text: "logged in on another device".into(),
                });
                gone.push(c.info.clone());
            }
            !replaced
        });
        for old in &gone {
            self.report(old, false, list);
        }
        list.push(Conn {
            info: info.clone(),
            tx,
            closed,
            since_ms: super::now_millis(),
        });
        self.report(&info, true, list);
        let cutoff = Instant::now().checked_sub(PENDING_TTL);
        let Some(pending) = g.pending.get_mut(info.uid.as_str()) else {
            return Vec::new();
        };
        let mut expired = Vec::new();
        pending.retain(|(_, t, m)| {
            let keep = cutoff.is_none_or(|c| *t >= c);
            if !keep {
                expired.push(m.clone());
            }
            keep
        });
        let out = pending.iter().map(|(_, _, m)| m.clone()).collect();
        if pending.is_empty() {
            g.pending.remove(info.uid.as_str());
        }
        for m in expired {
            g.forget(&m);
        }
        out
    }

    /// Removes connection `id` of `uid` (no-op if it was already replaced).
    pub fn unregister(&self, uid: &str, id: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = g.conns.get_mut(uid) {
            let mut gone = None;
            list.retain(|c| {
                let hit = c.info.id == id;
                if hit {
                    gone = Some(c.info.clone());
                }
                !hit
            });
            if let Some(info) = gone {
                self.report(&info, false, list);
            }
            if list.is_empty() {
                g.conns.remove(uid);
            }
        }
    }

    /// `uid` acknowledged `message_id`: stop redelivering it. Returns the messages it removed.
    pub fn ack(&self, uid: &str, message_id: i64) -> Vec<Arc<Message>> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = g.pending.get_mut(uid) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        p.retain(|(_, _, m)| {
            let hit = m.message_id == message_id;
            if hit {
                removed.push(m.clone());
            }
            !hit
        });
        if p.is_empty() {
            g.pending.remove(uid);
        }
        for m in &removed {
            g.forget(m);
        }
        g.compact_order();
        removed
    }

    /// Pushes applied messages to their recipients' online devices.
    pub fn deliver(&self, deliveries: Vec<Delivery>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for d in deliveries {
            let msg = Arc::new(d.message);
            for uid in &d.recipients {
                let is_sender = *uid == msg.from_uid;
                if let Some(list) = g.conns.get(uid) {
                    for c in list {
                        if is_sender
                            && !d.from_device.is_empty()
                            && c.info.device_id == d.from_device
                        {
                            continue;
                        }
                        if c.tx.try_send(Outbound::Recv(msg.clone())).is_ok() {
                            self.metrics.delivered.inc();
                        } else {
                            // Slow or gone: its queue is full, so a kick could not travel
                            // through it; the session is ended directly. The client gets the
                            // message from pending when it reconnects.
                            if !c.closed.is_cancelled() {
                                tracing::info!(
                                    uid = %c.info.uid,
                                    device = %c.info.device_id,
                                    "client too slow (outbound queue full): disconnecting"
                                );
                            }
                            c.closed.cancel();
                        }
                    }
                }
                if !is_sender && !msg.header.no_persist {
                    let seq = g.next_seq;
                    g.next_seq += 1;
                    let key: Uid = match g.pending.get_key_value(uid.as_str()) {
                        Some((k, _)) => k.clone(),
                        None => Arc::from(uid.as_str()),
                    };
                    let p = g.pending.entry(key.clone()).or_default();
                    let capped = if p.len() >= PENDING_PER_USER {
                        p.pop_front()
                    } else {
                        None
                    };
                    p.push_back((seq, now, msg.clone()));
                    if let Some((_, _, old)) = capped {
                        g.forget(&old);
                    }
                    g.order.push_back((seq, key));
                    g.bytes += charge(&msg);
                    g.entries += 1;
                }
            }
        }
        while g.bytes > self.max_pending_bytes && g.evict_oldest() {
            self.metrics.pending_dropped.inc();
        }
        g.compact_order();
        self.metrics.pending_bytes.set(g.bytes as i64);
    }

    /// Closes every connection without DISCONNECT (shutdown): WuKongIM SDKs treat any
    /// DISCONNECT as a kick and stop reconnecting, while a plain close makes them reconnect
    /// and resend what was not acknowledged — what a restart needs.
    pub fn close_all(&self) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for c in g.conns.values().flatten() {
            let _ = c.tx.try_send(Outbound::Close);
        }
    }

    /// Kicks the connections of `uid` with one of `device_flags` registered before `before_ms`
    /// (unix ms); returns how many.
    pub fn kick_before(
        &self,
        uid: &str,
        device_flags: &[u8],
        before_ms: i64,
        reason: u8,
        text: &str,
    ) -> usize {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for c in g.conns.get(uid).into_iter().flatten() {
            if device_flags.contains(&c.info.device_flag) && c.since_ms < before_ms {
                let _ = c.tx.try_send(Outbound::Kick {
                    reason,
                    text: text.into(),
                });
                n += 1;
            }
        }
        n
    }

    /// Go's CONNECT rule for connections of other nodes: of `uid`'s connections with
    /// `device_flag` registered before `before_ms`, a `master` login kicks those of other
    /// devices and any login closes those of `device_id` itself (no DISCONNECT). Returns how
    /// many.
    pub fn replace_before(
        &self,
        uid: &str,
        device_flag: u8,
        device_id: &str,
        master: bool,
        before_ms: i64,
    ) -> usize {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for c in g.conns.get(uid).into_iter().flatten() {
            if c.info.device_flag != device_flag || c.since_ms >= before_ms {
                continue;
            }
            let out = if c.info.device_id == device_id {
                Outbound::Close
            } else if master {
                Outbound::Kick {
                    reason: 12,
                    text: LOGIN_KICK_TEXT.into(),
                }
            } else {
                continue;
            };
            let _ = c.tx.try_send(out);
            n += 1;
        }
        n
    }

    /// Connection counts by transport.
    pub fn connection_counts(&self) -> HashMap<&'static str, usize> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = HashMap::new();
        for c in g.conns.values().flatten() {
            *m.entry(c.info.transport).or_insert(0) += 1;
        }
        m
    }

    /// Sets the connection gauges from the current connections.
    pub fn refresh_metrics(&self) {
        self.metrics.pending_bytes.set(self.pending_bytes() as i64);
        let counts = self.connection_counts();
        for t in ["tcp", "ws"] {
            let n = counts.get(t).copied().unwrap_or(0);
            self.metrics
                .connections
                .get_or_create(&[("transport", t)])
                .set(n as i64);
        }
    }

    /// Devices of `uid` online on this node.
    pub fn online(&self, uid: &str) -> Vec<ConnInfo> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.conns
            .get(uid)
            .map(|l| l.iter().map(|c| c.info.clone()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: i64, to: &str, payload: usize) -> Delivery {
        Delivery {
            message: Message {
                message_id: id,
                message_seq: id as u64,
                client_msg_no: String::new(),
                from_uid: "sender".into(),
                channel_id: to.into(),
                channel_type: 1,
                setting: 0,
                header: Default::default(),
                expire: 0,
                timestamp: 0,
                topic: None,
                stream_no: String::new(),
                payload: vec![0; payload],
            },
            from_device: String::new(),
            recipients: vec![to.into()],
        }
    }

    fn info(uid: &str) -> ConnInfo {
        ConnInfo {
            id: 1,
            uid: uid.into(),
            device_id: "d".into(),
            device_flag: 0,
            device_level: 1,
            transport: "tcp",
        }
    }

    #[test]
    fn pending_store_is_bounded_in_bytes_dropping_the_oldest() {
        let entry = 1024 + ENTRY_OVERHEAD;
        let hub = Hub::with_pending_limit(10 * entry);
        // 100 offline users, one 1 KiB message each, in order.
        for i in 0..100 {
            hub.deliver(vec![delivery(i, &format!("u{i}"), 1024)]);
            assert!(hub.pending_bytes() <= 10 * entry);
        }
        assert_eq!(hub.metrics.pending_dropped.get(), 90);
        let (tx, _rx) = mpsc::channel(8);
        let closed = CancellationToken::new();
        assert!(
            hub.register(info("u0"), tx.clone(), closed.clone())
                .is_empty(),
            "oldest dropped"
        );
        let kept = hub.register(info("u99"), tx, closed);
        assert_eq!(kept.iter().map(|m| m.message_id).collect::<Vec<_>>(), [99]);
        // Acknowledged entries free their bytes; the stale order entries are compacted.
        for i in 90..100 {
            hub.ack(&format!("u{i}"), i);
        }
        assert_eq!(hub.pending_bytes(), 0);
        for i in 100..5000 {
            hub.deliver(vec![delivery(i, "busy", 16)]);
            hub.ack("busy", i);
        }
        let g = hub.inner.lock().unwrap();
        assert!(g.order.len() <= 2 * g.entries + 1024, "{}", g.order.len());
    }

    #[test]
    fn kicks_spare_other_flags_and_connections_made_later() {
        let hub = Hub::new();
        let (tx, mut rx) = mpsc::channel(8);
        hub.register(info("k"), tx, CancellationToken::new());
        let now = super::super::now_millis();
        assert_eq!(
            hub.kick_before("k", &[1], now + 1_000, 12, ""),
            0,
            "other flag"
        );
        assert_eq!(
            hub.kick_before("k", &[0], now - 1_000, 12, ""),
            0,
            "made later"
        );
        assert_eq!(hub.kick_before("k", &[0, 1], now + 1_000, 12, "x"), 1);
        assert!(matches!(
            rx.try_recv(),
            Ok(Outbound::Kick { reason: 12, .. })
        ));
    }

    #[test]
    fn a_login_elsewhere_kicks_other_devices_only_when_master() {
        let hub = Hub::new();
        let mut rxs = Vec::new();
        for (id, device) in [(1, "old-phone"), (2, "phone")] {
            let (tx, rx) = mpsc::channel(8);
            let mut i = info("r");
            (i.id, i.device_id, i.device_level) = (id, device.into(), 0);
            hub.register(i, tx, CancellationToken::new());
            rxs.push(rx);
        }
        let later = super::super::now_millis() + 1_000;
        assert_eq!(
            hub.replace_before("r", 1, "x", true, later),
            0,
            "other flag"
        );
        assert_eq!(hub.replace_before("r", 0, "new", false, later), 0, "slave");
        assert_eq!(hub.replace_before("r", 0, "phone", false, later), 1);
        assert!(matches!(rxs[1].try_recv(), Ok(Outbound::Close)));
        assert_eq!(hub.replace_before("r", 0, "new", true, later), 2);
        assert!(matches!(
            rxs[0].try_recv(),
            Ok(Outbound::Kick { reason: 12, .. })
        ));
    }

    #[test]
    fn a_full_queue_ends_the_session_directly() {
        let hub = Hub::new();
        let (tx, _rx) = mpsc::channel(1);
        let closed = CancellationToken::new();
        hub.register(info("slow"), tx, closed.clone());
        hub.deliver(vec![delivery(1, "slow", 1)]);
        assert!(!closed.is_cancelled(), "room for one");
        hub.deliver(vec![delivery(2, "slow", 1)]);
        assert!(closed.is_cancelled(), "queue full: session ended");
    }
}
