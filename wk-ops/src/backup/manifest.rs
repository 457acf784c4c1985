//! `manifest.json`, the archive's description of itself: which cluster and node the snapshot
//! came from, its Raft position and membership, the data version hash and counts the server
//! reported for that state, and the size and sha256 of every other member. Verification and
//! restore trust nothing in an archive that the manifest does not vouch for.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The manifest format this wk-ops writes and reads. Format 2: `data_version` is the server's
/// incrementally kept data version (a 128-bit multiset hash, 32 hex digits); format 1 archives
/// carried the older whole-store SHA-256, which today's servers no longer report, so their
/// restores could not be checked and they are refused by name.
pub const FORMAT_VERSION: u32 = 2;
/// Name of the manifest member.
pub const MANIFEST: &str = "manifest.json";
/// Name of the snapshot member (the server's own file format, opaque to wk-ops).
pub const SNAPSHOT: &str = "snapshot.bin";

/// Everything an archive says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub cluster: String,
    pub source_node: SourceNode,
    pub raft: RaftPosition,
    pub membership: Membership,
    /// The hex hash `GET /cluster/data/version` reports for this state.
    pub data_version: String,
    pub counts: Counts,
    /// Every member except the manifest itself.
    pub members: Vec<Member>,
    pub wukongim_version: String,
    /// The server's snapshot file format version.
    pub snapshot_format: u32,
    /// UTC, RFC 3339.
    pub created: String,
    pub wk_ops_version: String,
    pub compression: Compression,
}

/// The node the snapshot was taken on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceNode {
    pub id: u64,
    pub host: String,
}

/// The Raft log position the snapshot covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftPosition {
    pub index: u64,
    pub term: u64,
}

/// The cluster membership stored in the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub voters: Vec<u64>,
    #[serde(default)]
    pub learners: Vec<u64>,
    /// Node id → cluster address.
    #[serde(default)]
    pub nodes: BTreeMap<String, String>,
}

pub use crate::node_api::Counts;

/// One archive member: name, size in bytes and lowercase hex sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// How the archive was compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    pub algorithm: Algorithm,
    pub level: i32,
}

/// The only compression there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Zstd,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest.json is not a valid manifest: {0}")]
    Parse(String),
    #[error(
        "manifest.json has format version {found}; this wk-ops reads format version {FORMAT_VERSION}{}",
        if *found == 1 {
            " (a format-1 archive names a data version servers no longer report: restore its \
             snapshot.bin with `wukongim restore --snapshot` on each node)"
        } else {
            ""
        }
    )]
    FormatVersion { found: u32 },
    #[error("manifest.json: {field} {reason}")]
    Field { field: &'static str, reason: String },
}

impl Manifest {
    /// Parses and checks a manifest (format version first, so a newer format is named as such
    /// rather than reported as unknown fields).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Parse(e.to_string()))?;
        match value.get("format_version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(ManifestError::FormatVersion {
                    found: u32::try_from(v).unwrap_or(u32::MAX),
                })
            }
            None => {
                return Err(ManifestError::Field {
                    field: "format_version",
                    reason: "is missing or not a number".into(),
                })
            }
        }
        let m: Manifest = serde_path_to_error::deserialize(value).map_err(|e| {
            match e.path().to_string().as_str() {
                "." => ManifestError::Parse(e.inner().to_string()),
                path => ManifestError::Parse(format!("{path}: {}", e.inner())),
            }
        })?;
        m.check()?;
        Ok(m)
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        v.push(b'\n');
        v
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    fn check(&self) -> Result<(), ManifestError> {
        let field = |field, reason: &str| {
            Err(ManifestError::Field {
                field,
                reason: reason.into(),
            })
        };
        if self.cluster.is_empty() {
            return field("cluster", "is empty");
        }
        if !is_hex(&self.data_version) {
            return field("data_version", "is not a hex hash");
        }
        if self.membership.voters.is_empty() {
            return field("membership.voters", "is empty");
        }
        if chrono::DateTime::parse_from_rfc3339(&self.created).is_err() {
            return field("created", "is not an RFC 3339 time");
        }
        if self.member(SNAPSHOT).is_none() {
            return field("members", "does not list snapshot.bin");
        }
        let mut names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return field("members", "lists a member twice");
        }
        for m in &self.members {
            if m.name == MANIFEST || m.name.contains('/') || m.name.starts_with('.') {
                return field("members", &format!("has a bad member name `{}`", m.name));
            }
            if m.sha256.len() != 64 || !is_hex(&m.sha256) {
                return field(
                    "members",
                    &format!("{}: sha256 is not 64 hex digits", m.name),
                );
            }
        }
        Ok(())
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
pub(crate) fn sample() -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        cluster: "im-prod".into(),
        source_node: SourceNode {
            id: 1002,
            host: "10.0.0.2".into(),
        },
        raft: RaftPosition {
            index: 1234,
            term: 3,
        },
        membership: Membership {
            voters: vec![1001, 1002, 1003],
            learners: vec![],
            nodes: BTreeMap::from([("1001".into(), "10.0.0.1:11110".into())]),
        },
        data_version: "ab12".into(),
        counts: Counts {
            messages: 10,
            channels: 2,
            users: 3,
        },
        members: vec![Member {
            name: SNAPSHOT.into(),
            size: 5,
            sha256: "0".repeat(64),
        }],
        wukongim_version: "0.1.0".into(),
        snapshot_format: 1,
        created: "2026-12-02T15:00:00Z".into(),
        wk_ops_version: "0.1.0".into(),
        compression: Compression {
            algorithm: Algorithm::Zstd,
            level: 3,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn newer_format_is_named() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["format_version"] = 3.into();
        v["something_new"] = 1.into();
        let e = Manifest::parse(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(e, ManifestError::FormatVersion { found: 3 });
        v["format_version"] = 1.into();
        let e = Manifest::parse(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(e, ManifestError::FormatVersion { found: 1 });
        assert!(e.to_string().contains("wukongim restore --snapshot"), "{e}");
    }

    #[test]
    fn unknown_and_missing_fields_name_the_key() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["raft"].as_object_mut().unwrap().remove("term");
        let e = Manifest::parse(v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("raft"), "{e}");
    }

    #[test]
    fn bad_digest_is_refused() {
        let mut m = sample();
        m.members[0].sha256 = "xyz".into();
        let e = Manifest::parse(&m.to_bytes()).unwrap_err();
        assert!(e.to_string().contains("snapshot.bin: sha256"), "{e}");
    }
}
