//! Writing an archive: tar members streamed through a (multi-threaded) zstd encoder into a
//! temporary file beside the final one, each member and the whole file hashed on the way.
//! Nothing is ever held in memory whole. [`ArchiveWriter::commit`] fsyncs, renames into place,
//! writes the detached `<name>.sha256` the same way and fsyncs the directory; an archive that
//! is dropped before `commit` leaves no file behind.

use super::manifest::{Manifest, Member};
use super::name::checksum_path;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Compression settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// zstd level, 1..=19 (negative levels are faster still).
    pub level: i32,
    /// zstd worker threads; 0 compresses on the calling thread.
    pub threads: u32,
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that hashes and counts what passes through it.
pub struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hash: Sha256::new(),
            len: 0,
        }
    }
    /// The inner writer, the hex digest and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.hash.finalize()), self.len)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes handed to a [`BgSha256`] thread at a time.
const HASH_BLOCK: usize = 1 << 20;
/// Blocks queued for a [`BgSha256`] thread at most (memory stays bounded).
const HASH_QUEUE: usize = 4;

/// SHA-256 computed on a thread of its own, fed in blocks: hashing a member overlaps the
/// (de)compression of the thread that reads it. Falls back to hashing inline when no thread
/// can be started.
pub struct BgSha256 {
    block: Vec<u8>,
    worker: Option<HashWorker>,
    inline: Sha256,
}

struct HashWorker {
    tx: SyncSender<Vec<u8>>,
    spare: Receiver<Vec<u8>>,
    thread: JoinHandle<Sha256>,
}

impl BgSha256 {
    pub fn new() -> Self {
        let (tx, blocks) = sync_channel::<Vec<u8>>(HASH_QUEUE);
        let (spare_tx, spare) = sync_channel::<Vec<u8>>(HASH_QUEUE + 1);
        let thread = std::thread::Builder::new()
            .name("sha256".into())
            .spawn(move || {
                let mut hash = Sha256::new();
                for mut b in blocks {
                    hash.update(&b);
                    b.clear();
                    let _ = spare_tx.try_send(b);
                }
                hash
            });
        BgSha256 {
            block: Vec::with_capacity(HASH_BLOCK),
            worker: thread.ok().map(|thread| HashWorker { tx, spare, thread }),
            inline: Sha256::new(),
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        let Some(w) = &self.worker else {
            self.inline.update(data);
            return;
        };
        while !data.is_empty() {
            let n = (HASH_BLOCK - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.block.len() == HASH_BLOCK {
                let next = w
                    .spare
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(HASH_BLOCK));
                let full = std::mem::replace(&mut self.block, next);
                // The thread only stops when the sender is dropped (or it panicked, which
                // `finish` reports).
                let _ = w.tx.send(full);
            }
        }
    }

    /// The digest of everything passed to `update`.
    pub fn finish(self) -> [u8; 32] {
        let Some(w) = self.worker else {
            return self.inline.finalize().into();
        };
        let mut hash = {
            let HashWorker { tx, thread, .. } = w;
            drop(tx);
            thread
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        };
        hash.update(&self.block);
        hash.finalize().into()
    }
}

impl Default for BgSha256 {
    fn default() -> Self {
        Self::new()
    }
}

/// A reader that hashes (on a thread of its own, see [`BgSha256`]) and counts what is read
/// through it — or only counts, when the source announced the digest (then whoever checks the
/// finished archive finds out if the announcement was wrong).
pub struct HashReader<R> {
    inner: R,
    hash: Digesting,
    len: u64,
}

/// Where a [`HashReader`]'s digest comes from.
enum Digesting {
    Computed(BgSha256),
    Announced(String),
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> Self {
        Self::announced(inner, None)
    }

    /// Takes `sha256` (hex) as the digest instead of computing it, when given.
    pub fn announced(inner: R, sha256: Option<&str>) -> Self {
        HashReader {
            inner,
            hash: match sha256 {
                Some(known) => Digesting::Announced(known.to_owned()),
                None => Digesting::Computed(BgSha256::new()),
            },
            len: 0,
        }
    }

