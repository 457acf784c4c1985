//! The one send permission check, for client SENDs and API sends alike. It runs inside the apply
//! transaction, so every replica decides from the same state and a list change is enforced from
//! the next applied command on, on every node. Mirrors Go v2.2.5:
//! `internal/user/handler/event_onsend.go` `checkGlobalSendPermission` (client sends only) and
//! `internal/service/permission.go` `HasPermissionForChannel` + `HasPermissionForSender`.

use super::channels::{self, is_system};
use super::*;

/// WuKongIM reason codes a refused send carries (wkproto numbering).
pub const REASON_SUBSCRIBER_NOT_EXIST: u8 = 3;
pub const REASON_IN_BLACKLIST: u8 = 4;
pub const REASON_NOT_IN_WHITELIST: u8 = 13;
pub const REASON_BAN: u8 = 19;
pub const REASON_DISBAND: u8 = 24;
pub const REASON_SEND_BAN: u8 = 25;

/// Go's channel types with their own permission rules.
const CHANNEL_CUSTOMER_SERVICE: u8 = 3;
const CHANNEL_INFO: u8 = 6;
const CHANNEL_VISITORS: u8 = 10;

/// Why a send is refused: a reason code and a message for logs and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: u8,
    pub message: String,
}

fn refuse(reason: u8, message: String) -> Result<Option<Refusal>> {
    Ok(Some(Refusal { reason, message }))
}

/// Checks `s` against the stored state; `channel` is the addressed channel's record (None for
/// person channels and channels never created). `None` = allowed.
pub(crate) fn check(
    txn: &Tx,
    s: &SendCmd,
    channel: Option<&ChannelInfo>,
) -> Result<Option<Refusal>> {
    let ty = s.channel_type;
    // A client's own person channel may carry send_ban (Go checks it before anything else; an
    // API send comes from the system device and is not checked).
    if !s.trusted {
        let me = channels::load(txn, CHANNEL_PERSON, &s.from_uid)?;
        if me.is_some_and(|c| c.send_ban) {
            return refuse(
                REASON_SEND_BAN,
                format!("{} may not send (send_ban)", s.from_uid),
            );
        }
    }
    // Channel level, for every sender (Go looks a person channel up by its "a@b" id, which no
    // route creates, so person channels pass).
    if !matches!(
        ty,
        CHANNEL_INFO | CHANNEL_CUSTOMER_SERVICE | CHANNEL_VISITORS
    ) {
        if let Some(c) = channel {
            if c.ban {
                return refuse(REASON_BAN, format!("channel {} is banned", s.channel_id));
            }
            if c.disband {
                return refuse(
                    REASON_DISBAND,
                    format!("channel {} is disbanded", s.channel_id),
                );
            }
        }
    }
    // Sender level.
    if matches!(ty, CHANNEL_INFO | CHANNEL_CUSTOMER_SERVICE)
        || (ty == CHANNEL_VISITORS && s.from_uid == s.channel_id)
        || s.trusted
        || is_system(txn, &s.from_uid)?
    {
        return Ok(None);
    }
    if ty == CHANNEL_PERSON {
        return person(txn, s);
    }
    common(txn, s, channel)
}

/// Go's `hasPermissionForPerson` with `whitelistOffOfPerson` at its default (on): only the
/// receiver's blacklist counts; a system receiver accepts everyone.
fn person(txn: &Tx, s: &SendCmd) -> Result<Option<Refusal>> {
    let to = super::cmd::source_channel(&s.channel_id, s.channel_type);
    if is_system(txn, to)? {
        return Ok(None);
    }
    if channels::contains(txn, UidList::Deny, CHANNEL_PERSON, to, &s.from_uid)? {
        return refuse(
            REASON_IN_BLACKLIST,
            format!("{} is in the blacklist of {to}", s.from_uid),
        );
    }
    Ok(None)
}

/// Go's `hasPermissionForCommChannel`: blacklist, then membership, then a non-empty whitelist.
/// A command channel (`…____cmd`) is judged by the channel it belongs to.
fn common(txn: &Tx, s: &SendCmd, channel: Option<&ChannelInfo>) -> Result<Option<Refusal>> {
    let (ty, from) = (s.channel_type, s.from_uid.as_str());
    let id = super::cmd::source_channel(&s.channel_id, ty);
    if channels::contains(txn, UidList::Deny, ty, id, from)? {
        return refuse(
            REASON_IN_BLACKLIST,
            format!("{from} is in the blacklist of {id}"),
        );
    }
    let original;
    let record = if id == s.channel_id {
        channel
    } else {
        original = channels::load(txn, ty, id)?;
        original.as_ref()
    };
    if !record.is_some_and(|c| c.subscribers.iter().any(|u| u == from)) {
        return refuse(
            REASON_SUBSCRIBER_NOT_EXIST,
            format!("{from} is not a subscriber of {id}"),
        );
    }
    if !channels::is_empty(txn, UidList::Allow, ty, id)?
        && !channels::contains(txn, UidList::Allow, ty, id, from)?
    {
        return refuse(
            REASON_NOT_IN_WHITELIST,
            format!("{from} is not in the whitelist of {id}"),
        );
    }
    Ok(None)
}

