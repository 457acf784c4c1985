//! Messages of the cluster RPC, one request kind each: Raft traffic (append, vote, pre-vote,
//! snapshot, leader transfer), forwarded client writes and forwarded admin operations. Bodies
//! are encoded with [`super::types::to_bytes`].

use super::types::{Batch, BatchResult, SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};

/// Request kinds (the tag the RPC layer carries).
pub mod kind {
    pub const PING: u8 = 0;
    pub const APPEND: u8 = 1;
    pub const VOTE: u8 = 2;
    pub const PRE_VOTE: u8 = 3;
    pub const SNAPSHOT: u8 = 4;
    pub const TRANSFER_LEADER: u8 = 5;
    pub const FORWARD_WRITE: u8 = 6;
    pub const ADMIN: u8 = 7;
    pub const SNAPSHOT_CHUNK: u8 = 8;
    pub const SNAPSHOT_INSTALL: u8 = 9;
}

/// Answer to PING: what a peer knows (used by bootstrap and status).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingResponse {
    pub node_id: u64,
    pub initialized: bool,
    pub leader: Option<u64>,
    pub term: u64,
    pub committed: u64,
}

/// One piece of a snapshot file streamed to a follower. The follower writes it only when
/// `offset` equals what it already holds of `transfer`; either way it answers with the bytes it
/// holds, so a sender resumes an interrupted transfer where the follower stopped. An empty
/// chunk at offset 0 asks how much is held (a new `transfer` starts from nothing).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotChunk {
    pub vote: Vote,
    /// Identifies the snapshot file (same file, same id: a retry resumes).
    pub transfer: String,
    pub total: u64,
    pub offset: u64,
    pub data: Vec<u8>,
}

/// Bytes of a transfer the follower holds after a [`SnapshotChunk`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ChunkAck {
    pub held: u64,
}

/// The whole file arrived: install it (answered like openraft's `install_full_snapshot`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotInstall {
    pub vote: Vote,
    pub transfer: String,
    pub meta: SnapshotMeta,
}

/// A full snapshot pushed to a follower in one message (kept for peers of older versions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotRequest {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// A client write forwarded by a follower to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardWrite {
    pub batch: Batch,
}

/// The leader's answer to a forwarded write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardResult {
    /// Applied on the leader at this log index.
    Applied { index: u64, result: BatchResult },
    /// The receiver is not the leader; it knows this one (if any).
    NotLeader { leader: Option<u64> },
    /// The write failed (message for logs).
    Failed(String),
}

/// Membership and leadership operations forwarded to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AdminRequest {
    AddNode {
        id: u64,
        addr: String,
    },
    RemoveNode {
        id: u64,
    },
    TransferLeader {
        target: u64,
    },
    /// The leader's view of the members (for GET /cluster/nodes on followers).
    Nodes,
}

/// Result of an admin operation: Ok(JSON text) or a client error (status, message).
pub type AdminResult = Result<String, (u16, String)>;
