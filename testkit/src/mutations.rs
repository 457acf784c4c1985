//! Damaged copies of a backup archive (`wk-ops backup`'s `<cluster>-<time>-<index>.tar.zst`
//! with its `.sha256`), each with the words the refusal must contain. Used by wk-ops' verify
//! tests and by the end-to-end restore test, which checks that `wk-ops restore` refuses every
//! one of them without touching the live cluster.
//!
//! Most mutations rebuild a consistent archive (recompressed, `.sha256` recomputed) so that the
//! check that catches them is the one named, not merely the detached checksum.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One damaged archive.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub name: &'static str,
    pub archive: PathBuf,
    /// Words the refusal must contain (case-sensitive).
    pub expect: &'static str,
    /// Caught without running the server's restore (plain `wk-ops backup verify`).
    pub structural: bool,
}

/// A manifest edit: name, expected words, structural, the edit.
type Edit<'a> = (
    &'static str,
    &'static str,
    bool,
    &'a dyn Fn(&mut serde_json::Value),
);

/// A tar member: name, bytes, entry type.
type Member = (String, Vec<u8>, tar::EntryType);

fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn members_of(archive: &Path) -> Vec<Member> {
    let f = std::fs::File::open(archive).expect("open archive");
    let mut a = tar::Archive::new(zstd::stream::read::Decoder::new(f).expect("zstd"));
    let mut out = Vec::new();
    for e in a.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let kind = e.header().entry_type();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read member");
        out.push((name, data, kind));
    }
    out
}

fn tar_bytes(members: &[Member]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, kind) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_entry_type(*kind);
        // Raw name bytes, so even `../x` goes in as given.
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &data[..]).expect("tar append");
    }
    b.into_inner().expect("tar finish")
}

fn zstd_bytes(tar: &[u8]) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
    enc.include_checksum(true).expect("checksum");
    std::io::Write::write_all(&mut enc, tar).expect("compress");
    enc.finish().expect("zstd finish")
}

fn manifest_of(members: &[Member]) -> serde_json::Value {
    let m = members
        .iter()
        .find(|m| m.0 == "manifest.json")
        .expect("manifest.json");
    serde_json::from_slice(&m.1).expect("manifest JSON")
}

fn with_manifest(members: &[Member], v: &serde_json::Value) -> Vec<Member> {
    members
        .iter()
        .map(|m| match m.0.as_str() {
            "manifest.json" => (m.0.clone(), serde_json::to_vec_pretty(v).unwrap(), m.2),
            _ => m.clone(),
        })
        .collect()
}

fn with_snapshot(members: &[Member], f: impl Fn(&mut Vec<u8>)) -> Vec<Member> {
    members
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if m.0 == "snapshot.bin" {
                f(&mut m.1);
            }
            m
        })
        .collect()
}

/// Writes `bytes` as `<dir>/<file_name>` with a `.sha256` of `checksum_of` (None: none).
fn put(dir: &Path, file_name: &str, bytes: &[u8], checksum: Option<String>) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mutation dir");
    let path = dir.join(file_name);
    std::fs::write(&path, bytes).expect("write mutation");
    if let Some(sum) = checksum {
        std::fs::write(dir.join(format!("{file_name}.sha256")), sum).expect("write checksum");
    }
    path
}

