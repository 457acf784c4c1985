//! Backups of the replicated state: one consistent snapshot from a caught-up node, streamed into
//! `<cluster>-<UTC time>-<index>.tar.zst` (tar + zstd, `manifest.json` + `snapshot.bin`) with a
//! detached `.sha256` ([`take`], [`archive`]); checking an archive ([`verify`]) and proving it
//! restores on a throw-away local server ([`drill`]); retention ([`retention`]); and putting an
//! archive back onto every node of a fleet ([`restore`]).

pub mod archive;
pub mod drill;
pub mod manifest;
pub mod name;
pub mod progress;
pub mod restore;
pub mod retention;
pub mod take;
pub mod verify;
