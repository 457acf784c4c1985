//! The write path, top to bottom. A command is queued on the [`Proposer`] in arrival order
//! (bounded: a full queue refuses after `requestTimeout`); the batcher groups queued commands into
//! one [`Batch`] (one log entry, one fsync per node); the pipeline numbers each batch in this
//! node's proposer session ([`BatchTag`]: node id, incarnation, batch number) and proposes it —
//! up to [`PIPELINE`] batches in flight in log order — on the leader directly, on a follower
//! forwarded to the leader, which proposes them in the session's order (`forward.rs`); after a
//! failure, and to a leader that takes no pipelined forwards, one at a time (`FORWARD_WRITE`);
//! Raft commits it; every node's state machine applies it
//! exactly once (`store/sessions.rs` answers a re-proposed batch with its stored outcome and
//! never applies a batch after a gap) and delivers its messages to its own clients; the
//! proposer answers once this node applied it.
//!
//! Every wait has a deadline: a command is answered within `requestTimeout` of being queued
//! (plus at most one RPC timeout). When the leader changes, the in-flight batches are proposed
//! again in their original order, one after the other; a batch whose fate cannot be learned in
//! time is answered with an error and the session starts a new incarnation, so the unanswered
//! batch can never be applied after a later one.

use super::forward::Done;
use super::messages::{kind, ForwardError, ForwardResult, ForwardWrite};
use super::types::{to_bytes, Batch, BatchResult, BatchTag, Verdict};
use super::Cluster;
use crate::store::{Command, Outcome};
use openraft::errors::{ClientWriteError, RaftError};
use openraft::type_config::async_runtime::WatchReceiver;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Why a proposal did not produce an outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    #[error("the write path is shut down")]
    Closed,
    #[error("write queue full for the whole request timeout")]
    Busy,
    #[error("write not committed within the request timeout: {0}")]
    Timeout(String),
    /// The write may or may not have taken effect; retrying with the same clientMsgNo is safe.
    #[error("write outcome unknown ({0}); retry it")]
    Unknown(String),
    /// A command newer than a member's binary: refused until the upgrade is complete.
    #[error("cluster is being upgraded: node(s) {0:?} run a binary that cannot apply this; upgrade every node first")]
    Upgrading(Vec<u64>),
}

type Reply = oneshot::Sender<Result<Outcome, ProposeError>>;

/// A queued command: what to apply, whom to answer, and by when.
struct Pending {
    cmd: Command,
    reply: Reply,
    deadline: Instant,
}

/// Batches a leader keeps in flight at once.
const PIPELINE: usize = 16;

/// Write statistics for /varz and /metrics.
#[derive(Debug)]
pub struct WriteStats {
    pub proposals: Counter,
    pub batches: Counter,
    pub forwarded: Counter,
    pub pipelined: Counter,
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
            pipelined: Counter::default(),
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
            (
                "wukongim_raft_forwarded_pipelined_batches",
                "Batches forwarded to the leader without waiting for the ones before them.",
                &self.pipelined,
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
    tx: mpsc::Sender<Pending>,
    timeout: Duration,
    cluster: Arc<Cluster>,
    pub stats: Arc<WriteStats>,
}

impl Proposer {
    /// Starts the batcher and the pipeline for `cluster`.
    pub fn start(cluster: Arc<Cluster>) -> Proposer {
        let queue = cluster.config.cluster.queue_size.max(1) as usize;
        let (tx, rx) = mpsc::channel(queue);
        let (batches_tx, batches_rx) = mpsc::channel(1);
        let stats = Arc::new(WriteStats::default());
        let limits = BatchLimits {
            count: cluster.config.cluster.batch_size.max(1) as usize,
            bytes: cluster.config.cluster.max_size_per_msg.0 as usize,
        };
        let linger = cluster.config.cluster.batch_timeout.0;
        tokio::spawn(batcher(rx, batches_tx, limits, linger));
        let timeout = cluster.config.cluster.request_timeout.0;
        tokio::spawn(Pipeline::new(cluster.clone(), stats.clone()).run(batches_rx));
        Proposer {
            tx,
            timeout,
            cluster,
            stats,
        }
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
        let level = cmd.level();
        if !self.cluster.levels.cluster_at(&self.cluster, level) {
            return Err(ProposeError::Upgrading(
                self.cluster.levels.behind(&self.cluster, level),
            ));
        }
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            cmd,
            reply,
            deadline: Instant::now() + self.timeout,
        };
        self.tx
            .send_timeout(pending, self.timeout)
            .await
            .map_err(|e| match e {
                mpsc::error::SendTimeoutError::Timeout(_) => ProposeError::Busy,
                mpsc::error::SendTimeoutError::Closed(_) => ProposeError::Closed,
            })?;
        Ok(rx)
    }

