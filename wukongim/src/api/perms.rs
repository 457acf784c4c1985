//! Channel permission routes with the request shapes and checks of Go v2.2.5:
//! `internal/api/channel.go` (`updateOrAddChannelInfo`, `removeAllSubscriber`, `setTmpSubscriber`,
//! `blacklist*`, `whitelist*`) and `internal/api/user.go` (`systemUids*`, `getSystemUids`). Each
//! write is one replicated command; the check that uses them is `store::perms`. Lists are read
//! from this node's store and listed in Go's order (by the FNV-1a hash of the uid, Go's key).

use super::error::{ok, required, ApiError, Body};
use super::im::{apply, check_channel};
use super::messages::{fnv64a, param, param_u8, read, Params};
use crate::app::App;
use crate::store::{Command, ListEdit, UidList, CHANNEL_PERSON, CHANNEL_TEMP};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Go's `channelInfoReq` (flags are on when 1).
#[derive(Deserialize)]
pub struct ChannelInfoReq {
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
    #[serde(default)]
    large: u8,
    #[serde(default)]
    ban: u8,
    #[serde(default)]
    disband: u8,
    #[serde(default)]
    send_ban: u8,
    #[serde(default)]
    allow_stranger: u8,
}

impl ChannelInfoReq {
    /// The command setting every flag (Go's `ToChannelInfo` + `addOrUpdateChannel`).
    pub(super) fn command(&self) -> Command {
        Command::UpsertChannelInfo {
            channel_id: self.channel_id.clone(),
            channel_type: self.channel_type,
            large: self.large == 1,
            ban: self.ban == 1,
            disband: self.disband == 1,
            send_ban: self.send_ban == 1,
            allow_stranger: self.allow_stranger == 1,
        }
    }
}

/// POST /channel/info: sets ban, disband, send_ban, allow_stranger and large, creating the
/// channel when missing; subscribers are kept.
pub async fn channel_info(
    State(app): State<Arc<App>>,
    Body(r): Body<ChannelInfoReq>,
) -> Result<Response, ApiError> {
    check_channel(&r.channel_id, r.channel_type)?;
    apply(&app, r.command()).await?;
    Ok(ok())
}

/// Go's `channelReq`.
#[derive(Deserialize)]
pub struct ChannelReq {
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
}

/// POST /channel/subscriber_remove_all (not for person channels, as in Go).
pub async fn subscriber_remove_all(
    State(app): State<Arc<App>>,
    Body(r): Body<ChannelReq>,
) -> Result<Response, ApiError> {
    check_channel(&r.channel_id, r.channel_type)?;
    if r.channel_type == CHANNEL_PERSON {
        return Err(ApiError::BadRequest(
            "channel_type 1 (person) has no subscribers to remove".into(),
        ));
    }
    let cmd = Command::RemoveAllSubscribers {
        channel_id: r.channel_id,
        channel_type: r.channel_type,
    };
    apply(&app, cmd).await?;
    Ok(ok())
}

/// Go's `tmpSubscriberSetReq`.
#[derive(Deserialize)]
pub struct TmpSubscribersReq {
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    uids: Vec<String>,
}

/// POST /tmpchannel/subscriber_set: the subscribers of a temporary channel (type 8), replaced.
pub async fn tmp_subscriber_set(
    State(app): State<Arc<App>>,
    Body(r): Body<TmpSubscribersReq>,
) -> Result<Response, ApiError> {
    required("channel_id", &r.channel_id)?;
    if r.uids.is_empty() {
        return Err(ApiError::BadRequest("uids must not be empty".into()));
    }
    let cmd = Command::AddSubscribers {
        channel_id: r.channel_id,
        channel_type: CHANNEL_TEMP,
        subscribers: r.uids,
        reset: true,
    };
    apply(&app, cmd).await?;
    Ok(ok())
}

/// Go's `blacklistReq` / `whitelistReq`.
#[derive(Deserialize)]
pub struct ListReq {
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
    #[serde(default)]
    uids: Vec<String>,
}

/// What a list route does, and which of Go's request checks it runs.
#[derive(Clone, Copy)]
enum Op {
    Add,
    Set,
    Remove,
}

async fn edit_list(app: &App, list: UidList, op: Op, r: ListReq) -> Result<Response, ApiError> {
    required("channel_id", &r.channel_id)?;
    // Go's `Check` (add, remove): channel_type set and some uid given; `set` checks only the id.
    if !matches!(op, Op::Set) {
        check_channel(&r.channel_id, r.channel_type)?;
        if r.uids.iter().all(|u| u.trim().is_empty()) {
            return Err(ApiError::BadRequest("uids must not be empty".into()));
        }
    }
    let edit = match op {
        Op::Add => ListEdit::Add(r.uids),
        Op::Set => ListEdit::Set(r.uids),
        Op::Remove => ListEdit::Remove(r.uids),
    };
    let cmd = Command::EditList {
        list,
        channel_id: r.channel_id,
        channel_type: r.channel_type,
        edit,
    };
    apply(app, cmd).await?;
    Ok(ok())
}

async fn clear_list(app: &App, list: UidList, r: ChannelReq) -> Result<Response, ApiError> {
    check_channel(&r.channel_id, r.channel_type)?;
    let cmd = Command::EditList {
        list,
        channel_id: r.channel_id,
        channel_type: r.channel_type,
        edit: ListEdit::Clear,
    };
    apply(app, cmd).await?;
    Ok(ok())
}

