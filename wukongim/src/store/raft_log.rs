//! The Raft log as append-only segment files in `rootDir/raftlog/`, beside the database: an
//! append is one `pwrite` and one `fdatasync` of the segment being filled (no B-tree, no page
//! allocator, no copy-on-write of the state machine's pages), and a replication read is one
//! `pread` of a contiguous span. The state machine's transactions stay in redb, lazily durable:
//! the log is what a crash replays (see `Store::apply_entries`).
//!
//! A segment is named by the index of its first entry (`00000000000000000042.log`) and holds
//! records `[len u32][index u64][xxh3-64 of index and bytes][bytes]`, little-endian, with
//! contiguous indexes; the next segment starts where it ends. Appends go to the last segment
//! until it passes [`SEGMENT_BYTES`]. A truncation cuts the segment holding the first dropped
//! entry and deletes those after it; a purge forgets entries from memory at once and deletes a
//! segment once every entry in it is purged (entries of a partly purged segment come back after a
//! restart: harmless, openraft reads above its purged id).
//!
//! Opening scans every segment and checks every record. A bad or short record at the end of the
//! last segment is a torn append (its `fdatasync` never returned, so nothing acknowledged it): it
//! is cut off with a warning. Anywhere else it is corruption, and opening fails naming the file
//! and offset.

use super::handle::lock;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use xxhash_rust::xxh3::Xxh3;

/// The directory inside `rootDir`.
pub const DIR: &str = "raftlog";

/// A segment takes no more appends once it is this large.
const SEGMENT_BYTES: u64 = 64 << 20;

/// Bytes before an entry's own: length, index, checksum.
const HEADER: usize = 20;

/// Largest entry accepted when reading back (a length beyond it is corruption).
const MAX_ENTRY: u32 = 1 << 30;

const SUFFIX: &str = ".log";

/// One segment file.
struct Segment {
    path: PathBuf,
    file: File,
    /// Bytes written (only the writer moves it).
    len: AtomicU64,
}

/// Where one entry's bytes are.
#[derive(Clone)]
struct Loc {
    seg: Arc<Segment>,
    offset: u64,
    len: u32,
}

/// What readers see: the held entries, `first..first + locs.len()`.
struct Index {
    first: u64,
    locs: VecDeque<Loc>,
    /// Segments in order; the last one takes appends.
    segs: VecDeque<Arc<Segment>>,
    bytes: u64,
}

impl Index {
    fn last(&self) -> Option<u64> {
        (!self.locs.is_empty()).then(|| self.first + self.locs.len() as u64 - 1)
    }
}

/// The log of one node. Mutations are serialised and hold the index lock only to publish;
/// readers copy locations under it and read the files without it.
pub struct RaftLog {
    dir: PathBuf,
    /// [`SEGMENT_BYTES`] (smaller in tests).
    segment_bytes: u64,
    writer: Mutex<()>,
    index: RwLock<Index>,
}

fn corrupt(path: &Path, offset: u64, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("raft log {} at offset {offset}: {what}", path.display()),
    )
}

fn checksum(index: u64, bytes: &[u8]) -> u64 {
    let mut h = Xxh3::new();
    h.update(&index.to_le_bytes());
    h.update(bytes);
    h.digest()
}

