//! State-machine snapshots: every IM table serialized into one byte image (for Raft snapshot
//! transfer and backups), restored by replacing the tables in one transaction; plus a content
//! hash that is equal on every replica holding the same state.

use super::raft::SM_META;
use super::*;
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The whole IM state, table by table, rows in key order.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateImage {
    pub format: u32,
    pub meta: Vec<(String, u64)>,
    pub tokens: Vec<((String, u8), Vec<u8>)>,
    pub channels: Vec<((u8, String), Vec<u8>)>,
    pub messages: Vec<((String, u64), Vec<u8>)>,
    pub seqs: Vec<(String, u64)>,
    pub convs: Vec<((String, String), Vec<u8>)>,
    pub dedup: Vec<((String, String), Vec<u8>)>,
}

const FORMAT: u32 = 1;

/// Raw values of state-machine metadata keys, in the order asked.
pub type MetaValues = Vec<Option<Vec<u8>>>;

impl Store {
    /// Reads the whole IM state from one consistent read transaction.
    pub fn image(&self) -> Result<StateImage> {
        let txn = self.db().begin_read()?;
        image_in(&txn)
    }

    /// The image as bytes together with state-machine metadata values, read from the same
    /// transaction so they describe the same applied state.
    pub fn snapshot_with_meta(&self, keys: &[&str]) -> Result<(Vec<u8>, MetaValues)> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(SM_META)?;
        let mut vals = Vec::new();
        for k in keys {
            vals.push(t.get(*k)?.map(|g| g.value().to_vec()));
        }
        Ok((to_bytes(&image_in(&txn)?), vals))
    }

    /// The image as bytes.
    pub fn snapshot_bytes(&self) -> Result<Vec<u8>> {
        Ok(to_bytes(&self.image()?))
    }

    /// SHA-256 (hex) of the IM state image and the raw value of a state-machine metadata key
    /// (the applied log id), from one read transaction.
    pub fn version(&self, meta_key: &str) -> Result<(String, Option<Vec<u8>>)> {
        let (bytes, mut meta) = self.snapshot_with_meta(&[meta_key])?;
        let hash = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((hash, meta.pop().flatten()))
    }

    /// SHA-256 (hex) of the IM state image.
    pub fn content_hash(&self) -> Result<String> {
        let bytes = self.snapshot_bytes()?;
        Ok(Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// Replaces the whole IM state with `bytes` and sets the state-machine metadata, in one
    /// durable transaction. A corrupt image is refused before anything is touched.
    pub fn restore(&self, bytes: &[u8], meta: &[(&str, Vec<u8>)]) -> Result<()> {
        let img: StateImage = decode("snapshot", bytes)?;
        if img.format != FORMAT {
            return Err(StoreError::SnapshotFormat(img.format));
        }
        let txn = self.db().begin_write()?;
        clear_all(&txn)?;
        {
            let mut t = txn.open_table(META)?;
            for (k, v) in &img.meta {
                t.insert(k.as_str(), *v)?;
            }
            let mut t = txn.open_table(TOKENS)?;
            for ((a, b), v) in &img.tokens {
                t.insert((a.as_str(), *b), v.as_slice())?;
            }
            let mut t = txn.open_table(CHANNELS)?;
            for ((a, b), v) in &img.channels {
                t.insert((*a, b.as_str()), v.as_slice())?;
            }
            let mut t = txn.open_table(MESSAGES)?;
            for ((a, b), v) in &img.messages {
                t.insert((a.as_str(), *b), v.as_slice())?;
            }
            let mut t = txn.open_table(SEQS)?;
            for (k, v) in &img.seqs {
                t.insert(k.as_str(), *v)?;
            }
            let mut t = txn.open_table(CONVS)?;
            for ((a, b), v) in &img.convs {
                t.insert((a.as_str(), b.as_str()), v.as_slice())?;
            }
            let mut t = txn.open_table(DEDUP)?;
            for ((a, b), v) in &img.dedup {
                t.insert((a.as_str(), b.as_str()), v.as_slice())?;
            }
            let mut t = txn.open_table(SM_META)?;
            for (k, v) in meta {
                t.insert(*k, v.as_slice())?;
            }
        }
        self.commit(txn)?;
        Ok(())
    }
}

fn clear_all(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(META)?.retain(|_, _| false)?;
    txn.open_table(TOKENS)?.retain(|_, _| false)?;
    txn.open_table(CHANNELS)?.retain(|_, _| false)?;
    txn.open_table(MESSAGES)?.retain(|_, _| false)?;
    txn.open_table(SEQS)?.retain(|_, _| false)?;
    txn.open_table(CONVS)?.retain(|_, _| false)?;
    txn.open_table(DEDUP)?.retain(|_, _| false)?;
    Ok(())
}

/// Reads every IM table inside `txn`.
fn image_in(txn: &redb::ReadTransaction) -> Result<StateImage> {
    let mut img = StateImage {
        format: FORMAT,
        ..Default::default()
    };
    for item in txn.open_table(META)?.iter()? {
        let (k, v) = item?;
        img.meta.push((k.value().to_string(), v.value()));
    }
    for item in txn.open_table(TOKENS)?.iter()? {
        let (k, v) = item?;
        let (a, b) = k.value();
        img.tokens.push(((a.to_string(), b), v.value().to_vec()));
    }
    for item in txn.open_table(CHANNELS)?.iter()? {
        let (k, v) = item?;
        let (a, b) = k.value();
        img.channels.push(((a, b.to_string()), v.value().to_vec()));
    }
    for item in txn.open_table(MESSAGES)?.iter()? {
        let (k, v) = item?;
        let (a, b) = k.value();
        img.messages.push(((a.to_string(), b), v.value().to_vec()));
    }
    for item in txn.open_table(SEQS)?.iter()? {
        let (k, v) = item?;
        img.seqs.push((k.value().to_string(), v.value()));
    }
    for item in txn.open_table(CONVS)?.iter()? {
        let (k, v) = item?;
        let (a, b) = k.value();
        img.convs
            .push(((a.to_string(), b.to_string()), v.value().to_vec()));
    }
    for item in txn.open_table(DEDUP)?.iter()? {
        let (k, v) = item?;
        let (a, b) = k.value();
        img.dedup
            .push(((a.to_string(), b.to_string()), v.value().to_vec()));
    }
    Ok(img)
}