    /// Proposals queued but not yet taken into a batch.
    pub fn pending(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// Bounds of one batch: commands (`batchSize`) and approximate bytes (`maxSizePerMsg`).
#[derive(Debug, Clone, Copy)]
struct BatchLimits {
    count: usize,
    bytes: usize,
}

/// A batch being filled. A command that would take it past the byte bound waits for the next
/// batch, unless the batch is empty (a single large command always goes, alone).
struct Filling {
    items: Vec<Pending>,
    bytes: usize,
    limits: BatchLimits,
}

impl Filling {
    fn new(first: Pending, limits: BatchLimits) -> Filling {
        let mut f = Filling {
            items: Vec::new(),
            bytes: 0,
            limits,
        };
        f.items.push(first);
        f.bytes = approx_bytes(&f.items[0].cmd);
        f
    }

    fn is_full(&self) -> bool {
        self.items.len() >= self.limits.count || self.bytes >= self.limits.bytes
    }

    /// Adds `p`, or hands it back when it does not fit.
    fn offer(&mut self, p: Pending) -> Option<Pending> {
        let n = approx_bytes(&p.cmd);
        if self.items.len() >= self.limits.count || self.bytes + n > self.limits.bytes {
            return Some(p);
        }
        self.bytes += n;
        self.items.push(p);
        None
    }
}

/// Groups queued commands into batches of up to `batchSize` commands and `maxSizePerMsg` bytes,
/// in order. Under sustained load it waits up to `linger` for a full batch; idle writes go at
/// once. Commands whose deadline passed in the queue are answered here.
async fn batcher(
    mut rx: mpsc::Receiver<Pending>,
    out: mpsc::Sender<Vec<Pending>>,
    limits: BatchLimits,
    linger: Duration,
) {
    let mut last_full = false;
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut batch = Filling::new(first, limits);
        while !batch.is_full() && carry.is_none() {
            match rx.try_recv() {
                Ok(item) => carry = batch.offer(item),
                Err(_) => break,
            }
        }
        if last_full && !batch.is_full() && carry.is_none() && !linger.is_zero() {
            let deadline = Instant::now() + linger;
            while !batch.is_full() && carry.is_none() {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(item)) => carry = batch.offer(item),
                    _ => break,
                }
            }
        }
        last_full = batch.is_full() || carry.is_some();
        let now = Instant::now();
        let (live, expired): (Vec<Pending>, Vec<Pending>) =
            batch.items.into_iter().partition(|p| p.deadline > now);
        for p in expired {
            let _ = p.reply.send(Err(ProposeError::Timeout(
                "waited in the write queue past requestTimeout".into(),
            )));
        }
        if !live.is_empty() && out.send(live).await.is_err() {
            return;
        }
    }
}

/// Envelope bytes counted per command beside its variable-length fields.
const COMMAND_OVERHEAD: usize = 64;

/// A command's encoded size, approximately (a little over for the variable-length fields):
/// enough to keep batches under `maxSizePerMsg`, whose frame limit leaves room above it.
fn approx_bytes(cmd: &Command) -> usize {
    let list = |v: &[String]| v.iter().map(|s| s.len() + 2).sum::<usize>();
    COMMAND_OVERHEAD
        + match cmd {
            Command::Send(s) => {
                s.payload.len()
                    + s.from_uid.len()
                    + s.from_device.len()
                    + s.channel_id.len()
                    + s.client_msg_no.len()
                    + s.stream_no.len()
                    + s.topic.as_ref().map_or(0, String::len)
            }
            Command::UpsertChannel { subscribers, .. }
            | Command::AddSubscribers { subscribers, .. }
            | Command::RemoveSubscribers { subscribers, .. } => list(subscribers),
            Command::UpdateToken { uid, token, .. } => uid.len() + token.len(),
            _ => 256,
        }
}

