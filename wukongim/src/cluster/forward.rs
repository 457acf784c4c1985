//! Writes a follower sends to the leader. Serially (`FORWARD_WRITE`): one batch, answered once
//! the leader applied it. Pipelined (`FORWARD_NEXT`): a follower sends each batch as soon as it
//! is formed, up to the writer's pipeline depth, naming the batch of its session it must follow
//! (`after`); the leader proposes a session's batches in that order even when the requests
//! arrive out of order (the RPC spreads calls over several connections and handles each on a
//! task of its own) — [`ForwardOrder`] holds a batch until its predecessor entered the log, for
//! at most [`PREDECESSOR_WAIT`]. Should the predecessor never come (its request was lost), the
//! batch is proposed anyway and the state machine answers it `Gap` without applying it: the
//! follower then proposes its window again, in order, serially. A leader that does not know
//! `FORWARD_NEXT` (an older binary during a rolling upgrade) is sent serial forwards for
//! [`SERIAL_RETRY`] before it is tried again.

use super::messages::{is_unknown_kind, kind, ForwardError, ForwardNext, ForwardResult};
use super::types::{from_bytes, to_bytes, Batch, BatchResult, BatchTag, TypeConfig};
use super::Cluster;
use openraft::errors::ClientWriteError;
use openraft::impls::ProgressResponder;
use openraft::raft::ClientWriteResult;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The longest a forwarded batch waits on the leader for its predecessor to be proposed (by
/// either kind of forward). Only a lost predecessor is waited for this long, and then its
/// follower is already proposing its window again serially.
pub const PREDECESSOR_WAIT: Duration = Duration::from_secs(2);

/// How long a leader that refused `FORWARD_NEXT` is only sent serial forwards.
pub const SERIAL_RETRY: Duration = Duration::from_secs(30);

/// What a pipelined batch resolves to: its result once applied on this node, or why its fate
/// is not known here (the writer then proposes its window again).
pub type Done = Pin<Box<dyn Future<Output = Result<BatchResult, String>> + Send>>;

/// The leader's record of the forwarded batches it proposed, per proposer session, and the
/// follower's record of leaders that refused pipelined forwards.
#[derive(Debug, Default)]
pub struct ForwardOrder {
    /// Per proposing node: its session incarnation and the highest batch number proposed here.
    proposed: Mutex<HashMap<u64, (u64, u64)>>,
    moved: Notify,
    /// Leaders that answered "unknown request kind" to `FORWARD_NEXT`, and when.
    serial: Mutex<HashMap<u64, std::time::Instant>>,
}

impl ForwardOrder {
    /// Whether batch `after` of `tag`'s session was proposed here.
    fn reached(&self, tag: &BatchTag, after: u64) -> bool {
        crate::store::lock(&self.proposed)
            .get(&tag.node)
            .is_some_and(|&(inc, seq)| inc == tag.incarnation && seq >= after)
    }

    /// Waits until batch `after` of `tag`'s session was proposed here, or until `limit`.
    pub async fn wait_turn(&self, tag: &BatchTag, after: u64, limit: Instant) -> bool {
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if self.reached(tag, after) {
                return true;
            }
            if tokio::time::timeout_at(limit, moved).await.is_err() {
                return self.reached(tag, after);
            }
        }
    }

    /// Records that `tag`'s batch was proposed here (a later incarnation replaces an earlier).
    pub fn proposed(&self, tag: &BatchTag) {
        {
            let mut m = crate::store::lock(&self.proposed);
            let e = m.entry(tag.node).or_insert((tag.incarnation, 0));
            if tag.incarnation > e.0 {
                *e = (tag.incarnation, tag.seq);
            } else if tag.incarnation == e.0 {
                e.1 = e.1.max(tag.seq);
            }
        }
        self.moved.notify_waiters();
    }

    /// Whether `leader` takes pipelined forwards (not refused within [`SERIAL_RETRY`]).
    pub fn pipelines(&self, leader: u64) -> bool {
        let mut m = crate::store::lock(&self.serial);
        match m.get(&leader) {
            Some(at) if at.elapsed() < SERIAL_RETRY => false,
            Some(_) => {
                m.remove(&leader);
                true
            }
            None => true,
        }
    }

    fn refused(&self, leader: u64) {
        tracing::info!(
            leader,
            "leader does not take pipelined forwards (older binary): forwarding serially"
        );
        crate::store::lock(&self.serial).insert(leader, std::time::Instant::now());
    }
}

impl Cluster {
    /// Sends a forwarded-write request of `kind` to `leader` and decodes its answer.
    pub(super) async fn call_leader(
        &self,
        leader: u64,
        kind: u8,
        body: Vec<u8>,
        deadline: Instant,
    ) -> ForwardResult {
        let Some(addr) = self.addr_of(leader) else {
            return ForwardResult::Failed(ForwardError::NoAddress(leader));
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return ForwardResult::Failed(ForwardError::Unreachable {
                leader,
                reason: "request timeout reached".into(),
            });
        }
        match self.rpc.call_timeout(&addr, kind, body.into(), left).await {
            Ok(resp) => from_bytes(&resp).unwrap_or_else(|e| {
                ForwardResult::Failed(ForwardError::BadReply {
                    leader,
                    reason: e.to_string(),
                })
            }),
            Err(e) => ForwardResult::Failed(ForwardError::Unreachable {
                leader,
                reason: e.to_string(),
            }),
        }
    }

