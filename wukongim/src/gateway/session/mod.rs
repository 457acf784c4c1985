//! One client session, whatever the transport. [`run`] is the whole life of a connection:
//! CONNECT is checked ([`auth`]), then two tasks share the session — the read loop
//! ([`read`]: PING, SEND, RECVACK, SUB, DISCONNECT; it also writes the SENDACKs in SEND order,
//! [`acks`], fed by [`send`]) and the writer owning the socket ([`write`], which frames hub
//! pushes as RECV with [`recv`]); one queue feeds the writer. Bad input closes this connection
//! only.

mod acks;
mod auth;
mod cmdack;
mod read;
mod recv;
mod send;
mod write;

use super::transport::{Outbound as _, Transport};
use crate::app::App;
use crate::core::{ConnInfo, Outbound};
use crate::proto::{encode, ConnectPacket, DisconnectPacket, Packet, ReasonCode, SessionCipher};
use bytes::{Bytes, BytesMut};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// State fixed at CONNECT time.
struct Session {
    app: Arc<App>,
    uid: String,
    device_id: String,
    version: u8,
    cipher: SessionCipher,
    conn_id: u64,
    /// A master device (Go: the level of the token checked at CONNECT with tokenAuthOn).
    master: bool,
}

/// Runs a connection to completion.
pub async fn run<T: Transport>(app: Arc<App>, io: T, transport: &'static str, peer: String) {
    let (mut r, mut w) = io.split();
    let mut buf = BytesMut::new();
    let mut dec = crate::proto::Decoder::new(app.config.conn.max_packet_size.0 as usize);
    // Boxed, here and for each SEND (read.rs): an await point's future is kept inline in the
    // connection's task for its whole life, so the big, short-lived ones live on the heap only
    // while they run (bench/connections.sh: the task was 3.7 KiB of a connection's ~12 KiB).
    let accepting = Box::pin(auth::accept(
        &app, &mut r, &mut w, &mut buf, &mut dec, &peer,
    ));
    let Some(accepted) = accepting.await else {
        w.close().await;
        return;
    };
    app.traffic.connects.fetch_add(1, Relaxed);
    let ConnectPacket {
        uid,
        device_id,
        device_flag,
        ..
    } = accepted.connect; // the token and the client key are not kept
    let (hub_tx, hub_rx) = mpsc::channel::<Outbound>(1024);
    let conn_id = app.core.hub.next_conn_id();
    let info = ConnInfo {
        id: conn_id,
        uid: uid.clone(),
        device_id: device_id.clone(),
        device_flag,
        device_level: accepted.device_level,
        transport,
    };
    let s = Arc::new(Session {
        app: app.clone(),
        uid,
        device_id,
        version: accepted.version,
        cipher: accepted.cipher,
        conn_id,
        master: cmdack::is_master(&app, &info),
    });
    // CONNACK must go out before any RECV: write it before registering with the hub.
    let deadline = app.config.conn.write_timeout.0;
    if !matches!(
        tokio::time::timeout(deadline, w.send(accepted.connack)).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let closed = CancellationToken::new();
    let login_ms = crate::core::now_millis();
    for m in app
        .core
        .hub
        .register(info.clone(), hub_tx.clone(), closed.clone())
    {
        let _ = hub_tx.try_send(Outbound::Recv(m));
    }
    crate::core::devices::announce_login(&app.core, &info, login_ms);
    tracing::debug!(%peer, uid = %s.uid, device = %s.device_id, version = s.version, transport, "client connected");

    // Two tasks: this one reads (and writes the SENDACKs' frames as their outcomes arrive),
    // the writer owns the socket's writing half and the one queue (replies and hub pushes).
    let writer = tokio::spawn(write::write_loop(s.clone(), w, hub_rx, closed.clone()));
    read::read_loop(&s, &mut r, &mut buf, &mut dec, &hub_tx, &closed).await;
    app.core.hub.unregister(&s.uid, s.conn_id);
    drop(hub_tx);
    closed.cancel();
    let _ = writer.await;
    tracing::debug!(%peer, uid = %s.uid, "client disconnected");
}

/// A DISCONNECT frame.
fn disconnect(reason: ReasonCode, text: &str, version: u8) -> Bytes {
    let p = Packet::Disconnect(DisconnectPacket {
        reason_code: reason,
        reason: text.into(),
    });
    encode(&p, version).unwrap_or_default()
}
