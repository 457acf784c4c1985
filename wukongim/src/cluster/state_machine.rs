//! The replicated state machine: applies committed batches to the IM store in one durable
//! transaction per apply call, answers the proposers, and hands applied messages to this node's
//! hub for delivery (apply is the delivery trigger, on every node alike) and, when webhooks are
//! on, to the webhook feed. Delivery runs on a task of its own, fed in apply order through a
//! bounded queue ([`DELIVERY_QUEUE`]): the proposers are answered, and the next entries applied,
//! while a large group's message is still being pushed to its members. Snapshots are files
//! under `rootDir/snapshots`, streamed from and into the store (see [`super::snapshots`]).

use super::snapfile::SnapshotFile;
use super::snapshot_pace::LastBuild;
use super::snapshots::SnapshotDir;
pub use super::snapshots::{LAST_APPLIED, MEMBERSHIP};
use super::types::{
    from_bytes, to_bytes, Batch, BatchResult, LogId, Snapshot, SnapshotMeta, StoredMembership,
    TypeConfig,
};
use crate::core::Hub;
use crate::fsutil::io_err;
use crate::store::Store;
use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// Applied batches whose deliveries and hub effects wait for the delivery task; when it is this
/// far behind, applying waits for it.
pub const DELIVERY_QUEUE: usize = 64;

/// What one apply call hands to the delivery task, in order: each batch's messages and effects.
type DeliveryWork = Vec<(Vec<crate::store::Delivery>, Vec<crate::store::Effect>)>;

/// Snapshot metrics, also shown on /cluster/raft/status.
#[derive(Debug, Default)]
pub struct SnapshotStats {
    pub built: Counter,
    pub installed: Counter,
    pub failures: Counter,
    pub last_duration_seconds: Gauge<f64, AtomicU64>,
    /// Time spent building snapshots, built or failed (see [`super::snapshot_pace`]).
    pub build_seconds: Counter<f64, AtomicU64>,
    pub last_size_bytes: Gauge,
    pub last_index: AtomicU64,
    /// The last build that ended (built or failed), for [`super::snapshot_pace`].
    last_build: std::sync::Mutex<Option<LastBuild>>,
}

