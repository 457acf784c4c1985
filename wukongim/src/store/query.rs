//! The state machine's read side: everything the gateway and the HTTP API look up. Reads use
//! redb read transactions, so they never wait for a writer.

use super::*;
use redb::{ReadTransaction, ReadableDatabase, ReadableTableMetadata};

/// A message page request (POST /channel/messagesync).
#[derive(Debug, Clone, Copy)]
pub struct SyncRange {
    /// Inclusive start (0 = newest when pulling down, 1 when pulling up).
    pub start: u64,
    /// Exclusive end (0 = open).
    pub end: u64,
    pub limit: usize,
    /// false = down (older), true = up (newer).
    pub pull_up: bool,
    /// Payload bytes per page: the page stops before the message that would pass it (at
    /// least one message is returned) and says `more`.
    pub max_bytes: usize,
}

impl Store {
    fn read(&self) -> Result<ReadTransaction> {
        Ok(self.db().begin_read()?)
    }

    /// The token registered for `uid` on `device_flag`.
    pub fn token(&self, uid: &str, device_flag: u8) -> Result<Option<UserToken>> {
        let t = self.read()?.open_table(TOKENS)?;
        let v = t.get((uid, device_flag))?;
        v.map(|g| decode("tokens", g.value())).transpose()
    }

    /// Raft index up to which the webhook events were posted (0 = none yet).
    pub fn webhook_cursor(&self) -> Result<u64> {
        let t = self.read()?.open_table(META)?;
        let v = t.get(WEBHOOK_CURSOR)?.map(|g| g.value()).unwrap_or(0);
        Ok(v)
    }

    /// Channel settings and subscribers.
    pub fn channel(&self, channel_type: u8, channel_id: &str) -> Result<Option<ChannelInfo>> {
        let t = self.read()?.open_table(CHANNELS)?;
        let v = t.get((channel_type, channel_id))?;
        v.map(|g| channels::decode_channel(g.value())).transpose()
    }

    /// Highest stored messageSeq of a channel log (0 = none).
    pub fn last_seq(&self, log: &str) -> Result<u64> {
        let t = self.read()?.open_table(SEQS)?;
        let v = t.get(log)?.map(|g| g.value()).unwrap_or(0);
        Ok(v)
    }

    /// A page of one channel's messages in ascending seq order, and whether more exist beyond it
    /// in the pull direction.
    pub fn messages(&self, log: &str, r: SyncRange) -> Result<(Vec<Message>, bool)> {
        let txn = self.read()?;
        let t = txn.open_table(MESSAGES)?;
        let limit = r.limit.clamp(1, 10_000);
        let mut out: Vec<Message> = Vec::new();
        let mut more = false;
        let mut bytes = 0usize;
        // True when `m` may join the page; false = the page is full.
        let mut fits = |out: &Vec<Message>, m: &Message| {
            bytes += m.payload.len();
            out.is_empty() || (out.len() < limit && bytes <= r.max_bytes)
        };
        if r.pull_up {
            let lo = r.start.max(1);
            let hi = if r.end == 0 { u64::MAX } else { r.end };
            if lo < hi {
                for item in t.range((log, lo)..(log, hi))? {
                    let (_, v) = item?;
                    let m: Message = decode("messages", v.value())?;
                    if !fits(&out, &m) {
                        more = true;
                        break;
                    }
                    out.push(m);
                }
            }
        } else {
            let top = if r.start == 0 { u64::MAX - 1 } else { r.start };
            let lo = if r.end == 0 {
                1
            } else {
                r.end.saturating_add(1)
            };
            if lo <= top {
                for item in t.range((log, lo)..=(log, top))?.rev() {
                    let (_, v) = item?;
                    let m: Message = decode("messages", v.value())?;
                    if !fits(&out, &m) {
                        more = true;
                        break;
                    }
                    out.push(m);
                }
            }
            out.reverse();
        }
        Ok((out, more))
    }

    /// One message by channel log and seq.
    pub fn message(&self, log: &str, seq: u64) -> Result<Option<Message>> {
        let t = self.read()?.open_table(MESSAGES)?;
        let v = t.get((log, seq))?;
        v.map(|g| decode("messages", g.value())).transpose()
    }

    /// The message a send of `from_uid` with `client_msg_no` stored in `log` (through the
    /// (sender, clientMsgNo) dedup record), if it was stored.
    pub fn sent_message(
        &self,
        from_uid: &str,
        client_msg_no: &str,
        log: &str,
    ) -> Result<Option<Message>> {
        if client_msg_no.is_empty() {
            return Ok(None);
        }
        let raw = {
            let t = self.read()?.open_table(DEDUP)?;
            let v = t.get((from_uid, client_msg_no))?;
            v.map(|g| g.value().to_vec())
        };
        let Some(raw) = raw else {
            return Ok(None);
        };
        let (_, seq): (i64, u64) = decode("dedup", &raw)?;
        self.message(log, seq)
    }

    /// Counters for /varz: (messages stored, channels, users with tokens).
    pub fn counts(&self) -> Result<(u64, u64, u64)> {
        let txn = self.read()?;
        let m = txn
            .open_table(META)?
            .get("message_id")?
            .map(|g| g.value())
            .unwrap_or(0);
        let c = txn.open_table(CHANNELS)?.len()?;
        let u = txn.open_table(TOKENS)?.len()?;
        Ok((m, c, u))
    }
}
