//! One client session, whatever the transport: CONNECT (token check, key exchange, CONNACK),
//! then PING/PONG, SEND → durable apply → SENDACK (in order, pipelined), RECV pushes from the hub
//! with RECVACK bookkeeping, SUB/SUBACK, DISCONNECT. Bad input closes this connection only.

use super::transport::{Inbound, Outbound as Out, Transport};
use crate::app::App;
use crate::core::{ConnInfo, Outbound, ProposeError};
use crate::proto::{
    encode, ConnackPacket, ConnectPacket, Decoder, DisconnectPacket, HeaderFlags, Packet,
    ProtoError, ReasonCode, RecvPacket, SendPacket, SendackPacket, SessionCipher, SubackPacket,
};
use crate::store::{Command, Header, Message, Outcome, SendCmd};
use bytes::{Bytes, BytesMut};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The uid that authenticates with the manager token.
pub const MANAGER_UID: &str = "____manager";

/// State fixed at CONNECT time.
struct Session {
    app: Arc<App>,
    uid: String,
    device_id: String,
    version: u8,
    cipher: SessionCipher,
    conn_id: u64,
}

/// A SENDACK waiting for its outcome, in the order the SENDs arrived.
enum PendingAck {
    Ready(SendackPacket, std::time::Instant),
    Waiting {
        client_seq: u32,
        rx: oneshot::Receiver<Result<Outcome, ProposeError>>,
        since: std::time::Instant,
    },
}

/// Runs a connection to completion.
pub async fn run<T: Transport>(app: Arc<App>, io: T, transport: &'static str, peer: String) {
    let (mut r, mut w) = io.split();
    let mut buf = BytesMut::new();
    let mut dec = Decoder::new(app.config.conn.max_packet_size.0 as usize);
    let connect_timeout = app.config.conn.connect_timeout.0;
    let connect =
        match tokio::time::timeout(connect_timeout, read_connect(&mut r, &mut buf, &mut dec)).await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection closed before CONNECT");
                if matches!(e, BeforeConnect::Proto(ProtoError::FrameTooLarge { .. })) {
                    let _ = w
                        .send(disconnect(ReasonCode::SystemError, "packet too large", 2))
                        .await;
                }
                w.close().await;
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "no CONNECT in time");
                w.close().await;
                return;
            }
        };
    app.traffic.connects.fetch_add(1, Relaxed);
    let version = crate::proto::negotiate_version(connect.version);
    let (reason, device_level) = authenticate(&app, &connect).await;
    if reason != ReasonCode::Success {
        tracing::info!(%peer, uid = %connect.uid, reason = ?reason, "CONNECT refused");
        let _ = w
            .send(connack(
                &app,
                &connect,
                version,
                reason,
                String::new(),
                String::new(),
            ))
            .await;
        w.close().await;
        return;
    }
    let hs = match crate::proto::server_handshake(&connect.client_key) {
        Ok(h) => h,
        Err(e) => {
            tracing::info!(%peer, uid = %connect.uid, error = %e, "bad client key");
            let _ = w
                .send(connack(
                    &app,
                    &connect,
                    version,
                    ReasonCode::AuthFail,
                    String::new(),
                    String::new(),
                ))
                .await;
            w.close().await;
            return;
        }
    };
    let (hub_tx, hub_rx) = mpsc::channel::<Outbound>(1024);
    let conn_id = app.core.hub.next_conn_id();
    let info = ConnInfo {
        id: conn_id,
        uid: connect.uid.clone(),
        device_id: connect.device_id.clone(),
        device_flag: connect.device_flag,
        device_level,
        transport,
    };
    let s = Arc::new(Session {
        app: app.clone(),
        uid: connect.uid.clone(),
        device_id: connect.device_id.clone(),
        version,
        cipher: hs.cipher.clone(),
        conn_id,
    });
    // CONNACK must go out before any RECV: write it before registering with the hub.
    let ack = connack(
        &app,
        &connect,
        version,
        ReasonCode::Success,
        hs.server_key.clone(),
        hs.salt.clone(),
    );
    if w.send(ack).await.is_err() {
        return;
    }
    let pending = app.core.hub.register(info, hub_tx.clone());
    for m in pending {
        let _ = hub_tx.try_send(Outbound::Recv(m));
    }
    tracing::debug!(%peer, uid = %s.uid, device = %s.device_id, version, transport, "client connected");

    let closed = CancellationToken::new();
    let (out_tx, out_rx) = mpsc::channel::<Bytes>(1024);
    let (ack_tx, ack_rx) = mpsc::channel::<PendingAck>(1024);
    let writer = tokio::spawn(write_loop(s.clone(), w, out_rx, hub_rx, closed.clone()));
    let acker = tokio::spawn(ack_loop(s.clone(), ack_rx, out_tx.clone()));
    read_loop(&s, &mut r, &mut buf, &mut dec, &out_tx, &ack_tx, &closed).await;
    app.core.hub.unregister(&s.uid, s.conn_id);
    drop(ack_tx);
    let _ = acker.await; // in-flight SENDACKs are still written
    drop(out_tx);
    closed.cancel();
    let _ = writer.await;
    tracing::debug!(%peer, uid = %s.uid, "client disconnected");
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
        let ok = app.manager_token.as_deref().is_some_and(|t| t == c.token);
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
    let stored = match tokio::task::spawn_blocking(move || store.token(&uid, flag)).await {
        Ok(Ok(t)) => t,
        _ => return (ReasonCode::QueryTokenError, 0),
    };
    let level = stored.as_ref().map(|t| t.device_level).unwrap_or(0);
    if app.config.token_auth_on && stored.is_none_or(|t| t.token != c.token || c.token.is_empty()) {
        return (ReasonCode::AuthFail, 0);
    }
    (ReasonCode::Success, level)
}

