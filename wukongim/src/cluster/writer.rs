//! The write path: proposals are queued in arrival order, grouped into batches (one log entry,
//! one fsync per batch on every node), proposed on the leader — or forwarded to it — with retries
//! across leader changes until `requestTimeout`, and answered once applied on this node.

use super::messages::{kind, ForwardResult, ForwardWrite};
use super::types::{from_bytes, to_bytes, Batch, BatchResult, TypeConfig};
use super::Cluster;
use crate::store::{Command, Outcome};
use openraft::errors::{ClientWriteError, RaftError};
use openraft::impls::ProgressResponder;
use openraft::raft::ClientWriteResult;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Why a proposal did not produce an outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    #[error("the write path is shut down")]
    Closed,
    #[error("no leader accepted the write within the request timeout")]
    Timeout,
    #[error("{0}")]
    Failed(String),
}

type Reply = oneshot::Sender<Result<Outcome, ProposeError>>;

/// Batches a leader keeps in flight at once.
const PIPELINE: usize = 16;

/// Write statistics for /varz and /metrics.
#[derive(Debug)]
pub struct WriteStats {
    pub proposals: Counter,
    pub batches: Counter,
    pub forwarded: Counter,
    pub retries: AtomicU64,
    pub batch_sizes: Histogram,
    pub commit_latency: Histogram,
}

impl Default for WriteStats {
    fn default() -> Self {
        WriteStats {
            proposals: Counter::default(),
            batches: Counter::default(),
            forwarded: Counter::default(),
            retries: AtomicU64::new(0),
            batch_sizes: crate::metrics::size_histogram(),
            commit_latency: crate::metrics::latency_histogram(),
        }
    }
}

impl WriteStats {
    pub fn register(&self, r: &mut Registry) {
        let counters = [
            (
                "wukongim_raft_proposals",
                "Commands proposed on this node.",
                &self.proposals,
            ),
            (
                "wukongim_raft_batches",
                "Batches (log entries) proposed on this node.",
                &self.batches,
            ),
            (
                "wukongim_raft_forwarded_batches",
                "Batches forwarded to the leader.",
                &self.forwarded,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        r.register(
            "wukongim_raft_batch_size",
            "Commands per proposed batch.",
            self.batch_sizes.clone(),
        );
        r.register(
            "wukongim_raft_commit_duration_seconds",
            "Time from batch proposal to local apply.",
            self.commit_latency.clone(),
        );
    }
}

/// Handle used to submit commands.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<(Command, Reply)>,
    pub stats: Arc<WriteStats>,
}

impl Proposer {
    /// Starts the batching task for `cluster`.
    pub fn start(cluster: Arc<Cluster>) -> Proposer {
        let queue = cluster.config.cluster.queue_size.max(1) as usize;
        let (tx, rx) = mpsc::channel(queue);
        let stats = Arc::new(WriteStats::default());
        tokio::spawn(batcher(cluster, rx, stats.clone()));
        Proposer { tx, stats }
    }

    /// Submits `cmd` and waits until it is committed and applied on this node.
    pub async fn propose(&self, cmd: Command) -> Result<Outcome, ProposeError> {
        self.submit(cmd)
            .await?
            .await
            .map_err(|_| ProposeError::Closed)?
    }

    /// Queues `cmd` (preserving the caller's order) and returns the pending outcome.
    pub async fn submit(
        &self,
        cmd: Command,
    ) -> Result<oneshot::Receiver<Result<Outcome, ProposeError>>, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((cmd, reply))
            .await
            .map_err(|_| ProposeError::Closed)?;
        Ok(rx)
    }

    /// Proposals queued but not yet taken into a batch.
    pub fn pending(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

async fn batcher(
    cluster: Arc<Cluster>,
    mut rx: mpsc::Receiver<(Command, Reply)>,
    stats: Arc<WriteStats>,
) {
    let max = cluster.config.cluster.batch_size.max(1) as usize;
    let linger = cluster.config.cluster.batch_timeout.0;
    let mut last_full = false;
    let pipeline = Arc::new(tokio::sync::Semaphore::new(PIPELINE));
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        // Under sustained load, wait up to batchTimeout for a full batch; idle writes go at once.
        if last_full && batch.len() < max && !linger.is_zero() {
            let deadline = tokio::time::Instant::now() + linger;
            while batch.len() < max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(item)) => batch.push(item),
                    _ => break,
                }
            }
        }
        last_full = batch.len() == max;
        let (cmds, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
        stats.proposals.inc_by(cmds.len() as u64);
        stats.batches.inc();
        stats.batch_sizes.observe(cmds.len() as f64);
        let started = Instant::now();
        // On the leader, batches are pipelined: enqueued into Raft in order (so one client's
        // sends keep their order in the log) and awaited concurrently, up to PIPELINE at once.
        if cluster.raft.is_leader() {
            let permit = pipeline
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            let (responder, done) =
                ProgressResponder::<TypeConfig, ClientWriteResult<TypeConfig>>::complete_only();
            if cluster
                .raft
                .client_write_ff(Batch(cmds.clone()), Some(responder))
                .await
                .is_ok()
            {
                let (cluster, stats) = (cluster.clone(), stats.clone());
                tokio::spawn(async move {
                    let res = match done.await {
                        Ok(Ok(resp)) => Ok(resp.data),
                        // Leadership moved while in flight: retry through the normal path
                        // (sends are deduplicated by clientMsgNo, so nothing is stored twice).
                        _ => cluster.write(Batch(cmds), &stats).await,
                    };
                    stats
                        .commit_latency
                        .observe(started.elapsed().as_secs_f64());
                    answer(replies, res);
                    drop(permit);
                });
                continue;
            }
        }
        let res = cluster.write(Batch(cmds), &stats).await;
        stats
            .commit_latency
            .observe(started.elapsed().as_secs_f64());
        answer(replies, res);
    }
}

