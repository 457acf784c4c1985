//! Command messages as the Go server keeps them (v2.2: `internal/api/message.go` `send`,
//! `sendMessageToChannel`, `sync`, `syncack`; the cmd-channel helpers of
//! `internal/options/options.go`). An HTTP send with `header.sync_once = 1` is stored in the
//! channel's command channel (its id plus `____cmd`; a person pair's channel plus the suffix),
//! with its own seqs, delivered live to the source channel's subscribers and never listed by
//! /conversation/sync. Each recipient holds a conversation with the command channel whose read
//! position says what was acknowledged. `/message/sync` returns what follows it and records,
//! per command channel, the last seq returned (Go keeps that record in the memory of the node
//! serving the user; here it is replicated, so `/message/syncack` on any node applies it).

use super::*;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

/// Go's `ChannelTypeTemp`: the channel a `subscribers` send goes through.
pub const CHANNEL_TEMP: u8 = 8;

/// Per user, per command conversation (`type:channel` as the user sees it): the last seq the
/// latest /message/sync returned, until /message/syncack applies it.
pub(crate) const CMD_SYNC: TableDefinition<(&str, &str), u64> = TableDefinition::new("cmd_sync");

/// One command channel in a /message/sync record: the channel as the user sees it and the last
/// seq returned from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmdRecord {
    pub channel_id: String,
    pub channel_type: u8,
    pub message_seq: u64,
}

/// The channel an HTTP send is stored in (Go's `sendMessageToChannel`): a sync_once message
/// goes to the command channel of `channel_id`, except in a temporary channel (already a
/// command channel) and when the id already ends in the suffix (`OrginalConvertCmdChannel`).
/// Client SENDs are never converted (Go's `handleOnSend` does not).
pub fn cmd_channel_for_send(channel_id: &str, channel_type: u8, header: &Header) -> String {
    if header.sync_once && channel_type != CHANNEL_TEMP && !channel_id.ends_with(CMD_SUFFIX) {
        format!("{channel_id}{CMD_SUFFIX}")
    } else {
        channel_id.to_string()
    }
}

/// The channel whose subscribers receive a message sent to `channel_id` (Go's
/// `getCmdSubscribers`): a command channel's source channel. A temporary channel's subscribers
/// are set on the command-named channel itself.
pub fn source_channel(channel_id: &str, channel_type: u8) -> &str {
    if channel_type == CHANNEL_TEMP {
        return channel_id;
    }
    channel_id.strip_suffix(CMD_SUFFIX).unwrap_or(channel_id)
}

impl Message {
    /// Whether this message was converted into a command channel by an HTTP sync_once send.
    fn converted_to_cmd(&self) -> bool {
        self.header.sync_once
            && self.channel_type != CHANNEL_TEMP
            && self.channel_id.ends_with(CMD_SUFFIX)
    }

    /// The channel id a RECV to `uid` carries: as [`Message::channel_for`], but the source
    /// channel for a converted command message (Go's RECV carries the channel the sender
    /// addressed, not the command channel it is stored in).
    pub fn recv_channel_for(&self, uid: &str) -> String {
        let id = self.channel_for(uid);
        match id.strip_suffix(CMD_SUFFIX) {
            Some(source) if self.converted_to_cmd() => source.to_string(),
            _ => id,
        }
    }
}

/// What /message/sync returns to a user, and whether its record changes.
#[derive(Debug, Clone, Default)]
pub struct CmdPage {
    /// Unacknowledged messages, command channel by channel, ascending seq in each.
    pub messages: Vec<Message>,
    /// The last seq returned per command channel.
    pub records: Vec<CmdRecord>,
    /// The stored record already equals `records` (nothing to propose).
    pub unchanged: bool,
}

