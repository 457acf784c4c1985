//! Messages of the cluster RPC, one request kind each: Raft traffic (append, vote, pre-vote,
//! snapshot, leader transfer), forwarded client writes and forwarded admin operations, and the
//! presence query (which uids are connected to a node). Bodies
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
    pub const ONLINE: u8 = 10;
    /// The command level of the answering binary (`levels.rs`).
    pub const LEVEL: u8 = 11;
    /// A client write forwarded without waiting for the previous one (`forward.rs`).
    pub const FORWARD_NEXT: u8 = 12;
}

/// The error a node answers for a request kind it does not know (as every release has): how a
/// newer node recognises a peer running an older binary.
pub fn unknown_kind(k: u8) -> String {
    format!("unknown request kind {k}")
}

/// Whether an RPC error's text is [`unknown_kind`]'s answer.
pub fn is_unknown_kind(error: &str) -> bool {
    error.contains("unknown request kind")
}

/// Which of these uids have connections on the receiving node (cluster-wide presence).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OnlineQuery {
    pub uids: Vec<String>,
}

/// One connection of a queried uid on the answering node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineConn {
    pub node_id: u64,
    pub uid: String,
    pub device_flag: u8,
    pub device_level: u8,
    pub conn_id: u64,
}

/// Answer to PING: what a peer knows (used by bootstrap and status).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingResponse {
    pub node_id: u64,
    pub initialized: bool,
    pub leader: Option<u64>,
    pub term: u64,
    pub committed: u64,
    /// Index of the last log entry it holds (0: at most the initial membership).
    pub last_log_index: u64,
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

/// A client write forwarded while earlier ones of the same proposer session are still in
/// flight: the leader proposes it after batch `after` of that session (0: no wait).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardNext {
    pub batch: Batch,
    pub after: u64,
}

/// The leader's answer to a forwarded write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardResult {
    /// Applied on the leader at this log index.
    Applied { index: u64, result: BatchResult },
    /// The receiver is not the leader; it knows this one (if any).
    NotLeader { leader: Option<u64> },
    /// The write failed; the proposer retries until its deadline.
    Failed(ForwardError),
}

impl ForwardResult {
    /// The log index and result of an applied write, or why it did not apply (as text).
    pub fn applied(self) -> Result<(u64, BatchResult), String> {
        match self {
            ForwardResult::Applied { index, result } => Ok((index, result)),
            ForwardResult::NotLeader { leader } => {
                Err(format!("leadership moving (leader hint {leader:?})"))
            }
            ForwardResult::Failed(e) => Err(e.to_string()),
        }
    }
}

/// Why a write attempt through the leader failed.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    #[error("no address known for leader {0}")]
    NoAddress(u64),
    #[error("forward to leader {leader}: {reason}")]
    Unreachable { leader: u64, reason: String },
    #[error("undecodable reply from leader {leader}: {reason}")]
    BadReply { leader: u64, reason: String },
    #[error("raft refused the write: {0}")]
    Raft(String),
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
    /// A member that lost its state asks to be taken back: demoted to learner (if a voter) and
    /// its log allowed to go back, so it can be caught up (see `bootstrap.rs`).
    Rejoin {
        id: u64,
    },
    /// The leader's read index for a linearizable read on a follower.
    ReadIndex,
}

/// Result of an admin operation: the JSON text to show, or why it was refused. It crosses the
/// wire from the leader, so causes travel as their messages.
pub type AdminResult = Result<String, AdminError>;

/// Why an admin operation was refused or failed. `api/` maps each kind to an HTTP status.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum AdminError {
    /// The request itself is wrong (bad id or address, not a voter, the last voter).
    #[error("{0}")]
    Invalid(String),
    /// The request contradicts the membership (already a voter, address taken).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// No leader, or the leader or Raft could not do it now; worth retrying.
    #[error("{0}")]
    Unavailable(String),
    /// The leader's reply could not be decoded.
    #[error("{0}")]
    BadReply(String),
}
