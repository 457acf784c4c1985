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

/// Most unacknowledged messages kept per user.
pub const PENDING_PER_USER: usize = 1000;
/// Unacknowledged messages older than this are dropped (clients catch up through message sync).
pub const PENDING_TTL: Duration = Duration::from_secs(24 * 3600);

/// What the hub asks a session to do.
#[derive(Debug, Clone)]
pub enum Outbound {
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
}

#[derive(Default)]
struct Inner {
    conns: HashMap<String, Vec<Conn>>,
    pending: HashMap<String, VecDeque<(Instant, Arc<Message>)>>,
}

/// Per-node registry of client connections.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    pub metrics: HubMetrics,
}

/// Delivery and connection metrics of this node's hub.
#[derive(Debug, Default)]
pub struct HubMetrics {
    pub delivered: Counter,
    connections: Family<[(&'static str, &'static str); 1], Gauge>,
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
    }
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a connection. Kicks what it replaces (a master device replaces every older
    /// connection of the same uid and device flag; any device replaces an older connection with
    /// the same device id) and returns the messages pending for the user, oldest first.
    pub fn register(&self, info: ConnInfo, tx: mpsc::Sender<Outbound>) -> Vec<Arc<Message>> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let list = g.conns.entry(info.uid.clone()).or_default();
        list.retain(|c| {
            let replaced = c.info.device_flag == info.device_flag
                && (info.device_level == 1 || c.info.device_id == info.device_id);
            if replaced {
                let _ = c.tx.try_send(Outbound::Kick {
                    reason: 12,
                    text: "logged in on another device".into(),
                });
            }
            !replaced
        });
        list.push(Conn {
            info: info.clone(),
            tx,
        });
        let pending = g.pending.entry(info.uid.clone()).or_default();
        let cutoff = Instant::now().checked_sub(PENDING_TTL);
        pending.retain(|(t, _)| cutoff.is_none_or(|c| *t >= c));
        pending.iter().map(|(_, m)| m.clone()).collect()
    }

    /// Removes connection `id` of `uid` (no-op if it was already replaced).
    pub fn unregister(&self, uid: &str, id: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = g.conns.get_mut(uid) {
            list.retain(|c| c.info.id != id);
            if list.is_empty() {
                g.conns.remove(uid);
            }
        }
    }

    /// `uid` acknowledged `message_id`: stop redelivering it.
    pub fn ack(&self, uid: &str, message_id: i64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = g.pending.get_mut(uid) {
            p.retain(|(_, m)| m.message_id != message_id);
            if p.is_empty() {
                g.pending.remove(uid);
            }
        }
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
                            // Slow or gone: it will get the message on reconnect from pending.
                            let _ = c.tx.try_send(Outbound::Kick {
                                reason: 15,
                                text: "client too slow".into(),
                            });
                        }
                    }
                }
                if !is_sender && !msg.header.no_persist {
                    let p = g.pending.entry(uid.clone()).or_default();
                    if p.len() >= PENDING_PER_USER {
                        p.pop_front();
                    }
                    p.push_back((now, msg.clone()));
                }
            }
        }
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

    /// Kicks the connections of `uid` (optionally only one device flag).
    pub fn kick_user(&self, uid: &str, device_flag: Option<u8>, reason: u8, text: &str) -> usize {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for c in g.conns.get(uid).into_iter().flatten() {
            if device_flag.is_none_or(|f| f == c.info.device_flag) {
                let _ = c.tx.try_send(Outbound::Kick {
                    reason,
                    text: text.into(),
                });
                n += 1;
            }
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