/// Sends each proposer its outcome (or the batch's error).
fn answer(replies: Vec<Reply>, res: Result<BatchResult, ProposeError>) {
    match res {
        Ok(BatchResult(outcomes)) => {
            for (reply, o) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(o));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

impl Cluster {
    /// Commits `batch` through the leader (here or remote), retrying across leader changes until
    /// `requestTimeout`, then waits until this node has applied it. Retried batches are safe:
    /// sends are deduplicated by (sender, clientMsgNo) and the other commands are idempotent.
    pub async fn write(
        &self,
        batch: Batch,
        stats: &WriteStats,
    ) -> Result<BatchResult, ProposeError> {
        let deadline = Instant::now() + self.config.cluster.request_timeout.0;
        let (index, result) = self.commit(batch, stats, deadline).await?;
        self.applied_locally(index, deadline).await;
        Ok(result)
    }

    /// Waits (bounded by `deadline`) until this node applied `index`.
    async fn applied_locally(&self, index: u64, deadline: Instant) {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        if !self.wait_applied(index, left).await {
            tracing::warn!(index, "write committed but not applied locally in time");
        }
    }

    /// Commits `batch` through the leader (here or remote), retrying across leader changes until
    /// `deadline`; returns the log index it was applied at on the leader.
    async fn commit(
        &self,
        batch: Batch,
        stats: &WriteStats,
        deadline: Instant,
    ) -> Result<(u64, BatchResult), ProposeError> {
        let pause = (self.config.heartbeat() / 2)
            .clamp(Duration::from_millis(10), Duration::from_millis(200));
        let mut attempt = 0u32;
        loop {
            if attempt > 0 {
                stats.retries.fetch_add(1, Relaxed);
                if Instant::now() >= deadline {
                    return Err(ProposeError::Timeout);
                }
                tokio::time::sleep(pause).await;
            }
            attempt += 1;
            let leader = self.leader();
            let res = match leader {
                None => continue,
                Some(l) if l == self.node_id => self.write_as_leader(batch.clone()).await,
                Some(l) => {
                    stats.forwarded.inc();
                    self.forward(l, &batch, deadline).await
                }
            };
            match res {
                ForwardResult::Applied { index, result } => return Ok((index, result)),
                ForwardResult::NotLeader { .. } => continue,
                ForwardResult::Failed(e) => {
                    tracing::debug!(error = %e, attempt, "write attempt failed, retrying");
                    continue;
                }
            }
        }
    }

    async fn forward(&self, leader: u64, batch: &Batch, deadline: Instant) -> ForwardResult {
        let Some(addr) = self.addr_of(leader) else {
            return ForwardResult::Failed(format!("no address for leader {leader}"));
        };
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(50));
        let body = to_bytes(&ForwardWrite {
            batch: batch.clone(),
        });
        match self
            .rpc
            .call_timeout(&addr, kind::FORWARD_WRITE, body.into(), left)
            .await
        {
            Ok(resp) => from_bytes(&resp).unwrap_or_else(|e| ForwardResult::Failed(e.to_string())),
            Err(e) => ForwardResult::Failed(format!("forward to leader {leader}: {e}")),
        }
    }

    /// Proposes on this node, which must be the leader.
    pub async fn write_as_leader(&self, batch: Batch) -> ForwardResult {
        match self.raft.client_write(batch).await {
            Ok(resp) => ForwardResult::Applied {
                index: resp.log_id.index,
                result: resp.data,
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                ForwardResult::NotLeader {
                    leader: f.leader_id,
                }
            }
            Err(e) => ForwardResult::Failed(e.to_string()),
        }
    }
}