fn connack(
    app: &App,
    c: &ConnectPacket,
    version: u8,
    reason: ReasonCode,
    server_key: String,
    salt: String,
) -> Bytes {
    let p = Packet::Connack(ConnackPacket {
        server_version: version,
        time_diff: crate::core::now_millis() - c.client_timestamp,
        reason_code: reason,
        server_key,
        salt,
        node_id: app.node_id,
    });
    // The serverVersion byte goes only to clients announcing a version above 3.
    encode(&p, crate::proto::negotiate_version(c.version)).unwrap_or_default()
}

fn disconnect(reason: ReasonCode, text: &str, version: u8) -> Bytes {
    let p = Packet::Disconnect(DisconnectPacket {
        reason_code: reason,
        reason: text.into(),
    });
    encode(&p, version).unwrap_or_default()
}

async fn read_loop<R: Inbound>(
    s: &Session,
    r: &mut R,
    buf: &mut BytesMut,
    dec: &mut Decoder,
    out: &mpsc::Sender<Bytes>,
    acks: &mpsc::Sender<PendingAck>,
    closed: &CancellationToken,
) {
    let idle = s.app.config.conn.idle_timeout.0;
    loop {
        // Drain every whole packet already buffered.
        loop {
            match dec.decode(buf, s.version) {
                Ok(Some(p)) => {
                    s.app.traffic.packets_in[p.packet_type() as usize & 15].fetch_add(1, Relaxed);
                    if !handle(s, p, out, acks).await {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(uid = %s.uid, error = %e, "protocol error, closing");
                    let reason = match e {
                        ProtoError::FrameTooLarge { .. } => "packet too large",
                        _ => "malformed packet",
                    };
                    let _ = out
                        .send(disconnect(ReasonCode::SystemError, reason, s.version))
                        .await;
                    return;
                }
            }
        }
        let before = buf.len();
        let read = tokio::select! {
            r = tokio::time::timeout(idle, r.read_into(buf)) => r,
            _ = closed.cancelled() => return,
            _ = s.app.shutdown.cancelled() => return,
        };
        match read {
            Ok(Ok(true)) => {
                s.app
                    .traffic
                    .in_bytes
                    .fetch_add((buf.len() - before) as u64, Relaxed);
            }
            Ok(Ok(false)) | Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!(uid = %s.uid, "idle timeout");
                return;
            }
        }
    }
}

