//! The /cluster/* admin endpoints of the cluster guide: membership, leadership, status, raft
//! internals, data version and forced sync (snapshots: [`super::snapshot`]). Changes run on the leader (forwarded
//! when this node follows); views that need the whole cluster come from the leader too.

use super::error::{ok_data, ApiError, Body};
use crate::app::App;
use crate::cluster::messages::{AdminError, AdminRequest};
use crate::core::wait_until;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use openraft::type_config::async_runtime::WatchReceiver;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

fn admin_error(e: AdminError) -> ApiError {
    let msg = e.to_string();
    match e {
        AdminError::Invalid(_) | AdminError::Conflict(_) => ApiError::BadRequest(msg),
        AdminError::NotFound(_) => ApiError::NotFound(msg),
        AdminError::Unavailable(_) | AdminError::BadReply(_) => ApiError::Unavailable(msg),
    }
}

async fn admin(app: &App, req: AdminRequest) -> Result<Value, ApiError> {
    let text = app.core.cluster.admin(req).await.map_err(admin_error)?;
    serde_json::from_str(&text).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The leader's view of the members, or this node's own when no leader answers.
async fn members(app: &App) -> Value {
    match admin(app, AdminRequest::Nodes).await {
        Ok(v) => v,
        Err(_) => app.core.cluster.nodes_view(),
    }
}

pub async fn nodes(State(app): State<Arc<App>>) -> Response {
    axum::Json(members(&app).await).into_response()
}

#[derive(Deserialize)]
pub struct AddNodeReq {
    id: u64,
    addr: String,
}

pub async fn add_node(
    State(app): State<Arc<App>>,
    Body(r): Body<AddNodeReq>,
) -> Result<Response, ApiError> {
    let v = admin(
        &app,
        AdminRequest::AddNode {
            id: r.id,
            addr: r.addr,
        },
    )
    .await?;
    Ok(ok_data(v))
}

pub async fn remove_node(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("node id `{id}` is not a number")))?;
    let v = admin(&app, AdminRequest::RemoveNode { id }).await?;
    Ok(ok_data(v))
}

#[derive(Deserialize)]
pub struct TransferReq {
    target_node: u64,
}

pub async fn transfer_leadership(
    State(app): State<Arc<App>>,
    Body(r): Body<TransferReq>,
) -> Result<Response, ApiError> {
    let v = admin(
        &app,
        AdminRequest::TransferLeader {
            target: r.target_node,
        },
    )
    .await?;
    Ok(ok_data(v))
}

pub async fn status(State(app): State<Arc<App>>) -> Response {
    let view = members(&app).await;
    let metrics = app.core.cluster.raft.metrics().borrow_watched().clone();
    let voters: Vec<u64> = metrics.membership_config.membership().voter_ids().collect();
    let quorum = voters.len() / 2 + 1;
    let nodes = view["nodes"].as_array().cloned().unwrap_or_default();
    let online_voters = nodes
        .iter()
        .filter(|n| voters.contains(&n["id"].as_u64().unwrap_or(0)))
        .filter(|n| matches!(n["status"].as_str(), Some("leader" | "follower")))
        .count();
    let lagging: Vec<Value> = nodes
        .iter()
        .filter(|n| {
            !matches!(
                n["status"].as_str(),
                Some("leader" | "follower" | "learner")
            )
        })
        .map(|n| n["id"].clone())
        .collect();
    let leader = view["leader"].as_u64();
    let status = match leader {
        None => "unavailable",
        Some(_) if online_voters < quorum => "unavailable",
        Some(_) if lagging.is_empty() && online_voters == voters.len() => "healthy",
        Some(_) => "degraded",
    };
    axum::Json(json!({
        "status": status,
        "leader": leader,
        "term": metrics.current_term,
        "quorum": quorum,
        "members": voters,
        "online": online_voters,
        "lagging": lagging,
    }))
    .into_response()
}