impl SnapshotStats {
    /// The last build that ended on this node, if any.
    pub fn last_build(&self) -> Option<LastBuild> {
        *crate::store::lock(&self.last_build)
    }
    pub fn register(&self, r: &mut Registry) {
        let counters = [
            ("wukongim_snapshots", "Snapshots built.", &self.built),
            (
                "wukongim_snapshots_installed",
                "Snapshots received and installed.",
                &self.installed,
            ),
            (
                "wukongim_snapshot_failures",
                "Snapshot builds that failed.",
                &self.failures,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        r.register(
            "wukongim_snapshot_build_seconds",
            "Time spent building snapshots (built or failed).",
            self.build_seconds.clone(),
        );
        r.register(
            "wukongim_snapshot_duration_seconds",
            "Duration of the last snapshot build.",
            self.last_duration_seconds.clone(),
        );
        r.register(
            "wukongim_snapshot_size_bytes",
            "Size of the last snapshot.",
            self.last_size_bytes.clone(),
        );
    }
}

/// The state machine handle given to openraft.
#[derive(Clone)]
pub struct StateMachine {
    store: Store,
    /// To the delivery task (see the module comment).
    deliver: mpsc::Sender<DeliveryWork>,
    /// Applied messages for the webhooks (None: webhooks off).
    feed: Option<Arc<crate::webhook::Feed>>,
    applied: Arc<watch::Sender<u64>>,
    pub snapshots: SnapshotDir,
    pub stats: Arc<SnapshotStats>,
}

impl StateMachine {
    pub fn new(
        store: Store,
        hub: Arc<Hub>,
        feed: Option<Arc<crate::webhook::Feed>>,
        applied: Arc<watch::Sender<u64>>,
        dir: PathBuf,
    ) -> io::Result<Self> {
        let (deliver, mut queue) = mpsc::channel::<DeliveryWork>(DELIVERY_QUEUE);
        tokio::spawn(async move {
            while let Some(work) = queue.recv().await {
                for (deliveries, effects) in work {
                    hub.deliver(deliveries);
                    crate::core::devices::apply(&hub, effects);
                }
            }
        });
        Ok(StateMachine {
            store,
            deliver,
            feed,
            applied,
            snapshots: {
                let d = SnapshotDir::new(dir)?;
                d.clean_temp();
                d
            },
            stats: Arc::new(SnapshotStats::default()),
        })
    }

    fn read_meta(&self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let last = self
            .store
            .sm_meta_get(LAST_APPLIED)
            .map_err(io_err)?
            .map(|b| from_bytes::<LogId>(&b))
            .transpose()?;
        let mem = self
            .store
            .sm_meta_get(MEMBERSHIP)
            .map_err(io_err)?
            .map(|b| from_bytes::<StoredMembership>(&b))
            .transpose()?
            .unwrap_or_default();
        Ok((last, mem))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let started = Instant::now();
        let me = self.clone();
        let res = tokio::task::spawn_blocking(move || -> io::Result<Snapshot> {
            let (info, file) = me.snapshots.build(&me.store)?;
            Ok(Snapshot {
                meta: info.header.meta,
                snapshot: file,
            })
        })
        .await
        .map_err(io_err)?;
        let took = started.elapsed();
        self.stats.build_seconds.inc_by(took.as_secs_f64());
        *crate::store::lock(&self.stats.last_build) = Some(LastBuild {
            ended: Instant::now(),
            took,
        });
        match &res {
            Ok(s) => {
                self.stats.built.inc();
                self.stats.last_duration_seconds.set(took.as_secs_f64());
                self.stats.last_size_bytes.set(s.snapshot.len as i64);
                self.stats.last_index.store(
                    s.meta.last_log_id.as_ref().map(|l| l.index()).unwrap_or(0),
                    Relaxed,
                );
                tracing::info!(
                    index = s.meta.last_log_id.as_ref().map(|l| l.index()).unwrap_or(0),
                    bytes = s.snapshot.len,
                    "raft snapshot built"
                );
            }
            Err(e) => {
                self.stats.failures.inc();
                tracing::error!(error = %e, "raft snapshot failed");
            }
        }
        res
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let me = self.clone();
        let (last, mem) = tokio::task::spawn_blocking(move || me.read_meta())
            .await
            .map_err(io_err)??;
        let _ = self
            .applied
            .send(last.as_ref().map(|l| l.index()).unwrap_or(0));
        Ok((last, mem))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batches: Vec<Option<Batch>> = Vec::new();
        let mut responders = Vec::new();
        let mut indexes = Vec::new();
        let mut last_applied = None;
        let mut membership = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            match entry.payload {
                EntryPayload::Blank => batches.push(None),
                EntryPayload::Normal(batch) => batches.push(Some(batch)),
                EntryPayload::Membership(m) => {
                    tracing::info!(index = log_id.index(), membership = %m, "raft membership applied");
                    membership = Some(StoredMembership::new(Some(log_id), m));
                    batches.push(None);
                }
            }
            indexes.push(log_id.index());
            last_applied = Some(log_id);
            responders.push(responder);
        }
        let Some(last) = last_applied else {
            return Ok(());
        };
        let mut meta = vec![(LAST_APPLIED, to_bytes(&last))];
        if let Some(m) = &membership {
            meta.push((MEMBERSHIP, to_bytes(m)));
        }
        let store = self.store.clone();
        let applied = tokio::task::spawn_blocking(move || store.apply_entries(&batches, &meta))
            .await
            .map_err(io_err)?
            .map_err(io_err)?;
        let mut work = Vec::with_capacity(applied.len());
        for ((a, responder), index) in applied.into_iter().zip(responders).zip(indexes) {
            if let Some(feed) = &self.feed {
                feed.push(index, &a.deliveries);
            }
            if !a.deliveries.is_empty() || !a.effects.is_empty() {
                work.push((a.deliveries, a.effects));
            }
            if let Some(r) = responder {
                r.send(BatchResult {
                    verdict: a.verdict,
                    outcomes: a.outcomes,
                });
            }
        }
        if !work.is_empty() {
            // Only fails once the runtime is shutting down (the task is gone).
            let _ = self.deliver.send(work).await;
        }
        let _ = self.applied.send(last.index());
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let index = meta.last_log_id.as_ref().map(|l| l.index()).unwrap_or(0);
        tracing::info!(index, bytes = snapshot.len, "raft snapshot installing");
        let started = Instant::now();
        let me = self.clone();
        let m = meta.clone();
        let res =
            tokio::task::spawn_blocking(move || me.snapshots.install(&me.store, &snapshot, &m))
                .await
                .map_err(io_err)?;
        match res {
            Ok((info, _)) => {
                self.stats.installed.inc();
                tracing::info!(
                    index,
                    bytes = info.len,
                    rows = info.trailer.rows,
                    ms = started.elapsed().as_millis() as u64,
                    "raft snapshot installed"
                );
            }
            Err(e) => {
                self.stats.failures.inc();
                tracing::error!(index, error = %e, "raft snapshot install refused");
                return Err(e.into());
            }
        }
        if let Some(feed) = &self.feed {
            feed.mark_gap(index);
        }
        let _ = self.applied.send(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let dir = self.snapshots.clone();
        let cur = tokio::task::spawn_blocking(move || dir.current())
            .await
            .map_err(io_err)??;
        Ok(cur.map(|(info, file)| Snapshot {
            meta: info.header.meta,
            snapshot: file,
        }))
    }
}