    /// The hex digest and the byte count.
    pub fn finish(self) -> (String, u64) {
        let sha = match self.hash {
            Digesting::Computed(h) => hex(&h.finish()),
            Digesting::Announced(known) => known,
        };
        (sha, self.len)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Digesting::Computed(h) = &mut self.hash {
            h.update(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }
}

/// Why writing an archive failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {path}: {error}")]
    Io { path: String, error: io::Error },
    #[error("the {member} stream ended after {got} of {expected} bytes")]
    Short {
        member: String,
        got: u64,
        expected: u64,
    },
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(String),
}

type Encoder = zstd::stream::write::Encoder<'static, HashWriter<BufWriter<File>>>;

/// An archive being written under a temporary name.
pub struct ArchiveWriter {
    path: PathBuf,
    tmp: PathBuf,
    tar: Option<tar::Builder<Encoder>>,
    members: Vec<Member>,
    mtime: u64,
    committed: bool,
}

/// A finished archive.
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

impl ArchiveWriter {
    /// Starts `path` (written as `.<name>.tmp` in the same directory). `mtime` stamps every
    /// member header (the backup's creation time, so the archive is deterministic).
    pub fn create(path: &Path, c: Compression, mtime: u64) -> Result<ArchiveWriter, WriteError> {
        if path.exists() {
            return Err(WriteError::Exists(path.display().to_string()));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(".{}.tmp", name.unwrap_or_default()));
        let io_err = |source| WriteError::Io {
            path: tmp.display().to_string(),
            error: source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err)?;
        let mut enc = zstd::stream::write::Encoder::new(
            HashWriter::new(BufWriter::with_capacity(1 << 20, file)),
            c.level,
        )
        .map_err(io_err)?;
        let setup = (|| -> io::Result<()> {
            enc.include_checksum(true)?;
            if c.threads > 0 {
                enc.multithread(c.threads)?;
            }
            Ok(())
        })();
        let mut w = ArchiveWriter {
            path: path.to_path_buf(),
            tmp: tmp.clone(),
            tar: None,
            members: Vec::new(),
            mtime,
            committed: false,
        };
        setup.map_err(io_err)?;
        let mut builder = tar::Builder::new(enc);
        builder.mode(tar::HeaderMode::Deterministic);
        w.tar = Some(builder);
        Ok(w)
    }

    fn io_err(&self, source: io::Error) -> WriteError {
        WriteError::Io {
            path: self.tmp.display().to_string(),
            error: source,
        }
    }

    /// Appends member `name` of exactly `size` bytes read from `data`; returns its entry for
    /// the manifest.
    pub fn append(&mut self, name: &str, size: u64, data: impl Read) -> Result<Member, WriteError> {
        self.append_announced(name, size, data, None)
    }

    /// [`Self::append`], taking the member's SHA-256 (hex) from its source when it announced
    /// one instead of hashing it here; verifying the archive checks it.
    pub fn append_announced(
        &mut self,
        name: &str,
        size: u64,
        data: impl Read,
        sha256: Option<&str>,
    ) -> Result<Member, WriteError> {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o600);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        let mut reader = HashReader::announced(data.take(size), sha256);
        let tar = self.tar.as_mut().expect("archive still open");
        let res = tar.append_data(&mut header, name, &mut reader);
        let (sha256, got) = reader.finish();
        if got != size {
            return Err(WriteError::Short {
                member: name.into(),
                got,
                expected: size,
            });
        }
        res.map_err(|e| self.io_err(e))?;
        let m = Member {
            name: name.into(),
            size,
            sha256,
        };
        self.members.push(m.clone());
        Ok(m)
    }

    /// The members appended so far.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Appends the manifest, finishes compression, fsyncs and renames into place, then writes
    /// the detached checksum and fsyncs the directory.
    pub fn commit(mut self, manifest: &Manifest) -> Result<Written, WriteError> {
        let bytes = manifest.to_bytes();
        self.append(super::manifest::MANIFEST, bytes.len() as u64, &bytes[..])?;
        let tar = self.tar.take().expect("archive still open");
        let enc = tar.into_inner().map_err(|e| self.io_err(e))?;
        let hashed = enc.finish().map_err(|e| self.io_err(e))?;
        let (buf, sha256, size) = hashed.finish();
        let file = buf.into_inner().map_err(|e| self.io_err(e.into_error()))?;
        file.sync_all().map_err(|e| self.io_err(e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| self.io_err(e))?;
        self.committed = true;
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        write_atomic(
            &checksum_path(&self.path),
            format!("{sha256}  {file_name}\n").as_bytes(),
        )?;
        Ok(Written {
            path: self.path.clone(),
            size,
            sha256,
        })
    }
}

impl Drop for ArchiveWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path`: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{}.tmp", name.unwrap_or_default()));
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    res.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        WriteError::Io {
            path: path.display().to_string(),
            error: source,
        }
    })
}

/// fsyncs the directory holding `path` (so a rename survives a crash).
pub fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_hash_equals_inline_hash() {
        let data: Vec<u8> = (0..3 * HASH_BLOCK + 12345)
            .map(|i| (i * 31) as u8)
            .collect();
        for split in [1usize, 7, 4096, HASH_BLOCK, HASH_BLOCK + 1] {
            let mut bg = BgSha256::new();
            for piece in data.chunks(split) {
                bg.update(piece);
            }
            assert_eq!(
                bg.finish(),
                <[u8; 32]>::from(Sha256::digest(&data)),
                "{split}"
            );
        }
        assert_eq!(
            BgSha256::new().finish(),
            <[u8; 32]>::from(Sha256::digest(b""))
        );
    }

    #[test]
    fn short_stream_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a-20261202T000000Z-1.tar.zst");
        let c = Compression {
            level: 3,
            threads: 0,
        };
        let mut w = ArchiveWriter::create(&path, c, 0).unwrap();
        let e = w.append("snapshot.bin", 10, &b"abc"[..]).unwrap_err();
        assert!(e.to_string().contains("ended after 3 of 10 bytes"), "{e}");
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
