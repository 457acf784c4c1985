//! Records kept by the state machine and the commands that change them. Commands carry every
//! input that must be identical on all replicas (timestamps included), so applying the same
//! command log gives the same state everywhere.

use serde::{Deserialize, Serialize};

/// Channel types the server understands (WuKongIM numbering).
pub const CHANNEL_PERSON: u8 = 1;
pub const CHANNEL_GROUP: u8 = 2;

/// The sender of API messages sent without `from_uid` (Go's `____system`); shown as an empty
/// `from_uid` in responses, and never a conversation of its own.
pub const SYSTEM_UID: &str = "____system";

/// Suffix of command channels (Go's `channel.cmdSuffix`): their messages are delivered and
/// stored, but their conversations are never listed by /conversation/sync.
pub const CMD_SUFFIX: &str = "____cmd";

/// Message header flags (RECV fixed-header bits and the HTTP `header` object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub no_persist: bool,
    pub red_dot: bool,
    pub sync_once: bool,
}

/// A stored message. `channel_id` is as the sender addressed it (for a person channel: the
/// receiver's uid); [`Message::channel_for`] gives the id as a given user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub message_seq: u64,
    pub client_msg_no: String,
    pub from_uid: String,
    pub channel_id: String,
    pub channel_type: u8,
    pub setting: u8,
    pub header: Header,
    pub expire: u32,
    pub timestamp: i32,
    pub topic: Option<String>,
    pub stream_no: String,
    /// Plain (decrypted) payload bytes.
    pub payload: Vec<u8>,
}

impl Message {
    /// The channel id as `uid` sees it: in a person channel, the other party's uid.
    /// A person command channel (`peer____cmd`) keeps its suffix.
    pub fn channel_for(&self, uid: &str) -> String {
        if self.channel_type == CHANNEL_PERSON && self.from_uid != uid {
            match self.channel_id.ends_with(CMD_SUFFIX) {
                true => format!("{}{CMD_SUFFIX}", self.from_uid),
                false => self.from_uid.clone(),
            }
        } else {
            self.channel_id.clone()
        }
    }
}

/// Channel settings created through POST /channel and /channel/info (rows written before
/// `send_ban` existed are read by [`super::channels`]; new fields go at the end).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    pub large: bool,
    pub ban: bool,
    pub disband: bool,
    pub subscribers: Vec<String>,
    /// On a user's person channel: that user may not send (Go's `SendBan`, reason 25).
    pub send_ban: bool,
    /// Stored and kept as Go does; Go v2.2.5 enforces it nowhere.
    pub allow_stranger: bool,
}

/// A registered client token (POST /user/token), per uid and device flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserToken {
    pub token: String,
    pub device_level: u8,
}

/// One user's view of one channel (rows of an older layout are read by
/// [`super::conversation`]; new fields go at the end).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub channel_id: String,
    pub channel_type: u8,
    pub unread: u32,
    pub timestamp: i64,
    pub last_msg_seq: u64,
    pub last_client_msg_no: String,
    pub readed_to_msg_seq: u64,
    pub version: i64,
    /// Messages up to this seq are hidden (POST /conversations/delete).
    pub deleted_at_msg_seq: u64,
}

/// A message send as proposed (from a client SEND or HTTP /message/send).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendCmd {
    pub from_uid: String,
    /// Device that sent it (its own RECV is not echoed back); empty for API sends.
    pub from_device: String,
    pub channel_id: String,
    pub channel_type: u8,
    pub client_msg_no: String,
    pub setting: u8,
    pub header: Header,
    pub expire: u32,
    pub topic: Option<String>,
    pub stream_no: String,
    pub payload: Vec<u8>,
    /// Unix seconds, assigned once by the proposer.
    pub timestamp: i32,
    /// Trusted sender (app server via HTTP): skips the membership checks.
    pub trusted: bool,
}

