//! Group channels whose every subscriber already has a conversation row, remembered between
//! applies: a message to such a group then updates the sender's row only, instead of looking up
//! one row per member to find the few without one (for a 100-member group that lookup was a
//! fifth of a node's CPU, bench/RESULTS.md "conversation rows hold only the user's own state").
//!
//! It is a hint kept in memory and starts empty, so it can only be missing entries, never hold
//! a wrong one, provided that: a channel enters it only after the transaction that gave all its
//! subscribers a row committed ([`Pending::take`], [`Seeded::apply`]); it leaves it at once,
//! before that transaction commits, when its subscribers may change or it is deleted; conversation
//! rows are never removed; and it is emptied when the whole state is replaced (snapshot
//! install, restore).

use super::handle::lock;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Mutex;

/// Past this many channels the set starts over (each entry is a channel id).
const MAX_CHANNELS: usize = 100_000;

type Key = (u8, String);

/// The committed set, shared by every handle of a store.
#[derive(Default)]
pub(crate) struct Seeded {
    set: Mutex<HashSet<Key>>,
}

impl Seeded {
    /// Forgets every channel (the state was replaced).
    pub fn clear(&self) {
        lock(&self.set).clear();
    }

    /// Records the channels a committed transaction seeded, in order.
    pub fn apply(&self, ops: Vec<(bool, Key)>) {
        if ops.is_empty() {
            return;
        }
        let mut set = lock(&self.set);
        for (seeded, key) in ops {
            if !seeded {
                set.remove(&key);
            } else {
                if set.len() >= MAX_CHANNELS {
                    set.clear();
                }
                set.insert(key);
            }
        }
    }
}

/// One write transaction's view: the committed set plus the transaction's own changes.
pub(crate) struct Pending<'a> {
    committed: &'a Seeded,
    ops: RefCell<Vec<(bool, Key)>>,
}

impl<'a> Pending<'a> {
    pub fn new(committed: &'a Seeded) -> Self {
        Pending {
            committed,
            ops: RefCell::default(),
        }
    }

    /// Whether every subscriber of the channel is known to have a conversation row.
    pub fn is_seeded(&self, ty: u8, id: &str) -> bool {
        let ops = self.ops.borrow();
        if let Some((seeded, _)) = ops.iter().rev().find(|(_, k)| k.0 == ty && k.1 == id) {
            return *seeded;
        }
        lock(&self.committed.set).contains(&(ty, id.to_string()))
    }

    /// Every subscriber of the channel now has a row (known to the set once committed).
    pub fn seed(&self, ty: u8, id: &str) {
        if !self.is_seeded(ty, id) {
            self.ops.borrow_mut().push((true, (ty, id.to_string())));
        }
    }

    /// The channel's subscribers may change: forgotten at once, committed or not.
    pub fn unseed(&self, ty: u8, id: &str) {
        let key = (ty, id.to_string());
        lock(&self.committed.set).remove(&key);
        self.ops.borrow_mut().push((false, key));
    }

    /// The changes to apply once the transaction committed.
    pub fn take(&self) -> Vec<(bool, Key)> {
        std::mem::take(&mut self.ops.borrow_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_is_seeded_after_commit_and_unseeded_at_once() {
        let set = Seeded::default();
        let tx = Pending::new(&set);
        tx.seed(2, "g1");
        assert!(tx.is_seeded(2, "g1"), "seen by its own transaction");
        assert!(!Pending::new(&set).is_seeded(2, "g1"), "not before commit");
        set.apply(tx.take());
        assert!(Pending::new(&set).is_seeded(2, "g1"));

        let tx = Pending::new(&set);
        tx.unseed(2, "g1");
        assert!(!tx.is_seeded(2, "g1"));
        assert!(
            !Pending::new(&set).is_seeded(2, "g1"),
            "gone before the commit"
        );
        tx.seed(2, "g1");
        tx.unseed(2, "g1");
        set.apply(tx.take());
        assert!(!Pending::new(&set).is_seeded(2, "g1"), "last change wins");

        let tx = Pending::new(&set);
        tx.seed(2, "g2");
        set.apply(tx.take());
        set.clear();
        assert!(!Pending::new(&set).is_seeded(2, "g2"));
    }
}
