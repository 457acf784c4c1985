//! Message routes apps use beside /message/send, with the request and response shapes of Go's
//! `internal/api/message.go`: batch send to users, send to a list of subscribers (a temporary
//! command channel), a channel's highest seq and newest message, and messages by seq, id or
//! client_msg_no. Writes go through the one write path ([`super::im::apply`]); reads come from
//! this node's store. Like Go, "not found" is HTTP 200 with `{"status":404}`.

use super::error::{ok, ApiError, Body};
use super::im::{admit_payload, apply, random_msg_no, HeaderReq, SendReq};
use super::sync::message_json;
use crate::app::App;
use crate::store::{
    cmd_channel_for_send, log_key, Command, Message, Outcome, SendCmd, CHANNEL_PERSON,
    CHANNEL_TEMP, CMD_SUFFIX, SYSTEM_UID,
};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Proposes one send; returns (message_id, message_seq).
pub(super) async fn send_one(app: &App, cmd: SendCmd) -> Result<(i64, u64), ApiError> {
    match apply(app, Command::Send(cmd)).await? {
        Outcome::Sent {
            message_id,
            message_seq,
            ..
        } => Ok((message_id, message_seq)),
        other => Err(ApiError::Internal(format!(
            "send applied with an unexpected outcome: {other:?}"
        ))),
    }
}

/// A send command from the API (a trusted sender) with the proposer's timestamp; a sync_once
/// message goes to the channel's command channel (Go's `sendMessageToChannel`).
pub(super) fn api_send(
    from_uid: &str,
    channel_id: String,
    channel_type: u8,
    client_msg_no: String,
    r: &SendReq,
    payload: Vec<u8>,
) -> SendCmd {
    SendCmd {
        from_uid: from_uid.to_string(),
        from_device: String::new(),
        channel_id: cmd_channel_for_send(&channel_id, channel_type, &r.header.header()),
        channel_type,
        client_msg_no,
        setting: r.setting,
        header: r.header.header(),
        expire: r.expire,
        topic: None,
        stream_no: r.stream_no.clone(),
        payload,
        timestamp: crate::core::now_secs(),
        trusted: true,
    }
}

/// A blank sender is the system account (Go's `____system`).
pub(super) fn sender(from_uid: &str) -> String {
    match from_uid.trim() {
        "" => SYSTEM_UID.to_string(),
        _ => from_uid.to_string(),
    }
}

/// FNV-1a 64 (Go's `key.HashWithString`), which names a subscriber list's temporary channel.
pub(super) fn fnv64a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The temporary command channel of a subscriber list, as Go names it.
pub fn temp_channel_id(subscribers: &[String]) -> String {
    format!("{}{CMD_SUFFIX}", fnv64a(&subscribers.join(",")))
}

/// POST /message/send with `subscribers` (Go: message.go `send`): only a sync_once message, never
/// together with channel_id; the list becomes the subscribers of a temporary channel and the
/// message is sent there, so exactly those users receive it. Answers `{"status":200}` as Go does.
pub(super) async fn send_to_subscribers(
    app: &App,
    r: &SendReq,
    payload: Vec<u8>,
) -> Result<Response, ApiError> {
    if r.header.sync_once != 1 {
        return Err(ApiError::BadRequest(
            "a send with subscribers must be a sync_once message (header.sync_once = 1)".into(),
        ));
    }
    if !r.channel_id.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "channel_id and subscribers cannot be given together".into(),
        ));
    }
    let subscribers: Vec<String> = r
        .subscribers
        .iter()
        .filter(|s| !s.trim().is_empty())
        .cloned()
        .collect();
    if subscribers.is_empty() {
        return Err(ApiError::BadRequest("subscribers are all empty".into()));
    }
    let channel_id = temp_channel_id(&subscribers);
    apply(
        app,
        Command::UpsertChannel {
            channel_id: channel_id.clone(),
            channel_type: CHANNEL_TEMP,
            large: false,
            ban: false,
            disband: false,
            subscribers,
            reset: true,
        },
    )
    .await?;
    let from = sender(&r.from_uid);
    let cmd = api_send(&from, channel_id, CHANNEL_TEMP, random_msg_no(), r, payload);
    send_one(app, cmd).await?;
    app.traffic.in_msgs.inc();
    Ok(ok())
}

#[derive(Deserialize)]
pub struct SendBatchReq {
    #[serde(default)]
    header: HeaderReq,
    #[serde(default)]
    from_uid: String,
    #[serde(default)]
    subscribers: Vec<String>,
    #[serde(default)]
    payload: String,
}

