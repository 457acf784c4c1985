//! Command-message sync (Go: `internal/api/message.go` `sync` and `syncack`, deprecated there
//! but served): `/message/sync` returns a user's command messages not yet acknowledged, as a
//! JSON array of messages, and records what it returned; `/message/syncack` marks the recorded
//! messages read. Both records go through the write path, so a sync on one node and the ack
//! on another agree (Go forwards both to the node owning the user). See `store/cmd.rs`.

use super::error::{ok, required, ApiError, Body};
use super::im::apply;
use super::messages::read;
use super::sync::message_json;
use crate::app::App;
use crate::store::Command;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// Go's default `limit` of /message/sync.
const DEFAULT_LIMIT: usize = 200;
/// The most messages one /message/sync returns (as `/channel/messagesync`; Go has no cap).
const MAX_LIMIT: usize = 10_000;

#[derive(Deserialize)]
pub struct CmdSyncReq {
    #[serde(default)]
    uid: String,
    /// The client's highest seq: accepted and, as in Go, not used.
    #[serde(default, rename = "message_seq")]
    _message_seq: u64,
    #[serde(default)]
    limit: i64,
}

/// POST /message/sync {uid, message_seq, limit}: the command messages after each command
/// conversation's read position, at most `limit` (default 200), as Go's array of messages.
pub async fn sync(
    State(app): State<Arc<App>>,
    Body(r): Body<CmdSyncReq>,
) -> Result<Response, ApiError> {
    required("uid", &r.uid)?;
    let limit = match r.limit {
        n if n < 0 => {
            return Err(ApiError::BadRequest(
                "limit must not be negative".to_string(),
            ))
        }
        0 => DEFAULT_LIMIT,
        n => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
    };
    let uid = r.uid.clone();
    let page = read(&app, move |s| s.cmd_sync(&uid, limit)).await?;
    if !page.unchanged {
        let cmd = Command::CmdSyncRecord {
            uid: r.uid.clone(),
            records: page.records,
        };
        apply(&app, cmd).await?;
    }
    let list: Vec<Value> = page
        .messages
        .iter()
        .map(|m| message_json(m, &r.uid))
        .collect();
    Ok(axum::Json(list).into_response())
}

#[derive(Deserialize)]
pub struct CmdSyncAckReq {
    #[serde(default)]
    uid: String,
    #[serde(default)]
    last_message_seq: u64,
}

/// POST /message/syncack {uid, last_message_seq}: what the user's last /message/sync returned
/// is read (`last_message_seq` must not be 0 and is otherwise unused, as in Go).
pub async fn syncack(
    State(app): State<Arc<App>>,
    Body(r): Body<CmdSyncAckReq>,
) -> Result<Response, ApiError> {
    required("uid", &r.uid)?;
    if r.last_message_seq == 0 {
        return Err(ApiError::BadRequest(
            "last_message_seq must not be 0".to_string(),
        ));
    }
    apply(&app, Command::CmdSyncAck { uid: r.uid }).await?;
    Ok(ok())
}
