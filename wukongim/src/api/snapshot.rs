//! Snapshots over HTTP: `POST /cluster/snapshot` builds a fresh one on this node;
//! `GET /cluster/snapshot/download` streams this node's current snapshot file (bounded memory)
//! with its Raft index/term, membership, data version and counts in headers (and the file's
//! SHA-256 when this node built it), for backups.

use super::error::{ok_data, ApiError};
use crate::app::App;
use crate::cluster::snapfile::SnapshotFile;
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

/// Header carrying the SHA-256 of the whole file, when the node built it (and so knows it
/// without another pass).
pub const FILE_SHA256: &str = "x-wk-snapshot-sha256";

/// Bytes per body chunk of a download.
const CHUNK: usize = 1 << 20;
/// Chunks read ahead of the socket at most.
const AHEAD: usize = 4;

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
    let sha_dir = dir.clone();
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
    let mut headers = vec![
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
    if let Some(sha) = sha_dir.file_sha256(&info) {
        headers.push((FILE_SHA256, crate::store::hex(&sha)));
    }
    // A blocking thread reads the file (positional reads: it stays valid even if a newer
    // snapshot replaces the name meanwhile) a chunk ahead of the socket, at most `AHEAD` chunks.
    let len = info.len;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(AHEAD);
    tokio::task::spawn_blocking(move || read_chunks(snap, tx));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
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

/// Reads `snap` in chunks into `tx` until the end, an error, or the client is gone.
fn read_chunks(snap: SnapshotFile, tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>) {
    use std::io::Read;
    let mut reader = snap.reader(0);
    let mut left = snap.len;
    while left > 0 {
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        let chunk = reader
            .read_exact(&mut buf)
            .map(|()| bytes::Bytes::from(buf));
        let failed = chunk.is_err();
        if tx.blocking_send(chunk).is_err() || failed {
            return;
        }
        left -= CHUNK.min(left as usize) as u64;
    }
}
