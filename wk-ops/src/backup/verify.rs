//! Checking an archive before anyone trusts it: the detached `.sha256` against the whole file,
//! then one streaming pass through zstd (its frame checksum included) and tar that hashes every
//! member, refuses anything unexpected (extra, missing or repeated members, directories, links,
//! paths) and compares sizes and digests with `manifest.json`, and finally the cluster and
//! index in the file name against the manifest. The snapshot can be extracted in the same pass.
//! Every refusal names the archive and what is wrong.

use super::archive::{hex, HashReader};
use super::manifest::{Manifest, ManifestError, Member, MANIFEST, SNAPSHOT};
use super::name::{checksum_path, ArchiveName};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: io::Error },
    #[error("the detached checksum {0} is missing (every archive wk-ops writes has one)")]
    ChecksumMissing(String),
    #[error("the detached checksum {0} is not `<64 hex digits>  <file name>`")]
    ChecksumInvalid(String),
    #[error("archive checksum mismatch: {file} has sha256 {actual}, {checksum_file} says {expected} (the file is corrupt, truncated or was changed)")]
    ChecksumMismatch {
        file: String,
        checksum_file: String,
        expected: String,
        actual: String,
    },
    #[error("the archive is corrupt or truncated (zstd/tar): {reason}")]
    Corrupt { file: String, reason: String },
    #[error("unexpected member `{member}` (an archive holds only manifest.json and snapshot.bin)")]
    UnexpectedMember { file: String, member: String },
    #[error("member `{member}` appears twice")]
    DuplicateMember { file: String, member: String },
    #[error("member `{member}` is missing")]
    MissingMember { file: String, member: String },
    #[error("{error}")]
    Manifest { file: String, error: ManifestError },
    #[error("member `{member}` does not match manifest.json: {what} is {actual}, the manifest says {expected}")]
    MemberMismatch {
        file: String,
        member: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("the file name says {what} {from_name}, manifest.json says {from_manifest}")]
    NameMismatch {
        file: String,
        what: &'static str,
        from_name: String,
        from_manifest: String,
    },
}

/// A verified archive.
#[derive(Debug, Clone)]
pub struct Verified {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub sha256: String,
    pub size: u64,
}

/// Verifies `path`; with `extract`, also writes `snapshot.bin` to that file (removed again
/// when verification fails).
pub fn verify(path: &Path, extract: Option<&Path>) -> Result<Verified, VerifyError> {
    let file = path.display().to_string();
    let (sha256, size) = check_detached(path)?;
    let res = decode(path, extract).and_then(|found| {
        let manifest = check_members(&file, found)?;
        check_name(path, &manifest)?;
        Ok(manifest)
    });
    match res {
        Ok(manifest) => Ok(Verified {
            path: path.to_path_buf(),
            manifest,
            sha256,
            size,
        }),
        Err(e) => {
            if let Some(x) = extract {
                let _ = std::fs::remove_file(x);
            }
            Err(e)
        }
    }
}

/// The sha256 the detached checksum file gives for `path`.
pub fn read_detached(path: &Path) -> Result<String, VerifyError> {
    let sum = checksum_path(path);
    let sum_name = sum.display().to_string();
    let text = match std::fs::read_to_string(&sum) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(VerifyError::ChecksumMissing(sum_name))
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(VerifyError::ChecksumInvalid(sum_name))
        }
        Err(source) => {
            return Err(VerifyError::Io {
                path: sum_name,
                error: source,
            })
        }
    };
    let digest = text.split_whitespace().next().unwrap_or("");
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VerifyError::ChecksumInvalid(sum_name));
    }
    Ok(digest.to_ascii_lowercase())
}

fn check_detached(path: &Path) -> Result<(String, u64), VerifyError> {
    let expected = read_detached(path)?;
    let io_err = |source| VerifyError::Io {
        path: path.display().to_string(),
        error: source,
    };
    let mut f = File::open(path).map_err(io_err)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
    let actual = hex(&hash.finalize());
    if actual != expected {
        return Err(VerifyError::ChecksumMismatch {
            file: path.display().to_string(),
            checksum_file: checksum_path(path).display().to_string(),
            expected,
            actual,
        });
    }
    Ok((actual, size))
}

/// What one pass over the archive found: each member's size and digest, and the manifest's
/// bytes.
struct Found {
    members: BTreeMap<String, (u64, String)>,
    manifest: Option<Vec<u8>>,
}

