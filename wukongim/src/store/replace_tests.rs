//! Tests of [`Store::replace_state`]: the new state is built in a new file and swapped in, the
//! Raft log and metadata come along, concurrent log writes are not lost, a failed fill changes
//! nothing, and a crash's half-built file is removed at the next open.

use super::*;
use std::os::unix::fs::MetadataExt;

/// The fill passed to `replace_state`.
type Sink<'a> = &'a mut dyn FnMut(Row) -> Result<()>;

fn rows(n: u64, payload: usize) -> impl FnOnce(Sink) -> ReplaceResult<(), StoreError> {
    move |sink| {
        let body = vec![7u8; payload];
        sink(Row::Meta("message_id", n))?;
        for i in 1..=n {
            sink(Row::Message("2:g", i, &body))?;
        }
        Ok(((), vec![("last_applied", b"applied".to_vec())]))
    }
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn replacing_swaps_in_a_compact_new_file_and_keeps_the_raft_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let path = dir.path().join(DB_FILE);
    store
        .log_append(&[(1, b"e1".to_vec()), (2, b"e2".to_vec())])
        .unwrap();
    store.raft_meta_put("vote", b"v1").unwrap();

    store.replace_state(rows(2000, 4096)).unwrap();
    let big = std::fs::metadata(&path).unwrap();
    let (v_big, applied) = store.version("last_applied").unwrap();
    assert_eq!(v_big.counts.messages, 2000);
    assert_eq!(applied.as_deref(), Some(&b"applied"[..]));

    store.replace_state(rows(3, 16)).unwrap();
    let small = std::fs::metadata(&path).unwrap();
    assert_ne!(big.ino(), small.ino(), "a new file took the old one's name");
    assert!(
        small.len() * 4 < big.len(),
        "the new file holds only the new state: {} vs {} bytes",
        small.len(),
        big.len()
    );
    let (v, _) = store.version("last_applied").unwrap();
    assert_eq!(v.counts.messages, 3);
    assert_eq!(v, version_in(&store.read_txn().unwrap()).unwrap());
    assert_eq!(
        store.log_range(1, 3).unwrap(),
        vec![(1, b"e1".to_vec()), (2, b"e2".to_vec())]
    );
    assert_eq!(store.raft_meta_get("vote").unwrap(), Some(b"v1".to_vec()));
    assert!(temp_files(dir.path()).is_empty());

    // Writes go to the new file, and it is what the next open finds.
    store.log_append(&[(3, b"e3".to_vec())]).unwrap();
    drop(store);
    let again = Store::open(dir.path()).unwrap();
    assert_eq!(again.log_range(1, 4).unwrap().len(), 3);
    assert_eq!(again.version("last_applied").unwrap().0, v);
}

#[test]
fn log_writes_during_a_replace_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut ok = Vec::new();
            for i in 1..=300u64 {
                if store.log_append(&[(i, i.to_le_bytes().to_vec())]).is_ok() {
                    ok.push(i);
                }
            }
            ok
        })
    };
    for n in [500, 50, 400] {
        store.replace_state(rows(n, 1024)).unwrap();
    }
    let ok = writer.join().unwrap();
    assert_eq!(ok.len(), 300);
    let kept: Vec<u64> = store
        .log_range(1, 301)
        .unwrap()
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(kept, ok, "every acknowledged log write survives the swaps");
}

#[test]
fn a_failed_fill_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.replace_state(rows(10, 8)).unwrap();
    let before = store.version("last_applied").unwrap();
    let ino = std::fs::metadata(dir.path().join(DB_FILE)).unwrap().ino();
    let err = store.replace_state(|sink: &mut dyn FnMut(Row) -> Result<()>| {
        sink(Row::Meta("message_id", 1))?;
        Err::<((), Vec<_>), _>(StoreError::SnapshotRows {
            source: std::io::Error::other("truncated input"),
        })
    });
    assert!(err.is_err());
    assert_eq!(store.version("last_applied").unwrap(), before);
    assert_eq!(
        std::fs::metadata(dir.path().join(DB_FILE)).unwrap().ino(),
        ino
    );
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn a_half_built_file_left_by_a_crash_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let left = dir.path().join(".state.redb.installing-123-0.tmp");
    std::fs::write(&left, b"half").unwrap();
    let other = dir.path().join("unrelated.tmp");
    std::fs::write(&other, b"keep").unwrap();
    drop(Store::open(dir.path()).unwrap());
    assert!(!left.exists());
    assert!(other.exists(), "only our own temp files are removed");
}
