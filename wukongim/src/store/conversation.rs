//! Conversations as WuKongIM keeps them (Go v2.2, `internal/api/conversation.go`): one row per
//! user and channel holding how far the user has read (`readed_to_msg_seq`) and from where the
//! conversation was deleted (`deleted_at_msg_seq`). The unread count is derived, never counted:
//! `last_msg_seq − readed_to_msg_seq`, and 0 when the user's own message is the last one. Both
//! write sides (a stored message, the read/delete commands) and the sync query live here.
//!
//! A row holds only what is the user's own. What every member of a channel shares — the last
//! message's seq, client_msg_no and time, and the version derived from it — is read from the
//! channel's message log when a conversation is read ([`fill_from_log`]), so a message to a
//! group of N writes the sender's row and the rows of members who had none, not N rows: those
//! N rewrites were over half a node's CPU under WuKongIM's group workload (bench/RESULTS.md,
//! "conversation rows hold only the user's own state"). Rows written before keep the shared
//! fields they had; they are ignored and overwritten from the log on every read.

use super::*;
use redb::{ReadTransaction, ReadableDatabase, ReadableTable, Table};
use serde::Deserialize;
use std::collections::HashMap;

/// The row layout before `deleted_at_msg_seq` existed (rows written by older versions).
#[derive(Deserialize)]
struct ConversationV1 {
    channel_id: String,
    channel_type: u8,
    unread: u32,
    timestamp: i64,
    last_msg_seq: u64,
    last_client_msg_no: String,
    readed_to_msg_seq: u64,
    version: i64,
}

/// Decodes a conversation row of either layout.
pub(crate) fn decode_conversation(raw: &[u8]) -> Result<Conversation> {
    match postcard::from_bytes::<Conversation>(raw) {
        Ok(c) => Ok(c),
        Err(_) => {
            let c: ConversationV1 = decode("conversations", raw)?;
            Ok(Conversation {
                channel_id: c.channel_id,
                channel_type: c.channel_type,
                unread: c.unread,
                timestamp: c.timestamp,
                last_msg_seq: c.last_msg_seq,
                last_client_msg_no: c.last_client_msg_no,
                readed_to_msg_seq: c.readed_to_msg_seq,
                version: c.version,
                deleted_at_msg_seq: 0,
            })
        }
    }
}

impl Conversation {
    /// Unread messages as WuKongIM counts them.
    pub fn unread_count(&self) -> u64 {
        self.last_msg_seq.saturating_sub(self.readed_to_msg_seq)
    }
}

fn load(t: &Table<(&str, &str), &[u8]>, uid: &str, key: &str) -> Result<Option<Conversation>> {
    let raw = t.get((uid, key))?.map(|g| g.value().to_vec());
    raw.map(|r| decode_conversation(&r)).transpose()
}

fn save(txn: &Tx, uid: &str, c: Conversation) -> Result<()> {
    save_in(&mut txn.open_table(CONVS)?, uid, c)
}

/// [`save`] into the conversations table already open. Only the user's own fields are stored
/// (see the module comment); the shared ones are written empty, so a row's bytes change only
/// when its user's state does.
fn save_in(
    t: &mut digest::Tracked<'_, (&'static str, &'static str), &'static [u8]>,
    uid: &str,
    c: Conversation,
) -> Result<()> {
    let key = conv_key(&c.channel_id, c.channel_type);
    let own = Conversation {
        channel_id: c.channel_id,
        channel_type: c.channel_type,
        readed_to_msg_seq: c.readed_to_msg_seq,
        deleted_at_msg_seq: c.deleted_at_msg_seq,
        ..Default::default()
    };
    t.insert((uid, key.as_str()), to_bytes(&own).as_slice())?;
    Ok(())
}

/// Sets the fields `c` shares with the channel's other members from `uid`'s log of that
/// channel: the last message's seq, client_msg_no and time, and the version (Go's: that time
/// in nanoseconds). All zero while the channel has no stored message.
pub(crate) fn fill_from_log(
    msgs: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    uid: &str,
    c: &mut Conversation,
) -> Result<()> {
    let log = log_key(uid, &c.channel_id, c.channel_type);
    let last = msgs
        .range((log.as_str(), 0)..=(log.as_str(), u64::MAX))?
        .next_back()
        .transpose()?;
    let (seq, client_msg_no, timestamp) = match last {
        Some((k, v)) => {
            let m: Message = decode("messages", v.value())?;
            (k.value().1, m.client_msg_no, m.timestamp as i64)
        }
        None => (0, String::new(), 0),
    };
    c.last_msg_seq = seq;
    c.last_client_msg_no = client_msg_no;
    c.timestamp = timestamp;
    c.version = version_of(timestamp);
    c.unread = c.unread_count().min(u32::MAX as u64) as u32;
    Ok(())
}

