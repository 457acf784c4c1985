//! Prometheus exposition on the manager port (`manager.addr`, default :5300). Every metric is a
//! `prometheus-client` metric defined next to the code that updates it (the write path, the
//! network, snapshots, storage, the hub, the gateways); [`registry`] gathers them into one
//! `Registry`, rendered by the crate's encoder. The figures /varz and /cluster/raft/status show
//! are read from the same metrics (one source of truth).

mod families;
mod process;

pub use families::families;
pub use process::resident_bytes;
pub use prometheus_client::registry::Registry;

use crate::app::App;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;

/// Seconds buckets for latencies.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for batch sizes (commands per batch).
pub const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

/// A histogram with [`SIZE_BUCKETS`].
pub fn size_histogram() -> Histogram {
    Histogram::new(SIZE_BUCKETS.iter().copied())
}

/// The metrics of one node, each owned by the part that updates it.
pub struct Sources<'a> {
    pub node_id: u64,
    pub raft: &'a crate::cluster::RaftGauges,
    pub peers: &'a crate::cluster::PeerLatency,
    pub writes: &'a crate::cluster::WriteStats,
    pub snapshots: &'a crate::cluster::state_machine::SnapshotStats,
    pub store: &'a crate::store::StoreMetrics,
    pub hub: &'a crate::core::hub::HubMetrics,
    pub traffic: &'a crate::gateway::Traffic,
    /// The configuration whose open doors are exported.
    pub config: &'a crate::config::Config,
    pub memory: &'a crate::memguard::MemoryGuard,
    pub webhook: &'a crate::webhook::WebhookMetrics,
}

/// One registry holding every metric of `s`, plus node identity and process figures.
pub fn registry(s: Sources<'_>) -> Registry {
    let mut r = Registry::default();
    let info = Family::<[(&'static str, String); 2], Gauge>::default();
    info.get_or_create(&[
        ("node_id", s.node_id.to_string()),
        ("version", env!("CARGO_PKG_VERSION").to_string()),
    ])
    .set(1);
    r.register("wukongim_info", "Node identity.", info);
    let insecure = Family::<[(&'static str, &'static str); 1], Gauge>::default();
    for d in crate::config::open_doors(s.config) {
        insecure.get_or_create(&[("setting", d.setting)]).set(1);
    }
    r.register(
        "wukongim_insecure_setting",
        "1 for each insecure setting in force (cluster_auth, manager_token, token_auth).",
        insecure,
    );
    s.raft.register(&mut r);
    s.peers.register(&mut r);
    s.writes.register(&mut r);
    s.store.register(&mut r);
    s.snapshots.register(&mut r);
    s.hub.register(&mut r);
    s.traffic.register(&mut r);
    s.memory.register(&mut r);
    s.webhook.register(&mut r);
    r.register_collector(Box::new(process::Process::default()));
    r
}

/// Router of the manager port.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// OpenMetrics for scrapers that ask for it (Prometheus does); the text format 0.0.4 otherwise.
async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let open_metrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    // Reading rootDir's size walks the file system: off the async threads.
    let rendered = tokio::task::spawn_blocking(move || scrape(&app)).await;
    let Ok(Ok(text)) = rendered else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot render metrics\n").into_response();
    };
    if open_metrics {
        let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        ([(header::CONTENT_TYPE, kind)], text).into_response()
    } else {
        let kind = "text/plain; version=0.0.4; charset=utf-8";
        (
            [(header::CONTENT_TYPE, kind)],
            families::to_text_format(&text),
        )
            .into_response()
    }
}

/// Refreshes the figures read at scrape time and encodes the registry as OpenMetrics.
fn scrape(app: &App) -> Result<String, std::fmt::Error> {
    app.metrics.raft.update(&app.core.cluster.raft, app.node_id);
    app.store.refresh_metrics();
    app.core.hub.refresh_metrics();
    let mut out = String::new();
    encode(&mut out, &app.metrics.registry)?;
    Ok(out)
}

/// The registry of a running node and the Raft gauges it refreshes at each scrape.
pub struct NodeMetrics {
    pub registry: Registry,
    pub raft: crate::cluster::RaftGauges,
}
