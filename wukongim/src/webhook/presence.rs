//! `user.onlinestatus` from the node that holds the connection: the hub records each connect and
//! disconnect here (bounded; the oldest dropped past [`MAX_QUEUED`]) and [`run`] posts them as
//! Go does, a JSON array of `uid-deviceFlag-online-connId-deviceOnlineCount-totalOnlineCount`.

use super::post::Poster;
use super::{body, WebhookMetrics, ONLINE_STATUS};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most presence changes waiting to be posted.
pub const MAX_QUEUED: usize = 100_000;
/// Most changes in one request.
const PER_PUSH: usize = 1000;
/// Changes arriving within this window go in one request.
const GATHER: Duration = Duration::from_millis(200);

/// Presence changes not yet posted.
pub struct PresenceQueue {
    q: Mutex<VecDeque<String>>,
    added: tokio::sync::Notify,
    metrics: Arc<WebhookMetrics>,
}

impl PresenceQueue {
    pub fn new(metrics: Arc<WebhookMetrics>) -> PresenceQueue {
        PresenceQueue {
            q: Mutex::default(),
            added: tokio::sync::Notify::new(),
            metrics,
        }
    }

    /// A device of `uid` connected or disconnected; counts are after the change.
    pub fn record(
        &self,
        uid: &str,
        device_flag: u8,
        online: bool,
        conn_id: u64,
        device_count: usize,
        total: usize,
    ) {
        let entry = body::online_status(uid, device_flag, online, conn_id, device_count, total);
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= MAX_QUEUED {
            q.pop_front();
            self.metrics.dropped.inc();
        }
        q.push_back(entry);
        drop(q);
        self.added.notify_one();
    }

    fn peek(&self) -> Vec<String> {
        let q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().take(PER_PUSH).cloned().collect()
    }

    fn remove(&self, n: usize) {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        let n = n.min(q.len());
        q.drain(..n);
    }
}

pub async fn run(q: Arc<PresenceQueue>, poster: Arc<Poster>, stop: CancellationToken) {
    loop {
        let batch = q.peek();
        if batch.is_empty() {
            tokio::select! {
                _ = q.added.notified() => {}
                _ = stop.cancelled() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(GATHER) => {}
                _ = stop.cancelled() => return,
            }
            continue;
        }
        let body = serde_json::to_vec(&batch).unwrap_or_default();
        // Posted or given up after the retries (as Go does): either way the batch is done.
        poster.post(ONLINE_STATUS, &body, &stop).await;
        q.remove(batch.len());
    }
}