/// Handles one packet; false = close the session.
async fn handle(
    s: &Session,
    p: Packet,
    out: &mpsc::Sender<Bytes>,
    acks: &mpsc::Sender<PendingAck>,
) -> bool {
    match p {
        Packet::Ping => out
            .send(encode(&Packet::Pong, s.version).unwrap_or_default())
            .await
            .is_ok(),
        Packet::Send(p) => {
            s.app.traffic.in_msgs.fetch_add(1, Relaxed);
            let pending = submit_send(s, p).await;
            acks.send(pending).await.is_ok()
        }
        Packet::Recvack(a) => {
            s.app.core.hub.ack(&s.uid, a.message_id);
            true
        }
        Packet::Sub(sub) => {
            let ack = Packet::Suback(SubackPacket {
                sub_no: sub.sub_no,
                channel_id: sub.channel_id,
                channel_type: sub.channel_type,
                action: sub.action,
                reason_code: ReasonCode::Success,
            });
            out.send(encode(&ack, s.version).unwrap_or_default())
                .await
                .is_ok()
        }
        Packet::Disconnect(_) => false,
        other => {
            tracing::info!(uid = %s.uid, packet = ?other.packet_type(), "unexpected packet from client, closing");
            let _ = out
                .send(disconnect(
                    ReasonCode::SystemError,
                    "unexpected packet",
                    s.version,
                ))
                .await;
            false
        }
    }
}

fn sendack(
    client_seq: u32,
    message_id: i64,
    message_seq: u64,
    reason: ReasonCode,
) -> SendackPacket {
    SendackPacket {
        message_id,
        client_seq,
        message_seq,
        reason_code: reason,
    }
}

/// Verifies and decrypts a SEND and queues it on the write path (keeping arrival order).
async fn submit_send(s: &Session, p: SendPacket) -> PendingAck {
    let since = std::time::Instant::now();
    let client_seq = p.client_seq;
    let payload = if p.setting.no_encrypt() {
        p.payload.to_vec()
    } else {
        match s.cipher.open_send(&p) {
            Ok(plain) => plain,
            Err(e) => {
                tracing::info!(uid = %s.uid, error = %e, "SEND refused: payload decode");
                return PendingAck::Ready(
                    sendack(client_seq, 0, 0, ReasonCode::PayloadDecodeError),
                    since,
                );
            }
        }
    };
    if p.channel_id.is_empty() {
        return PendingAck::Ready(sendack(client_seq, 0, 0, ReasonCode::ChannelIDError), since);
    }
    let cmd = Command::Send(SendCmd {
        from_uid: s.uid.clone(),
        from_device: s.device_id.clone(),
        channel_id: p.channel_id,
        channel_type: p.channel_type,
        client_msg_no: p.client_msg_no,
        setting: p.setting.0,
        header: Header {
            no_persist: p.flags.no_persist,
            red_dot: p.flags.red_dot,
            sync_once: p.flags.sync_once,
        },
        expire: p.expire,
        topic: (!p.topic.is_empty()).then_some(p.topic),
        stream_no: p.stream_no,
        payload,
        timestamp: crate::core::now_secs(),
        trusted: false,
    });
    match s.app.core.submit(cmd).await {
        Ok(rx) => PendingAck::Waiting {
            client_seq,
            rx,
            since,
        },
        Err(_) => PendingAck::Ready(sendack(client_seq, 0, 0, ReasonCode::SystemError), since),
    }
}

