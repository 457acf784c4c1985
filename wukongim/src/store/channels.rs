//! Channel records and uid lists: reading a `CHANNELS` row of either layout (rows written before
//! `send_ban`/`allow_stranger` existed end after `subscribers`), and the `LISTS` table — one
//! key per (list, channel type, channel id, uid) — with the edits the black-, white- and
//! system-uid routes make (Go: `pkg/wkdb/denylist.go`, `allowlist.go`, `systemuid.go`).

use super::*;
use redb::{ReadTransaction, ReadableTable};
use serde::Deserialize;

/// A `CHANNELS` value as written before `send_ban` and `allow_stranger` were added.
#[derive(Deserialize)]
struct ChannelInfoV1 {
    large: bool,
    ban: bool,
    disband: bool,
    subscribers: Vec<String>,
}

/// `LISTS` opened for writing.
type ListTable<'t> = super::digest::Tracked<'t, (u8, u8, &'static str, &'static str), ()>;

/// Decodes a `CHANNELS` value of the current layout or the one before it.
pub(crate) fn decode_channel(raw: &[u8]) -> Result<ChannelInfo> {
    if let Ok(c) = postcard::from_bytes::<ChannelInfo>(raw) {
        return Ok(c);
    }
    let v1: ChannelInfoV1 = decode("channels", raw)?;
    Ok(ChannelInfo {
        large: v1.large,
        ban: v1.ban,
        disband: v1.disband,
        subscribers: v1.subscribers,
        ..ChannelInfo::default()
    })
}

/// A channel's record, read inside the apply transaction.
pub(crate) fn load(txn: &Tx, ty: u8, id: &str) -> Result<Option<ChannelInfo>> {
    let t = txn.open_table(CHANNELS)?;
    let v = t.get((ty, id))?;
    v.map(|g| decode_channel(g.value())).transpose()
}

/// The list's tag in `LISTS` keys (and snapshot rows).
pub(crate) fn list_tag(list: UidList) -> u8 {
    match list {
        UidList::Deny => 1,
        UidList::Allow => 2,
        UidList::System => 3,
    }
}

/// Where a list lives: system uids are one global list.
fn list_key(list: UidList, channel_type: u8, channel_id: &str) -> (u8, u8, &str) {
    match list {
        UidList::System => (list_tag(list), 0, ""),
        _ => (list_tag(list), channel_type, channel_id),
    }
}

/// Applies one list edit inside the apply transaction. Empty uids are ignored.
pub(crate) fn edit(
    txn: &Tx,
    list: UidList,
    channel_type: u8,
    channel_id: &str,
    change: &ListEdit,
) -> Result<()> {
    let (tag, ty, id) = list_key(list, channel_type, channel_id);
    let mut t = txn.open_table(LISTS)?;
    let add = |t: &mut ListTable, uids: &[String]| -> Result<()> {
        for uid in uids.iter().filter(|u| !u.is_empty()) {
            t.insert((tag, ty, id, uid.as_str()), ())?;
        }
        Ok(())
    };
    match change {
        ListEdit::Add(uids) => add(&mut t, uids)?,
        ListEdit::Set(uids) => {
            clear(&mut t, tag, ty, id)?;
            add(&mut t, uids)?;
        }
        ListEdit::Remove(uids) => {
            for uid in uids {
                t.remove((tag, ty, id, uid.as_str()))?;
            }
        }
        ListEdit::Clear => clear(&mut t, tag, ty, id)?,
    }
    drop(t);
    if let (UidList::Deny, ListEdit::Add(uids) | ListEdit::Set(uids)) = (list, change) {
        hide_conversations(txn, ty, id, uids)?;
    }
    Ok(())
}

