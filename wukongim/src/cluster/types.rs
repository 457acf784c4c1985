//! The Raft type configuration: one log entry carries a batch of IM commands (group commit) tagged
//! with its proposer session, and answers with the session verdict and one outcome per command. Raft types are encoded with postcard everywhere (log,
//! metadata, RPC); [`to_bytes`] / [`from_bytes`] are the one place that does it.

use crate::store::Outcome;
pub use crate::store::{Batch, BatchTag, Verdict};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// What applying a [`Batch`] gave: the session verdict and, when it took effect, one outcome per
/// command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BatchResult {
    pub verdict: Verdict,
    pub outcomes: Vec<Outcome>,
}

openraft::declare_raft_types!(
    /// Type configuration of the wukongim Raft group.
    pub TypeConfig:
        D = Batch,
        R = BatchResult,
        Node = openraft::BasicNode,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig, super::state_machine::StateMachine>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot =
    openraft::type_config::alias::SnapshotOf<TypeConfig, super::snapfile::SnapshotFile>;

pub use crate::store::to_bytes;

/// Decodes what [`to_bytes`] produced.
pub fn from_bytes<T: DeserializeOwned>(b: &[u8]) -> Result<T, std::io::Error> {
    postcard::from_bytes(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
