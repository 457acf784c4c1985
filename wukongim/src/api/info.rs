//! Node information endpoints: client routing (/route), liveness (/health) and counters (/varz).

use super::error::{ApiError, Body};
use crate::app::App;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The addresses clients should dial, from `external.*` (else the external ip or 127.0.0.1 with
/// the listen ports).
pub fn route_addrs(app: &App) -> (String, String, String) {
    let c = &app.config;
    let ip = c.external.ip.clone().unwrap_or_else(|| "127.0.0.1".into());
    let port = |listen: String| {
        listen
            .rsplit_once(':')
            .map(|x| x.1.to_string())
            .unwrap_or_default()
    };
    let tcp = c
        .external
        .tcp_addr
        .clone()
        .unwrap_or_else(|| format!("{ip}:{}", port(c.tcp_listen())));
    let ws = c
        .external
        .ws_addr
        .clone()
        .unwrap_or_else(|| format!("ws://{ip}:{}", port(c.ws_listen())));
    let wss = c.external.wss_addr.clone().unwrap_or_default();
    (tcp, ws, wss)
}

/// The addresses of GET /route and POST /route/batch. With `intranet=1` (Go: route.go) only the
/// TCP address is given: `intranet.tcpAddr`, else the external one.
fn addrs_for(app: &App, q: &RouteQuery) -> Result<(String, String, String), ApiError> {
    let (tcp, ws, wss) = route_addrs(app);
    match q.intranet.as_deref().map(str::trim) {
        None | Some("") | Some("0") => Ok((tcp, ws, wss)),
        Some("1") => {
            let tcp = app.config.intranet.tcp_addr.clone().unwrap_or(tcp);
            Ok((tcp, String::new(), String::new()))
        }
        Some(v) => Err(ApiError::BadRequest(format!(
            "intranet must be 0 or 1, not {v:?}"
        ))),
    }
}

#[derive(Deserialize)]
pub struct RouteQuery {
    intranet: Option<String>,
}

/// GET /route[?intranet=1] (Go: route.go `routeUserIMAddr`).
pub async fn route(
    State(app): State<Arc<App>>,
    Query(q): Query<RouteQuery>,
) -> Result<Response, ApiError> {
    let (tcp, ws, wss) = addrs_for(&app, &q)?;
    Ok(axum::Json(json!({ "tcp_addr": tcp, "ws_addr": ws, "wss_addr": wss })).into_response())
}

/// POST /route/batch[?intranet=1] with a JSON list of uids (Go: route.go
/// `routeUserIMAddrOfBatch`): every node serves every user, so one entry lists them all.
pub async fn route_batch(
    State(app): State<Arc<App>>,
    Query(q): Query<RouteQuery>,
    Body(uids): Body<Vec<String>>,
) -> Result<Response, ApiError> {
    let (tcp, ws, wss) = addrs_for(&app, &q)?;
    Ok(axum::Json(json!([{
        "uids": uids, "tcp_addr": tcp, "ws_addr": ws, "wss_addr": wss,
    }]))
    .into_response())
}

pub async fn health(State(app): State<Arc<App>>) -> Response {
    if app.shutdown.is_cancelled() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "status": "error", "message": "node is shutting down" })),
        )
            .into_response();
    }
    if app.core.cluster.leader().is_none() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "status": "error", "message": "no raft leader known" })),
        )
            .into_response();
    }
    if !app.core.cluster.read_gate.is_open() {
        let message = format!(
            "catching up after start: applied {} of the cluster's commit index",
            *app.core.cluster.applied.borrow()
        );
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "status": "error", "message": message })),
        )
            .into_response();
    }
    axum::Json(json!({ "status": "ok" })).into_response()
}

pub async fn varz(State(app): State<Arc<App>>) -> Response {
    let (tcp, ws, wss) = route_addrs(&app);
    let conns = app.core.hub.connection_counts();
    let t = &app.traffic;
    axum::Json(json!({
        "server_id": app.node_id.to_string(),
        "server_name": "wukongim-rs",
        "version": env!("CARGO_PKG_VERSION"),
        "connections": conns.values().sum::<usize>(),
        "tcp_connections": conns.get("tcp").copied().unwrap_or(0),
        "ws_connections": conns.get("ws").copied().unwrap_or(0),
        "uptime": crate::config::format_duration(std::time::Duration::from_secs(app.started.elapsed().as_secs())),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "in_msgs": t.in_msgs.get(),
        "out_msgs": t.out_msgs.load(Relaxed),
        "in_bytes": t.in_bytes.get(),
        "out_bytes": t.out_bytes.get(),
        "delivered_msgs": app.core.hub.metrics.delivered.get(),
        "proposals": app.core.proposer.stats.proposals.get(),
        "batches": app.core.proposer.stats.batches.get(),
        "tcp_addr": tcp,
        "ws_addr": ws,
        "wss_addr": wss,
        "api_url": app.config.external.api_url,
        "manager_addr": app.config.manager.addr,
        "mode": app.config.mode,
    }))
    .into_response()
}