/// POST /message/sendbatch (Go: message.go `sendBatch`): the same message to each subscriber as
/// a person message from `from_uid`. Answers which uids failed and why, as Go does.
pub async fn send_batch(
    State(app): State<Arc<App>>,
    Body(r): Body<SendBatchReq>,
) -> Result<Response, ApiError> {
    if r.from_uid.trim().is_empty() {
        return Err(ApiError::BadRequest("from_uid must not be empty".into()));
    }
    if r.subscribers.is_empty() {
        return Err(ApiError::BadRequest("subscribers must not be empty".into()));
    }
    if r.payload.trim().is_empty() {
        return Err(ApiError::BadRequest("payload must not be empty".into()));
    }
    let payload = admit_payload(&app, &r.payload)?;
    let mut fail_uids = Vec::new();
    let mut reasons = Vec::new();
    let mut sent = 0usize;
    for uid in &r.subscribers {
        if uid.trim().is_empty() {
            fail_uids.push(uid.clone());
            reasons.push("uid is empty".to_string());
            continue;
        }
        let cmd = SendCmd {
            from_uid: r.from_uid.clone(),
            from_device: String::new(),
            channel_id: cmd_channel_for_send(uid, CHANNEL_PERSON, &r.header.header()),
            channel_type: CHANNEL_PERSON,
            client_msg_no: random_msg_no(),
            setting: 0,
            header: r.header.header(),
            expire: 0,
            topic: None,
            stream_no: String::new(),
            payload: payload.clone(),
            timestamp: crate::core::now_secs(),
            trusted: true,
        };
        match send_one(&app, cmd).await {
            Ok(_) => {
                sent += 1;
                app.traffic.in_msgs.inc();
            }
            // Without a leader nothing can be sent: say so rather than list every uid.
            Err(e @ ApiError::Unavailable(_)) if sent == 0 && fail_uids.is_empty() => {
                return Err(e)
            }
            Err(e) => {
                fail_uids.push(uid.clone());
                reasons.push(e.to_string());
            }
        }
    }
    Ok(axum::Json(json!({ "fail_uids": fail_uids, "reason": reasons })).into_response())
}

/// Query parameters as text; numbers parsed with a 400 naming the parameter.
pub(super) type Params = Query<HashMap<String, String>>;

pub(super) fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> &'a str {
    q.get(name).map(|s| s.trim()).unwrap_or("")
}

pub(super) fn param_u8(q: &HashMap<String, String>, name: &str) -> Result<u8, ApiError> {
    match param(q, name) {
        "" => Ok(0),
        v => v.parse().map_err(|_| {
            ApiError::BadRequest(format!("{name} must be a number from 0 to 255, not {v:?}"))
        }),
    }
}

/// The log of a channel named by a client: a person channel is (login_uid, channel_id), or a
/// full "uid1@uid2" id (Go's fake channel id) when it contains `@` and no login_uid is given.
fn channel_log(login_uid: &str, channel_id: &str, channel_type: u8) -> Result<String, ApiError> {
    if channel_id.is_empty() {
        return Err(ApiError::BadRequest("channel_id must not be empty".into()));
    }
    if channel_type != CHANNEL_PERSON {
        return Ok(log_key("", channel_id, channel_type));
    }
    if login_uid.is_empty() {
        if let Some((a, b)) = channel_id.split_once('@') {
            return Ok(log_key(a, b, channel_type));
        }
        return Err(ApiError::BadRequest(
            "login_uid must not be empty for a person channel".into(),
        ));
    }
    Ok(log_key(login_uid, channel_id, channel_type))
}

/// Runs a store read off the async workers.
pub(super) async fn read<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&crate::store::Store) -> crate::store::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    Ok(tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??)
}

/// Go's `c.ResponseStatus(404)`: HTTP 200 with `{"status":404}`.
fn not_found() -> Response {
    axum::Json(json!({ "status": 404 })).into_response()
}

fn one_message(m: Option<Message>, viewer: &str) -> Response {
    match m {
        Some(m) => axum::Json(message_json(&m, viewer)).into_response(),
        None => not_found(),
    }
}

/// GET /channel/max_message_seq?channel_id=&channel_type=&login_uid= (Go: message.go
/// `getChannelMaxMessageSeq`): `{"message_seq": n}`, 0 for a channel without messages.
pub async fn max_message_seq(
    State(app): State<Arc<App>>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let ty = param_u8(&q, "channel_type")?;
    let log = channel_log(param(&q, "login_uid"), param(&q, "channel_id"), ty)?;
    let seq = read(&app, move |s| s.last_seq(&log)).await?;
    Ok(axum::Json(json!({ "message_seq": seq })).into_response())
}

