//! Snapshots over HTTP: `POST /cluster/snapshot` builds a fresh one on this node;
//! `GET /cluster/snapshot/download` streams this node's current snapshot file (bounded memory)
//! with its Raft index/term, membership, data version and counts in headers, for backups.

use super::error::{ok_data, ApiError};
use crate::app::App;
use crate::core::wait_until;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use openraft::type_config::async_runtime::WatchReceiver;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Bytes per body chunk of a download.
const CHUNK: usize = 256 << 10;

pub async fn take(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let c = &app.core.cluster;
    let before = c.snapshots.built.get();
    let failed = c.snapshots.failures.get();
    c.raft
        .trigger()
        .snapshot()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    if !wait_until(Duration::from_secs(600), || {
        c.snapshots.built.get() != before || c.snapshots.failures.get() != failed
    })
    .await
        || c.snapshots.built.get() == before
    {
        return Err(ApiError::Unavailable(
            "snapshot not built (failed, or not within 600s: see the node's log)".into(),
        ));
    }
    let m = c.raft.metrics().borrow_watched().clone();
    let snap = m.snapshot;
    Ok(ok_data(json!({
        "index": c.snapshots.last_index.load(Relaxed),
        "term": snap.as_ref().map(|l| l.leader_id.term),
        "size": c.snapshots.last_size_bytes.get(),
        "duration_ms": (c.snapshots.last_duration_seconds.get() * 1000.0) as u64,
    })))
}

pub async fn download(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let dir = app.core.cluster.snapshot_dir.clone();
    let current = tokio::task::spawn_blocking(move || dir.current())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("reading the current snapshot: {e}")))?;
    let Some((info, snap)) = current else {
        return Err(ApiError::NotFound(
            "this node has no snapshot yet: POST /cluster/snapshot builds one".into(),
        ));
    };
    let (index, term) = info.index_term();
    let c = info.trailer.counts;
    let headers = [
        ("x-wk-snapshot-index", index.to_string()),
        ("x-wk-snapshot-term", term.to_string()),
        (
            "x-wk-snapshot-membership",
            info.membership_json().to_string(),
        ),
        ("x-wk-data-version", info.data_version()),
        (
            "x-wk-counts",
            json!({"messages": c.messages, "channels": c.channels, "users": c.users}).to_string(),
        ),
        ("x-wk-snapshot-format", info.format.to_string()),
        ("x-wk-version", env!("CARGO_PKG_VERSION").to_string()),
    ];
    // A descriptor of its own (positional readers elsewhere do not move its offset); it stays
    // valid even if a newer snapshot replaces the file meanwhile.
    let mut file = snap
        .file
        .try_clone()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let file = tokio::fs::File::from_std(file);
    let len = info.len;
    let body = futures::stream::unfold((file, 0u64), move |(mut file, sent)| async move {
        if sent >= len {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min((len - sent) as usize)];
        match file.read_exact(&mut buf).await {
            Ok(_) => Some((Ok(bytes::Bytes::from(buf)), (file, sent + CHUNK as u64))),
            Err(e) => Some((Err(e), (file, len))),
        }
    });
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    for (name, value) in headers {
        let value = HeaderValue::from_str(&value).map_err(|e| ApiError::Internal(e.to_string()))?;
        h.insert(HeaderName::from_static(name), value);
    }
    tracing::info!(index, bytes = len, "snapshot download started");
    Ok(resp)
}
