//! Taking one backup: pick a healthy, caught-up node (a follower by preference), make it apply
//! everything the leader has committed, have it build a fresh snapshot, and stream the download
//! straight into an archive (HTTP body → bounded channel → tar → zstd → file), the manifest
//! built from the download's `x-wk-*` headers. The finished archive is verified before it gets
//! its `.sha256`-backed place in the directory.

use super::archive::{ArchiveWriter, Compression, Written};
use super::manifest::{self, Manifest, Membership, RaftPosition, SourceNode, SNAPSHOT};
use super::name::ArchiveName;
use super::progress::Progress;
use super::verify::{verify, VerifyError};
use crate::inventory::{Inventory, Node};
use crate::node_api::{Counts, NodeApi, NodeError, RaftStatus};
use reqwest::header::HeaderMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A follower this far behind the leader's commit index does not count as caught up.
pub const MAX_LAG: u64 = 1000;

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no node can be backed up: {0}")]
    NoSource(String),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("node {node}: snapshot download header {header} {reason}")]
    Header {
        node: u64,
        header: &'static str,
        reason: String,
    },
    #[error("node {node}: the snapshot download stopped: {reason}")]
    Download { node: u64, reason: String },
    #[error(transparent)]
    Write(#[from] super::archive::WriteError),
    #[error("the new archive failed verification: {0}")]
    Verify(VerifyError),
    #[error("cannot create the backup directory {dir}: {error}")]
    Dir { dir: String, error: io::Error },
}

/// What `backup` was asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    pub dir: PathBuf,
    pub node: Option<u64>,
    pub compression: Compression,
}

/// A finished backup.
#[derive(Debug, Clone)]
pub struct Taken {
    pub written: Written,
    pub manifest: Manifest,
    pub source_state: String,
    pub elapsed: Duration,
}

/// Picks the node to back up: `wanted` if given (it must answer), else the caught-up follower
/// with the smallest lag, else the leader.
pub async fn pick_source<'a>(
    api: &NodeApi,
    nodes: &'a [Node],
    wanted: Option<u64>,
) -> Result<(&'a Node, RaftStatus), BackupError> {
    let statuses = api.raft_status_all(nodes).await;
    if let Some(id) = wanted {
        let (node, st) = statuses
            .into_iter()
            .find(|(n, _)| n.id == id)
            .ok_or_else(|| BackupError::NoSource(format!("node {id} is not in the inventory")))?;
        return Ok((node, st?));
    }
    let commit = statuses
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .find(|s| s.state == "leader")
        .and_then(|s| s.commit_index);
    let Some(commit) = commit else {
        let why: Vec<String> = statuses
            .iter()
            .map(|(n, s)| match s {
                Ok(s) => format!("node {}: {}", n.id, s.state),
                Err(e) => e.to_string(),
            })
            .collect();
        return Err(BackupError::NoSource(format!(
            "no leader answers ({})",
            why.join("; ")
        )));
    };
    let mut best: Option<(bool, u64, &Node, RaftStatus)> = None;
    for (node, st) in statuses {
        let Ok(st) = st else { continue };
        let lag = commit.saturating_sub(st.applied_index.unwrap_or(0));
        let usable = matches!(st.state.as_str(), "leader" | "follower") && st.leader.is_some();
        if !usable || lag > MAX_LAG {
            continue;
        }
        let key = (st.state == "leader", lag);
        if best.as_ref().is_none_or(|b| key < (b.0, b.1)) {
            best = Some((key.0, key.1, node, st));
        }
    }
    best.map(|(_, _, n, s)| (n, s)).ok_or_else(|| {
        BackupError::NoSource(format!(
            "no node is caught up (within {MAX_LAG} entries of commit index {commit})"
        ))
    })
}

