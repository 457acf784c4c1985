//! The local write path: proposals are queued, grouped into batches and applied to the store in
//! one fsynced transaction each (group commit), in arrival order. Batches form naturally while the
//! previous one is being written; under sustained load a batch may linger up to `batchTimeout`
//! to fill to `batchSize`. This is the seam where the Raft log plugs in: it exposes the same
//! `propose(Command) -> Outcome`.

use crate::store::{Command, Delivery, Outcome, Store};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Why a proposal did not produce an outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    #[error("the write path is shut down")]
    Closed,
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("write timed out")]
    Timeout,
}

type Reply = oneshot::Sender<Result<Outcome, ProposeError>>;

/// Handle used to submit commands.
#[derive(Clone)]
pub struct LocalLog {
    tx: mpsc::Sender<(Command, Reply)>,
}

/// Batching parameters (from `cluster.batchSize` / `cluster.batchTimeout` / `queueSize`).
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    pub batch_size: usize,
    pub batch_timeout: Duration,
    pub queue_size: usize,
}

/// Statistics of the writer, read by /varz and /metrics.
#[derive(Debug, Default)]
pub struct LogStats {
    pub proposals: std::sync::atomic::AtomicU64,
    pub batches: std::sync::atomic::AtomicU64,
    pub applied: std::sync::atomic::AtomicU64,
}

impl LocalLog {
    /// Starts the writer task. `deliver` is called, in order, with what each batch produced.
    pub fn start(
        store: Store,
        cfg: BatchConfig,
        stats: std::sync::Arc<LogStats>,
        deliver: impl Fn(Vec<Delivery>) + Send + 'static,
    ) -> LocalLog {
        let (tx, rx) = mpsc::channel(cfg.queue_size.max(1));
        tokio::spawn(writer(store, cfg, stats, rx, deliver));
        LocalLog { tx }
    }

    /// Submits `cmd` and waits until it is durably applied.
    pub async fn propose(&self, cmd: Command) -> Result<Outcome, ProposeError> {
        self.submit(cmd).await?.await.map_err(|_| ProposeError::Closed)?
    }

    /// Proposals queued but not yet taken by the writer.
    pub fn pending(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues `cmd` (preserving the caller's order) and returns the pending outcome.
    pub async fn submit(
        &self,
        cmd: Command,
    ) -> Result<oneshot::Receiver<Result<Outcome, ProposeError>>, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((cmd, reply)).await.map_err(|_| ProposeError::Closed)?;
        Ok(rx)
    }
}

async fn writer(
    store: Store,
    cfg: BatchConfig,
    stats: std::sync::Arc<LogStats>,
    mut rx: mpsc::Receiver<(Command, Reply)>,
    deliver: impl Fn(Vec<Delivery>) + Send + 'static,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let max = cfg.batch_size.max(1);
    let mut last_full = false;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if last_full && batch.len() < max && !cfg.batch_timeout.is_zero() {
            let deadline = tokio::time::Instant::now() + cfg.batch_timeout;
            while batch.len() < max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(item)) => batch.push(item),
                    _ => break,
                }
            }
        }
        last_full = batch.len() == max;
        let (cmds, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
        stats.proposals.fetch_add(cmds.len() as u64, Relaxed);
        stats.batches.fetch_add(1, Relaxed);
        let st = store.clone();
        let result = tokio::task::spawn_blocking(move || st.apply_batch(&cmds)).await;
        match result {
            Ok(Ok(applied)) => {
                stats.applied.fetch_add(applied.outcomes.len() as u64, Relaxed);
                // Deliver before acknowledging so a sender never sees its ack before recipients
                // had the message queued.
                deliver(applied.deliveries);
                for (reply, outcome) in replies.into_iter().zip(applied.outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "batch apply failed");
                for reply in replies {
                    let _ = reply.send(Err(ProposeError::Storage(e.to_string())));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "batch apply task failed");
                for reply in replies {
                    let _ = reply.send(Err(ProposeError::Storage(e.to_string())));
                }
            }
        }
    }
}