pub async fn raft_status(State(app): State<Arc<App>>) -> Response {
    let mut v = raft_status_json(&app);
    // O(1): the log keeps its entry count and bytes.
    if let Ok((entries, bytes)) = app.store.log_stats() {
        v["log"] = json!({"entries": entries, "bytes": bytes});
    }
    axum::Json(v).into_response()
}

/// Raft internals of this node (the numbers /metrics exports too).
pub fn raft_status_json(app: &App) -> Value {
    let c = &app.core.cluster;
    let m = c.raft.metrics().borrow_watched().clone();
    let idx = |l: &Option<crate::cluster::types::LogId>| l.as_ref().map(|l| l.index);
    let last_log = m.last_log_index;
    let replication: Vec<Value> = m
        .replication
        .as_ref()
        .map(|r| {
            r.iter()
                .map(|(id, matched)| {
                    let matched = matched.as_ref().map(|l| l.index);
                    json!({
                        "node_id": id,
                        "matched_index": matched,
                        "lag": last_log.unwrap_or(0).saturating_sub(matched.unwrap_or(0)),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let s = &c.snapshots;
    json!({
        "node_id": c.node_id,
        "state": format!("{:?}", m.state).to_lowercase(),
        "term": m.current_term,
        "vote": m.vote.to_string(),
        "leader": m.current_leader,
        "commit_index": idx(&m.cluster_committed),
        "applied_index": idx(&m.last_applied),
        "last_log_index": last_log,
        "purged_index": idx(&m.purged),
        // Reads are local: what this node knows committed but has not applied yet.
        "read_lag_entries": c.read_lag_entries(),
        "snapshot": {
            "index": idx(&m.snapshot),
            "built": s.built.get(),
            "installed": s.installed.get(),
            "failures": s.failures.get(),
            "last_size_bytes": s.last_size_bytes.get(),
            "last_duration_ms": (s.last_duration_seconds.get() * 1000.0) as u64,
            "build_ms": (s.build_seconds.get() * 1000.0) as u64,
        },
        "replication": replication,
        "membership": {
            "voters": m.membership_config.membership().voter_ids().collect::<Vec<_>>(),
            "learners": m.membership_config.membership().learner_ids().collect::<Vec<_>>(),
        },
    })
}

pub async fn election(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let c = &app.core.cluster;
    tracing::info!(node_id = c.node_id, "raft election forced through the API");
    c.raft
        .trigger()
        .elect(false)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    if !wait_until(app.config.election_timeout() * 4, || c.leader().is_some()).await {
        return Err(ApiError::Unavailable("no leader elected in time".into()));
    }
    let m = c.raft.metrics().borrow_watched().clone();
    Ok(ok_data(
        json!({"leader": m.current_leader, "term": m.current_term}),
    ))
}

pub async fn data_version(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let store = app.store.clone();
    // Hash and applied index from one consistent read of the state machine.
    let (version, raw) = tokio::task::spawn_blocking(move || {
        store.version(crate::cluster::state_machine::LAST_APPLIED)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let applied = raw
        .map(|b| crate::cluster::types::from_bytes::<crate::cluster::types::LogId>(&b))
        .transpose()
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map(|l| l.index)
        .unwrap_or(0);
    let c = version.counts;
    Ok(axum::Json(json!({
        "node_id": app.node_id,
        "applied_index": applied,
        "hash": version.hash,
        "counts": {"messages": c.messages, "channels": c.channels, "users": c.users},
    }))
    .into_response())
}

pub async fn sync_force(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let c = &app.core.cluster;
    let target = c
        .leader_commit_index()
        .await
        .ok_or_else(|| ApiError::Unavailable("no leader".into()))?;
    let timeout = app.config.cluster.request_timeout.0;
    let synced = c.wait_applied(target, timeout).await;
    let applied = *c.applied.borrow();
    if !synced {
        return Err(ApiError::Unavailable(format!(
            "applied {applied} of {target} within {timeout:?}"
        )));
    }
    Ok(ok_data(
        json!({"node_id": c.node_id, "applied_index": applied, "leader_commit_index": target}),
    ))
}
