//! The state machine's write side: applies a batch of commands in one transaction. Deterministic:
//! ids, sequence numbers and versions come only from the stored state and the commands.

use super::channels::load as load_channel;
use super::*;
use redb::ReadableTable;

/// What applying a batch produced: whether it was applied, one outcome per command (fresh or
/// stored), plus the messages to deliver (none unless applied now).
#[derive(Default)]
pub struct Applied {
    pub verdict: Verdict,
    pub outcomes: Vec<Outcome>,
    pub deliveries: Vec<Delivery>,
    /// Kicks and acknowledgements for this node's hub (see `store/devices.rs`).
    pub effects: Vec<Effect>,
}

/// Applies `batch` inside `txn` if its proposer session admits it (see [`super::sessions`]).
pub fn apply_in(txn: &Tx, batch: &Batch) -> Result<Applied> {
    let (verdict, kept) = sessions::admit(txn, &batch.tag)?;
    if verdict != Verdict::Applied {
        return Ok(Applied {
            verdict,
            outcomes: kept,
            ..Applied::default()
        });
    }
    let mut out = Applied {
        verdict,
        outcomes: Vec::with_capacity(batch.cmds.len()),
        ..Applied::default()
    };
    for cmd in &batch.cmds {
        let outcome = apply_one(txn, cmd, &mut out.deliveries, &mut out.effects)?;
        out.outcomes.push(outcome);
    }
    sessions::record(txn, &batch.tag, &out.outcomes)?;
    Ok(out)
}

fn rejected(reason: u8, message: impl Into<String>) -> Outcome {
    Outcome::Rejected {
        reason,
        message: message.into(),
    }
}

fn next_counter(txn: &Tx, name: &str) -> Result<u64> {
    let mut meta = txn.open_table(META)?;
    let next = meta.get(name)?.map(|v| v.value()).unwrap_or(0) + 1;
    meta.insert(name, next)?;
    Ok(next)
}

/// Stores a channel's settings and subscribers; the channel may have members without a
/// conversation row now ([`super::seeded`]).
fn save_channel(txn: &Tx, ty: u8, id: &str, info: &ChannelInfo) -> Result<()> {
    txn.seeded().unseed(ty, id);
    txn.open_table(CHANNELS)?
        .insert((ty, id), to_bytes(info).as_slice())?;
    Ok(())
}

fn apply_one(
    txn: &Tx,
    cmd: &Command,
    deliveries: &mut Vec<Delivery>,
    effects: &mut Vec<Effect>,
) -> Result<Outcome> {
    Ok(match cmd {
        Command::UpdateToken {
            uid,
            device_flag,
            device_level,
            token,
        } => {
            devices::save_token(txn, uid, *device_flag, *device_level, token)?;
            Outcome::Done
        }
        Command::TokenUpdate {
            uid,
            device_flag,
            device_level,
            token,
            at_ms,
        } => devices::token_update(
            txn,
            uid,
            *device_flag,
            *device_level,
            token,
            *at_ms,
            effects,
        )?,
        Command::DeviceQuit {
            uid,
            device_flags,
            at_ms,
        } => devices::device_quit(txn, uid, device_flags, *at_ms, effects)?,
        Command::Recvacks { acks } => devices::recvacks(acks, effects),
        Command::DeviceLogin {
            uid,
            device_flag,
            device_id,
            master,
            at_ms,
        } => {
            effects.push(Effect::Login {
                uid: uid.clone(),
                device_flag: *device_flag,
                device_id: device_id.clone(),
                master: *master,
                before_ms: *at_ms,
            });
            Outcome::Done
        }
        Command::UpsertChannel {
            channel_id,
            channel_type,
            large,
            ban,
            disband,
            subscribers,
            reset,
        } => {
            let mut info = load_channel(txn, *channel_type, channel_id)?.unwrap_or_default();
            info.large = *large;
            info.ban = *ban;
            info.disband = *disband;
            if *reset {
                info.subscribers.clear();
            }
            merge_subscribers(&mut info.subscribers, subscribers);
            save_channel(txn, *channel_type, channel_id, &info)?;
            Outcome::Done
        }
        Command::DeleteChannel {
            channel_id,
            channel_type,
        } => {
            txn.seeded().unseed(*channel_type, channel_id);
            txn.open_table(CHANNELS)?
                .remove((*channel_type, channel_id.as_str()))?;
            Outcome::Done
        }
        Command::AddSubscribers {
            channel_id,
            channel_type,
            subscribers,
            reset,
        } => {
            let mut info = load_channel(txn, *channel_type, channel_id)?.unwrap_or_default();
            if *reset {
                info.subscribers.clear();
            }
            merge_subscribers(&mut info.subscribers, subscribers);
            save_channel(txn, *channel_type, channel_id, &info)?;
            Outcome::Done
        }
        Command::RemoveSubscribers {
            channel_id,
            channel_type,
            subscribers,
        } => match load_channel(txn, *channel_type, channel_id)? {
            Some(mut info) => {
                info.subscribers.retain(|s| !subscribers.contains(s));
                save_channel(txn, *channel_type, channel_id, &info)?;
                Outcome::Done
            }
            None => rejected(
                5,
                format!("channel {channel_id} ({channel_type}) does not exist"),
            ),
        },
        Command::SetUnread {
            uid,
            channel_id,
            channel_type,
            unread,
        } => {
            conversation::set_unread(txn, uid, channel_id, *channel_type, *unread)?;
            Outcome::Done
        }
        Command::DeleteConversation {
            uid,
            channel_id,
            channel_type,
        } => {
            conversation::delete(txn, uid, channel_id, *channel_type)?;
            Outcome::Done
        }
        Command::Send(s) => apply_send(txn, s, deliveries)?,
        Command::UpsertChannelInfo {
            channel_id,
            channel_type,
            large,
            ban,
            disband,
            send_ban,
            allow_stranger,
        } => {
            let mut info = load_channel(txn, *channel_type, channel_id)?.unwrap_or_default();
            info.large = *large;
            info.ban = *ban;
            info.disband = *disband;
            info.send_ban = *send_ban;
            info.allow_stranger = *allow_stranger;
            save_channel(txn, *channel_type, channel_id, &info)?;
            Outcome::Done
        }
        Command::EditList {
            list,
            channel_id,
            channel_type,
            edit,
        } => {
            channels::edit(txn, *list, *channel_type, channel_id, edit)?;
            Outcome::Done
        }
        Command::RemoveAllSubscribers {
            channel_id,
            channel_type,
        } => {
            if let Some(mut info) = load_channel(txn, *channel_type, channel_id)? {
                info.subscribers.clear();
                save_channel(txn, *channel_type, channel_id, &info)?;
            }
            Outcome::Done
        }
        Command::WebhookCursor { index } => {
            let mut meta = txn.open_table(META)?;
            let cur = meta.get(WEBHOOK_CURSOR)?.map(|v| v.value()).unwrap_or(0);
            if *index > cur {
                meta.insert(WEBHOOK_CURSOR, *index)?;
            }
            Outcome::Done
        }
        Command::CmdSyncRecord { uid, records } => {
            cmd::record(txn, uid, records)?;
            Outcome::Done
        }
        Command::CmdSyncAck { uid } => {
            cmd::ack(txn, uid)?;
            Outcome::Done
        }
        Command::ReadTo {
            uid,
            channel_id,
            channel_type,
            message_seq,
        } => {
            let key = conv_key(channel_id, *channel_type);
            conversation::read_to(txn, uid, &key, *message_seq)?;
            Outcome::Done
        }
    })
}

