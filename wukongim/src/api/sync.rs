//! IM read endpoints: message history and per-user conversations, served from this node's copy
//! of the state (follower reads), plus the two conversation writes clients pair with them.

use super::error::{ok, required, ApiError, Body};
use crate::app::App;
use crate::store::{
    log_key, Command, ConversationQuery, Message, Outcome, SyncRange, CHANNEL_PERSON, SYSTEM_UID,
};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A message in WuKongIM's JSON shape, as `viewer` sees it (person channel ids are the peer).
pub fn message_json(m: &Message, viewer: &str) -> Value {
    json!({
        "header": {
            "no_persist": m.header.no_persist as u8,
            "red_dot": m.header.red_dot as u8,
            "sync_once": m.header.sync_once as u8,
        },
        "setting": m.setting,
        "message_id": m.message_id,
        "message_idstr": m.message_id.to_string(),
        "client_msg_no": m.client_msg_no,
        "stream_no": m.stream_no,
        "message_seq": m.message_seq,
        "from_uid": if m.from_uid == SYSTEM_UID { "" } else { m.from_uid.as_str() },
        "channel_id": if viewer.is_empty() { m.channel_id.clone() } else { m.channel_for(viewer) },
        "channel_type": m.channel_type,
        "topic": m.topic.clone().unwrap_or_default(),
        "expire": m.expire,
        "timestamp": m.timestamp,
        "payload": base64::engine::general_purpose::STANDARD.encode(&m.payload),
    })
}

#[derive(Deserialize)]
pub struct SyncReq {
    #[serde(default)]
    login_uid: String,
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    start_message_seq: u64,
    #[serde(default)]
    end_message_seq: u64,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    pull_mode: u8,
    /// "local" (default: this node's store, may lag) or "linearizable" (sees every write
    /// acknowledged before the request).
    #[serde(default)]
    consistency: String,
}

