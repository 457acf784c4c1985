//! Proposer sessions (Raft thesis §6.3): every batch carries its proposer's session — node id,
//! an incarnation chosen when the proposer started, and a batch number. The state machine keeps,
//! per proposer, the incarnation and last batch number it applied, plus the outcomes of the
//! batches the proposer has not yet answered. A batch is applied only if it is the next one of
//! the current (or a newer) incarnation: a duplicate gets its stored outcome back, a batch after
//! a gap or from an older incarnation is not applied at all. Both tables are replicated (applied
//! from the log) and travel in snapshots.

use super::*;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

/// node id → postcard `(incarnation, last applied batch number)`.
pub(crate) const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
/// (node id, batch number) → postcard `Vec<Outcome>` for batches not yet acknowledged.
pub(crate) const REPLIES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("replies");

/// Where a batch comes from and its place in its proposer's sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchTag {
    /// The proposing node.
    pub node: u64,
    /// Chosen when the proposer started; a larger one replaces the session.
    pub incarnation: u64,
    /// 1, 2, 3, … within the incarnation.
    pub seq: u64,
    /// Every batch up to this number has been answered: its stored outcome may go.
    pub acked: u64,
}

/// What the state machine did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Applied now; the outcomes are fresh.
    #[default]
    Applied,
    /// Applied before; the outcomes are the stored ones (empty if no longer kept).
    Duplicate { kept: bool },
    /// Not applied: batch `expected` of this incarnation has not been applied yet.
    Gap { expected: u64 },
    /// Not applied: the session moved on to incarnation `current`.
    Stale { current: u64 },
}

impl Verdict {
    /// Whether the batch's commands took effect (now or before).
    pub fn took_effect(&self) -> bool {
        matches!(self, Verdict::Applied | Verdict::Duplicate { kept: true })
    }
}

/// Decides whether `tag` is applied. For [`Verdict::Duplicate`] the stored outcomes come along.
pub(crate) fn admit(txn: &Tx, tag: &BatchTag) -> Result<(Verdict, Vec<Outcome>)> {
    let t = txn.open_table(SESSIONS)?;
    let current: Option<(u64, u64)> = t
        .get(tag.node)?
        .map(|g| decode("sessions", g.value()))
        .transpose()?;
    let (inc, last) = current.unwrap_or((0, 0));
    if tag.incarnation < inc {
        return Ok((Verdict::Stale { current: inc }, Vec::new()));
    }
    let last = if tag.incarnation > inc { 0 } else { last };
    if tag.seq == last + 1 {
        return Ok((Verdict::Applied, Vec::new()));
    }
    if tag.seq > last + 1 {
        return Ok((Verdict::Gap { expected: last + 1 }, Vec::new()));
    }
    let r = txn.open_table(REPLIES)?;
    let kept = r.get((tag.node, tag.seq))?.map(|g| g.value().to_vec());
    Ok(match kept {
        Some(raw) => (Verdict::Duplicate { kept: true }, decode("replies", &raw)?),
        None => (Verdict::Duplicate { kept: false }, Vec::new()),
    })
}

/// Records that `tag` was applied with `outcomes`; a new incarnation replaces the old session.
pub(crate) fn record(txn: &Tx, tag: &BatchTag, outcomes: &[Outcome]) -> Result<()> {
    let mut t = txn.open_table(SESSIONS)?;
    let before: Option<(u64, u64)> = t
        .get(tag.node)?
        .map(|g| decode("sessions", g.value()))
        .transpose()?;
    t.insert(tag.node, to_bytes(&(tag.incarnation, tag.seq)).as_slice())?;
    let mut r = txn.open_table(REPLIES)?;
    let forget = match before {
        Some((inc, _)) if inc == tag.incarnation => tag.acked,
        // A new incarnation: the old one's kept outcomes can never be asked for again.
        _ => u64::MAX,
    };
    if forget > 0 {
        r.retain_in((tag.node, 0)..=(tag.node, forget), |_, _| false)?;
    }
    r.insert((tag.node, tag.seq), to_bytes(&outcomes).as_slice())?;
    Ok(())
}

/// A batch of commands proposed as one log entry, tagged with its proposer's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub tag: BatchTag,
    pub cmds: Vec<Command>,
}

#[cfg(test)]
impl Batch {
    /// Batch `seq` of the proposer session (node 1, incarnation 1), for unit tests that apply
    /// commands straight to a store.
    pub(crate) fn numbered(seq: u64, cmds: Vec<Command>) -> Batch {
        Batch {
            tag: BatchTag {
                node: 1,
                incarnation: 1,
                seq,
                acked: 0,
            },
            cmds,
        }
    }
}