/// Takes a backup of `inv` into `req.dir`.
pub async fn take(inv: &Inventory, api: &NodeApi, req: &Request) -> Result<Taken, BackupError> {
    let started = Instant::now();
    std::fs::create_dir_all(&req.dir).map_err(|error| BackupError::Dir {
        dir: req.dir.display().to_string(),
        error,
    })?;
    let (node, status) = pick_source(api, &inv.nodes, req.node).await?;
    tracing::info!(node_id = node.id, state = %status.state, "backup source chosen");
    // Everything acknowledged before the backup started is applied here before the snapshot.
    api.sync_force(node).await?;
    let built = api.snapshot(node).await?;
    tracing::info!(node_id = node.id, index = ?built.index, "snapshot built");
    let transfer = NodeApi::for_transfers(inv, Duration::from_secs(120)).map_err(|e| {
        BackupError::Download {
            node: node.id,
            reason: e.to_string(),
        }
    })?;
    let resp = transfer.snapshot_download(node).await?;
    let meta = Meta::from_headers(node.id, resp.headers())?;
    if let Some(built_index) = built.index {
        if meta.index < built_index {
            return Err(BackupError::Header {
                node: node.id,
                header: "x-wk-snapshot-index",
                reason: format!(
                    "is {}, older than the snapshot just built at {built_index}",
                    meta.index
                ),
            });
        }
    }
    let created = chrono::Utc::now();
    let name = ArchiveName {
        cluster: inv.cluster.name.clone(),
        created,
        index: meta.index,
    };
    let path = req.dir.join(name.file_name());
    let draft = Manifest {
        format_version: manifest::FORMAT_VERSION,
        cluster: inv.cluster.name.clone(),
        source_node: SourceNode {
            id: node.id,
            host: node.host.clone(),
        },
        raft: RaftPosition {
            index: meta.index,
            term: meta.term,
        },
        membership: meta.membership.clone(),
        data_version: meta.data_version.clone(),
        counts: meta.counts,
        members: Vec::new(),
        wukongim_version: meta.version.clone(),
        snapshot_format: meta.format,
        created: created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        wk_ops_version: env!("CARGO_PKG_VERSION").into(),
        compression: manifest::Compression {
            algorithm: manifest::Algorithm::Zstd,
            level: req.compression.level,
        },
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<bytes::Bytes>>(16);
    let compression = req.compression;
    let size = meta.size;
    let mtime = created.timestamp().max(0) as u64;
    let announced = meta.sha256.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<_, BackupError> {
        let mut w = ArchiveWriter::create(&path, compression, mtime)?;
        // The node's announced SHA-256 saves hashing the stream here; the verify below
        // recomputes it from the finished archive, so a wrong announcement fails the backup.
        w.append_announced(SNAPSHOT, size, ChannelReader::new(rx), announced.as_deref())?;
        let mut manifest = draft;
        manifest.members = w.members().to_vec();
        let written = w.commit(&manifest)?;
        match verify(&written.path, None) {
            Ok(_) => Ok((written, manifest)),
            Err(e) => {
                // Never leave an archive behind that looks finished but is not.
                let _ = std::fs::remove_file(super::name::checksum_path(&written.path));
                Err(BackupError::Verify(e))
            }
        }
    });
    let pumped = pump(resp, tx, size, node.id).await;
    let written = writer.await.map_err(|e| BackupError::Download {
        node: node.id,
        reason: format!("archive writer failed: {e}"),
    })?;
    // A transport error explains a short stream better than the writer's "ended after".
    pumped?;
    let (written, manifest) = written?;
    Ok(Taken {
        written,
        manifest,
        source_state: status.state,
        elapsed: started.elapsed(),
    })
}

/// Feeds the response body into the writer's channel, with progress.
async fn pump(
    mut resp: reqwest::Response,
    tx: tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>,
    size: u64,
    node: u64,
) -> Result<(), BackupError> {
    let mut progress = Progress::new(&format!("snapshot of node {node}"), Some(size));
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                progress.inc(chunk.len() as u64);
                if tx.send(Ok(chunk)).await.is_err() {
                    break; // the writer stopped; its error says why
                }
            }
            Ok(None) => break,
            Err(e) => {
                let reason = e.to_string();
                let _ = tx.send(Err(io::Error::other(reason.clone()))).await;
                progress.finish();
                return Err(BackupError::Download { node, reason });
            }
        }
    }
    progress.finish();
    Ok(())
}

