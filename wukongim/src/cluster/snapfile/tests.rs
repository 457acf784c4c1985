use super::*;
use crate::store::Row;

fn sample() -> Vec<u8> {
    let header = Header {
        server_version: "test".into(),
        created_unix_ms: 1,
        meta: SnapshotMeta::default(),
    };
    let mut w = SnapWriter::new(Vec::new(), &header).unwrap();
    w.row(&Row::Meta("message_id", 2)).unwrap();
    w.row(&Row::Token("u1", 0, b"t")).unwrap();
    w.row(&Row::Token("u1", 1, b"t")).unwrap();
    w.row(&Row::Token("u2", 0, b"t")).unwrap();
    w.row(&Row::Channel(2, "g", b"c")).unwrap();
    w.row(&Row::Message("2:g", 1, b"m1")).unwrap();
    w.row(&Row::Message("2:g", 2, b"m2")).unwrap();
    let (bytes, trailer, len, whole) = w.finish().unwrap();
    assert_eq!(len, bytes.len() as u64);
    use sha2::Digest;
    assert_eq!(whole, <[u8; 32]>::from(sha2::Sha256::digest(&bytes)));
    assert_eq!(
        trailer.counts,
        Counts {
            messages: 2,
            channels: 1,
            users: 2
        }
    );
    bytes
}

fn read_all(b: &[u8]) -> Result<(Info, usize), SnapFileError> {
    let mut n = 0;
    let info = SnapReader::new(b)?.rows(&mut |_| {
        n += 1;
        Ok(())
    })?;
    Ok((info, n))
}

#[test]
fn a_written_file_reads_back_with_its_info() {
    let b = sample();
    let (info, n) = read_all(&b).unwrap();
    assert_eq!(n, 7);
    assert_eq!(info.trailer.rows, 7);
    assert_eq!(info.len, b.len() as u64);
    let quick = read_info(&mut std::io::Cursor::new(&b)).unwrap();
    assert_eq!(quick.trailer, info.trailer);
    assert_eq!(quick.header.server_version, "test");
}

#[test]
fn every_truncation_is_refused() {
    let b = sample();
    for cut in 0..b.len() {
        assert!(read_all(&b[..cut]).is_err(), "cut at {cut} accepted");
    }
    let mut longer = b.clone();
    longer.push(0);
    assert!(read_all(&longer).is_err());
}

#[test]
fn every_flipped_byte_is_refused() {
    let b = sample();
    for i in 0..b.len() {
        let mut bad = b.clone();
        bad[i] ^= 0x01;
        assert!(read_all(&bad).is_err(), "flip at {i} accepted");
    }
}

#[test]
fn other_formats_are_named() {
    let mut b = sample();
    b[8] = 9;
    let e = read_all(&b).unwrap_err().to_string();
    assert!(e.contains("format 9"), "{e}");
    let e = read_all(b"PK\x03\x04 not a snapshot")
        .unwrap_err()
        .to_string();
    assert!(e.contains("magic"), "{e}");
}

#[test]
fn formats_outside_the_readable_range_are_refused_by_number() {
    for bad in [0u32, FORMAT + 1] {
        let mut b = sample();
        b[8..12].copy_from_slice(&bad.to_le_bytes());
        match read_all(&b) {
            Err(SnapFileError::UnsupportedFormat(f)) => assert_eq!(f, bad),
            other => panic!("format {bad}: {other:?}"),
        }
    }
}

/// A format-3 file (data hash = SHA-256 of the framed rows) still reads and is checked against
/// that hash; its data version is named in the old 64-digit form. Files of format 4 name the
/// store's kept data version.
#[test]
fn format_3_files_still_read_and_are_checked_by_their_row_sha256() {
    use sha2::{Digest, Sha256};
    let header = Header {
        server_version: "old".into(),
        created_unix_ms: 1,
        meta: SnapshotMeta::default(),
    };
    let rows = [Row::Token("u1", 0, b"t"), Row::Message("2:g", 1, b"m1")];
    let build = |data_hash: Option<[u8; 32]>| {
        let json = serde_json::to_vec(&header).unwrap();
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&(json.len() as u32).to_le_bytes());
        b.extend_from_slice(&json);
        let mut framed = Vec::new();
        for r in &rows {
            crate::store::frame_row(r, &mut framed);
        }
        b.extend_from_slice(&framed);
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(END_MAGIC);
        for n in [2u64, 1, 0, 1] {
            b.extend_from_slice(&n.to_le_bytes());
        }
        let hash: [u8; 32] = data_hash.unwrap_or_else(|| Sha256::digest(&framed).into());
        b.extend_from_slice(&hash);
        let checksum: [u8; 32] = Sha256::digest(&b).into();
        b.extend_from_slice(&checksum);
        (b, hash)
    };
    let (good, hash) = build(None);
    let (info, n) = read_all(&good).unwrap();
    assert_eq!((info.format, n), (3, 2));
    assert_eq!(info.data_version(), crate::store::hex(&hash));
    let (bad, _) = build(Some([7; 32]));
    assert!(
        matches!(read_all(&bad), Err(SnapFileError::Corrupt(_))),
        "a format-3 file whose row hash does not match is refused"
    );
    let (now, _) = read_all(&sample()).unwrap();
    assert_eq!(now.format, FORMAT);
    assert_eq!(now.data_version().len(), 32);
}