impl Store {
    /// `uid`'s command messages after each command conversation's read position, at most
    /// `limit` in all (Go's `sync`: each conversation in turn until the limit is reached).
    pub fn cmd_sync(&self, uid: &str, limit: usize) -> Result<CmdPage> {
        let txn = self.db().begin_read()?;
        let msgs = txn.open_table(MESSAGES)?;
        let mut page = CmdPage::default();
        for c in conversation::user_conversations(&txn, uid)? {
            if page.messages.len() >= limit {
                break;
            }
            if !c.channel_id.ends_with(CMD_SUFFIX) {
                continue;
            }
            let log = log_key(uid, &c.channel_id, c.channel_type);
            let from = c.readed_to_msg_seq.saturating_add(1);
            let mut last = 0;
            for item in msgs.range((log.as_str(), from)..=(log.as_str(), u64::MAX))? {
                if page.messages.len() >= limit {
                    break;
                }
                let m: Message = decode("messages", item?.1.value())?;
                last = m.message_seq;
                page.messages.push(m);
            }
            if last > 0 {
                page.records.push(CmdRecord {
                    channel_id: c.channel_id,
                    channel_type: c.channel_type,
                    message_seq: last,
                });
            }
        }
        let stored = records_of(&txn.open_table(CMD_SYNC)?, uid)?;
        let mut fresh: Vec<(String, u64)> = page
            .records
            .iter()
            .map(|r| (conv_key(&r.channel_id, r.channel_type), r.message_seq))
            .collect();
        fresh.sort();
        page.unchanged = stored == fresh;
        Ok(page)
    }
}

/// The stored record of `uid`: (conversation key, seq) in key order.
fn records_of(
    t: &impl ReadableTable<(&'static str, &'static str), u64>,
    uid: &str,
) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for item in t.range((uid, "")..)? {
        let (k, v) = item?;
        let (u, key) = k.value();
        if u != uid {
            break;
        }
        out.push((key.to_string(), v.value()));
    }
    Ok(out)
}

/// [`Command::CmdSyncRecord`]: `records` replace what `uid`'s previous sync recorded.
pub(crate) fn record(txn: &Tx, uid: &str, records: &[CmdRecord]) -> Result<()> {
    let mut t = txn.open_table(CMD_SYNC)?;
    for (key, _) in records_of(&*t, uid)? {
        t.remove((uid, key.as_str()))?;
    }
    for r in records {
        let key = conv_key(&r.channel_id, r.channel_type);
        t.insert((uid, key.as_str()), r.message_seq)?;
    }
    Ok(())
}