/// Every state change goes through one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    UpdateToken {
        uid: String,
        device_flag: u8,
        device_level: u8,
        token: String,
    },
    UpsertChannel {
        channel_id: String,
        channel_type: u8,
        large: bool,
        ban: bool,
        disband: bool,
        subscribers: Vec<String>,
        reset: bool,
    },
    DeleteChannel {
        channel_id: String,
        channel_type: u8,
    },
    AddSubscribers {
        channel_id: String,
        channel_type: u8,
        subscribers: Vec<String>,
        reset: bool,
    },
    RemoveSubscribers {
        channel_id: String,
        channel_type: u8,
        subscribers: Vec<String>,
    },
    Send(SendCmd),
    SetUnread {
        uid: String,
        channel_id: String,
        channel_type: u8,
        unread: u32,
    },
    DeleteConversation {
        uid: String,
        channel_id: String,
        channel_type: u8,
    },
    /// The leader posted the webhook events of every message applied up to this Raft log
    /// index; a new leader resumes after it (see `webhook/`). Never moves backwards.
    WebhookCursor {
        index: u64,
    },
    /// POST /channel/info (Go's `updateOrAddChannelInfo`): sets every flag, keeps subscribers,
    /// creates the channel when missing.
    UpsertChannelInfo {
        channel_id: String,
        channel_type: u8,
        large: bool,
        ban: bool,
        disband: bool,
        send_ban: bool,
        allow_stranger: bool,
    },
    /// Black-, white- and system-uid list changes (see [`UidList`]).
    EditList {
        list: UidList,
        channel_id: String,
        channel_type: u8,
        edit: ListEdit,
    },
    /// POST /channel/subscriber_remove_all: empties an existing channel's subscribers.
    RemoveAllSubscribers {
        channel_id: String,
        channel_type: u8,
    },
    /// /message/sync returned these command messages to `uid`: the last seq per command
    /// channel, replacing the previous record (see `store/cmd.rs`).
    CmdSyncRecord {
        uid: String,
        records: Vec<super::CmdRecord>,
    },
    /// /message/syncack: `uid`'s command conversations are read up to the record, which is
    /// cleared.
    CmdSyncAck {
        uid: String,
    },
    /// A master device acknowledged (RECVACK) a stored sync_once message: `uid`'s
    /// conversation with the channel (as `uid` sees it) is read up to `message_seq`, never
    /// backwards, when it exists (Go's `recvack` → `UpdateConversationIfSeqGreaterAsync`).
    ReadTo {
        uid: String,
        channel_id: String,
        channel_type: u8,
        message_seq: u64,
    },
    /// POST /user/token as proposed now ([`Command::UpdateToken`] is what older logs hold): a
    /// master device also kicks, on every node, the connections of that uid and device flag
    /// made before `at_ms` (unix ms, the proposer's clock). See `store/devices.rs`.
    TokenUpdate {
        uid: String,
        device_flag: u8,
        device_level: u8,
        token: String,
        at_ms: i64,
    },
    /// POST /user/device_quit: empties the tokens of those device flags and kicks their
    /// connections made before `at_ms`, on every node.
    DeviceQuit {
        uid: String,
        device_flags: Vec<u8>,
        at_ms: i64,
    },
    /// RECVACKs a node got, relayed so that every node stops keeping those messages for
    /// redelivery (`core/acks.rs`). Changes no stored state.
    Recvacks {
        acks: Vec<super::devices::UidAcks>,
    },
    /// A client logged in on the proposing node: every node replaces that uid's connections
    /// made before `at_ms` as Go's CONNECT handler does (`store/devices.rs`). Changes no stored
    /// state.
    DeviceLogin {
        uid: String,
        device_flag: u8,
        device_id: String,
        master: bool,
        at_ms: i64,
    },
}

impl Command {
    /// The command level a binary must have to decode this command (see `cluster/levels.rs`):
    /// 1 for the commands of every release, 2 for those added with the level exchange.
    pub fn level(&self) -> u32 {
        match self {
            Command::UpdateToken { .. }
            | Command::UpsertChannel { .. }
            | Command::DeleteChannel { .. }
            | Command::AddSubscribers { .. }
            | Command::RemoveSubscribers { .. }
            | Command::Send(_)
            | Command::SetUnread { .. }
            | Command::DeleteConversation { .. } => 1,
            _ => 2,
        }
    }
}

/// The uid lists kept per channel (and the one global list of system uids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UidList {
    /// Blacklist (Go's denylist): these uids may not send (reason 4).
    Deny,
    /// Whitelist (Go's allowlist): when not empty, only these uids may send (reason 13).
    Allow,
    /// System uids (kept under channel "" of type 0): they pass every sender check.
    System,
}

/// A change to one uid list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListEdit {
    Add(Vec<String>),
    /// Replaces the list.
    Set(Vec<String>),
    Remove(Vec<String>),
    Clear,
}

/// The result of applying one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    Sent {
        message_id: i64,
        message_seq: u64,
        duplicate: bool,
    },
    /// Refused with a WuKongIM reason code and a human message; state unchanged.
    Rejected {
        reason: u8,
        message: String,
    },
}

/// A message to push to the recipients' online devices once applied.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Message,
    pub from_device: String,
    pub recipients: Vec<String>,
}