/// The largest single command this node accepts: one client message (`conn.maxPacketSize`) or
/// one HTTP body (axum's 2 MiB default), plus its envelope. See [`super::rpc::frame_limit`].
pub fn largest_command(config: &crate::config::Config) -> usize {
    const HTTP_BODY: usize = 2 << 20;
    (config.conn.max_packet_size.0 as usize).max(HTTP_BODY) + (64 << 10)
}

/// A numbered batch not yet answered.
struct InFlight {
    batch: Batch,
    replies: Vec<Reply>,
    deadline: Instant,
    started: std::time::Instant,
    /// Set when proposed pipelined (on this node as leader, or forwarded to the leader): the
    /// term then and the result to come; `None` until proposed.
    done: Option<(u64, Done)>,
    /// The leader it was forwarded to pipelined, if it was.
    forwarded_to: Option<u64>,
}

/// This node's proposer session and its batches in flight, in batch-number order.
struct Pipeline {
    cluster: Arc<Cluster>,
    stats: Arc<WriteStats>,
    incarnation: u64,
    next_seq: u64,
    window: VecDeque<InFlight>,
}

impl Pipeline {
    fn new(cluster: Arc<Cluster>, stats: Arc<WriteStats>) -> Pipeline {
        // Unique per start: microseconds since the epoch. Should the clock have gone back, the
        // state machine answers `Stale` with the incarnation it holds and the session moves past it.
        let incarnation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1)
            .max(1);
        Pipeline {
            cluster,
            stats,
            incarnation,
            next_seq: 1,
            window: VecDeque::new(),
        }
    }

    async fn run(mut self, mut batches: mpsc::Receiver<Vec<Pending>>) {
        loop {
            let head_proposed = self.window.front().map(|f| f.done.is_some());
            if head_proposed == Some(false) {
                self.resync().await;
                continue;
            }
            let room = self.window.len() < PIPELINE && self.same_term();
            tokio::select! {
                biased;
                res = self.head(), if head_proposed == Some(true) => match res {
                    Some(res) => {
                        let f = self.window.pop_front().expect("head exists");
                        self.settle(f, res);
                    }
                    // Leadership moved while in flight: propose the window again, in order.
                    None => {
                        self.stats.retries.fetch_add(1, Relaxed);
                        self.resync().await
                    }
                },
                next = batches.recv(), if room => match next {
                    Some(items) => self.propose(items).await,
                    None => break,
                },
            }
        }
        for f in std::mem::take(&mut self.window) {
            answer(f.replies, Err(ProposeError::Closed));
        }
    }

    /// Whether new batches may join the pipeline: everything in it was proposed in this term.
    fn same_term(&self) -> bool {
        let term = self.cluster.raft.metrics().borrow_watched().current_term;
        self.window
            .back()
            .is_none_or(|f| f.done.as_ref().is_some_and(|(t, _)| *t == term))
    }

    /// Waits for the head's result until its deadline. `Some(Err)` is a timeout; `None` means the
    /// leader lost it before commit (it must be proposed again).
    async fn head(&mut self) -> Option<Result<BatchResult, ProposeError>> {
        let f = self.window.front_mut()?;
        let (_, done) = f.done.as_mut()?;
        match tokio::time::timeout_at(f.deadline, done).await {
            Ok(Ok(r)) => Some(Ok(r)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "pipelined batch lost its leader, proposing again");
                None
            }
            Err(_) => Some(Err(ProposeError::Timeout(
                "the leader did not commit it".into(),
            ))),
        }
    }

    /// Numbers `items` as the session's next batch and proposes it: pipelined when this node
    /// leads and nothing older waits to be proposed again; otherwise it waits its turn.
    async fn propose(&mut self, items: Vec<Pending>) {
        let deadline = items.iter().map(|p| p.deadline).min().expect("non-empty");
        let (cmds, replies): (Vec<Command>, Vec<Reply>) =
            items.into_iter().map(|p| (p.cmd, p.reply)).unzip();
        self.stats.proposals.inc_by(cmds.len() as u64);
        self.stats.batches.inc();
        self.stats.batch_sizes.observe(cmds.len() as f64);
        let seq = self.next_seq;
        self.next_seq += 1;
        let acked = self
            .window
            .iter()
            .find(|f| f.batch.tag.incarnation == self.incarnation)
            .map_or(seq, |f| f.batch.tag.seq)
            - 1;
        let batch = Batch {
            tag: BatchTag {
                node: self.cluster.node_id,
                incarnation: self.incarnation,
                seq,
                acked,
            },
            cmds,
        };
        let mut f = InFlight {
            batch,
            replies,
            deadline,
            started: std::time::Instant::now(),
            done: None,
            forwarded_to: None,
        };
        let all_proposed = self.window.iter().all(|f| f.done.is_some());
        if all_proposed && self.cluster.raft.is_leader() {
            f.done = self.cluster.propose_pipelined(f.batch.clone()).await;
        } else if all_proposed {
            self.forward_pipelined(&mut f);
        }
        self.window.push_back(f);
    }

    /// Forwards `f` to the known leader without waiting for the batches before it, when the
    /// leader takes pipelined forwards; otherwise `f` stays unproposed (forwarded serially).
    fn forward_pipelined(&mut self, f: &mut InFlight) {
        let Some(leader) = self.cluster.leader().filter(|l| *l != self.cluster.node_id) else {
            return;
        };
        if !self.cluster.forward_order.pipelines(leader) {
            return;
        }
        let term = self.cluster.raft.metrics().borrow_watched().current_term;
        let after = self
            .window
            .back()
            .filter(|b| {
                b.forwarded_to == Some(leader) && b.batch.tag.incarnation == f.batch.tag.incarnation
            })
            .map_or(0, |b| b.batch.tag.seq);
        self.stats.forwarded.inc();
        self.stats.pipelined.inc();
        let done = self
            .cluster
            .forward_pipelined(leader, f.batch.clone(), after, f.deadline);
        f.done = Some((term, done));
        f.forwarded_to = Some(leader);
    }

    /// Proposes every batch in the window again, strictly one after the other in batch order
    /// (the state machine answers those that already committed with their stored outcome).
    async fn resync(&mut self) {
        while let Some(f) = self.window.pop_front() {
            let res = self
                .cluster
                .write(f.batch.clone(), f.deadline, &self.stats)
                .await;
            self.settle(f, res);
        }
    }

    /// Answers a batch's proposers. A batch whose fate is unknown (timed out, after a gap, from
    /// a replaced incarnation) ends this incarnation: later batches start a new one, so the
    /// unknown batch cannot be applied after them.
    fn settle(&mut self, f: InFlight, res: Result<BatchResult, ProposeError>) {
        self.stats
            .commit_latency
            .observe(f.started.elapsed().as_secs_f64());
        let res = match res {
            Ok(r) => match r.verdict {
                Verdict::Applied | Verdict::Duplicate { kept: true } => Ok(r.outcomes),
                Verdict::Duplicate { kept: false } => Err(ProposeError::Unknown(
                    "applied before, outcome no longer kept".into(),
                )),
                Verdict::Gap { expected } => Err(ProposeError::Unknown(format!(
                    "batch {} arrived before batch {expected}",
                    f.batch.tag.seq
                ))),
                Verdict::Stale { current } => {
                    // Only after the clock went back across a restart: move past what is held.
                    if current > self.incarnation {
                        self.restart(current + 1);
                    }
                    Err(ProposeError::Unknown("proposer session replaced".into()))
                }
            },
            Err(e) => Err(e),
        };
        if res.is_err() && f.batch.tag.incarnation == self.incarnation {
            self.restart(self.incarnation + 1);
        }
        answer(f.replies, res);
    }
}

