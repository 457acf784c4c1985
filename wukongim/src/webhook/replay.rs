//! Refilling the feed when a node starts: the messages of the Raft entries it applied before the
//! restart but after the replicated webhook cursor (the last index whose events were posted) are
//! read back from the log it still holds and from the stored messages, so that the node, should
//! it lead, posts them instead of passing over them.
//!
//! A message is found through its (sender, clientMsgNo) record, as the write path stores it;
//! sends without a clientMsgNo, `no_persist` sends and sends that were refused are not stored
//! that way and are not replayed. Recipients are the channel's subscribers now (the set at apply
//! time is not kept). Entries the log no longer holds (purged behind a snapshot) cannot be read:
//! that range stays a gap, which the leader reports (`wukongim_webhook_gaps_total`).

use super::feed::Feed;
use crate::cluster::log_store::batches_in;
use crate::store::{log_key, Command, Delivery, Store, CHANNEL_PERSON};
use std::collections::HashSet;

/// Refills `feed` with the messages of the entries in (`cursor`, `applied`]; returns how many.
pub fn refill(store: &Store, feed: &Feed, cursor: u64, applied: u64) -> anyhow::Result<usize> {
    if applied <= cursor {
        return Ok(0);
    }
    let first = store.log_first_index()?.unwrap_or(applied + 1);
    let lo = first.max(cursor + 1);
    if lo > cursor + 1 {
        // Entries (cursor, lo) were purged: applied here, never to be read again.
        feed.mark_gap(lo - 1);
    }
    let mut seen = HashSet::new();
    let mut count = 0;
    for (index, batch) in batches_in(store, lo, applied + 1)? {
        let mut deliveries = Vec::new();
        for cmd in &batch.cmds {
            let Command::Send(s) = cmd else { continue };
            let log = log_key(&s.from_uid, &s.channel_id, s.channel_type);
            let Some(message) = store.sent_message(&s.from_uid, &s.client_msg_no, &log)? else {
                continue;
            };
            // A retried send found the message of its first attempt: once is enough.
            if !seen.insert(message.message_id) {
                continue;
            }
            let source = crate::store::cmd_source_channel(&s.channel_id, s.channel_type);
            let recipients = if s.channel_type == CHANNEL_PERSON {
                let mut r = vec![source.to_string()];
                if s.from_uid != source {
                    r.push(s.from_uid.clone());
                }
                r
            } else {
                store
                    .channel(s.channel_type, source)?
                    .map(|c| c.subscribers)
                    .unwrap_or_default()
            };
            deliveries.push(Delivery {
                message,
                from_device: s.from_device.clone(),
                recipients,
            });
        }
        count += deliveries.len();
        feed.push(index, &deliveries);
    }
    Ok(count)
}
