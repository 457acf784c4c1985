//! IM write endpoints: tokens, messages, channels and subscribers. Each turns its request into
//! one [`Command`] and waits for it to be durably applied before answering.

use super::error::{ok, ok_data, required, ApiError, Body};
use super::messages;
use super::perms::SendResult;
use crate::app::App;
use crate::store::{Command, Header, Outcome};
use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use serde::Deserialize;
use std::sync::Arc;

/// Proposes `cmd`; a rejection becomes a 400 with its message.
pub(super) async fn apply(app: &App, cmd: Command) -> Result<Outcome, ApiError> {
    match app.core.propose(cmd).await? {
        Outcome::Rejected { message, .. } => Err(ApiError::BadRequest(message)),
        o => Ok(o),
    }
}

#[derive(Deserialize)]
pub struct TokenReq {
    uid: String,
    token: String,
    #[serde(default)]
    device_flag: u8,
    #[serde(default)]
    device_level: u8,
}

pub async fn user_token(
    State(app): State<Arc<App>>,
    Body(r): Body<TokenReq>,
) -> Result<Response, ApiError> {
    required("uid", &r.uid)?;
    required("token", &r.token)?;
    if r.device_level > 1 {
        return Err(ApiError::BadRequest(
            "device_level must be 0 (slave) or 1 (master)".into(),
        ));
    }
    // A master token also kicks the older connections of that uid and flag on every node; while
    // a member still runs a binary without that command (a rolling upgrade), the token is
    // stored the old way, without the kick.
    let cluster = &app.core.cluster;
    let cmd = if cluster.levels.cluster_at(cluster, 2) {
        Command::TokenUpdate {
            uid: r.uid,
            device_flag: r.device_flag,
            device_level: r.device_level,
            token: r.token,
            at_ms: crate::core::now_millis(),
        }
    } else {
        Command::UpdateToken {
            uid: r.uid,
            device_flag: r.device_flag,
            device_level: r.device_level,
            token: r.token,
        }
    };
    apply(&app, cmd).await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub struct DeviceQuitReq {
    uid: String,
    /// -1 or absent = every device.
    #[serde(default = "all_devices")]
    device_flag: i16,
}

fn all_devices() -> i16 {
    -1
}

/// Go's `deviceQuit`: empties the token of the device flag (-1: APP, WEB and PC) and kicks its
/// connections on every node (replicated: `store/devices.rs`, `core/devices.rs`).
pub async fn device_quit(
    State(app): State<Arc<App>>,
    Body(r): Body<DeviceQuitReq>,
) -> Result<Response, ApiError> {
    required("uid", &r.uid)?;
    let device_flags = match r.device_flag {
        -1 => crate::store::QUIT_ALL_FLAGS.to_vec(),
        f => vec![u8::try_from(f).map_err(|_| {
            ApiError::BadRequest(format!(
                "device_flag must be -1 (every device) or 0..255, not {f}"
            ))
        })?],
    };
    let cmd = Command::DeviceQuit {
        uid: r.uid,
        device_flags,
        at_ms: crate::core::now_millis(),
    };
    apply(&app, cmd).await?;
    Ok(ok())
}

/// Devices of the given uids connected to any node (Go's shape: one entry per device). A node
/// that does not answer leaves its users out, with a warning in the log.
pub async fn online_status(
    State(app): State<Arc<App>>,
    Body(uids): Body<Vec<String>>,
) -> Result<Response, ApiError> {
    let timeout = app.config.cluster.request_timeout.0;
    let (conns, _unreachable) =
        crate::cluster::presence::everywhere(&app.core.cluster, &app.core.hub, &uids, timeout)
            .await;
    let out: Vec<_> = conns
        .into_iter()
        .map(|c| {
            serde_json::json!({
                "uid": c.uid, "device_flag": c.device_flag, "online": 1,
                // Not in Go's shape: where the connection is (apps ignore it).
                "node_id": c.node_id,
            })
        })
        .collect();
    Ok(axum::response::IntoResponse::into_response(axum::Json(out)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct HeaderReq {
    pub(super) no_persist: u8,
    pub(super) red_dot: u8,
    pub(super) sync_once: u8,
}

impl HeaderReq {
    pub(super) fn header(&self) -> Header {
        Header {
            no_persist: self.no_persist != 0,
            red_dot: self.red_dot != 0,
            sync_once: self.sync_once != 0,
        }
    }
}

#[derive(Deserialize)]
pub struct SendReq {
    #[serde(default)]
    pub(super) header: HeaderReq,
    #[serde(default)]
    pub(super) setting: u8,
    #[serde(default)]
    pub(super) client_msg_no: String,
    #[serde(default)]
    pub(super) stream_no: String,
    #[serde(default)]
    pub(super) from_uid: String,
    #[serde(default)]
    pub(super) channel_id: String,
    #[serde(default)]
    pub(super) channel_type: u8,
    #[serde(default)]
    pub(super) expire: u32,
    #[serde(default)]
    pub(super) subscribers: Vec<String>,
    pub(super) payload: String,
}

pub async fn message_send(
    State(app): State<Arc<App>>,
    Body(r): Body<SendReq>,
) -> Result<Response, ApiError> {
    let payload = admit_payload(&app, &r.payload)?;
    // Go (message.go `send`): `subscribers` sends one command (sync_once) message to exactly
    // those users through a temporary channel, and is exclusive with channel_id.
    if !r.subscribers.is_empty() {
        return messages::send_to_subscribers(&app, &r, payload).await;
    }
    if r.channel_id.is_empty() {
        return Err(ApiError::BadRequest(
            "channel_id must not be empty (or give subscribers)".into(),
        ));
    }
    if r.channel_type == 0 {
        return Err(ApiError::BadRequest("channel_type must not be 0".into()));
    }
    let client_msg_no = if r.client_msg_no.is_empty() {
        random_msg_no()
    } else {
        r.client_msg_no.clone()
    };
    let from = messages::sender(&r.from_uid);
    let cmd = messages::api_send(
        &from,
        r.channel_id.clone(),
        r.channel_type,
        client_msg_no.clone(),
        &r,
        payload,
    );
    let (message_id, message_seq, reason) = match super::perms::send_checked(&app, cmd).await? {
        SendResult::Sent {
            message_id,
            message_seq,
        } => (message_id, message_seq, None),
        SendResult::Refused { reason } => (0, 0, Some(reason)),
    };
    app.traffic.in_msgs.inc();
    let mut data = serde_json::json!({
        "message_id": message_id,
        "message_idstr": message_id.to_string(),
        "message_seq": message_seq,
        "client_msg_no": client_msg_no,
    });
    if let Some(reason) = reason {
        data["reason_code"] = reason.into();
    }
    Ok(ok_data(data))
}

/// Checks the memory guard and decodes a base64 payload (non-empty, at most maxPacketSize).
pub(super) fn admit_payload(app: &App, b64: &str) -> Result<Vec<u8>, ApiError> {
    if !app.memory.admit() {
        return Err(ApiError::Unavailable(
            "memory above cluster.maxMemoryUsage: sends are refused until it falls; retry later"
                .into(),
        ));
    }
    let payload = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| ApiError::BadRequest(format!("payload is not base64: {e}")))?;
    if payload.is_empty() {
        return Err(ApiError::BadRequest("payload must not be empty".into()));
    }
    let max = app.config.conn.max_packet_size.0 as usize;
    if payload.len() > max {
        return Err(ApiError::BadRequest(format!(
            "payload is larger than {max} bytes"
        )));
    }
    Ok(payload)
}

pub(super) fn random_msg_no() -> String {
    use rand::Rng;
    let n: u128 = rand::thread_rng().gen();
    format!("{n:032x}")
}

#[derive(Deserialize)]
pub struct ChannelReq {
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    large: u8,
    #[serde(default)]
    ban: u8,
    #[serde(default)]
    disband: u8,
    #[serde(default)]
    subscribers: Vec<String>,
    #[serde(default)]
    reset: u8,
    #[serde(default)]
    send_ban: u8,
    #[serde(default)]
    allow_stranger: u8,
}

pub(super) fn check_channel(id: &str, ty: u8) -> Result<(), ApiError> {
    required("channel_id", id)?;
    if ty == 0 {
        return Err(ApiError::BadRequest("channel_type must not be 0".into()));
    }
    Ok(())
}

pub async fn channel_upsert(
    State(app): State<Arc<App>>,
    Body(r): Body<ChannelReq>,
) -> Result<Response, ApiError> {
    check_channel(&r.channel_id, r.channel_type)?;
    let cluster = &app.core.cluster;
    if r.send_ban == 0 && r.allow_stranger == 0 && !cluster.levels.cluster_at(cluster, 2) {
        // A member runs a release without `UpsertChannelInfo` (rolling upgrade): the command
        // every release applies, which cannot carry send_ban or allow_stranger.
        let cmd = Command::UpsertChannel {
            channel_id: r.channel_id,
            channel_type: r.channel_type,
            large: r.large != 0,
            ban: r.ban != 0,
            disband: r.disband != 0,
            subscribers: r.subscribers,
            reset: r.reset != 0,
        };
        apply(&app, cmd).await?;
        return Ok(ok());
    }
    // Go (channel.go `channelCreateOrUpdate`): the channel info as /channel/info sets it, then
    // the subscribers.
    let info = Command::UpsertChannelInfo {
        channel_id: r.channel_id.clone(),
        channel_type: r.channel_type,
        large: r.large != 0,
        ban: r.ban != 0,
        disband: r.disband != 0,
        send_ban: r.send_ban != 0,
        allow_stranger: r.allow_stranger != 0,
    };
    apply(&app, info).await?;
    if r.reset != 0 || !r.subscribers.is_empty() {
        let subs = Command::AddSubscribers {
            channel_id: r.channel_id,
            channel_type: r.channel_type,
            subscribers: r.subscribers,
            reset: r.reset != 0,
        };
        apply(&app, subs).await?;
    }
    Ok(ok())
}

#[derive(Deserialize)]
pub struct ChannelRef {
    channel_id: String,
    channel_type: u8,
}

pub async fn channel_delete(
    State(app): State<Arc<App>>,
    Body(r): Body<ChannelRef>,
) -> Result<Response, ApiError> {
    check_channel(&r.channel_id, r.channel_type)?;
    apply(
        &app,
        Command::DeleteChannel {
            channel_id: r.channel_id,
            channel_type: r.channel_type,
        },
    )
    .await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub struct SubscribersReq {
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    reset: u8,
    #[serde(default)]
    temp_subscriber: u8,
    subscribers: Vec<String>,
}

pub async fn subscriber_add(
    State(app): State<Arc<App>>,
    Body(r): Body<SubscribersReq>,
) -> Result<Response, ApiError> {
    check_channel(&r.channel_id, r.channel_type)?;
    let _ = r.temp_subscriber; // temporary subscribers are stored like permanent ones
    let cmd = Command::AddSubscribers {
        channel_id: r.channel_id,
        channel_type: r.channel_type,
        subscribers: r.subscribers,
        reset: r.reset != 0,
    };
    apply(&app, cmd).await?;
    Ok(ok())
}

pub async fn subscriber_remove(
    State(app): State<Arc<App>>,
    Body(r): Body<SubscribersReq>,
) -> Result<Response, ApiError> {
    check_channel(&r.channel_id, r.channel_type)?;
    let cmd = Command::RemoveSubscribers {
        channel_id: r.channel_id,
        channel_type: r.channel_type,
        subscribers: r.subscribers,
    };
    apply(&app, cmd).await?;
    Ok(ok())
}
