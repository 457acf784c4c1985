//! Point look-ups in one channel's message log for the message routes apps use (GET
//! /channel/last_message, GET /message/byclientmsgno, POST /messages): newest message, and
//! messages by seq, by message id and by client_msg_no. Ids and client numbers are found by
//! walking the log newest first (the log has no index on them; Go's handler also searches one
//! channel), stopping at the first match.

use super::*;
use redb::ReadableDatabase;

impl Store {
    /// The newest stored message of `log` (None = empty log).
    pub fn last_message(&self, log: &str) -> Result<Option<Message>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(MESSAGES)?;
        let mut range = t.range((log, 1)..=(log, u64::MAX))?;
        match range.next_back() {
            Some(item) => {
                let (_, v) = item?;
                Ok(Some(decode("messages", v.value())?))
            }
            None => Ok(None),
        }
    }

    /// The newest message of `log` matching `pred`.
    pub fn find_message(
        &self,
        log: &str,
        mut pred: impl FnMut(&Message) -> bool,
    ) -> Result<Option<Message>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(MESSAGES)?;
        for item in t.range((log, 1)..=(log, u64::MAX))?.rev() {
            let (_, v) = item?;
            let m: Message = decode("messages", v.value())?;
            if pred(&m) {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// Messages of `log` by seq, then by message id, then by client_msg_no, in the order asked;
    /// ones not found are left out (Go's `searchMessages`). One walk of the log serves every id
    /// and client number asked.
    pub fn messages_by(
        &self,
        log: &str,
        seqs: &[u64],
        ids: &[i64],
        client_msg_nos: &[String],
    ) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        for &seq in seqs {
            if seq > 0 {
                out.extend(self.message(log, seq)?);
            }
        }
        if ids.is_empty() && client_msg_nos.is_empty() {
            return Ok(out);
        }
        let mut by_id: Vec<Option<Message>> = vec![None; ids.len()];
        let mut by_no: Vec<Option<Message>> = vec![None; client_msg_nos.len()];
        let mut missing = ids.len() + client_msg_nos.iter().filter(|n| !n.is_empty()).count();
        let txn = self.db().begin_read()?;
        let t = txn.open_table(MESSAGES)?;
        for item in t.range((log, 1)..=(log, u64::MAX))?.rev() {
            if missing == 0 {
                break;
            }
            let (_, v) = item?;
            let m: Message = decode("messages", v.value())?;
            for (i, id) in ids.iter().enumerate() {
                if by_id[i].is_none() && m.message_id == *id {
                    by_id[i] = Some(m.clone());
                    missing -= 1;
                }
            }
            for (i, no) in client_msg_nos.iter().enumerate() {
                if by_no[i].is_none() && !no.is_empty() && m.client_msg_no == *no {
                    by_no[i] = Some(m.clone());
                    missing -= 1;
                }
            }
        }
        out.extend(by_id.into_iter().flatten());
        out.extend(by_no.into_iter().flatten());
        Ok(out)
    }
}