fn encode(index: u64, bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&checksum(index, bytes).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The header fields of a record: (length, index, checksum).
fn header(b: &[u8]) -> (u32, u64, u64) {
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
    (u32_at(0), u64_at(4), u64_at(12))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn segment_name(first: u64) -> String {
    format!("{first:020}{SUFFIX}")
}

impl RaftLog {
    /// Opens (creating if needed) the log in `dir`, checking every record (see the module doc).
    pub fn open(dir: &Path) -> io::Result<RaftLog> {
        Self::open_with(dir, SEGMENT_BYTES)
    }

    fn open_with(dir: &Path, segment_bytes: u64) -> io::Result<RaftLog> {
        std::fs::create_dir_all(dir)?;
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(first) = name
                .strip_suffix(SUFFIX)
                .and_then(|n| n.parse::<u64>().ok())
            {
                names.push((first, e.path()));
            }
        }
        names.sort();
        let mut index = Index {
            first: 0,
            locs: VecDeque::new(),
            segs: VecDeque::new(),
            bytes: 0,
        };
        let count = names.len();
        for (i, (first, path)) in names.into_iter().enumerate() {
            let is_last = i + 1 == count;
            if let Some(last) = index.last() {
                if first != last + 1 {
                    return Err(corrupt(
                        &path,
                        0,
                        &format!("starts at entry {first}, the previous segment ends at {last}"),
                    ));
                }
            } else {
                index.first = first;
            }
            let seg = scan(&path, first, is_last, &mut index)?;
            match seg {
                Some(seg) => index.segs.push_back(seg),
                // A segment created but never written (a crash right after a roll).
                None => std::fs::remove_file(&path)?,
            }
        }
        Ok(RaftLog {
            dir: dir.to_path_buf(),
            segment_bytes,
            writer: Mutex::new(()),
            index: RwLock::new(index),
        })
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends entries with consecutive indexes, durably (one `fdatasync`, plus one of the
    /// directory when a new segment begins). Entries at or above the first one's index that the
    /// log already holds are replaced (truncated first).
    pub fn append(&self, entries: &[(u64, Vec<u8>)]) -> io::Result<()> {
        let Some((start, _)) = entries.first() else {
            return Ok(());
        };
        if let Some(w) = entries.windows(2).find(|w| w[1].0 != w[0].0 + 1) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("raft log append: entry {} follows entry {}", w[1].0, w[0].0),
            ));
        }
        let _w = lock(&self.writer);
        let (last, tail) = {
            let ix = self.read_index();
            (ix.last(), ix.segs.back().cloned())
        };
        match last {
            Some(last) if *start <= last => {
                self.truncate_locked(*start)?;
                let tail = self.read_index().segs.back().cloned();
                return self.append_locked(entries, tail);
            }
            Some(last) if *start != last + 1 => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("raft log append: entry {start} leaves a gap after entry {last}"),
                ));
            }
            _ => {}
        }
        self.append_locked(entries, tail)
    }

    fn append_locked(
        &self,
        entries: &[(u64, Vec<u8>)],
        tail: Option<Arc<Segment>>,
    ) -> io::Result<()> {
        let start = entries[0].0;
        let (seg, new) = match tail {
            Some(s) if s.len.load(Relaxed) < self.segment_bytes => (s, false),
            _ => {
                let path = self.dir.join(segment_name(start));
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)?;
                (
                    Arc::new(Segment {
                        path,
                        file,
                        len: AtomicU64::new(0),
                    }),
                    true,
                )
            }
        };
        let size: usize = entries.iter().map(|(_, b)| HEADER + b.len()).sum();
        let mut buf = Vec::with_capacity(size);
        let base = seg.len.load(Relaxed);
        let mut locs = Vec::with_capacity(entries.len());
        for (i, b) in entries {
            let offset = base + buf.len() as u64;
            encode(*i, b, &mut buf);
            locs.push(Loc {
                seg: seg.clone(),
                offset,
                len: b.len() as u32,
            });
        }
        let written = seg
            .file
            .write_all_at(&buf, base)
            .and_then(|_| seg.file.sync_data());
        if let Err(e) = written {
            // Nothing is published; cut what may have been written so the next append starts
            // at the same place.
            let _ = seg.file.set_len(base);
            if new {
                let _ = std::fs::remove_file(&seg.path);
            }
            return Err(e);
        }
        if new {
            sync_dir(&self.dir)?;
        }
        seg.len.store(base + buf.len() as u64, Relaxed);
        let mut ix = self.write_index();
        if ix.locs.is_empty() {
            ix.first = start;
        }
        if new {
            ix.segs.push_back(seg);
        }
        ix.bytes += entries.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        ix.locs.extend(locs);
        Ok(())
    }

    /// The entries with index in `lo..hi`, up to `max_bytes` of entry bytes in total and always
    /// the first one (if held).
    pub fn range(&self, lo: u64, hi: u64, max_bytes: usize) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let (start, locs) = {
            let ix = self.read_index();
            let lo = lo.max(ix.first);
            let hi = hi.min(ix.first + ix.locs.len() as u64);
            let mut out = Vec::new();
            let mut bytes = 0usize;
            for i in lo..hi.max(lo) {
                let loc = &ix.locs[(i - ix.first) as usize];
                bytes = bytes.saturating_add(loc.len as usize);
                if bytes > max_bytes && !out.is_empty() {
                    break;
                }
                out.push(loc.clone());
            }
            (lo, out)
        };
        let mut out = Vec::with_capacity(locs.len());
        // One read per run of entries that lie back to back in one segment.
        let mut i = 0;
        while i < locs.len() {
            let mut j = i + 1;
            while j < locs.len()
                && Arc::ptr_eq(&locs[j].seg, &locs[i].seg)
                && locs[j].offset == locs[j - 1].offset + HEADER as u64 + locs[j - 1].len as u64
            {
                j += 1;
            }
            let seg = &locs[i].seg;
            let from = locs[i].offset;
            let to = locs[j - 1].offset + HEADER as u64 + locs[j - 1].len as u64;
            let mut buf = vec![0u8; (to - from) as usize];
            seg.file.read_exact_at(&mut buf, from)?;
            let mut at = 0usize;
            for (k, loc) in locs[i..j].iter().enumerate() {
                let want = start + (i + k) as u64;
                let (len, idx, sum) = header(&buf[at..at + HEADER]);
                let body = &buf[at + HEADER..at + HEADER + loc.len as usize];
                if len != loc.len || idx != want || sum != checksum(idx, body) {
                    return Err(corrupt(
                        &seg.path,
                        loc.offset,
                        &format!("entry {want} does not read back"),
                    ));
                }
                out.push((want, body.to_vec()));
                at += HEADER + loc.len as usize;
            }
            i = j;
        }
        Ok(out)
    }

    /// Index of the first entry held.
    pub fn first_index(&self) -> Option<u64> {
        let ix = self.read_index();
        (!ix.locs.is_empty()).then_some(ix.first)
    }

    /// Index of the last entry held.
    pub fn last_index(&self) -> Option<u64> {
        self.read_index().last()
    }

    /// Entries held and their total bytes (O(1)).
    pub fn stats(&self) -> (u64, u64) {
        let ix = self.read_index();
        (ix.locs.len() as u64, ix.bytes)
    }

    /// Drops every entry with index ≥ `from`, durably.
    pub fn truncate_from(&self, from: u64) -> io::Result<()> {
        let _w = lock(&self.writer);
        self.truncate_locked(from)
    }

    fn truncate_locked(&self, from: u64) -> io::Result<()> {
        let mut ix = self.write_index();
        let Some(last) = ix.last() else {
            return Ok(());
        };
        if from > last {
            return Ok(());
        }
        let keep = from.saturating_sub(ix.first) as usize;
        let cut = ix.locs[keep].clone();
        let dropped: u64 = ix.locs.range(keep..).map(|l| l.len as u64).sum();
        ix.locs.truncate(keep);
        ix.bytes -= dropped;
        let mut doomed = Vec::new();
        while let Some(s) = ix.segs.back() {
            if Arc::ptr_eq(s, &cut.seg) {
                break;
            }
            doomed.push(ix.segs.pop_back().expect("checked"));
        }
        let whole = cut.offset == 0;
        if whole {
            doomed.push(ix.segs.pop_back().expect("the cut segment is held"));
        }
        drop(ix);
        // Later segments first: a crash midway leaves a shorter, still contiguous log.
        self.remove(&doomed)?;
        if !whole {
            cut.seg.file.set_len(cut.offset)?;
            cut.seg.file.sync_all()?;
            cut.seg.len.store(cut.offset, Relaxed);
        }
        Ok(())
    }

    /// Forgets every entry with index ≤ `upto` and deletes the segments holding only such
    /// entries. The caller records the purge durably first.
    pub fn purge(&self, upto: u64) -> io::Result<()> {
        let _w = lock(&self.writer);
        let mut ix = self.write_index();
        let mut doomed = Vec::new();
        if ix.last().is_none_or(|last| upto >= last) {
            ix.locs.clear();
            ix.bytes = 0;
            doomed.extend(ix.segs.drain(..));
            ix.first = upto + 1;
        } else if upto >= ix.first {
            let n = (upto + 1 - ix.first) as usize;
            let purged: u64 = ix.locs.range(..n).map(|l| l.len as u64).sum();
            ix.locs.drain(..n);
            ix.bytes -= purged;
            ix.first = upto + 1;
            let keep_from = ix.locs.front().map(|l| l.seg.clone());
            while let Some(s) = ix.segs.front() {
                if keep_from.as_ref().is_some_and(|k| Arc::ptr_eq(k, s)) {
                    break;
                }
                doomed.push(ix.segs.pop_front().expect("checked"));
            }
        }
        drop(ix);
        self.remove(&doomed)
    }

    /// Deletes `segments` in the order given, then syncs the directory.
    fn remove(&self, segments: &[Arc<Segment>]) -> io::Result<()> {
        for s in segments {
            std::fs::remove_file(&s.path)?;
        }
        if !segments.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Drops every entry and segment (a log being replaced as a whole).
    pub fn clear(&self) -> io::Result<()> {
        let last = self.last_index().unwrap_or(0);
        self.purge(last)?;
        self.write_index().first = 0;
        Ok(())
    }
}