/// A blocking reader over the chunks the async side receives.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<bytes::Bytes>>,
    buf: bytes::Bytes,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<io::Result<bytes::Bytes>>) -> Self {
        ChannelReader {
            rx,
            buf: bytes::Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}

/// The snapshot's metadata from the download's headers.
#[derive(Debug, Clone)]
struct Meta {
    size: u64,
    index: u64,
    term: u64,
    membership: Membership,
    data_version: String,
    counts: Counts,
    format: u32,
    version: String,
    /// The file's SHA-256 (hex), when the node announced it (`x-wk-snapshot-sha256`).
    sha256: Option<String>,
}

/// The header in which a node announces its snapshot file's SHA-256.
const SHA256_HEADER: &str = "x-wk-snapshot-sha256";

impl Meta {
    fn from_headers(node: u64, h: &HeaderMap) -> Result<Meta, BackupError> {
        let text = |header: &'static str| -> Result<String, BackupError> {
            let v = h.get(header).ok_or(BackupError::Header {
                node,
                header,
                reason: "is missing".into(),
            })?;
            v.to_str()
                .map(str::to_string)
                .map_err(|_| BackupError::Header {
                    node,
                    header,
                    reason: "is not text".into(),
                })
        };
        fn parse<T: serde::de::DeserializeOwned>(
            node: u64,
            header: &'static str,
            s: &str,
        ) -> Result<T, BackupError> {
            serde_json::from_str(s).map_err(|e| BackupError::Header {
                node,
                header,
                reason: format!("`{s}` does not parse: {e}"),
            })
        }
        Ok(Meta {
            size: parse(node, "content-length", &text("content-length")?)?,
            index: parse(node, "x-wk-snapshot-index", &text("x-wk-snapshot-index")?)?,
            term: parse(node, "x-wk-snapshot-term", &text("x-wk-snapshot-term")?)?,
            membership: parse(
                node,
                "x-wk-snapshot-membership",
                &text("x-wk-snapshot-membership")?,
            )?,
            data_version: text("x-wk-data-version")?,
            counts: parse(node, "x-wk-counts", &text("x-wk-counts")?)?,
            format: parse(node, "x-wk-snapshot-format", &text("x-wk-snapshot-format")?)?,
            version: text("x-wk-version")?,
            sha256: match h.get(SHA256_HEADER) {
                None => None,
                Some(_) => {
                    let v = text(SHA256_HEADER)?;
                    if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(BackupError::Header {
                            node,
                            header: SHA256_HEADER,
                            reason: format!("`{v}` is not a hex SHA-256"),
                        });
                    }
                    Some(v.to_ascii_lowercase())
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(sha: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-length", "10"),
            ("x-wk-snapshot-index", "7"),
            ("x-wk-snapshot-term", "2"),
            (
                "x-wk-snapshot-membership",
                r#"{"voters":[1],"nodes":{"1":"127.0.0.1:1"}}"#,
            ),
            ("x-wk-data-version", "abc"),
            ("x-wk-counts", r#"{"messages":1,"channels":1,"users":1}"#),
            ("x-wk-snapshot-format", "4"),
            ("x-wk-version", "0.1.0"),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        if let Some(s) = sha {
            h.insert(SHA256_HEADER, s.parse().unwrap());
        }
        h
    }

    #[test]
    fn an_announced_sha256_is_taken_only_when_it_is_one() {
        assert_eq!(Meta::from_headers(1, &headers(None)).unwrap().sha256, None);
        let sha = "AB".repeat(32);
        assert_eq!(
            Meta::from_headers(1, &headers(Some(&sha))).unwrap().sha256,
            Some("ab".repeat(32))
        );
        for bad in ["abc", &"zz".repeat(32)] {
            let err = Meta::from_headers(1, &headers(Some(bad))).unwrap_err();
            assert!(err.to_string().contains("x-wk-snapshot-sha256"), "{err}");
        }
    }
}
