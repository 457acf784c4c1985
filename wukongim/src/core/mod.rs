//! IM logic over the replicated state: the write path (propose → durable apply → deliver) and
//! the per-node connection hub.

pub mod hub;
pub mod log;

pub use hub::{ConnInfo, Hub, Outbound};
pub use log::{BatchConfig, LocalLog, LogStats, ProposeError};

use crate::store::{Command, Outcome};
use std::sync::Arc;

/// The node's write path and delivery hub.
#[derive(Clone)]
pub struct Core {
    pub log: LocalLog,
    pub hub: Arc<Hub>,
    pub stats: Arc<LogStats>,
}

impl Core {
    /// Starts the writer over `store`; applied messages are delivered through the hub.
    pub fn start(store: crate::store::Store, cfg: BatchConfig) -> Core {
        let hub = Hub::new();
        let stats = Arc::new(LogStats::default());
        let h = hub.clone();
        let log = LocalLog::start(store, cfg, stats.clone(), move |d| h.deliver(d));
        Core { log, hub, stats }
    }

    /// Proposes `cmd` and waits for its durable outcome.
    pub async fn propose(&self, cmd: Command) -> Result<Outcome, ProposeError> {
        self.log.propose(cmd).await
    }
}

/// Current unix time in seconds, as WuKongIM stamps messages.
pub fn now_secs() -> i32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i32)
        .unwrap_or(0)
}

/// Current unix time in milliseconds.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