/// Writes SENDACKs in SEND order as their outcomes arrive.
async fn ack_loop(s: Arc<Session>, mut rx: mpsc::Receiver<PendingAck>, out: mpsc::Sender<Bytes>) {
    while let Some(p) = rx.recv().await {
        let (ack, since) = match p {
            PendingAck::Ready(a, since) => (a, since),
            PendingAck::Waiting {
                client_seq,
                rx,
                since,
            } => (
                match rx.await {
                    Ok(Ok(Outcome::Sent {
                        message_id,
                        message_seq,
                        ..
                    })) => sendack(client_seq, message_id, message_seq, ReasonCode::Success),
                    Ok(Ok(Outcome::Rejected { reason, .. })) => {
                        sendack(client_seq, 0, 0, ReasonCode::from_u8(reason))
                    }
                    Ok(Ok(Outcome::Done)) => sendack(client_seq, 0, 0, ReasonCode::Success),
                    Ok(Err(_)) | Err(_) => sendack(client_seq, 0, 0, ReasonCode::SystemError),
                },
                since,
            ),
        };
        if ack.reason_code == ReasonCode::SystemError && s.app.draining.load(Relaxed) {
            // Not stored because the node is stopping: no answer, so the client resends it.
            continue;
        }
        s.app
            .traffic
            .send_ack
            .observe(since.elapsed().as_secs_f64());
        if out
            .send(encode(&Packet::Sendack(ack), s.version).unwrap_or_default())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Owns the writing half: session replies and hub pushes, until closed or kicked.
async fn write_loop<W: Out>(
    s: Arc<Session>,
    mut w: W,
    mut out: mpsc::Receiver<Bytes>,
    mut hub: mpsc::Receiver<Outbound>,
    closed: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            biased;
            f = out.recv() => match f { Some(f) => f, None => break },
            h = hub.recv() => match h {
                Some(Outbound::Recv(m)) => recv_frame(&s, &m),
                Some(Outbound::Kick { reason, text }) => {
                    tracing::info!(uid = %s.uid, device = %s.device_id, reason, %text, "disconnecting client");
                    let _ = w.send(disconnect(ReasonCode::from_u8(reason), &text, s.version)).await;
                    break;
                }
                Some(Outbound::Close) => {
                    tracing::info!(uid = %s.uid, device = %s.device_id, "closing client connection (shutdown)");
                    break;
                }
                None => break,
            },
            _ = closed.cancelled() => {
                // Flush what the session already queued (e.g. a final DISCONNECT).
                while let Ok(f) = out.try_recv() {
                    let _ = w.send(f).await;
                }
                break;
            }
        };
        s.app
            .traffic
            .out_bytes
            .fetch_add(frame.len() as u64, Relaxed);
        if let Some(b) = frame.first() {
            s.app.traffic.packets_out[(b >> 4) as usize].fetch_add(1, Relaxed);
        }
        if w.send(frame).await.is_err() {
            break;
        }
    }
    closed.cancel();
    w.close().await;
}

/// A stored message as this session's RECV packet (encrypted unless the sender opted out).
fn recv_frame(s: &Session, m: &Message) -> Bytes {
    let mut p = RecvPacket {
        flags: HeaderFlags {
            dup: false,
            sync_once: m.header.sync_once,
            red_dot: m.header.red_dot,
            no_persist: m.header.no_persist,
        },
        setting: crate::proto::Setting(m.setting),
        msg_key: String::new(),
        from_uid: m.from_uid.clone(),
        channel_id: m.channel_for(&s.uid),
        channel_type: m.channel_type,
        expire: m.expire,
        client_msg_no: m.client_msg_no.clone(),
        stream_no: m.stream_no.clone(),
        stream_seq: 0,
        stream_flag: 0,
        message_id: m.message_id,
        message_seq: m.message_seq,
        timestamp: m.timestamp,
        topic: m.topic.clone().unwrap_or_default(),
        payload: Bytes::copy_from_slice(&m.payload),
    };
    if !p.setting.no_encrypt() {
        s.cipher.seal_recv(&mut p);
    }
    s.app.traffic.out_msgs.fetch_add(1, Relaxed);
    encode(&Packet::Recv(p), s.version).unwrap_or_default()
}