/// GET /channel/last_message?channel_id=&channel_type=&login_uid= (Go: message.go
/// `getChannelLastMessage`): the newest message, or `{"status":404}`.
pub async fn last_message(
    State(app): State<Arc<App>>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let ty = param_u8(&q, "channel_type")?;
    let login = param(&q, "login_uid").to_string();
    let log = channel_log(&login, param(&q, "channel_id"), ty)?;
    let m = read(&app, move |s| s.last_message(&log)).await?;
    Ok(one_message(m, &login))
}

/// GET /message/byclientmsgno?channel_id=&channel_type=&client_msg_no= (Go: message.go
/// `getMessageByClientMsgNo`; a person channel is named by its full "uid1@uid2" id).
pub async fn by_client_msg_no(
    State(app): State<Arc<App>>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let ty = param_u8(&q, "channel_type")?;
    if param(&q, "channel_id").is_empty() {
        return Err(ApiError::BadRequest("channel_id must not be empty".into()));
    }
    if ty == 0 {
        return Err(ApiError::BadRequest("channel_type must not be 0".into()));
    }
    let no = param(&q, "client_msg_no").to_string();
    if no.is_empty() {
        return Err(ApiError::BadRequest(
            "client_msg_no must not be empty".into(),
        ));
    }
    let log = channel_log(param(&q, "login_uid"), param(&q, "channel_id"), ty)?;
    let m = read(&app, move |s| {
        s.find_message(&log, |m| m.client_msg_no == no)
    })
    .await?;
    Ok(one_message(m, ""))
}

#[derive(Deserialize)]
pub struct SearchReq {
    #[serde(default)]
    login_uid: String,
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
    #[serde(default)]
    message_seqs: Vec<u64>,
    #[serde(default)]
    message_ids: Vec<i64>,
    #[serde(default)]
    client_msg_nos: Vec<String>,
}

/// POST /messages (Go: message.go `searchMessages`): messages of one channel by seq, then id,
/// then client_msg_no, missing ones left out, in the /channel/messagesync envelope.
pub async fn search_messages(
    State(app): State<Arc<App>>,
    Body(r): Body<SearchReq>,
) -> Result<Response, ApiError> {
    let log = channel_log(r.login_uid.trim(), r.channel_id.trim(), r.channel_type)?;
    let (seqs, ids, nos) = (r.message_seqs, r.message_ids, r.client_msg_nos);
    let found = read(&app, move |s| s.messages_by(&log, &seqs, &ids, &nos)).await?;
    let list: Vec<Value> = found
        .iter()
        .map(|m| message_json(m, &r.login_uid))
        .collect();
    Ok(axum::Json(json!({
        "start_message_seq": 0,
        "end_message_seq": 0,
        "more": 0,
        "messages": list,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct SearchOneReq {
    #[serde(default)]
    login_uid: String,
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
    #[serde(default)]
    message_id: i64,
    #[serde(default)]
    client_msg_no: String,
}

/// POST /message (Go: message.go `searchMessage`): one message of a channel by message_id or
/// client_msg_no, or `{"status":404}`.
pub async fn search_message(
    State(app): State<Arc<App>>,
    Body(r): Body<SearchOneReq>,
) -> Result<Response, ApiError> {
    if r.channel_type == 0 {
        return Err(ApiError::BadRequest("channel_type must not be 0".into()));
    }
    if r.channel_type == CHANNEL_PERSON && r.login_uid.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "login_uid must not be empty for a person channel".into(),
        ));
    }
    if r.message_id == 0 && r.client_msg_no.is_empty() {
        return Err(ApiError::BadRequest(
            "give message_id or client_msg_no".into(),
        ));
    }
    let log = channel_log(r.login_uid.trim(), r.channel_id.trim(), r.channel_type)?;
    let (id, no) = (r.message_id, r.client_msg_no);
    let m = read(&app, move |s| {
        s.find_message(&log, |m| {
            (id == 0 || m.message_id == id) && (no.is_empty() || m.client_msg_no == no)
        })
    })
    .await?;
    Ok(one_message(m, &r.login_uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv64a_matches_the_reference_values() {
        assert_eq!(fnv64a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv64a("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn person_channels_are_named_by_login_or_full_id() {
        let k = log_key("alice", "bob", CHANNEL_PERSON);
        assert_eq!(channel_log("alice", "bob", 1).unwrap(), k);
        assert_eq!(channel_log("", "bob@alice", 1).unwrap(), k);
        assert!(channel_log("", "bob", 1).is_err());
        assert!(channel_log("x", "", 2).is_err());
    }
}