/// A stored message gives each recipient without a conversation with the channel a new one,
/// and moves the sender's read position to it; every other member's row stays as it is (the
/// new last message is found in the log when read). The table is opened once for all
/// recipients: opening it per row was a third of this function's time for a 1,000-member group
/// (bench/RESULTS.md, "fan-out profile").
pub(crate) fn on_message(txn: &Tx, msg: &Message, recipients: &[String]) -> Result<()> {
    let mut t = txn.open_table(CONVS)?;
    // Every member sees a group under the same key; a person channel is named after the peer.
    let shared_key =
        (msg.channel_type != CHANNEL_PERSON).then(|| conv_key(&msg.channel_id, msg.channel_type));
    // The recipients of a group message are its subscribers (of its source channel for a
    // command message, whose rows are under another key: not remembered).
    let group = shared_key.is_some() && !msg.channel_id.ends_with(CMD_SUFFIX);
    let seeded = group && txn.seeded().is_seeded(msg.channel_type, &msg.channel_id);
    let todo: &[String] = match seeded {
        true => std::slice::from_ref(&msg.from_uid),
        false => recipients,
    };
    if seeded && !recipients.contains(&msg.from_uid) {
        return Ok(());
    }
    for uid in todo.iter().filter(|u| *u != SYSTEM_UID) {
        let own_key;
        let key = match &shared_key {
            Some(k) => k.as_str(),
            None => {
                own_key = conv_key(&msg.channel_for(uid), msg.channel_type);
                own_key.as_str()
            }
        };
        let sender = *uid == msg.from_uid;
        let existing = match sender {
            true => load(&t, uid, key)?,
            false if t.get((uid.as_str(), key))?.is_some() => continue,
            false => None,
        };
        let mut c = existing.unwrap_or_else(|| Conversation {
            channel_id: msg.channel_for(uid),
            channel_type: msg.channel_type,
            ..Default::default()
        });
        if sender {
            c.readed_to_msg_seq = c.readed_to_msg_seq.max(msg.message_seq);
        }
        save_in(&mut t, uid, c)?;
    }
    if group && !seeded {
        txn.seeded().seed(msg.channel_type, &msg.channel_id);
    }
    Ok(())
}

/// The conversation of `uid` with a channel (a new one when missing), its shared fields read
/// from the channel's log.
fn load_or_new(txn: &Tx, uid: &str, channel_id: &str, ty: u8) -> Result<Conversation> {
    let key = conv_key(channel_id, ty);
    let mut c = load(&*txn.open_table(CONVS)?, uid, &key)?.unwrap_or_else(|| Conversation {
        channel_id: channel_id.to_string(),
        channel_type: ty,
        ..Default::default()
    });
    fill_from_log(&*txn.open_table(MESSAGES)?, uid, &mut c)?;
    Ok(c)
}

/// POST /conversations/setUnread (and clearUnread = unread 0): the read position becomes
/// `last − unread` (`last − 1` when unread exceeds the log), creating the conversation if
/// missing; like Go, a read position never moves backwards.
pub(crate) fn set_unread(txn: &Tx, uid: &str, channel_id: &str, ty: u8, unread: u32) -> Result<()> {
    let mut c = load_or_new(txn, uid, channel_id, ty)?;
    let last = c.last_msg_seq;
    let unread = unread as u64;
    let readed = if unread > last {
        last.saturating_sub(1)
    } else {
        last - unread
    };
    if c.readed_to_msg_seq >= readed {
        return Ok(());
    }
    c.readed_to_msg_seq = readed;
    save(txn, uid, c)
}

/// The conversation `key` of `uid` is read up to `seq` (Go's `syncack` and `recvack` of a
/// sync_once message): never backwards, and a conversation that does not exist stays absent.
pub(crate) fn read_to(txn: &Tx, uid: &str, key: &str, seq: u64) -> Result<()> {
    let Some(mut c) = load(&*txn.open_table(CONVS)?, uid, key)? else {
        return Ok(());
    };
    if seq > c.readed_to_msg_seq {
        c.readed_to_msg_seq = seq;
        save(txn, uid, c)?;
    }
    Ok(())
}

/// POST /conversations/delete: the conversation hides everything up to the channel's current
/// last message and comes back with the next one.
pub(crate) fn delete(txn: &Tx, uid: &str, channel_id: &str, ty: u8) -> Result<()> {
    let mut c = load_or_new(txn, uid, channel_id, ty)?;
    c.deleted_at_msg_seq = c.last_msg_seq;
    save(txn, uid, c)
}