pub async fn message_sync(
    State(app): State<Arc<App>>,
    Body(r): Body<SyncReq>,
) -> Result<Response, ApiError> {
    required("channel_id", &r.channel_id)?;
    if r.channel_type == CHANNEL_PERSON {
        required("login_uid", &r.login_uid)?;
    }
    if r.pull_mode > 1 {
        return Err(ApiError::BadRequest(
            "pull_mode must be 0 (down) or 1 (up)".into(),
        ));
    }
    match r.consistency.as_str() {
        "" | "local" => {}
        "linearizable" => app
            .core
            .cluster
            .read_barrier()
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?,
        other => {
            return Err(ApiError::BadRequest(format!(
                "consistency must be \"local\" or \"linearizable\", not {other:?}"
            )))
        }
    }
    let log = log_key(&r.login_uid, &r.channel_id, r.channel_type);
    let range = SyncRange {
        start: r.start_message_seq,
        end: r.end_message_seq,
        limit: if r.limit == 0 {
            100
        } else {
            r.limit.min(10_000)
        },
        pull_up: r.pull_mode == 1,
        max_bytes: app.config.conn.max_sync_bytes.0 as usize,
    };
    let store = app.store.clone();
    let (messages, more) = tokio::task::spawn_blocking(move || store.messages(&log, range))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let list: Vec<Value> = messages
        .iter()
        .map(|m| message_json(m, &r.login_uid))
        .collect();
    Ok(axum::Json(json!({
        "start_message_seq": r.start_message_seq,
        "end_message_seq": r.end_message_seq,
        "more": more as u8,
        "messages": list,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct ConvSyncReq {
    uid: String,
    #[serde(default)]
    version: i64,
    #[serde(default)]
    last_msg_seqs: String,
    #[serde(default)]
    msg_count: usize,
    #[serde(default)]
    only_unread: u8,
    #[serde(default)]
    exclude_channel_types: Vec<u8>,
    #[serde(default)]
    page: usize,
    #[serde(default)]
    page_size: usize,
}

/// Parses "channelID:channelType:seq|…" into "type:channelID" → seq. Like Go, an entry that is
/// not of that form is skipped rather than failing the whole sync.
fn parse_last_seqs(s: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for item in s.split('|').filter(|x| !x.is_empty()) {
        let mut parts = item.rsplitn(3, ':');
        let (Some(seq), Some(ty), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let (Ok(ty), Ok(seq)) = (ty.parse::<u8>(), seq.parse::<u64>()) {
            out.insert(format!("{ty}:{id}"), seq);
        }
    }
    out
}

/// POST /conversation/sync (Go: `conversation.syncUserConversation`).
pub async fn conversation_sync(
    State(app): State<Arc<App>>,
    Body(r): Body<ConvSyncReq>,
) -> Result<Response, ApiError> {
    required("uid", &r.uid)?;
    let query = ConversationQuery {
        uid: r.uid.clone(),
        version: r.version,
        last_seqs: parse_last_seqs(&r.last_msg_seqs),
        msg_count: r.msg_count.min(1000),
        only_unread: r.only_unread != 0,
        exclude_types: r.exclude_channel_types,
        page: r.page,
        page_size: r.page_size,
        max_bytes: app.config.conn.max_sync_bytes.0 as usize,
    };
    let store = app.store.clone();
    let views = tokio::task::spawn_blocking(move || store.conversations(&query))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let list: Vec<Value> = views
        .iter()
        .map(|v| {
            let c = &v.conversation;
            json!({
                "channel_id": c.channel_id,
                "channel_type": c.channel_type,
                "unread": v.unread,
                "timestamp": c.timestamp,
                "last_msg_seq": c.last_msg_seq,
                "last_client_msg_no": c.last_client_msg_no,
                "offset_msg_seq": 0,
                "readed_to_msg_seq": c.readed_to_msg_seq,
                "version": c.version,
                "recents": v.recents.iter().map(|m| message_json(m, &r.uid)).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(axum::Json(list).into_response())
}

#[derive(Deserialize)]
pub struct SetUnreadReq {
    uid: String,
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    unread: u32,
}

/// POST /conversations/setUnread: the user has read all but the last `unread` messages.
pub async fn set_unread(
    State(app): State<Arc<App>>,
    Body(r): Body<SetUnreadReq>,
) -> Result<Response, ApiError> {
    propose_unread(&app, r.uid, r.channel_id, r.channel_type, r.unread).await
}

#[derive(Deserialize)]
pub struct ConvReq {
    uid: String,
    channel_id: String,
    channel_type: u8,
}

/// POST /conversations/clearUnread: the user has read everything (setUnread with 0, as in Go).
pub async fn clear_unread(
    State(app): State<Arc<App>>,
    Body(r): Body<ConvReq>,
) -> Result<Response, ApiError> {
    propose_unread(&app, r.uid, r.channel_id, r.channel_type, 0).await
}

async fn propose_unread(
    app: &App,
    uid: String,
    channel_id: String,
    channel_type: u8,
    unread: u32,
) -> Result<Response, ApiError> {
    required("uid", &uid)?;
    required("channel_id", &channel_id)?;
    nonzero_type(channel_type)?;
    let cmd = Command::SetUnread {
        uid,
        channel_id,
        channel_type,
        unread,
    };
    match app.core.propose(cmd).await? {
        Outcome::Rejected { message, .. } => Err(ApiError::BadRequest(message)),
        _ => Ok(ok()),
    }
}

fn nonzero_type(channel_type: u8) -> Result<(), ApiError> {
    if channel_type == 0 {
        return Err(ApiError::BadRequest("channel_type must not be 0".into()));
    }
    Ok(())
}

/// POST /conversations/delete: hides the conversation until its next message.
pub async fn delete_conversation(
    State(app): State<Arc<App>>,
    Body(r): Body<ConvReq>,
) -> Result<Response, ApiError> {
    required("uid", &r.uid)?;
    required("channel_id", &r.channel_id)?;
    nonzero_type(r.channel_type)?;
    let cmd = Command::DeleteConversation {
        uid: r.uid,
        channel_id: r.channel_id,
        channel_type: r.channel_type,
    };
    app.core.propose(cmd).await?;
    Ok(ok())
}