/// Whether a rejection's reason is one this check gives.
pub fn is_refusal(reason: u8) -> bool {
    matches!(
        reason,
        REASON_SUBSCRIBER_NOT_EXIST
            | REASON_IN_BLACKLIST
            | REASON_NOT_IN_WHITELIST
            | REASON_BAN
            | REASON_DISBAND
            | REASON_SEND_BAN
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(from: &str, to: &str, ty: u8, trusted: bool) -> Command {
        Command::Send(SendCmd {
            from_uid: from.into(),
            from_device: String::new(),
            channel_id: to.into(),
            channel_type: ty,
            client_msg_no: String::new(),
            setting: 0,
            header: Header::default(),
            expire: 0,
            topic: None,
            stream_no: String::new(),
            payload: b"x".to_vec(),
            timestamp: 1,
            trusted,
        })
    }

    fn list(list: UidList, id: &str, ty: u8, edit: ListEdit) -> Command {
        Command::EditList {
            list,
            channel_id: id.into(),
            channel_type: ty,
            edit,
        }
    }

    fn uids(u: &[&str]) -> Vec<String> {
        u.iter().map(|s| s.to_string()).collect()
    }

    fn info(id: &str, ty: u8, ban: bool, disband: bool, send_ban: bool) -> Command {
        Command::UpsertChannelInfo {
            channel_id: id.into(),
            channel_type: ty,
            large: false,
            ban,
            disband,
            send_ban,
            allow_stranger: false,
        }
    }

    /// Applies commands one batch at a time; a send answers its reason (0 = stored).
    struct Node {
        store: Store,
        seq: u64,
        _dir: tempfile::TempDir,
    }

    impl Node {
        fn new() -> Node {
            let dir = tempfile::tempdir().unwrap();
            Node {
                store: Store::open(dir.path()).unwrap(),
                seq: 0,
                _dir: dir,
            }
        }

        fn run(&mut self, cmd: Command) -> u8 {
            self.seq += 1;
            let batch = Batch::numbered(self.seq, vec![cmd]);
            let mut a = self.store.apply_entries(&[Some(batch)], &[]).unwrap();
            match a.pop().unwrap().outcomes.pop().unwrap() {
                Outcome::Rejected { reason, .. } => reason,
                _ => 0,
            }
        }
    }

    fn group(n: &mut Node, id: &str, members: &[&str]) {
        n.run(Command::AddSubscribers {
            channel_id: id.into(),
            channel_type: CHANNEL_GROUP,
            subscribers: uids(members),
            reset: true,
        });
    }

    /// internal/service/permission.go `hasPermissionForCommChannel`: blacklist (4), membership
    /// (3), a non-empty whitelist (13); system uids and API sends pass.
    #[test]
    fn group_sends_follow_go_order_of_checks() {
        let mut n = Node::new();
        group(&mut n, "g", &["a", "b"]);
        assert_eq!(n.run(send("a", "g", 2, false)), 0);
        assert_eq!(n.run(send("c", "g", 2, false)), REASON_SUBSCRIBER_NOT_EXIST);
        // A blacklisted non-subscriber is told about the blacklist first.
        n.run(list(
            UidList::Deny,
            "g",
            2,
            ListEdit::Add(uids(&["a", "c"])),
        ));
        assert_eq!(n.run(send("a", "g", 2, false)), REASON_IN_BLACKLIST);
        assert_eq!(n.run(send("c", "g", 2, false)), REASON_IN_BLACKLIST);
        assert_eq!(n.run(send("a", "g", 2, true)), 0, "API sends pass");
        n.run(list(UidList::Deny, "g", 2, ListEdit::Clear));
        n.run(list(UidList::Allow, "g", 2, ListEdit::Set(uids(&["b"]))));
        assert_eq!(n.run(send("a", "g", 2, false)), REASON_NOT_IN_WHITELIST);
        assert_eq!(n.run(send("b", "g", 2, false)), 0);
        // The command channel of g is judged by g.
        assert_eq!(
            n.run(send("a", "g____cmd", 2, false)),
            REASON_NOT_IN_WHITELIST
        );
        n.run(list(UidList::Allow, "g", 2, ListEdit::Remove(uids(&["b"]))));
        assert_eq!(n.run(send("a", "g", 2, false)), 0, "an empty whitelist");
        // System uids pass the sender checks.
        n.run(list(UidList::System, "", 0, ListEdit::Add(uids(&["c"]))));
        assert_eq!(n.run(send("c", "g", 2, false)), 0);
        n.run(list(UidList::System, "", 0, ListEdit::Remove(uids(&["c"]))));
        assert_eq!(n.run(send("c", "g", 2, false)), REASON_SUBSCRIBER_NOT_EXIST);
        assert_eq!(n.run(send(SYSTEM_UID, "g", 2, false)), 0);
    }

    /// `HasPermissionForChannel` (ban 19 before disband 24, for every sender) and
    /// `checkGlobalSendPermission` (send_ban 25, client sends only); a group never created.
    #[test]
    fn ban_disband_send_ban_and_channels_never_created() {
        let mut n = Node::new();
        group(&mut n, "g", &["a"]);
        n.run(info("g", 2, true, true, false));
        assert_eq!(n.run(send("a", "g", 2, false)), REASON_BAN);
        assert_eq!(n.run(send("a", "g", 2, true)), REASON_BAN);
        n.run(info("g", 2, false, true, false));
        assert_eq!(n.run(send("a", "g", 2, true)), REASON_DISBAND);
        n.run(info("g", 2, false, false, false));
        assert_eq!(n.run(send("a", "g", 2, false)), 0, "subscribers kept");
        n.run(info("a", CHANNEL_PERSON, false, false, true));
        assert_eq!(n.run(send("a", "g", 2, false)), REASON_SEND_BAN);
        assert_eq!(n.run(send("a", "b", 1, false)), REASON_SEND_BAN);
        assert_eq!(n.run(send("a", "g", 2, true)), 0);
        assert_eq!(
            n.run(send("b", "nowhere", 2, false)),
            REASON_SUBSCRIBER_NOT_EXIST
        );
        assert_eq!(n.run(send("b", "nowhere", 2, true)), 0);
        // subscriber_remove_all empties an existing channel and creates none.
        n.run(Command::RemoveAllSubscribers {
            channel_id: "g".into(),
            channel_type: 2,
        });
        assert_eq!(n.run(send("b", "g", 2, false)), REASON_SUBSCRIBER_NOT_EXIST);
        n.run(Command::RemoveAllSubscribers {
            channel_id: "none".into(),
            channel_type: 2,
        });
        assert!(n.store.channel(2, "none").unwrap().is_none());
    }

    /// `hasPermissionForPerson`: the receiver's blacklist; a system receiver accepts everyone.
    #[test]
    fn person_sends_check_the_receivers_blacklist() {
        let mut n = Node::new();
        n.run(list(UidList::Deny, "bob", 1, ListEdit::Add(uids(&["eve"]))));
        assert_eq!(n.run(send("eve", "bob", 1, false)), REASON_IN_BLACKLIST);
        assert_eq!(n.run(send("ann", "bob", 1, false)), 0);
        assert_eq!(n.run(send("bob", "eve", 1, false)), 0, "one way only");
        n.run(list(UidList::System, "", 0, ListEdit::Add(uids(&["bob"]))));
        assert_eq!(n.run(send("eve", "bob", 1, false)), 0);
    }

    /// The lists travel in the state's rows: a replica installed from them holds the same data
    /// version and enforces the same lists.
    #[test]
    fn lists_survive_a_snapshot_round_trip() {
        let mut a = Node::new();
        group(&mut a, "g", &["x", "y"]);
        a.run(list(UidList::Deny, "g", 2, ListEdit::Add(uids(&["x"]))));
        a.run(list(
            UidList::Allow,
            "g",
            2,
            ListEdit::Add(uids(&["y", "z"])),
        ));
        a.run(list(UidList::System, "", 0, ListEdit::Add(uids(&["root"]))));
        let mut frames = Vec::new();
        let txn = a.store.read_txn().unwrap();
        walk_rows(&txn, &mut |r| {
            let mut buf = Vec::new();
            frame_row(r, &mut buf);
            frames.push(buf);
            Ok(())
        })
        .unwrap();
        let before = version_in(&txn).unwrap();
        let mut b = Node::new();
        b.store
            .replace_state::<(), StoreError>(|sink| {
                for f in &frames {
                    sink(decode_row(&f[4..])?)?;
                }
                Ok(((), Vec::new()))
            })
            .unwrap();
        let after = version_in(&b.store.read_txn().unwrap()).unwrap();
        assert_eq!(before, after);
        assert_eq!(
            b.store.uid_list(UidList::Allow, 2, "g").unwrap(),
            uids(&["y", "z"])
        );
        assert_eq!(
            b.store.uid_list(UidList::System, 0, "").unwrap(),
            uids(&["root"])
        );
        b.seq = a.seq; // the proposer session came along
        assert_eq!(b.run(send("x", "g", 2, false)), REASON_IN_BLACKLIST);
        assert_eq!(b.run(send("y", "g", 2, false)), 0);
        // A list changes the data version.
        a.run(list(UidList::Deny, "g", 2, ListEdit::Clear));
        assert_ne!(version_in(&a.store.read_txn().unwrap()).unwrap(), before);
    }
}