impl std::fmt::Display for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let t = &self.tag;
        write!(
            f,
            "batch {}/{}#{} of {} commands",
            t.node,
            t.incarnation,
            t.seq,
            self.cmds.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(no: &str) -> Command {
        Command::Send(SendCmd {
            from_uid: "a".into(),
            from_device: String::new(),
            channel_id: "b".into(),
            channel_type: CHANNEL_PERSON,
            client_msg_no: no.into(),
            setting: 0,
            header: Header::default(),
            expire: 0,
            topic: None,
            stream_no: String::new(),
            payload: no.as_bytes().to_vec(),
            timestamp: 1,
            trusted: false,
        })
    }

    fn batch(incarnation: u64, seq: u64, acked: u64, cmds: Vec<Command>) -> Batch {
        Batch {
            tag: BatchTag {
                node: 7,
                incarnation,
                seq,
                acked,
            },
            cmds,
        }
    }

    /// Applies one batch (as one log entry) and returns what the state machine said.
    fn apply(store: &Store, b: Batch) -> (Verdict, Vec<Outcome>) {
        let mut a = store.apply_entries(&[Some(b)], &[]).unwrap();
        let a = a.pop().unwrap();
        (a.verdict, a.outcomes)
    }

    fn seqs(o: &[Outcome]) -> Vec<u64> {
        o.iter()
            .map(|o| match o {
                Outcome::Sent { message_seq, .. } => *message_seq,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_batch_is_applied_once_in_order_and_duplicates_get_the_stored_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (v, o) = apply(&store, batch(5, 1, 0, vec![send("1"), send("2")]));
        assert_eq!((v, seqs(&o)), (Verdict::Applied, vec![1, 2]));
        // After a gap: not applied, nothing stored.
        let (v, o) = apply(&store, batch(5, 3, 0, vec![send("4")]));
        assert_eq!((v, o.len()), (Verdict::Gap { expected: 2 }, 0));
        let (v, o) = apply(&store, batch(5, 2, 0, vec![send("3")]));
        assert_eq!((v, seqs(&o)), (Verdict::Applied, vec![3]));
        // Batch 1 proposed again (a retry after a leader change): its stored outcome, no new
        // message (the clientMsgNo dedup is not what answers here: no clientMsgNo below).
        let anon = |n: u8| {
            let Command::Send(mut s) = send("") else {
                unreachable!()
            };
            s.payload = vec![n];
            Command::Send(s)
        };
        let (v, o) = apply(&store, batch(5, 3, 2, vec![anon(1), anon(2)]));
        assert_eq!((v, seqs(&o)), (Verdict::Applied, vec![4, 5]));
        let (v, o) = apply(&store, batch(5, 3, 2, vec![anon(1), anon(2)]));
        assert_eq!(
            (v, seqs(&o)),
            (Verdict::Duplicate { kept: true }, vec![4, 5])
        );
        // Outcomes up to `acked` are forgotten.
        let (v, _) = apply(&store, batch(5, 1, 2, vec![send("1")]));
        assert_eq!(v, Verdict::Duplicate { kept: false });
        let txn = store.read_txn().unwrap();
        let stored = query_count(&txn);
        assert_eq!(stored, 5, "five messages stored, none twice");
    }

    #[test]
    fn a_new_incarnation_replaces_the_session_and_the_old_one_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            apply(&store, batch(5, 1, 0, vec![send("1")])).0,
            Verdict::Applied
        );
        assert_eq!(
            apply(&store, batch(6, 1, 0, vec![send("2")])).0,
            Verdict::Applied
        );
        // A late batch of the old incarnation can never apply now.
        assert_eq!(
            apply(&store, batch(5, 2, 1, vec![send("3")])).0,
            Verdict::Stale { current: 6 }
        );
        assert_eq!(
            apply(&store, batch(6, 2, 1, vec![send("3")])).0,
            Verdict::Applied
        );
        // Sessions travel in the state's rows (so in snapshots and the data version).
        let txn = store.read_txn().unwrap();
        let mut sessions = Vec::new();
        crate::store::walk_rows(&txn, &mut |r| {
            if let crate::store::Row::Session(node, raw) = r {
                sessions.push((*node, postcard::from_bytes::<(u64, u64)>(raw).unwrap()));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(sessions, vec![(7, (6, 2))]);
    }

    fn query_count(txn: &redb::ReadTransaction) -> u64 {
        crate::store::version_in(txn).unwrap().counts.messages
    }
}