/// Twenty-odd damaged copies of `archive` under `out`, one directory each.
pub fn mutate(archive: &Path, out: &Path) -> Vec<Mutation> {
    let file_name = archive
        .file_name()
        .expect("archive file name")
        .to_string_lossy()
        .into_owned();
    let original = std::fs::read(archive).expect("read archive");
    let members = members_of(archive);
    let manifest = manifest_of(&members);
    let mut list = Vec::new();
    let mut add = |name: &'static str,
                   expect: &'static str,
                   structural: bool,
                   file: &str,
                   bytes: Vec<u8>,
                   checksum: Option<String>| {
        let dir = out.join(name);
        let archive = put(&dir, file, &bytes, checksum);
        list.push(Mutation {
            name,
            archive,
            expect,
            structural,
        });
    };
    let good_sum = |bytes: &[u8], file: &str| Some(format!("{}  {file}\n", sha_hex(bytes)));
    let rebuilt = |m: &[Member]| zstd_bytes(&tar_bytes(m));

    // The compressed file itself.
    let half = original[..original.len() / 2].to_vec();
    add(
        "truncated",
        "corrupt or truncated",
        true,
        &file_name,
        half.clone(),
        good_sum(&half, &file_name),
    );
    add(
        "truncated-stale-checksum",
        "archive checksum mismatch",
        true,
        &file_name,
        half,
        good_sum(&original, &file_name),
    );
    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    add(
        "byte-flipped-in-stream",
        "corrupt or truncated",
        true,
        &file_name,
        flipped.clone(),
        good_sum(&flipped, &file_name),
    );
    add(
        "checksum-file-missing",
        "is missing",
        true,
        &file_name,
        original.clone(),
        None,
    );
    add(
        "checksum-file-garbage",
        "is not `<64 hex digits>",
        true,
        &file_name,
        original.clone(),
        Some("not a checksum\n".into()),
    );
    let plain = tar_bytes(&members);
    add(
        "not-zstd",
        "corrupt or truncated",
        true,
        &file_name,
        plain.clone(),
        good_sum(&plain, &file_name),
    );

    // Members.
    let b = rebuilt(&with_snapshot(&members, |s| {
        let i = s.len() / 2;
        s[i] ^= 0x01;
    }));
    add(
        "snapshot-byte-flipped",
        "member `snapshot.bin` does not match manifest.json: sha256",
        true,
        &file_name,
        b.clone(),
        good_sum(&b, &file_name),
    );
    let b = rebuilt(&with_snapshot(&members, |s| {
        s.pop();
    }));
    add(
        "snapshot-short",
        "member `snapshot.bin` does not match manifest.json: size",
        true,
        &file_name,
        b.clone(),
        good_sum(&b, &file_name),
    );
    let mut corrupt = members.clone();
    let mut v = manifest.clone();
    for m in corrupt.iter_mut().filter(|m| m.0 == "snapshot.bin") {
        let i = m.1.len() / 2;
        m.1[i] ^= 0x01;
        let entry = v["members"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|e| e["name"] == "snapshot.bin")
            .unwrap();
        entry["sha256"] = sha_hex(&m.1).into();
    }
    let b = rebuilt(&with_manifest(&corrupt, &v));
    add(
        "snapshot-corrupt-manifest-agrees",
        "`wukongim restore` of the archive's snapshot failed",
        false,
        &file_name,
        b.clone(),
        good_sum(&b, &file_name),
    );
    let mut bad = members.clone();
    for m in bad.iter_mut().filter(|m| m.0 == "manifest.json") {
        m.1[0] = b'[';
    }
    let b = rebuilt(&bad);
    add(
        "manifest-byte-flipped",
        "manifest.json is not a valid manifest",
        true,
        &file_name,
        b.clone(),
        good_sum(&b, &file_name),
    );
    let only =
        |keep: &str| -> Vec<Member> { members.iter().filter(|m| m.0 == keep).cloned().collect() };
    let b = rebuilt(&only("manifest.json"));
    add(
        "snapshot-missing",
        "member `snapshot.bin` is missing",
        true,
        &file_name,
        b.clone(),
        good_sum(&b, &file_name),
    );
    let b = rebuilt(&only("snapshot.bin"));
    add(
        "manifest-missing",
        "member `manifest.json` is missing",
        true,
        &file_name,
        b.clone(),
        good_sum(&b, &file_name),
    );
    let mut extra = members.clone();
    extra.push((
        "notes.txt".into(),
        b"hello".to_vec(),
        tar::EntryType::Regular,
    ));
    let b = rebuilt(&extra);
    add(
        "extra-member",
        "unexpected member `notes.txt`",
        true,
        &file_name,
        b.clone(),
        good_sum(&b, &file_name),
    );
    let mut twice = members.clone();
    twice.insert(
        0,
        members
            .iter()
            .find(|m| m.0 == "snapshot.bin")
            .unwrap()
            .clone(),
    );
    let b = rebuilt(&twice);
    add(
        "snapshot-twice",
        "member `snapshot.bin` appears twice",
        true,
        &file_name,
        b.clone(),
        good_sum(&b, &file_name),
    );
    let mut escape = members.clone();
    escape.insert(
        0,
        (
            "../snapshot.bin".into(),
            b"x".to_vec(),
            tar::EntryType::Regular,
        ),
    );
    let b = rebuilt(&escape);
    add(
        "path-escape",
        "unexpected member `../snapshot.bin`",
        true,
        &file_name,
        b.clone(),
        good_sum(&b, &file_name),
    );

    // The manifest, edited (the archive rebuilt consistently around it).
    let edited = |f: &dyn Fn(&mut serde_json::Value)| -> Vec<u8> {
        let mut v = manifest.clone();
        f(&mut v);
        rebuilt(&with_manifest(&members, &v))
    };
    let cases: [Edit; 8] = [
        ("manifest-format-version", "format version 99", true, &|v| {
            v["format_version"] = 99.into()
        }),
        (
            "manifest-unknown-field",
            "unknown field `extra`",
            true,
            &|v| v["extra"] = 1.into(),
        ),
        (
            "manifest-field-missing",
            "missing field `data_version`",
            true,
            &|v| {
                v.as_object_mut().unwrap().remove("data_version");
            },
        ),
        (
            "manifest-member-digest",
            "does not match manifest.json: sha256",
            true,
            &|v| v["members"][0]["sha256"] = "0".repeat(64).into(),
        ),
        (
            "manifest-index-edited",
            "the file name says raft index",
            true,
            &|v| v["raft"]["index"] = (v["raft"]["index"].as_u64().unwrap() + 1).into(),
        ),
        (
            "manifest-cluster-edited",
            "the file name says cluster",
            true,
            &|v| v["cluster"] = "other".into(),
        ),
        ("manifest-message-count", "the message count", false, &|v| {
            v["counts"]["messages"] = (v["counts"]["messages"].as_u64().unwrap() + 1).into()
        }),
        ("manifest-data-version", "the data version", false, &|v| {
            v["data_version"] = "0123456789abcdef".into()
        }),
    ];
    for (name, expect, structural, f) in cases {
        let b = edited(f);
        add(
            name,
            expect,
            structural,
            &file_name,
            b.clone(),
            good_sum(&b, &file_name),
        );
    }
    // Another cluster's archive, consistent in itself.
    let mut v = manifest.clone();
    v["cluster"] = "other-cluster".into();
    let b = rebuilt(&with_manifest(&members, &v));
    // `<cluster>-<time>-<index>.tar.zst`: keep the time and index.
    let parts: Vec<&str> = file_name.rsplitn(3, '-').collect();
    let other_name = format!("other-cluster-{}-{}", parts[1], parts[0]);
    add(
        "wrong-cluster",
        "the archive is of cluster `other-cluster`",
        false,
        &other_name,
        b.clone(),
        good_sum(&b, &other_name),
    );
    list
}
