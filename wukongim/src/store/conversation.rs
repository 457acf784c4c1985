//! Conversations as WuKongIM keeps them (Go v2.2, `internal/api/conversation.go`): one row per
//! user and channel holding how far the user has read (`readed_to_msg_seq`) and from where the
//! conversation was deleted (`deleted_at_msg_seq`). The unread count is derived, never counted:
//! `last_msg_seq − readed_to_msg_seq`, and 0 when the user's own message is the last one. Both
//! write sides (a stored message, the read/delete commands) and the sync query live here.

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

/// [`save`] into the conversations table already open.
fn save_in(
    t: &mut digest::Tracked<'_, (&'static str, &'static str), &'static [u8]>,
    uid: &str,
    mut c: Conversation,
) -> Result<()> {
    c.unread = c.unread_count().min(u32::MAX as u64) as u32;
    let key = conv_key(&c.channel_id, c.channel_type);
    t.insert((uid, key.as_str()), to_bytes(&c).as_slice())?;
    Ok(())
}

/// A stored message moves every recipient's conversation forward; the sender has read it.
/// The table is opened once for all recipients: opening it per row was a third of this
/// function's time for a 1,000-member group (bench/RESULTS.md, "fan-out profile").
pub(crate) fn on_message(txn: &Tx, msg: &Message, recipients: &[String]) -> Result<()> {
    let mut t = txn.open_table(CONVS)?;
    for uid in recipients.iter().filter(|u| *u != SYSTEM_UID) {
        let channel_id = msg.channel_for(uid);
        let key = conv_key(&channel_id, msg.channel_type);
        let existing = load(&t, uid, &key)?;
        let mut c = existing.unwrap_or_else(|| Conversation {
            channel_id,
            channel_type: msg.channel_type,
            ..Default::default()
        });
        c.last_msg_seq = msg.message_seq;
        c.last_client_msg_no = msg.client_msg_no.clone();
        c.timestamp = msg.timestamp as i64;
        if *uid == msg.from_uid {
            c.readed_to_msg_seq = msg.message_seq;
        }
        c.version = version_of(msg.timestamp as i64);
        save_in(&mut t, uid, c)?;
    }
    Ok(())
}

/// The conversation of `uid` with a channel, created from the channel's log when missing.
fn load_or_new(txn: &Tx, uid: &str, channel_id: &str, ty: u8) -> Result<Conversation> {
    let key = conv_key(channel_id, ty);
    if let Some(c) = load(&*txn.open_table(CONVS)?, uid, &key)? {
        return Ok(c);
    }
    let log = log_key(uid, channel_id, ty);
    let last = txn
        .open_table(SEQS)?
        .get(log.as_str())?
        .map(|g| g.value())
        .unwrap_or(0);
    let mut c = Conversation {
        channel_id: channel_id.to_string(),
        channel_type: ty,
        last_msg_seq: last,
        ..Default::default()
    };
    if last > 0 {
        let raw = txn
            .open_table(MESSAGES)?
            .get((log.as_str(), last))?
            .map(|g| g.value().to_vec());
        if let Some(raw) = raw {
            let m: Message = decode("messages", &raw)?;
            c.last_client_msg_no = m.client_msg_no;
            c.timestamp = m.timestamp as i64;
            c.version = version_of(c.timestamp);
        }
    }
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
        let mut all = user_conversations(&txn, &q.uid)?;
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
        let msgs = txn.open_table(MESSAGES)?;
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