/// Reads the segment `path` (entries from `first`) into `index`. Returns `None` for an empty
/// segment. A bad record ends the last segment (cut off, see the module doc) and fails any other.
fn scan(
    path: &Path,
    first: u64,
    is_last: bool,
    index: &mut Index,
) -> io::Result<Option<Arc<Segment>>> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let size = file.metadata()?.len();
    let mut reader = io::BufReader::with_capacity(1 << 20, &file);
    let mut found: Vec<(u64, u32)> = Vec::new();
    let mut offset = 0u64;
    let mut expect = first;
    let mut bad: Option<String> = None;
    let mut head = [0u8; HEADER];
    let mut body = Vec::new();
    while offset < size {
        if size - offset < HEADER as u64 {
            bad = Some("a record header is cut short".into());
            break;
        }
        reader.read_exact(&mut head)?;
        let (len, idx, sum) = header(&head);
        if len > MAX_ENTRY || offset + (HEADER as u64) + len as u64 > size {
            bad = Some(format!("a record of {len} bytes runs past the end"));
            break;
        }
        body.resize(len as usize, 0);
        reader.read_exact(&mut body)?;
        if idx != expect {
            bad = Some(format!("holds entry {idx} where entry {expect} belongs"));
            break;
        }
        if sum != checksum(idx, &body) {
            bad = Some(format!("entry {idx} fails its checksum"));
            break;
        }
        found.push((offset, len));
        offset += (HEADER as u64) + len as u64;
        expect += 1;
    }
    if let Some(what) = bad {
        if !is_last {
            return Err(corrupt(path, offset, &what));
        }
        tracing::warn!(
            file = %path.display(),
            offset,
            dropped_bytes = size - offset,
            "raft log: cutting off a torn append at the end of the log ({what})"
        );
        file.set_len(offset)?;
        file.sync_all()?;
    }
    if offset == 0 {
        return Ok(None);
    }
    let seg = Arc::new(Segment {
        path: path.to_path_buf(),
        file,
        len: AtomicU64::new(offset),
    });
    for (offset, len) in found {
        index.bytes += len as u64;
        index.locs.push_back(Loc {
            seg: seg.clone(),
            offset,
            len,
        });
    }
    Ok(Some(seg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn entry(i: u64, salt: u8) -> Vec<u8> {
        vec![salt; (i % 7) as usize + 1]
    }

    fn segments(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        v.sort();
        v
    }

    /// The log holds exactly what the model holds, read in one range and entry by entry.
    fn check(log: &RaftLog, model: &BTreeMap<u64, Vec<u8>>) {
        let want: Vec<(u64, Vec<u8>)> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
        assert_eq!(log.range(0, u64::MAX, usize::MAX).unwrap(), want);
        assert_eq!(log.first_index(), model.keys().next().copied());
        assert_eq!(log.last_index(), model.keys().last().copied());
        let bytes: u64 = model.values().map(|v| v.len() as u64).sum();
        assert_eq!(log.stats(), (model.len() as u64, bytes));
        if let (Some(&a), Some(&b)) = (model.keys().next(), model.keys().last()) {
            let mid = a + (b - a) / 2;
            let part = log.range(mid, b + 1, 1).unwrap();
            assert_eq!(
                part,
                vec![(mid, model[&mid].clone())],
                "a byte limit still gives one"
            );
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(u8, u8),
        Overwrite(u8, u8),
        Truncate(u8),
        Purge(u8),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u8..12, any::<u8>()).prop_map(|(n, s)| Op::Append(n, s)),
            1 => (0u8..20, any::<u8>()).prop_map(|(b, s)| Op::Overwrite(b, s)),
            1 => any::<u8>().prop_map(Op::Truncate),
            1 => any::<u8>().prop_map(Op::Purge),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Appends, overwrites, truncations, purges and reopenings (small segments, so entries
        /// cross segment boundaries) leave the log equal to a map of what should be held; after
        /// a reopen, a partly purged segment may show purged entries again, never others.
        #[test]
        fn the_log_holds_what_a_model_holds(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let mut log = RaftLog::open_with(dir.path(), 64).unwrap();
            let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
            let mut next = 1u64;
            for op in ops {
                let op = match op {
                    Op::Overwrite(n, salt) if model.is_empty() => Op::Append(n % 12 + 1, salt),
                    op => op,
                };
                match op {
                    Op::Append(n, salt) => {
                        let rows: Vec<(u64, Vec<u8>)> =
                            (next..next + n as u64).map(|i| (i, entry(i, salt))).collect();
                        log.append(&rows).unwrap();
                        model.extend(rows);
                        next += n as u64;
                    }
                    Op::Overwrite(back, salt) => {
                        let first = *model.keys().next().unwrap();
                        let at = next.saturating_sub(back as u64 + 1).max(first);
                        let rows: Vec<(u64, Vec<u8>)> = (at..at + 3).map(|i| (i, entry(i, salt))).collect();
                        log.append(&rows).unwrap();
                        model.retain(|k, _| *k < at);
                        model.extend(rows);
                        next = at + 3;
                    }
                    Op::Truncate(back) => {
                        let from = next.saturating_sub(back as u64 % 16);
                        let first = model.keys().next().copied().unwrap_or(next);
                        if from >= first {
                            log.truncate_from(from).unwrap();
                            model.retain(|k, _| *k < from);
                            next = from;
                        }
                    }
                    Op::Purge(ahead) => {
                        let upto = model.keys().next().copied().unwrap_or(next) + (ahead as u64 % 16);
                        log.purge(upto).unwrap();
                        model.retain(|k, _| *k > upto);
                        if upto >= next {
                            next = upto + 1;
                        }
                    }
                    Op::Reopen => {
                        drop(log);
                        log = RaftLog::open_with(dir.path(), 64).unwrap();
                        // Entries a partly purged segment still holds come back: adopt them.
                        let back = log.range(0, u64::MAX, usize::MAX).unwrap();
                        for (i, b) in &back {
                            if let Some(want) = model.get(i) {
                                prop_assert_eq!(want, b);
                            } else {
                                prop_assert!(model.keys().next().is_none_or(|f| i < f));
                            }
                        }
                        model = back.into_iter().collect();
                    }
                }
                check(&log, &model);
            }
        }
    }

    #[test]
    fn a_torn_append_at_the_end_is_cut_off_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let log = RaftLog::open(dir.path()).unwrap();
        log.append(&[(5, b"five".to_vec()), (6, b"six".to_vec())])
            .unwrap();
        log.append(&[(7, b"seven".to_vec())]).unwrap();
        drop(log);
        let seg = segments(dir.path()).pop().unwrap();
        let len = std::fs::metadata(&seg).unwrap().len();
        for cut in [len - 1, len - 3 - HEADER as u64 + 2] {
            let f = OpenOptions::new().write(true).open(&seg).unwrap();
            f.set_len(cut).unwrap();
            let log = RaftLog::open(dir.path()).unwrap();
            assert_eq!(log.last_index(), Some(6), "cut at {cut}");
            log.append(&[(7, b"seven".to_vec())]).unwrap();
            drop(log);
        }
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(
            log.range(7, 8, usize::MAX).unwrap(),
            vec![(7, b"seven".to_vec())]
        );
    }

    #[test]
    fn a_bad_record_before_the_end_fails_the_open_naming_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let log = RaftLog::open_with(dir.path(), 32).unwrap();
        for i in 1..=6 {
            log.append(&[(i, vec![i as u8; 16])]).unwrap();
        }
        drop(log);
        let segs = segments(dir.path());
        assert!(segs.len() >= 2, "{segs:?}");
        let f = OpenOptions::new().write(true).open(&segs[0]).unwrap();
        f.write_all_at(b"X", HEADER as u64 + 3).unwrap();
        let err = RaftLog::open_with(dir.path(), 32).err().expect("corrupt");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let msg = err.to_string();
        assert!(msg.contains(&segs[0].display().to_string()), "{msg}");
        assert!(
            msg.contains("offset 0") && msg.contains("checksum"),
            "{msg}"
        );
    }

    #[test]
    fn a_gap_or_a_disordered_append_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = RaftLog::open(dir.path()).unwrap();
        log.append(&[(1, b"a".to_vec())]).unwrap();
        assert!(log.append(&[(3, b"c".to_vec())]).is_err());
        assert!(log
            .append(&[(2, b"b".to_vec()), (4, b"d".to_vec())])
            .is_err());
        assert_eq!(log.last_index(), Some(1));
    }
}
