//! The messages this node applied, kept for the webhooks in apply order, bounded in bytes. Each
//! item is keyed by (Raft index, position in the entry), so the leader knows exactly where it
//! stopped; the replicated cursor trims what was posted.

use super::WebhookMetrics;
use crate::store::{Delivery, Message};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Where an item sits in the applied order: Raft index, then position within that entry.
pub type Pos = (u64, u32);

/// One applied message and who it was for.
#[derive(Debug, Clone)]
pub struct Item {
    pub pos: Pos,
    pub message: Arc<Message>,
    pub recipients: Arc<[String]>,
}

#[derive(Default)]
struct Inner {
    items: VecDeque<Item>,
    bytes: usize,
}

/// Bounded queue of applied messages (oldest dropped past `max_bytes`, counted).
pub struct Feed {
    inner: Mutex<Inner>,
    max_bytes: usize,
    metrics: Arc<WebhookMetrics>,
    pub added: tokio::sync::Notify,
    /// The feed holds every message of the entries after this Raft index: the index applied
    /// when the node started, or of the last snapshot installed (entries before it were never
    /// applied here one by one).
    complete_after: std::sync::atomic::AtomicU64,
}

fn charge(i: &Item) -> usize {
    i.message.payload.len() + i.recipients.iter().map(|r| r.len() + 24).sum::<usize>() + 256
}

impl Feed {
    pub fn new(max_bytes: usize, metrics: Arc<WebhookMetrics>) -> Feed {
        Feed {
            inner: Mutex::default(),
            max_bytes,
            metrics,
            added: tokio::sync::Notify::new(),
            complete_after: Default::default(),
        }
    }

    /// Entries up to `index` were applied without passing through this feed.
    pub fn mark_gap(&self, index: u64) {
        self.complete_after
            .fetch_max(index, std::sync::atomic::Ordering::Relaxed);
    }

    /// See [`Feed::mark_gap`].
    pub fn complete_after(&self) -> u64 {
        self.complete_after
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the messages applied at Raft `index`.
    pub fn push(&self, index: u64, deliveries: &[Delivery]) {
        if deliveries.is_empty() {
            return;
        }
        let mut g = self.lock();
        for (n, d) in deliveries.iter().enumerate() {
            let item = Item {
                pos: (index, n as u32),
                message: Arc::new(d.message.clone()),
                recipients: d.recipients.clone().into(),
            };
            g.bytes += charge(&item);
            g.items.push_back(item);
        }
        while g.bytes > self.max_bytes {
            let Some(old) = g.items.pop_front() else {
                break;
            };
            g.bytes -= charge(&old);
            self.metrics.dropped.inc();
            tracing::warn!(
                message_id = old.message.message_id,
                "webhook queue full: message dropped without msg.notify / msg.offline"
            );
        }
        self.metrics.queued.set(g.items.len() as i64);
        drop(g);
        self.added.notify_one();
    }

    /// Up to `limit` items after `after`, in order.
    pub fn after(&self, after: Pos, limit: usize) -> Vec<Item> {
        let g = self.lock();
        let start = g.items.partition_point(|i| i.pos <= after);
        g.items.range(start..).take(limit).cloned().collect()
    }

    /// The position of the first item after `after`, if any.
    pub fn next_pos(&self, after: Pos) -> Option<Pos> {
        let g = self.lock();
        let start = g.items.partition_point(|i| i.pos <= after);
        g.items.get(start).map(|i| i.pos)
    }

    /// Forgets every item up to Raft index `index` (posted, per the cursor).
    pub fn trim(&self, index: u64) {
        let mut g = self.lock();
        while g.items.front().is_some_and(|i| i.pos.0 <= index) {
            let old = g.items.pop_front().expect("front exists");
            g.bytes -= charge(&old);
        }
        self.metrics.queued.set(g.items.len() as i64);
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Header;

    fn delivery(id: i64, payload: usize) -> Delivery {
        Delivery {
            message: Message {
                message_id: id,
                message_seq: id as u64,
                client_msg_no: String::new(),
                from_uid: "a".into(),
                channel_id: "b".into(),
                channel_type: 1,
                setting: 0,
                header: Header::default(),
                expire: 0,
                timestamp: 0,
                topic: None,
                stream_no: String::new(),
                payload: vec![0; payload],
            },
            from_device: String::new(),
            recipients: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn positions_order_and_trim() {
        let f = Feed::new(1 << 20, Arc::default());
        f.push(5, &[delivery(1, 1), delivery(2, 1)]);
        f.push(7, &[delivery(3, 1)]);
        let all = f.after((0, 0), 10);
        let pos: Vec<Pos> = all.iter().map(|i| i.pos).collect();
        assert_eq!(pos, vec![(5, 0), (5, 1), (7, 0)]);
        assert_eq!(f.after((5, 0), 1)[0].message.message_id, 2);
        assert_eq!(f.next_pos((5, 1)), Some((7, 0)));
        f.trim(5);
        assert_eq!(f.len(), 1);
        assert_eq!(f.after((0, 0), 10)[0].message.message_id, 3);
    }

    #[test]
    fn bounded_in_bytes_dropping_oldest() {
        let m = Arc::new(WebhookMetrics::default());
        let f = Feed::new(10_000, m.clone());
        for i in 0..100 {
            f.push(i + 1, &[delivery(i as i64 + 1, 1000)]);
        }
        assert!(f.len() < 10, "kept {}", f.len());
        assert_eq!(m.dropped.get() as usize, 100 - f.len());
        let last = f.after((0, 0), 100);
        assert_eq!(last.last().unwrap().message.message_id, 100);
    }
}
