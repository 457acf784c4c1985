//! `msg.notify` and `msg.offline` from the Raft leader only. Every node fills its feed as it
//! applies; only the current leader posts. It starts after the replicated cursor, posts in order,
//! and now and then proposes `WebhookCursor` through the normal write path; followers trim their
//! feed to the cursor. After a leader change the new leader resumes after the cursor, so what
//! the old leader posted after its last cursor is posted again (at-least-once).

use super::feed::{Feed, Item, Pos};
use super::post::Poster;
use super::{body, WebhookMetrics, MSG_NOTIFY, MSG_OFFLINE};
use crate::config::Webhook as Config;
use crate::core::Core;
use crate::store::{Command, SYSTEM_UID};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What the loop works with.
pub struct Loop {
    pub core: Core,
    pub feed: Arc<Feed>,
    pub poster: Arc<Poster>,
    pub config: Config,
    pub metrics: Arc<WebhookMetrics>,
}

/// How long a presence query may take per node.
const PRESENCE_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn run(l: Loop, stop: CancellationToken) {
    let interval = l.config.msg_notify_event_push_interval.0;
    let per_push = l.config.msg_notify_event_count_per_push.max(1) as usize;
    // Some(pos) while this node leads: posted up to pos.
    let mut posted: Option<Pos> = None;
    let mut proposed = 0u64;
    let mut last_proposal = Instant::now();
    loop {
        if stop.is_cancelled() {
            return;
        }
        let cursor = l.core.cluster.store.webhook_cursor().unwrap_or(0);
        if !l.core.cluster.raft.is_leader() {
            posted = None;
            l.feed.trim(cursor);
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => return,
            }
            continue;
        }
        let from = *posted.get_or_insert_with(|| {
            tracing::info!(
                cursor,
                queued = l.feed.len(),
                "webhooks: leading, resuming after the cursor"
            );
            let gap = l.feed.complete_after();
            if gap > cursor {
                l.metrics.gaps.inc();
                tracing::error!(
                    cursor,
                    upto = gap,
                    "webhooks: the messages of Raft entries after the cursor up to this index \
                     were applied here before a restart or snapshot install and are not posted"
                );
            }
            proposed = cursor;
            (cursor, u32::MAX)
        });
        l.feed.trim(cursor);
        let items = l.feed.after(from, per_push);
        if let Some(last) = items.last() {
            l.post(&items, &stop).await;
            posted = Some(last.pos);
        }
        // The cursor covers whole entries only: an entry partly posted is not yet done.
        let done = match (posted, posted.and_then(|p| l.feed.next_pos(p))) {
            (Some(p), Some(next)) if next.0 == p.0 => p.0 - 1,
            (Some(p), _) => p.0,
            (None, _) => 0,
        };
        let due = last_proposal.elapsed() >= interval || items.len() < per_push;
        if done > proposed && due {
            let core = l.core.clone();
            last_proposal = Instant::now();
            match core.propose(Command::WebhookCursor { index: done }).await {
                Ok(_) => proposed = done,
                Err(e) => tracing::warn!(error = %e, "webhook cursor not stored (retried)"),
            }
        }
        if items.len() < per_push {
            // Caught up: wait for more (the interval batches what arrives meanwhile).
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

impl Loop {
    async fn post(&self, items: &[Item], stop: &CancellationToken) {
        if self.config.on(MSG_NOTIFY) {
            self.poster
                .post(MSG_NOTIFY, &body::notify(items), stop)
                .await;
        }
        if self.config.on(MSG_OFFLINE) {
            self.offline(items, stop).await;
        }
    }

    /// One `msg.offline` per message with recipients connected to no node.
    async fn offline(&self, items: &[Item], stop: &CancellationToken) {
        let mut uids: Vec<String> = items
            .iter()
            .flat_map(|i| i.recipients.iter().cloned())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        uids.sort();
        let (conns, unreachable) = crate::cluster::presence::everywhere(
            &self.core.cluster,
            &self.core.hub,
            &uids,
            PRESENCE_TIMEOUT,
        )
        .await;
        if !unreachable.is_empty() {
            tracing::debug!(
                ?unreachable,
                "presence unknown on some nodes: their users count as offline"
            );
        }
        let online: HashSet<&str> = conns.iter().map(|c| c.uid.as_str()).collect();
        let node_id = self.core.cluster.node_id;
        for item in items {
            let m = &item.message;
            let mut to: Vec<String> = item
                .recipients
                .iter()
                .filter(|u| **u != m.from_uid && u.as_str() != SYSTEM_UID)
                .filter(|u| !online.contains(u.as_str()))
                .cloned()
                .collect();
            to.dedup();
            if to.is_empty() {
                continue;
            }
            self.poster
                .post(MSG_OFFLINE, &body::offline(item, &to, node_id), stop)
                .await;
        }
    }
}