fn decode(path: &Path, extract: Option<&Path>) -> Result<Found, VerifyError> {
    let file = path.display().to_string();
    let corrupt = |e: io::Error| VerifyError::Corrupt {
        file: file.clone(),
        reason: e.to_string(),
    };
    let f = File::open(path).map_err(|source| VerifyError::Io {
        path: file.clone(),
        error: source,
    })?;
    let dec = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(1 << 20, f))
        .map_err(corrupt)?;
    let mut archive = tar::Archive::new(dec);
    let mut found = Found {
        members: BTreeMap::new(),
        manifest: None,
    };
    for entry in archive.entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        let name = entry.path_bytes();
        let name = String::from_utf8_lossy(&name).into_owned();
        let kind = entry.header().entry_type();
        if !(kind.is_file()) || (name != MANIFEST && name != SNAPSHOT) {
            return Err(VerifyError::UnexpectedMember { file, member: name });
        }
        if found.members.contains_key(&name) {
            return Err(VerifyError::DuplicateMember { file, member: name });
        }
        let mut reader = HashReader::new(entry);
        if name == MANIFEST {
            let mut bytes = Vec::new();
            // A manifest is a few KiB; refuse to buffer a huge one.
            (&mut reader)
                .take(1 << 20)
                .read_to_end(&mut bytes)
                .map_err(corrupt)?;
            found.manifest = Some(bytes);
        } else {
            match extract {
                Some(x) => copy_to_file(&mut reader, x).map_err(|e| match e {
                    CopyError::Read(e) => corrupt(e),
                    CopyError::Write(source) => VerifyError::Io {
                        path: x.display().to_string(),
                        error: source,
                    },
                })?,
                None => {
                    drain(&mut reader).map_err(corrupt)?;
                }
            }
        }
        let (sha, len) = reader.finish();
        found.members.insert(name, (len, sha));
    }
    // Read the zstd stream to its end, so a truncated frame or a bad frame checksum after
    // tar's end-of-archive blocks is caught too.
    let mut dec = archive.into_inner();
    drain(&mut dec).map_err(corrupt)?;
    Ok(found)
}

/// Reads `r` to its end in large pieces (fewer trips through tar and zstd than `io::copy`).
fn drain(r: &mut impl Read) -> io::Result<()> {
    let mut buf = vec![0u8; 256 << 10];
    while r.read(&mut buf)? != 0 {}
    Ok(())
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

fn copy_to_file(r: &mut impl Read, to: &Path) -> Result<(), CopyError> {
    let mut out = File::create(to).map_err(CopyError::Write)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(CopyError::Read)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
    out.sync_all().map_err(CopyError::Write)
}

fn check_members(file: &str, found: Found) -> Result<Manifest, VerifyError> {
    let bytes = found.manifest.ok_or_else(|| VerifyError::MissingMember {
        file: file.into(),
        member: MANIFEST.into(),
    })?;
    let manifest = Manifest::parse(&bytes).map_err(|error| VerifyError::Manifest {
        file: file.into(),
        error,
    })?;
    for Member { name, size, sha256 } in &manifest.members {
        let Some((len, sha)) = found.members.get(name) else {
            return Err(VerifyError::MissingMember {
                file: file.into(),
                member: name.clone(),
            });
        };
        let mismatch = |what, expected: String, actual: String| VerifyError::MemberMismatch {
            file: file.into(),
            member: name.clone(),
            what,
            expected,
            actual,
        };
        if len != size {
            return Err(mismatch("size", size.to_string(), len.to_string()));
        }
        if sha != sha256 {
            return Err(mismatch("sha256", sha256.clone(), sha.clone()));
        }
    }
    if let Some(extra) = found
        .members
        .keys()
        .find(|n| *n != MANIFEST && manifest.member(n).is_none())
    {
        return Err(VerifyError::UnexpectedMember {
            file: file.into(),
            member: extra.clone(),
        });
    }
    Ok(manifest)
}

/// An archive still carrying its wk-ops name must agree with its manifest (a renamed copy is
/// fine).
fn check_name(path: &Path, m: &Manifest) -> Result<(), VerifyError> {
    let Some(name) = ArchiveName::of_path(path) else {
        return Ok(());
    };
    let mismatch = |what, from_name: String, from_manifest: String| {
        Err(VerifyError::NameMismatch {
            file: path.display().to_string(),
            what,
            from_name,
            from_manifest,
        })
    };
    if name.cluster != m.cluster {
        return mismatch("cluster", name.cluster, m.cluster.clone());
    }
    if name.index != m.raft.index {
        return mismatch(
            "raft index",
            name.index.to_string(),
            m.raft.index.to_string(),
        );
    }
    Ok(())
}
