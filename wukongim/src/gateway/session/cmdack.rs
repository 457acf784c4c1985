//! The RECVACK of a command message (Go: `internal/user/handler/event_recvack.go` `recvack`):
//! when a master device acknowledges a stored sync_once message, the user's conversation with
//! its channel (the `____cmd` channel of an HTTP sync_once send) is read up to it, so
//! `/message/sync` does not return it again. Proposed in the background, as Go updates the
//! conversation asynchronously; a failure is logged and the message stays unacknowledged.

use super::auth::MANAGER_UID;
use super::Session;
use crate::app::App;
use crate::core::ConnInfo;
use crate::proto::RecvackPacket;
use crate::store::{Command, Message};
use std::sync::Arc;

/// Go's device level "master": only with `tokenAuthOn`, from the token checked at CONNECT
/// (every device is a slave otherwise, the manager account included).
pub(super) fn is_master(app: &App, info: &ConnInfo) -> bool {
    app.config.token_auth_on && info.device_level == 1 && info.uid != MANAGER_UID
}

/// After `a` removed `acked` from this user's pending messages: marks them read when `a` is a
/// master device's acknowledgement of stored sync_once messages.
pub(super) fn on_recvack(s: &Session, a: &RecvackPacket, acked: &[Arc<Message>]) {
    if !s.master || !a.flags.sync_once || a.flags.no_persist {
        return;
    }
    for m in acked.iter().filter(|m| m.message_seq > 0) {
        let cmd = Command::ReadTo {
            uid: s.uid.clone(),
            channel_id: m.channel_for(&s.uid),
            channel_type: m.channel_type,
            message_seq: m.message_seq,
        };
        let app = s.app.clone();
        let uid = s.uid.clone();
        tokio::spawn(async move {
            if let Err(e) = app.core.propose(cmd).await {
                tracing::warn!(%uid, error = %e, "RECVACK of a command message not recorded");
            }
        });
    }
}
