//! `cluster.maxMemoryUsage` as back-pressure: the resident memory of the process is sampled every
//! 250 ms; above the limit new sends are refused (SENDACK reason `RateLimit`, HTTP 503) until it
//! falls below 90 % of the limit, so the node slows its writers down instead of being OOM-killed.
//! Reads, acks and replication keep working. Refusals count in `wukongim_sends_refused_memory`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often resident memory is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The memory state new sends are admitted against.
#[derive(Debug, Default)]
pub struct MemoryGuard {
    /// Limit in bytes; 0 = none.
    limit: u64,
    over: AtomicBool,
    pub refused: Counter,
    over_gauge: Gauge,
}

impl MemoryGuard {
    pub fn new(limit: u64) -> Arc<MemoryGuard> {
        Arc::new(MemoryGuard {
            limit,
            ..MemoryGuard::default()
        })
    }

    /// Records a sample of resident memory; returns whether sends are refused now.
    pub fn observe(&self, rss: u64) -> bool {
        if self.limit == 0 {
            return false;
        }
        let was = self.over.load(Ordering::Relaxed);
        let now = if was {
            rss >= self.limit / 10 * 9
        } else {
            rss > self.limit
        };
        if now != was {
            self.over.store(now, Ordering::Relaxed);
            self.over_gauge.set(now as i64);
            if now {
                tracing::warn!(
                    rss,
                    limit = self.limit,
                    "resident memory above cluster.maxMemoryUsage: refusing new sends"
                );
            } else {
                tracing::info!(
                    rss,
                    limit = self.limit,
                    "memory back under the limit: sends accepted again"
                );
            }
        }
        now
    }

    /// True when a new send may be accepted; a refusal is counted.
    pub fn admit(&self) -> bool {
        let over = self.over.load(Ordering::Relaxed);
        if over {
            self.refused.inc();
        }
        !over
    }

    pub fn register(&self, r: &mut Registry) {
        r.register(
            "wukongim_sends_refused_memory",
            "Sends refused because resident memory was above cluster.maxMemoryUsage.",
            self.refused.clone(),
        );
        r.register(
            "wukongim_memory_backpressure",
            "1 while new sends are refused for memory (cluster.maxMemoryUsage).",
            self.over_gauge.clone(),
        );
    }

    /// Samples resident memory until `stop`.
    pub async fn run(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            self.observe(crate::metrics::resident_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_above_the_limit_and_recovers_below_ninety_percent() {
        let g = MemoryGuard::new(1000);
        assert!(!g.observe(1000) && g.admit());
        assert!(g.observe(1001) && !g.admit());
        assert!(g.observe(950), "hysteresis: still refused at 95%");
        assert!(!g.observe(899) && g.admit());
        assert_eq!(g.refused.get(), 1);
        let none = MemoryGuard::new(0);
        assert!(!none.observe(u64::MAX) && none.admit());
    }
}
