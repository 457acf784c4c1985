//! The Raft type configuration: one log entry carries a batch of IM commands (group commit) and
//! answers with one outcome per command. Raft types are encoded with postcard everywhere (log,
//! metadata, RPC); [`to_bytes`] / [`from_bytes`] are the one place that does it.

use crate::store::{Command, Outcome};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fmt;

/// A batch of commands proposed as one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch(pub Vec<Command>);

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "batch of {} commands", self.0.len())
    }
}

/// One outcome per command of a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BatchResult(pub Vec<Outcome>);

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

/// Encodes a value for the log, metadata or the wire.
pub fn to_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("in-memory serialization cannot fail")
}

/// Decodes what [`to_bytes`] produced.
pub fn from_bytes<T: DeserializeOwned>(b: &[u8]) -> Result<T, std::io::Error> {
    postcard::from_bytes(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
