//! Reading a snapshot file: the header and trailer alone (cheap, for metadata), or the whole
//! stream row by row while checking framing, row encoding, counts, data hash and checksum; the
//! caller learns the file is good only after the last byte, so it must not commit before.

use super::{
    Header, Info, SnapFileError, Trailer, END_MAGIC, FORMAT, MAGIC, MAX_HEADER, TRAILER_LEN,
};
use crate::store::{decode_row, Counts, Digest32, Row, MAX_ROW};
use sha2::{Digest, Sha256};
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};

/// A snapshot being read from the start.
pub struct SnapReader<R: Read> {
    input: BufReader<R>,
    checksum: Sha256,
    pub format: u32,
    pub header: Header,
    read: u64,
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8], what: &'static str) -> Result<(), SnapFileError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        ErrorKind::UnexpectedEof => SnapFileError::Truncated(what),
        _ => SnapFileError::Io(e),
    })
}

/// Reads magic, format and header from `r`.
fn read_head<R: Read>(r: &mut R) -> Result<(u32, Header, Vec<u8>), SnapFileError> {
    let mut fixed = [0u8; 16];
    read_exact(r, &mut fixed, "no header")?;
    if &fixed[..8] != MAGIC {
        return Err(SnapFileError::BadMagic);
    }
    let format = u32::from_le_bytes(fixed[8..12].try_into().expect("4 bytes"));
    if !(1..=FORMAT).contains(&format) {
        return Err(SnapFileError::UnsupportedFormat(format));
    }
    let hlen = u32::from_le_bytes(fixed[12..16].try_into().expect("4 bytes"));
    if hlen > MAX_HEADER {
        return Err(SnapFileError::Corrupt(format!("header of {hlen} bytes")));
    }
    let mut json = vec![0u8; hlen as usize];
    read_exact(r, &mut json, "header cut short")?;
    let header: Header = serde_json::from_slice(&json)
        .map_err(|e| SnapFileError::Corrupt(format!("header: {e}")))?;
    let mut raw = fixed.to_vec();
    raw.extend_from_slice(&json);
    Ok((format, header, raw))
}

fn parse_trailer(b: &[u8]) -> Result<Trailer, SnapFileError> {
    if &b[..8] != END_MAGIC {
        return Err(SnapFileError::Corrupt("trailer marker missing".into()));
    }
    let n = |i: usize| u64::from_le_bytes(b[8 + i * 8..16 + i * 8].try_into().expect("8 bytes"));
    Ok(Trailer {
        rows: n(0),
        counts: Counts {
            messages: n(1),
            channels: n(2),
            users: n(3),
        },
        data_hash: b[40..72].try_into().expect("32 bytes"),
        checksum: b[72..104].try_into().expect("32 bytes"),
    })
}

/// Header and trailer of a complete file, without reading the rows (no checksum check).
pub fn read_info<R: Read + Seek>(r: &mut R) -> Result<Info, SnapFileError> {
    r.seek(SeekFrom::Start(0))?;
    let (format, header, raw) = read_head(r)?;
    let len = r.seek(SeekFrom::End(0))?;
    if len < raw.len() as u64 + 4 + TRAILER_LEN {
        return Err(SnapFileError::Truncated("no trailer"));
    }
    r.seek(SeekFrom::End(-(TRAILER_LEN as i64)))?;
    let mut t = [0u8; TRAILER_LEN as usize];
    read_exact(r, &mut t, "trailer cut short")?;
    Ok(Info {
        format,
        header,
        trailer: parse_trailer(&t)?,
        len,
    })
}

impl<R: Read> SnapReader<R> {
    /// Reads and checks magic, format and header.
    pub fn new(input: R) -> Result<Self, SnapFileError> {
        let mut input = BufReader::with_capacity(256 << 10, input);
        let (format, header, raw) = read_head(&mut input)?;
        let mut checksum = Sha256::new();
        checksum.update(&raw);
        Ok(SnapReader {
            input,
            checksum,
            format,
            header,
            read: raw.len() as u64,
        })
    }

    fn take(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), SnapFileError> {
        read_exact(&mut self.input, buf, what)?;
        self.checksum.update(&*buf);
        self.read += buf.len() as u64;
        Ok(())
    }

    /// Hands every row to `f`, then checks the trailer against what was read and that nothing
    /// follows it. Any error (including one from `f`) stops the walk.
    pub fn rows(
        mut self,
        f: &mut dyn FnMut(Row) -> Result<(), SnapFileError>,
    ) -> Result<Info, SnapFileError> {
        let mut digest = Digest32::for_format(self.format);
        let mut frame: Vec<u8> = Vec::new();
        loop {
            let mut len = [0u8; 4];
            self.take(&mut len, "rows cut short")?;
            let n = u32::from_le_bytes(len) as usize;
            if n == 0 {
                break;
            }
            if n > MAX_ROW {
                return Err(SnapFileError::Corrupt(format!(
                    "row of {n} bytes at offset {}",
                    self.read - 4
                )));
            }
            frame.clear();
            frame.extend_from_slice(&len);
            frame.resize(4 + n, 0);
            let mut body = std::mem::take(&mut frame);
            self.take(&mut body[4..], "row cut short")?;
            frame = body;
            let row = decode_row(&frame[4..]).map_err(|e| {
                SnapFileError::Corrupt(format!("row at offset {}: {e}", self.read - n as u64))
            })?;
            digest.add(&row, &frame);
            f(row)?;
        }
        let mut t = [0u8; TRAILER_LEN as usize];
        self.take(&mut t[..TRAILER_LEN as usize - 32], "trailer cut short")?;
        read_exact(
            &mut self.input,
            &mut t[TRAILER_LEN as usize - 32..],
            "checksum cut short",
        )?;
        let trailer = parse_trailer(&t)?;
        let checksum: [u8; 32] = self.checksum.clone().finalize().into();
        if checksum != trailer.checksum {
            return Err(SnapFileError::Checksum);
        }
        let mut extra = [0u8; 1];
        if self.input.read(&mut extra)? != 0 {
            return Err(SnapFileError::Corrupt("bytes after the trailer".into()));
        }
        let (rows, counts) = (digest.rows, digest.counts);
        if trailer.rows != rows || trailer.counts != counts || trailer.data_hash != digest.finish()
        {
            return Err(SnapFileError::Corrupt(
                "rows do not match the trailer's counts and data hash".into(),
            ));
        }
        Ok(Info {
            format: self.format,
            header: self.header,
            trailer,
            len: self.read + 32,
        })
    }
}