/// Defines the four write routes of one list.
macro_rules! list_routes {
    ($list:expr, $add:ident, $set:ident, $remove:ident, $remove_all:ident) => {
        pub async fn $add(
            State(app): State<Arc<App>>,
            Body(r): Body<ListReq>,
        ) -> Result<Response, ApiError> {
            edit_list(&app, $list, Op::Add, r).await
        }

        pub async fn $set(
            State(app): State<Arc<App>>,
            Body(r): Body<ListReq>,
        ) -> Result<Response, ApiError> {
            edit_list(&app, $list, Op::Set, r).await
        }

        pub async fn $remove(
            State(app): State<Arc<App>>,
            Body(r): Body<ListReq>,
        ) -> Result<Response, ApiError> {
            edit_list(&app, $list, Op::Remove, r).await
        }

        pub async fn $remove_all(
            State(app): State<Arc<App>>,
            Body(r): Body<ChannelReq>,
        ) -> Result<Response, ApiError> {
            clear_list(&app, $list, r).await
        }
    };
}

list_routes!(
    UidList::Deny,
    blacklist_add,
    blacklist_set,
    blacklist_remove,
    blacklist_remove_all
);
list_routes!(
    UidList::Allow,
    whitelist_add,
    whitelist_set,
    whitelist_remove,
    whitelist_remove_all
);

/// Uids in Go's listing order (its keys are the FNV-1a hash of the uid).
fn go_order(uids: Vec<String>) -> Vec<(u64, String)> {
    let mut keyed: Vec<(u64, String)> = uids.into_iter().map(|u| (fnv64a(&u), u)).collect();
    keyed.sort();
    keyed
}

/// GET /channel/whitelist?channel_id=&channel_type=: Go's `[]wkdb.Member` (`id`, `uid`).
pub async fn whitelist_get(
    State(app): State<Arc<App>>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let ty = param_u8(&q, "channel_type")?;
    let id = param(&q, "channel_id").to_string();
    let uids = read(&app, move |s| s.uid_list(UidList::Allow, ty, &id)).await?;
    let members: Vec<_> = go_order(uids)
        .into_iter()
        .map(|(id, uid)| json!({"id": id, "uid": uid}))
        .collect();
    Ok(axum::Json(members).into_response())
}

/// Go's body of the system-uid routes.
#[derive(Deserialize)]
pub struct UidsReq {
    #[serde(default)]
    uids: Vec<String>,
}

async fn edit_system(app: &App, edit: ListEdit) -> Result<Response, ApiError> {
    let cmd = Command::EditList {
        list: UidList::System,
        channel_id: String::new(),
        channel_type: 0,
        edit,
    };
    apply(app, cmd).await?;
    Ok(ok())
}

/// POST /user/systemuids_add: these uids pass every sender check from now on, on every node.
pub async fn system_uids_add(
    State(app): State<Arc<App>>,
    Body(r): Body<UidsReq>,
) -> Result<Response, ApiError> {
    if r.uids.is_empty() {
        return Ok(ok());
    }
    edit_system(&app, ListEdit::Add(r.uids)).await
}

/// POST /user/systemuids_remove.
pub async fn system_uids_remove(
    State(app): State<Arc<App>>,
    Body(r): Body<UidsReq>,
) -> Result<Response, ApiError> {
    if r.uids.is_empty() {
        return Ok(ok());
    }
    edit_system(&app, ListEdit::Remove(r.uids)).await
}

/// GET /user/systemuids: the added system uids as a JSON array (the built-in `____system` is
/// not listed, as in Go).
pub async fn system_uids(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let uids = read(&app, |s| s.uid_list(UidList::System, 0, "")).await?;
    let uids: Vec<String> = go_order(uids).into_iter().map(|(_, u)| u).collect();
    Ok(axum::Json(uids).into_response())
}

/// What a POST /message/send came to.
pub(super) enum SendResult {
    Sent {
        message_id: i64,
        message_seq: u64,
    },
    /// Dropped by the permission check (for an API send: ban 19 or disband 24).
    Refused {
        reason: u8,
    },
}

/// Proposes one /message/send. A permission refusal is not an HTTP error: Go's `send` queues
/// the message and answers 200 with its message_id before the channel's permission check drops
/// it (message.go `sendMessageToChannel`). We answer 200 as well, with message_id 0 (nothing
/// was stored) and the `reason_code`, so an app can tell.
pub(super) async fn send_checked(
    app: &App,
    cmd: crate::store::SendCmd,
) -> Result<SendResult, ApiError> {
    use crate::store::{perms, Outcome};
    match app.core.propose(Command::Send(cmd)).await? {
        Outcome::Sent {
            message_id,
            message_seq,
            ..
        } => Ok(SendResult::Sent {
            message_id,
            message_seq,
        }),
        Outcome::Rejected { reason, .. } if perms::is_refusal(reason) => {
            Ok(SendResult::Refused { reason })
        }
        Outcome::Rejected { message, .. } => Err(ApiError::BadRequest(message)),
        other => Err(ApiError::Internal(format!(
            "send applied with an unexpected outcome: {other:?}"
        ))),
    }
}