/// Go's conversation version: the last message's time in Unix nanoseconds.
fn version_of(timestamp_secs: i64) -> i64 {
    timestamp_secs.saturating_mul(1_000_000_000)
}

/// A POST /conversation/sync request, as parsed by the API.
#[derive(Debug, Clone, Default)]
pub struct ConversationQuery {
    pub uid: String,
    /// > 0: the client has conversations up to this version; start after the read position.
    pub version: i64,
    /// "type:channel" (as the user sees the channel) → the last seq the client holds.
    pub last_seqs: HashMap<String, u64>,
    pub msg_count: usize,
    pub only_unread: bool,
    pub exclude_types: Vec<u8>,
    /// 1-based page over the user's conversations (newest first); 0 = all.
    pub page: usize,
    pub page_size: usize,
    /// Payload bytes of all `recents` together (`conn.maxSyncBytes`): past it, each further
    /// conversation carries only its newest message (which clients show).
    pub max_bytes: usize,
}

/// A conversation as /conversation/sync returns it.
#[derive(Debug, Clone)]
pub struct ConversationView {
    pub conversation: Conversation,
    /// Derived as Go does (see the module comment).
    pub unread: u64,
    /// Newest first, at most `msg_count`, only messages the client does not have.
    pub recents: Vec<Message>,
}

/// Page size when `page` is given without one, and the largest accepted (Go's numbers).
pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 500;

impl Store {
    /// `q.uid`'s conversations with news for the client, newest first (Go's
    /// `syncUserConversation`): only conversations with at least one message the client lacks,
    /// after the deleted-at position; `msg_count` 0 gives none.
    pub fn conversations(&self, q: &ConversationQuery) -> Result<Vec<ConversationView>> {
        let txn = self.db().begin_read()?;
        let msgs = txn.open_table(MESSAGES)?;
        let mut all = user_conversations(&txn, &q.uid)?;
        for c in &mut all {
            fill_from_log(&msgs, &q.uid, c)?;
        }
        all.sort_by(|a, b| {
            (b.timestamp, &a.channel_id, a.channel_type).cmp(&(
                a.timestamp,
                &b.channel_id,
                b.channel_type,
            ))
        });
        if q.page > 0 {
            let size = match q.page_size {
                0 => DEFAULT_PAGE_SIZE,
                n => n.min(MAX_PAGE_SIZE),
            };
            let start = (q.page - 1).saturating_mul(size);
            all = all.into_iter().skip(start).take(size).collect();
        }
        if q.msg_count == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for c in all {
            let key = conv_key(&c.channel_id, c.channel_type);
            let known = q.last_seqs.get(&key).copied();
            if q.exclude_types.contains(&c.channel_type) && known.is_none() {
                continue;
            }
            if c.channel_type == CHANNEL_PERSON && c.channel_id == SYSTEM_UID {
                continue;
            }
            // Go (conversation.go `syncUserConversation`): command channels are never listed.
            if c.channel_id.ends_with(CMD_SUFFIX) {
                continue;
            }
            // The first seq the client lacks.
            let mut from = match known {
                Some(s) if s > 0 => s + 1,
                _ if q.version > 0 || q.only_unread => c.readed_to_msg_seq + 1,
                _ => 1,
            };
            if c.deleted_at_msg_seq > 0 && c.deleted_at_msg_seq >= from {
                from = c.deleted_at_msg_seq + 1;
            }
            if known.is_some_and(|s| s >= c.last_msg_seq) || from > c.last_msg_seq {
                continue;
            }
            let log = log_key(&q.uid, &c.channel_id, c.channel_type);
            let mut recents = Vec::new();
            for item in msgs
                .range((log.as_str(), from)..=(log.as_str(), c.last_msg_seq))?
                .rev()
            {
                if recents.len() == q.msg_count {
                    break;
                }
                let m = decode::<Message>("messages", item?.1.value())?;
                bytes += m.payload.len();
                if !recents.is_empty() && bytes > q.max_bytes {
                    break;
                }
                recents.push(m);
            }
            if recents.is_empty() {
                continue;
            }
            let mut c = c;
            if recents[0].from_uid == q.uid {
                c.readed_to_msg_seq = c.last_msg_seq;
            }
            out.push(ConversationView {
                unread: c.unread_count(),
                conversation: c,
                recents,
            });
        }
        Ok(out)
    }
}

