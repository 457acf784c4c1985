//! Writing a snapshot file as a stream: header, framed rows, trailer with the data hash and a
//! checksum over everything before it. The caller decides where the file goes (a temp name,
//! then fsync and rename).
//!
//! Two threads share the work: the caller's reads and encodes rows (and counts them and sums
//! their hashes: the data version) into blocks of [`BLOCK`] bytes; a writer thread checksums
//! each block and writes it out. At most [`IN_FLIGHT`] blocks are queued, so memory stays
//! bounded (a few MiB) whatever the size.

use super::{Header, SnapFileError, Trailer, END_MAGIC, FORMAT, MAGIC};
use crate::store::{frame_row, Digest32, Row};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Bytes handed to the writer thread at a time.
const BLOCK: usize = 1 << 20;
/// Blocks queued for the writer thread at most.
const IN_FLIGHT: usize = 4;

/// What the writer thread gives back: the output and the checksum of everything it wrote.
type Written<W> = std::io::Result<(W, Sha256)>;

/// Streams one snapshot into a writer.
pub struct SnapWriter<W: Write + Send + 'static> {
    block: Vec<u8>,
    to_writer: Option<SyncSender<Vec<u8>>>,
    /// Emptied blocks coming back for reuse.
    spare: Receiver<Vec<u8>>,
    writer: Option<JoinHandle<Written<W>>>,
    digest: Digest32,
    len: u64,
}

/// The writer thread: checksum and write each block, hand the buffer back.
fn write_blocks<W: Write>(
    mut out: W,
    blocks: Receiver<Vec<u8>>,
    spare: SyncSender<Vec<u8>>,
) -> Written<W> {
    let mut checksum = Sha256::new();
    for mut buf in blocks {
        checksum.update(&buf);
        out.write_all(&buf)?;
        buf.clear();
        // The other side may be gone (finishing or failed); the buffer is then just dropped.
        let _ = spare.try_send(buf);
    }
    out.flush()?;
    Ok((out, checksum))
}

impl<W: Write + Send + 'static> SnapWriter<W> {
    /// Writes magic, format and header.
    pub fn new(out: W, header: &Header) -> Result<Self, SnapFileError> {
        let json = serde_json::to_vec(header).map_err(|e| SnapFileError::Corrupt(e.to_string()))?;
        let (to_writer, blocks) = sync_channel(IN_FLIGHT);
        let (spare_tx, spare) = sync_channel(IN_FLIGHT + 1);
        let writer = std::thread::Builder::new()
            .name("snapfile-write".into())
            .spawn(move || write_blocks(out, blocks, spare_tx))?;
        let mut w = SnapWriter {
            block: Vec::with_capacity(BLOCK),
            to_writer: Some(to_writer),
            spare,
            writer: Some(writer),
            digest: Digest32::default(),
            len: 0,
        };
        w.put(MAGIC)?;
        w.put(&FORMAT.to_le_bytes())?;
        w.put(&(json.len() as u32).to_le_bytes())?;
        w.put(&json)?;
        Ok(w)
    }

    /// The writer thread's error, once it has stopped.
    fn writer_error(&mut self) -> std::io::Error {
        self.to_writer = None;
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => std::io::Error::other("the snapshot writer thread panicked"),
            _ => std::io::Error::other("the snapshot writer thread stopped"),
        }
    }

    /// Hands the current block to the writer thread.
    fn send_block(&mut self) -> std::io::Result<()> {
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BLOCK));
        let block = std::mem::replace(&mut self.block, next);
        let sent = match &self.to_writer {
            Some(tx) => tx.send(block).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.writer_error())
        }
    }

    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.len += b.len() as u64;
        self.block.extend_from_slice(b);
        if self.block.len() >= BLOCK {
            self.send_block()?;
        }
        Ok(())
    }

    /// Appends one row.
    pub fn row(&mut self, row: &Row) -> std::io::Result<()> {
        let start = self.block.len();
        frame_row(row, &mut self.block);
        self.digest.add(row, &self.block[start..]);
        self.len += (self.block.len() - start) as u64;
        if self.block.len() >= BLOCK {
            self.send_block()?;
        }
        Ok(())
    }

    /// Writes the end marker and trailer, flushes, and gives back the writer, the trailer, the
    /// file length and the SHA-256 of the whole file (the checksum's state carried over the
    /// last 32 bytes: free, so a download can announce it and the backup need not hash again).
    pub fn finish(mut self) -> Result<(W, Trailer, u64, [u8; 32]), SnapFileError> {
        self.put(&0u32.to_le_bytes())?;
        let rows = self.digest.rows;
        let counts = self.digest.counts;
        let data_hash = std::mem::take(&mut self.digest).finish();
        self.put(END_MAGIC)?;
        for n in [rows, counts.messages, counts.channels, counts.users] {
            self.put(&n.to_le_bytes())?;
        }
        self.put(&data_hash)?;
        self.send_block()?;
        self.to_writer = None;
        let (mut out, checksum) = match self.writer.take().map(JoinHandle::join) {
            Some(Ok(res)) => res?,
            _ => return Err(std::io::Error::other("the snapshot writer thread panicked").into()),
        };
        let whole = checksum.clone();
        let checksum: [u8; 32] = checksum.finalize().into();
        let whole: [u8; 32] = whole.chain_update(checksum).finalize().into();
        out.write_all(&checksum)?;
        out.flush()?;
        let len = self.len + 32;
        let trailer = Trailer {
            rows,
            counts,
            data_hash,
            checksum,
        };
        Ok((out, trailer, len, whole))
    }
}

impl<W: Write + Send + 'static> Drop for SnapWriter<W> {
    /// A writer dropped unfinished (an error while walking the rows) stops its thread first.
    fn drop(&mut self) {
        self.to_writer = None;
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}
