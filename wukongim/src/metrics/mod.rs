//! Prometheus exposition on the manager port (`manager.addr`, default :5300): `/metrics` in the
//! text format, read from the same counters /varz and /cluster/raft/status use (one source of
//! truth). Families are written by [`render`]; process figures come from /proc.

mod process;
mod render;

use crate::app::App;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Every `wukongim_*` metric family /metrics exports: the contract dashboards and alert rules
/// (rendered by wk-ops) are checked against.
pub const FAMILIES: &[&str] = &[
    "wukongim_info",
    "wukongim_raft_state",
    "wukongim_raft_term",
    "wukongim_raft_leader_id",
    "wukongim_raft_commit_index",
    "wukongim_raft_applied_index",
    "wukongim_raft_last_log_index",
    "wukongim_raft_replication_lag_entries",
    "wukongim_raft_rpc_duration_seconds",
    "wukongim_raft_proposals_total",
    "wukongim_raft_batches_total",
    "wukongim_raft_forwarded_batches_total",
    "wukongim_raft_batch_size",
    "wukongim_raft_commit_duration_seconds",
    "wukongim_storage_fsyncs_total",
    "wukongim_storage_bytes",
    "wukongim_snapshots_total",
    "wukongim_snapshots_installed_total",
    "wukongim_snapshot_failures_total",
    "wukongim_snapshot_duration_seconds",
    "wukongim_snapshot_size_bytes",
    "wukongim_connections",
    "wukongim_packets_received_total",
    "wukongim_packets_sent_total",
    "wukongim_messages_sent_total",
    "wukongim_messages_delivered_total",
    "wukongim_received_bytes_total",
    "wukongim_sent_bytes_total",
    "wukongim_send_ack_duration_seconds",
];

/// Seconds buckets for latencies.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for batch sizes (commands per batch).
pub const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A lock-free Prometheus histogram.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in millionths, so it fits an atomic integer.
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if v <= *b {
                c.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add((v.max(0.0) * 1e6) as u64, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines of this histogram.
    pub fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                c.load(Relaxed)
            );
        }
        let n = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {n}");
        let l = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{l} {}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{l} {n}");
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(LATENCY_BUCKETS)
    }
}

/// Router of the manager port.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let app2 = app.clone();
    let disk = tokio::task::spawn_blocking(move || app2.store.disk_bytes())
        .await
        .unwrap_or(0);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        render::render(&app, disk),
    )
}