/// [`Command::CmdSyncAck`] (Go's `syncack`): each recorded command conversation of `uid` is
/// read up to its recorded seq (never backwards; a missing conversation is skipped), and the
/// record is cleared.
pub(crate) fn ack(txn: &Tx, uid: &str) -> Result<()> {
    let recorded = records_of(&*txn.open_table(CMD_SYNC)?, uid)?;
    for (key, seq) in &recorded {
        conversation::read_to(txn, uid, key, *seq)?;
    }
    let mut t = txn.open_table(CMD_SYNC)?;
    for (key, _) in &recorded {
        t.remove((uid, key.as_str()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(sync_once: bool) -> Header {
        Header {
            sync_once,
            ..Header::default()
        }
    }

    #[test]
    fn only_http_sync_once_sends_outside_temp_channels_are_converted() {
        assert_eq!(cmd_channel_for_send("g1", 2, &header(true)), "g1____cmd");
        assert_eq!(cmd_channel_for_send("g1", 2, &header(false)), "g1");
        assert_eq!(
            cmd_channel_for_send("g1____cmd", 2, &header(true)),
            "g1____cmd"
        );
        assert_eq!(
            cmd_channel_for_send("7____cmd", 8, &header(true)),
            "7____cmd"
        );
        assert_eq!(source_channel("g1____cmd", 2), "g1");
        assert_eq!(source_channel("7____cmd", 8), "7____cmd");
    }

    #[test]
    fn person_command_channels_are_one_log_per_pair() {
        assert_eq!(log_key("a", "b____cmd", 1), log_key("b", "a____cmd", 1));
        assert_eq!(
            log_key("a", "b____cmd", 1),
            format!("{}____cmd", log_key("a", "b", 1))
        );
        assert_ne!(log_key("a", "b____cmd", 1), log_key("a", "b", 1));
        assert_eq!(log_key("", "g1____cmd", 2), "2:g1____cmd");
    }

    fn apply(store: &Store, seq: u64, cmds: Vec<Command>) {
        let batch = Batch::numbered(seq, cmds);
        let applied = store.apply_entries(&[Some(batch)], &[]).unwrap();
        assert_eq!(applied[0].verdict, Verdict::Applied);
    }

    fn send(to: &str) -> Command {
        Command::Send(SendCmd {
            from_uid: "a".into(),
            from_device: String::new(),
            channel_id: cmd_channel_for_send(to, CHANNEL_PERSON, &header(true)),
            channel_type: CHANNEL_PERSON,
            client_msg_no: String::new(),
            setting: 0,
            header: header(true),
            expire: 0,
            topic: None,
            stream_no: String::new(),
            payload: vec![7],
            timestamp: 1,
            trusted: true,
        })
    }

    /// The sync record is replicated state: it travels in the rows (snapshots, data version),
    /// and an ack applied to a copy made from those rows clears it there.
    #[test]
    fn records_travel_in_the_rows_and_an_ack_applies_them() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (src, copy) = (
            Store::open(d1.path()).unwrap(),
            Store::open(d2.path()).unwrap(),
        );
        apply(&src, 1, vec![send("b"), send("b")]);
        let page = src.cmd_sync("b", 1).unwrap();
        assert_eq!(page.messages.len(), 1);
        assert!(!page.unchanged);
        let (uid, records) = ("b".to_string(), page.records.clone());
        assert_eq!(records[0].channel_id, "a____cmd");
        apply(&src, 2, vec![Command::CmdSyncRecord { uid, records }]);
        assert!(src.cmd_sync("b", 1).unwrap().unchanged);

        let txn = src.read_txn().unwrap();
        copy.replace_state(|sink: &mut dyn FnMut(Row) -> Result<()>| {
            walk_rows(&txn, &mut |row| {
                sink(row.clone()).map_err(|e| std::io::Error::other(e.to_string()))
            })?;
            Ok(((), Vec::new()))
        })
        .unwrap();
        assert_eq!(
            version_in(&txn).unwrap(),
            version_in(&copy.read_txn().unwrap()).unwrap()
        );
        assert!(copy.cmd_sync("b", 1).unwrap().unchanged);
        apply(&copy, 3, vec![Command::CmdSyncAck { uid: "b".into() }]);
        let after = copy.cmd_sync("b", 10).unwrap();
        assert_eq!(
            after
                .messages
                .iter()
                .map(|m| m.message_seq)
                .collect::<Vec<_>>(),
            [2]
        );
        // The sender has read its own messages.
        assert!(copy.cmd_sync("a", 10).unwrap().messages.is_empty());
    }

    #[test]
    fn recv_names_the_source_channel_of_a_converted_message() {
        let m = Message {
            message_id: 1,
            message_seq: 1,
            client_msg_no: String::new(),
            from_uid: "a".into(),
            channel_id: "b____cmd".into(),
            channel_type: 1,
            setting: 0,
            header: header(true),
            expire: 0,
            timestamp: 0,
            topic: None,
            stream_no: String::new(),
            payload: vec![1],
        };
        assert_eq!(m.channel_for("b"), "a____cmd");
        assert_eq!(m.channel_for("a"), "b____cmd");
        assert_eq!(m.recv_channel_for("b"), "a");
        assert_eq!(m.recv_channel_for("a"), "b");
        let temp = Message {
            channel_id: "7____cmd".into(),
            channel_type: CHANNEL_TEMP,
            ..m
        };
        assert_eq!(temp.recv_channel_for("b"), "7____cmd");
    }
}