fn merge_subscribers(list: &mut Vec<String>, add: &[String]) {
    for s in add {
        if !s.is_empty() && !list.contains(s) {
            list.push(s.clone());
        }
    }
}

fn apply_send(txn: &Tx, s: &SendCmd, deliveries: &mut Vec<Delivery>) -> Result<Outcome> {
    if s.channel_id.is_empty() {
        return Ok(rejected(16, "channel_id is empty"));
    }
    // Idempotency: the same clientMsgNo from the same sender is stored once.
    if !s.client_msg_no.is_empty() {
        let t = txn.open_table(DEDUP)?;
        let hit = t
            .get((s.from_uid.as_str(), s.client_msg_no.as_str()))?
            .map(|g| g.value().to_vec());
        if let Some(raw) = hit {
            let (message_id, message_seq): (i64, u64) = decode("dedup", &raw)?;
            return Ok(Outcome::Sent {
                message_id,
                message_seq,
                duplicate: true,
            });
        }
    }
    // A command channel is judged by, and reaches the subscribers of, its source channel (Go's
    // getCmdSubscribers and permission check on the original channel).
    let source = cmd::source_channel(&s.channel_id, s.channel_type);
    let channel = match s.channel_type {
        CHANNEL_PERSON => None,
        ty => load_channel(txn, ty, source)?,
    };
    if let Some(r) = perms::check(txn, s, channel.as_ref())? {
        return Ok(rejected(r.reason, r.message));
    }
    // A channel never created has no one to deliver to (Go stores the message all the same).
    let recipients: Vec<String> = match (s.channel_type, channel) {
        (CHANNEL_PERSON, _) => {
            let mut r = vec![source.to_string()];
            if s.from_uid != source {
                r.push(s.from_uid.clone());
            }
            r
        }
        (_, Some(info)) => info.subscribers,
        (_, None) => Vec::new(),
    };
    if !matches!(s.channel_type, 1..=10) {
        return Ok(rejected(
            23,
            format!("channel type {} is not supported", s.channel_type),
        ));
    }
    let message_id = next_counter(txn, "message_id")? as i64;
    let persist = !s.header.no_persist;
    let message_seq = if persist {
        let key = log_key(&s.from_uid, &s.channel_id, s.channel_type);
        let mut seqs = txn.open_table(SEQS)?;
        let seq = seqs.get(key.as_str())?.map(|v| v.value()).unwrap_or(0) + 1;
        seqs.insert(key.as_str(), seq)?;
        seq
    } else {
        0
    };
    let msg = Message {
        message_id,
        message_seq,
        client_msg_no: s.client_msg_no.clone(),
        from_uid: s.from_uid.clone(),
        channel_id: s.channel_id.clone(),
        channel_type: s.channel_type,
        setting: s.setting,
        header: s.header,
        expire: s.expire,
        timestamp: s.timestamp,
        topic: s.topic.clone(),
        stream_no: s.stream_no.clone(),
        payload: s.payload.clone(),
    };
    if persist {
        let key = log_key(&s.from_uid, &s.channel_id, s.channel_type);
        txn.open_table(MESSAGES)?
            .insert((key.as_str(), message_seq), to_bytes(&msg).as_slice())?;
        if !s.client_msg_no.is_empty() {
            txn.open_table(DEDUP)?.insert(
                (s.from_uid.as_str(), s.client_msg_no.as_str()),
                to_bytes(&(message_id, message_seq)).as_slice(),
            )?;
        }
        conversation::on_message(txn, &msg, &recipients)?;
    }
    deliveries.push(Delivery {
        message: msg,
        from_device: s.from_device.clone(),
        recipients,
    });
    Ok(Outcome::Sent {
        message_id,
        message_seq,
        duplicate: false,
    })
}