/// Go (channel.go `blacklistAdd`, `blacklistSet`): a blacklisted user's conversation with the
/// channel is deleted (live channels, type 9, keep none). Ours is hidden up to its last message,
/// as POST /conversations/delete does; users without one get none.
fn hide_conversations(txn: &Tx, ty: u8, id: &str, uids: &[String]) -> Result<()> {
    const CHANNEL_LIVE: u8 = 9;
    if ty == CHANNEL_LIVE {
        return Ok(());
    }
    let key = conv_key(id, ty);
    for uid in uids {
        let exists = txn
            .open_table(CONVS)?
            .get((uid.as_str(), key.as_str()))?
            .is_some();
        if exists {
            conversation::delete(txn, uid, id, ty)?;
        }
    }
    Ok(())
}

fn clear(t: &mut ListTable, tag: u8, ty: u8, id: &str) -> Result<()> {
    let uids = members_of(&**t, tag, ty, id)?;
    for uid in &uids {
        t.remove((tag, ty, id, uid.as_str()))?;
    }
    Ok(())
}

/// The uids of one list, in uid order.
fn members_of(
    t: &impl ReadableTable<(u8, u8, &'static str, &'static str), ()>,
    tag: u8,
    ty: u8,
    id: &str,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for item in t.range((tag, ty, id, "")..)? {
        let (k, _) = item?;
        let (t2, ty2, id2, uid) = k.value();
        if (t2, ty2, id2) != (tag, ty, id) {
            break;
        }
        out.push(uid.to_string());
    }
    Ok(out)
}

/// Whether `uid` is on the list (read inside the apply transaction).
pub(crate) fn contains(
    txn: &Tx,
    list: UidList,
    channel_type: u8,
    channel_id: &str,
    uid: &str,
) -> Result<bool> {
    let (tag, ty, id) = list_key(list, channel_type, channel_id);
    Ok(txn.open_table(LISTS)?.get((tag, ty, id, uid))?.is_some())
}

/// Whether the list has any uid (read inside the apply transaction).
pub(crate) fn is_empty(
    txn: &Tx,
    list: UidList,
    channel_type: u8,
    channel_id: &str,
) -> Result<bool> {
    let (tag, ty, id) = list_key(list, channel_type, channel_id);
    let t = txn.open_table(LISTS)?;
    let first = t.range((tag, ty, id, "")..)?.next().transpose()?;
    Ok(match first {
        Some((k, _)) => {
            let (t2, ty2, id2, _) = k.value();
            (t2, ty2, id2) != (tag, ty, id)
        }
        None => true,
    })
}

/// A system uid: Go's built-in `____system` or one added through /user/systemuids_add.
pub(crate) fn is_system(txn: &Tx, uid: &str) -> Result<bool> {
    Ok(uid == SYSTEM_UID || contains(txn, UidList::System, 0, "", uid)?)
}

fn read_members(txn: &ReadTransaction, list: UidList, ty: u8, id: &str) -> Result<Vec<String>> {
    let (tag, ty, id) = list_key(list, ty, id);
    members_of(&txn.open_table(LISTS)?, tag, ty, id)
}

impl Store {
    /// The uids of a channel's black- or whitelist (or of the system-uid list), in uid order.
    pub fn uid_list(
        &self,
        list: UidList,
        channel_type: u8,
        channel_id: &str,
    ) -> Result<Vec<String>> {
        read_members(&self.read_txn()?, list, channel_type, channel_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_rows_of_the_older_layout_are_read() {
        #[derive(serde::Serialize)]
        struct V1<'a>(bool, bool, bool, &'a [&'a str]);
        let old = to_bytes(&V1(true, false, true, &["a", "b"]));
        let c = decode_channel(&old).unwrap();
        assert_eq!(
            c,
            ChannelInfo {
                large: true,
                disband: true,
                subscribers: vec!["a".into(), "b".into()],
                ..Default::default()
            }
        );
        let new = ChannelInfo {
            send_ban: true,
            allow_stranger: true,
            ..c.clone()
        };
        assert_eq!(decode_channel(&to_bytes(&new)).unwrap(), new);
        assert!(decode_channel(&[0xff]).is_err());
    }
}