/// `uid`'s conversation rows as stored: the shared fields are not filled (see
/// [`fill_from_log`]).
pub(crate) fn user_conversations(txn: &ReadTransaction, uid: &str) -> Result<Vec<Conversation>> {
    let convs = txn.open_table(CONVS)?;
    let upper = format!("{uid}\u{0}");
    let mut out = Vec::new();
    for item in convs.range((uid, "")..(upper.as_str(), ""))? {
        let (k, v) = item?;
        if k.value().0 == uid {
            out.push(decode_conversation(v.value())?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_send(n: u64) -> Command {
        Command::Send(SendCmd {
            from_uid: "ann".into(),
            from_device: String::new(),
            channel_id: "g1".into(),
            channel_type: 2,
            client_msg_no: format!("m{n}"),
            setting: 0,
            header: Header::default(),
            expire: 0,
            topic: None,
            stream_no: String::new(),
            payload: vec![1; 8],
            timestamp: 1_700_000_000 + n as i32,
            trusted: true,
        })
    }

    fn row(store: &Store, uid: &str) -> Option<Vec<u8>> {
        let txn = store.read_txn().unwrap();
        let t = txn.open_table(CONVS).unwrap();
        t.get((uid, "2:g1")).unwrap().map(|g| g.value().to_vec())
    }

    /// A group message writes the sender's row and creates missing ones, but leaves the other
    /// members' rows alone; their conversations still show the newest message, read from the log.
    #[test]
    fn members_rows_are_written_once_and_read_the_last_message_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let members = ["ann", "bob", "cy"].map(String::from).to_vec();
        let channel = Command::UpsertChannel {
            channel_id: "g1".into(),
            channel_type: 2,
            large: false,
            ban: false,
            disband: false,
            subscribers: members,
            reset: false,
        };
        let apply = |i: u64, cmds: Vec<Command>| {
            store
                .apply_entries(&[Some(Batch::numbered(i, cmds))], &[])
                .unwrap()
        };
        apply(1, vec![channel, group_send(1)]);
        let bob_row = row(&store, "bob").expect("bob's conversation is created");
        let ann_row = row(&store, "ann").unwrap();
        apply(2, vec![group_send(2), group_send(3)]);
        assert_eq!(
            row(&store, "bob"),
            Some(bob_row),
            "bob's row is not rewritten"
        );
        assert_ne!(
            row(&store, "ann"),
            Some(ann_row),
            "the sender's read position moves"
        );

        let query = |uid: &str| ConversationQuery {
            uid: uid.into(),
            msg_count: 1,
            max_bytes: 1 << 20,
            ..Default::default()
        };
        let bob = store.conversations(&query("bob")).unwrap();
        let c = &bob[0].conversation;
        assert_eq!(
            (
                bob.len(),
                c.last_msg_seq,
                c.last_client_msg_no.as_str(),
                bob[0].unread
            ),
            (1, 3, "m3", 3)
        );
        assert_eq!(c.timestamp, 1_700_000_003);
        assert_eq!(c.version, 1_700_000_003 * 1_000_000_000);
        assert_eq!(bob[0].recents[0].message_seq, 3);
        let ann = store.conversations(&query("ann")).unwrap();
        assert_eq!(
            (ann[0].conversation.readed_to_msg_seq, ann[0].unread),
            (3, 0)
        );

        // A member who joins after the channel's rows were all there gets hers with the next
        // message (the remembered "every member has a row" is forgotten when members change).
        let join = Command::AddSubscribers {
            channel_id: "g1".into(),
            channel_type: 2,
            subscribers: vec!["dee".into()],
            reset: false,
        };
        apply(3, vec![join]);
        assert_eq!(row(&store, "dee"), None);
        apply(4, vec![group_send(4)]);
        assert!(
            row(&store, "dee").is_some(),
            "dee's conversation is created"
        );
        let dee = store.conversations(&query("dee")).unwrap();
        assert_eq!((dee[0].conversation.last_msg_seq, dee[0].unread), (4, 4));
    }

    #[test]
    fn rows_of_the_old_layout_still_decode() {
        #[derive(serde::Serialize)]
        struct Old<'a>(&'a str, u8, u32, i64, u64, &'a str, u64, i64);
        let raw = to_bytes(&Old("sam", 1, 2, 1_700_000_000, 5, "c5", 3, 9));
        let c = decode_conversation(&raw).unwrap();
        assert_eq!(
            (
                c.channel_id.as_str(),
                c.last_msg_seq,
                c.readed_to_msg_seq,
                c.deleted_at_msg_seq
            ),
            ("sam", 5, 3, 0)
        );
        assert_eq!(c.unread_count(), 2);
        let new = Conversation {
            deleted_at_msg_seq: 4,
            ..c
        };
        assert_eq!(decode_conversation(&to_bytes(&new)).unwrap(), new);
    }
}