impl Pipeline {
    /// Starts a new incarnation of this node's session: batch numbers begin again at 1.
    fn restart(&mut self, incarnation: u64) {
        self.incarnation = incarnation;
        self.next_seq = 1;
        tracing::warn!(
            incarnation,
            "write session restarted after a batch with unknown outcome"
        );
    }
}

/// Sends each proposer its outcome (or the batch's error).
fn answer(replies: Vec<Reply>, res: Result<Vec<Outcome>, ProposeError>) {
    match res {
        Ok(outcomes) => {
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
    /// `deadline`, then waits (bounded by the same deadline) until this node has applied it.
    /// Proposing a batch again is safe: the state machine applies each batch number once.
    async fn write(
        &self,
        batch: Batch,
        deadline: Instant,
        stats: &WriteStats,
    ) -> Result<BatchResult, ProposeError> {
        let (index, result) = self.commit(batch, stats, deadline).await?;
        self.applied_locally(index, deadline).await;
        Ok(result)
    }

    /// Proposes `batch` on this node (the leader) without waiting: the batch enters the log in
    /// call order. Returns the term it was proposed in and its result to come, or `None` if this
    /// node no longer leads.
    async fn propose_pipelined(&self, batch: Batch) -> Option<(u64, Done)> {
        let term = self.raft.metrics().borrow_watched().current_term;
        let result = self.submit(batch).await.ok()?;
        let done: Done = Box::pin(async move { Ok(result.await.applied()?.1) });
        Some((term, done))
    }

    /// Waits (bounded by `deadline`) until this node applied `index`.
    pub(super) async fn applied_locally(&self, index: u64, deadline: Instant) {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        if !self.wait_applied(index, left).await {
            tracing::warn!(index, "write committed but not applied locally in time");
        }
    }

    /// Commits `batch` through the leader (here or remote), retrying across leader changes until
    /// `deadline`; returns the log index it was applied at on the leader. The timeout error names
    /// the last reason an attempt failed.
    async fn commit(
        &self,
        batch: Batch,
        stats: &WriteStats,
        deadline: Instant,
    ) -> Result<(u64, BatchResult), ProposeError> {
        let pause = (self.config.heartbeat() / 2)
            .clamp(Duration::from_millis(10), Duration::from_millis(200));
        let mut why = String::from("no leader known");
        let mut attempt = 0u32;
        let mut tried = None;
        loop {
            if attempt > 0 {
                if Instant::now() + pause >= deadline {
                    return Err(ProposeError::Timeout(why));
                }
                self.leader_change(tried, pause).await;
            }
            attempt += 1;
            tried = self.leader();
            let res = match tried {
                None => {
                    why = "no leader known".into();
                    continue;
                }
                Some(l) if l == self.node_id => self.write_as_leader(batch.clone(), deadline).await,
                Some(l) => {
                    stats.forwarded.inc();
                    let body = to_bytes(&ForwardWrite {
                        batch: batch.clone(),
                    });
                    self.call_leader(l, kind::FORWARD_WRITE, body, deadline)
                        .await
                }
            };
            match res {
                ForwardResult::Applied { index, result } => return Ok((index, result)),
                ForwardResult::NotLeader { leader } => {
                    why = format!("leadership moving (leader hint {leader:?})");
                }
                ForwardResult::Failed(e) => {
                    tracing::debug!(error = %e, attempt, "write attempt failed, retrying");
                    why = e.to_string();
                }
            }
        }
    }

    /// Waits until the known leader is no longer `tried` (an election ended, or a leader became
    /// known), at most `pause`: a write retries as soon as there is somewhere new to send it.
    async fn leader_change(&self, tried: Option<u64>, pause: Duration) {
        let mut rx = self.raft.metrics();
        let _ = tokio::time::timeout(pause, async move {
            loop {
                let leader = rx.borrow_watched().current_leader;
                if leader != tried || rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    /// Proposes on this node, which must be the leader, and waits until applied here — at most
    /// until `deadline`.
    pub async fn write_as_leader(&self, batch: Batch, deadline: Instant) -> ForwardResult {
        match tokio::time::timeout_at(deadline, self.raft.client_write(batch)).await {
            Err(_) => ForwardResult::Failed(ForwardError::Raft(
                "not committed within the request timeout".into(),
            )),
            Ok(Ok(resp)) => ForwardResult::Applied {
                index: resp.log_id.index,
                result: resp.data,
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                ForwardResult::NotLeader {
                    leader: f.leader_id,
                }
            }
            Ok(Err(e)) => ForwardResult::Failed(ForwardError::Raft(e.to_string())),
        }
    }
}
