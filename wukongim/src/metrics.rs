//! Prometheus exposition on the manager port (`manager.addr`, default :5300): `/metrics` in the
//! text format, read from the same counters /varz uses.

use crate::app::App;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Router of the manager port.
pub fn router(app: Arc<App>) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(app)
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let one = |v: u64| vec![(String::new(), v as f64)];
    family(
        "wukongim_info",
        "gauge",
        "Node identity.",
        &[(format!("{{node_id=\"{}\",version=\"{}\"}}", app.node_id, env!("CARGO_PKG_VERSION")), 1.0)],
    );
    let conns = app.core.hub.connection_counts();
    family(
        "wukongim_connections",
        "gauge",
        "Client connections by transport.",
        &["tcp", "ws"]
            .iter()
            .map(|t| (format!("{{transport=\"{t}\"}}"), conns.get(t).copied().unwrap_or(0) as f64))
            .collect::<Vec<_>>(),
    );
    let t = &app.traffic;
    family("wukongim_messages_sent_total", "counter", "Messages accepted from senders.", &one(t.in_msgs.load(Relaxed)));
    family(
        "wukongim_messages_delivered_total",
        "counter",
        "Messages pushed to online devices.",
        &one(app.core.hub.delivered.load(Relaxed)),
    );
    family("wukongim_raft_proposals_total", "counter", "Commands proposed.", &one(app.core.stats.proposals.load(Relaxed)));
    family("wukongim_raft_batches_total", "counter", "Batches committed (one fsync each).", &one(app.core.stats.batches.load(Relaxed)));
    family("wukongim_storage_fsyncs_total", "counter", "Storage fsyncs.", &one(app.core.stats.batches.load(Relaxed)));
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