    /// Forwards `batch` to `leader` at once, to be proposed there right after batch `after` of
    /// the same session (0: none is pending there). The request is under way when this returns;
    /// the future resolves once this node applied the batch.
    pub(super) fn forward_pipelined(
        self: &Arc<Self>,
        leader: u64,
        batch: Batch,
        after: u64,
        deadline: Instant,
    ) -> Done {
        let me = self.clone();
        let task = tokio::spawn(async move {
            let body = to_bytes(&ForwardNext { batch, after });
            let res = me
                .call_leader(leader, kind::FORWARD_NEXT, body, deadline)
                .await;
            if matches!(&res, ForwardResult::Failed(ForwardError::Unreachable { reason, .. })
                if is_unknown_kind(reason))
            {
                me.forward_order.refused(leader);
            }
            let (index, result) = res.applied()?;
            me.applied_locally(index, deadline).await;
            Ok(result)
        });
        Box::pin(async move { task.await.unwrap_or_else(|e| Err(e.to_string())) })
    }

    /// The leader's side of `FORWARD_NEXT`: proposes the batch in its session's order and
    /// answers once it is applied here (or why not).
    pub(super) async fn forward_next_as_leader(&self, req: ForwardNext) -> ForwardResult {
        let deadline = Instant::now() + self.config.cluster.request_timeout.0;
        let tag = req.batch.tag;
        if req.after > 0
            && !self
                .forward_order
                .wait_turn(
                    &tag,
                    req.after,
                    (Instant::now() + PREDECESSOR_WAIT).min(deadline),
                )
                .await
        {
            tracing::debug!(
                node = tag.node,
                seq = tag.seq,
                after = req.after,
                "forwarded batch proposed without its predecessor"
            );
        }
        let result = self.submit(req.batch).await;
        self.forward_order.proposed(&tag);
        match result {
            Ok(result) => match tokio::time::timeout_at(deadline, result).await {
                Ok(r) => r,
                Err(_) => ForwardResult::Failed(ForwardError::Raft(
                    "not committed within the request timeout".into(),
                )),
            },
            Err(e) => ForwardResult::Failed(ForwardError::Raft(e)),
        }
    }

    /// Enters `batch` into the log on this node (the leader), in call order, without waiting
    /// for its commit; returns the answer to come (applied here, or why not).
    pub(super) async fn submit(
        &self,
        batch: Batch,
    ) -> Result<impl Future<Output = ForwardResult> + Send + 'static, String> {
        let (responder, done) =
            ProgressResponder::<TypeConfig, ClientWriteResult<TypeConfig>>::complete_only();
        self.raft
            .client_write_ff(batch, Some(responder))
            .await
            .map_err(|e| e.to_string())?;
        Ok(async move {
            match done.await {
                Ok(Ok(resp)) => ForwardResult::Applied {
                    index: resp.log_id.index,
                    result: resp.data,
                },
                Ok(Err(ClientWriteError::ForwardToLeader(f))) => ForwardResult::NotLeader {
                    leader: f.leader_id,
                },
                Ok(Err(e)) => ForwardResult::Failed(ForwardError::Raft(e.to_string())),
                Err(_) => {
                    ForwardResult::Failed(ForwardError::Raft("leader stopped before commit".into()))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(node: u64, incarnation: u64, seq: u64) -> BatchTag {
        BatchTag {
            node,
            incarnation,
            seq,
            acked: 0,
        }
    }

    #[tokio::test]
    async fn a_batch_waits_for_its_predecessor_of_the_same_session_only() {
        let order = Arc::new(ForwardOrder::default());
        let soon = Instant::now() + Duration::from_secs(5);
        // Batch 2 arrives first: it waits until batch 1 was proposed.
        let waiting = {
            let order = order.clone();
            tokio::spawn(async move { order.wait_turn(&tag(7, 1, 2), 1, soon).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        order.proposed(&tag(8, 1, 1)); // another node's session
        order.proposed(&tag(7, 0, 5)); // an older incarnation: ignored
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        order.proposed(&tag(7, 1, 1));
        assert!(waiting.await.unwrap());
        // A later incarnation replaces the record; an older one no longer counts.
        order.proposed(&tag(7, 2, 1));
        assert!(order.reached(&tag(7, 2, 0), 1));
        assert!(!order.reached(&tag(7, 1, 0), 1));
        order.proposed(&tag(7, 1, 9));
        assert!(
            !order.reached(&tag(7, 1, 0), 9),
            "older incarnation ignored"
        );
    }

    #[tokio::test]
    async fn a_lost_predecessor_is_waited_for_only_until_the_limit() {
        let order = ForwardOrder::default();
        let wait = Duration::from_millis(50);
        let t0 = Instant::now();
        assert!(!order.wait_turn(&tag(3, 1, 4), 3, t0 + wait).await);
        assert!(t0.elapsed() >= wait);
        order.proposed(&tag(3, 1, 3));
        assert!(order.wait_turn(&tag(3, 1, 4), 3, t0 + wait).await);
    }

    #[test]
    fn a_refusing_leader_is_sent_serial_forwards_for_a_while() {
        let order = ForwardOrder::default();
        assert!(order.pipelines(2));
        order.refused(2);
        assert!(!order.pipelines(2));
        assert!(order.pipelines(3));
        crate::store::lock(&order.serial).insert(
            2,
            std::time::Instant::now() - SERIAL_RETRY - Duration::from_secs(1),
        );
        assert!(order.pipelines(2), "tried again after SERIAL_RETRY");
    }
}
