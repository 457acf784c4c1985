//! Who is this client? Reads the CONNECT (within `connectTimeout`), checks the token (or the
//! manager token for the manager uid), runs the key exchange and builds the CONNACK. A refused
//! client gets its CONNACK with the reason before the connection closes.

use super::disconnect;
use crate::app::App;
use crate::gateway::transport::{Inbound, Outbound};
use crate::proto::{
    encode, ConnackPacket, ConnectPacket, Decoder, Packet, ProtoError, ReasonCode, SessionCipher,
};
use bytes::{Bytes, BytesMut};

/// The uid that authenticates with the manager token.
pub const MANAGER_UID: &str = "____manager";

/// A client allowed in, and the CONNACK to send it.
pub(super) struct Accepted {
    pub connect: ConnectPacket,
    pub version: u8,
    pub device_level: u8,
    pub cipher: SessionCipher,
    pub connack: Bytes,
}

/// Why a connection ended before a valid CONNECT.
#[derive(Debug, thiserror::Error)]
enum BeforeConnect {
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error("expected CONNECT, got {0:?}")]
    Unexpected(crate::proto::PacketType),
    #[error("connection closed: {0}")]
    Closed(String),
}

/// Reads and checks the CONNECT. `None` when the client is refused or gone; whatever it had to
/// be told (CONNACK with a reason, DISCONNECT for an oversized frame) is already written.
pub(super) async fn accept<R: Inbound, W: Outbound>(
    app: &App,
    r: &mut R,
    w: &mut W,
    buf: &mut BytesMut,
    dec: &mut Decoder,
    peer: &str,
) -> Option<Accepted> {
    let timeout = app.config.conn.connect_timeout.0;
    let connect = match tokio::time::timeout(timeout, read_connect(r, buf, dec)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection closed before CONNECT");
            if matches!(e, BeforeConnect::Proto(ProtoError::FrameTooLarge { .. })) {
                let _ = w
                    .send(disconnect(ReasonCode::SystemError, "packet too large", 2))
                    .await;
            }
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "no CONNECT in time");
            return None;
        }
    };
    let version = crate::proto::negotiate_version(connect.version);
    let refuse = |reason| connack(app, &connect, reason, String::new(), String::new());
    // Tokens and channel state are read locally: not before the node caught up after start.
    if !app.core.cluster.read_gate.wait(timeout).await {
        tracing::info!(%peer, uid = %connect.uid, "CONNECT refused: node still catching up after start");
        let _ = w.send(refuse(ReasonCode::SystemError)).await;
        return None;
    }
    let (reason, device_level) = authenticate(app, &connect).await;
    if reason != ReasonCode::Success {
        tracing::info!(%peer, uid = %connect.uid, reason = ?reason, "CONNECT refused");
        let _ = w.send(refuse(reason)).await;
        return None;
    }
    let hs = match crate::proto::server_handshake(&connect.client_key) {
        Ok(h) => h,
        Err(e) => {
            tracing::info!(%peer, uid = %connect.uid, error = %e, "bad client key");
            let _ = w.send(refuse(ReasonCode::AuthFail)).await;
            return None;
        }
    };
    let connack = connack(app, &connect, ReasonCode::Success, hs.server_key, hs.salt);
    Some(Accepted {
        connect,
        version,
        device_level,
        cipher: hs.cipher,
        connack,
    })
}

async fn read_connect<R: Inbound>(
    r: &mut R,
    buf: &mut BytesMut,
    dec: &mut Decoder,
) -> Result<ConnectPacket, BeforeConnect> {
    loop {
        match dec.decode(buf, 0)? {
            Some(Packet::Connect(c)) => return Ok(c),
            Some(other) => return Err(BeforeConnect::Unexpected(other.packet_type())),
            None => match r.read_into(buf).await {
                Ok(true) => {}
                Ok(false) => return Err(BeforeConnect::Closed("end of stream".into())),
                Err(e) => return Err(BeforeConnect::Closed(e.to_string())),
            },
        }
    }
}

/// Checks the CONNECT; returns the reason code and the device level of the registered token.
async fn authenticate(app: &App, c: &ConnectPacket) -> (ReasonCode, u8) {
    if c.uid.is_empty() {
        return (ReasonCode::AuthFail, 0);
    }
    if c.client_key.is_empty() {
        return (ReasonCode::ClientKeyIsEmpty, 0);
    }
    if c.uid == MANAGER_UID {
        let ok = app.manager_token.matches(&c.token);
        return (
            if ok {
                ReasonCode::Success
            } else {
                ReasonCode::AuthFail
            },
            1,
        );
    }
    let store = app.store.clone();
    let (uid, flag) = (c.uid.clone(), c.device_flag);
    let looked = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::store::StoreError>((
            store.token(&uid, flag)?,
            store.channel(crate::store::CHANNEL_PERSON, &uid)?,
        ))
    });
    let (stored, me) = match looked.await {
        Ok(Ok(v)) => v,
        _ => return (ReasonCode::QueryTokenError, 0),
    };
    let level = stored.as_ref().map(|t| t.device_level).unwrap_or(0);
    if app.config.token_auth_on
        && stored.is_none_or(|t| {
            c.token.is_empty() || !crate::secret::ct_eq(t.token.as_bytes(), c.token.as_bytes())
        })
    {
        return (ReasonCode::AuthFail, 0);
    }
    // Go (event_connect.go): a user whose person channel is banned may not connect.
    if me.is_some_and(|c| c.ban) {
        return (ReasonCode::Ban, 0);
    }
    (ReasonCode::Success, level)
}

fn connack(
    app: &App,
    c: &ConnectPacket,
    reason: ReasonCode,
    server_key: String,
    salt: String,
) -> Bytes {
    let version = crate::proto::negotiate_version(c.version);
    let p = Packet::Connack(ConnackPacket {
        server_version: version,
        time_diff: crate::core::now_millis() - c.client_timestamp,
        reason_code: reason,
        server_key,
        salt,
        node_id: app.node_id,
    });
    // The serverVersion byte goes only to clients announcing a version above 3.
    encode(&p, version).unwrap_or_default()
}
