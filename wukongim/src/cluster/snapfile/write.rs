//! Writing a snapshot file as a stream: header, framed rows, trailer with the data hash and a
//! checksum over everything before it. The caller decides where the file goes (a temp name,
//! then fsync and rename).

use super::{Header, SnapFileError, Trailer, END_MAGIC, FORMAT, MAGIC};
use crate::store::{frame_row, Digest32, Row};
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Write};

/// Streams one snapshot into a writer.
pub struct SnapWriter<W: Write> {
    out: BufWriter<W>,
    checksum: Sha256,
    digest: Digest32,
    frame: Vec<u8>,
    len: u64,
}

impl<W: Write> SnapWriter<W> {
    /// Writes magic, format and header.
    pub fn new(out: W, header: &Header) -> Result<Self, SnapFileError> {
        let mut w = SnapWriter {
            out: BufWriter::with_capacity(256 << 10, out),
            checksum: Sha256::new(),
            digest: Digest32::default(),
            frame: Vec::new(),
            len: 0,
        };
        let json = serde_json::to_vec(header).map_err(|e| SnapFileError::Corrupt(e.to_string()))?;
        w.put(MAGIC)?;
        w.put(&FORMAT.to_le_bytes())?;
        w.put(&(json.len() as u32).to_le_bytes())?;
        w.put(&json)?;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.checksum.update(b);
        self.len += b.len() as u64;
        self.out.write_all(b)
    }

    /// Appends one row.
    pub fn row(&mut self, row: &Row) -> std::io::Result<()> {
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        frame_row(row, &mut frame);
        self.digest.add(row, &frame);
        let res = self.put(&frame);
        self.frame = frame;
        res
    }

    /// Writes the end marker and trailer, flushes, and gives back the writer, the trailer and
    /// the file length.
    pub fn finish(mut self) -> Result<(W, Trailer, u64), SnapFileError> {
        self.put(&0u32.to_le_bytes())?;
        let rows = self.digest.rows;
        let counts = self.digest.counts;
        let data_hash = std::mem::take(&mut self.digest).finish();
        self.put(END_MAGIC)?;
        for n in [rows, counts.messages, counts.channels, counts.users] {
            self.put(&n.to_le_bytes())?;
        }
        self.put(&data_hash)?;
        let checksum: [u8; 32] = self.checksum.clone().finalize().into();
        self.out.write_all(&checksum)?;
        self.len += 32;
        let len = self.len;
        let out = self
            .out
            .into_inner()
            .map_err(|e| SnapFileError::Io(e.into_error()))?;
        let trailer = Trailer {
            rows,
            counts,
            data_hash,
            checksum,
        };
        Ok((out, trailer, len))
    }
}
