//! Device kicks, logins and acknowledgements on every node: this node's side of the replicated
//! device commands (`store/devices.rs`). The state machine hands each applied batch's [`Effect`]s to
//! [`apply`], which acts on this node's hub only; every node does the same for its own
//! connections.
//!
//! Why the replicated write path rather than an RPC to each node (like `cluster/presence.rs`):
//! `/user/token` is a replicated command already and `/user/device_quit` stores too (Go empties
//! the device's token), so the kick rides on the write that every node applies anyway — no node
//! is missed because it was unreachable at the moment, a node that is behind kicks when it
//! catches up, and nothing new has to be retried. To be exact about *which* connections, the
//! command carries the proposer's clock (`at_ms`) and a node kicks only connections registered
//! before it: a device that reconnects (with its new token) after the answer is not kicked by a
//! node that applies the command late (the nodes' clocks are assumed to agree far better than
//! a client's round trip). A node replaying its log at restart has no connections yet; a node
//! so far behind that it installs a snapshot instead of the entry does not kick.
//!
//! Logins take the same path: when the node has peers, each accepted CONNECT is announced as a
//! small replicated command (not awaited; batched with other writes), so the replacement rules
//! of Go's CONNECT handler reach every node in one order with token updates and quits. Go does
//! cluster work per CONNECT too (it registers the connection with the user's leader node).

use super::{ConnInfo, Core, Hub};
use crate::store::{Command, Effect};

/// Tells the other nodes that `info` logged in here (registered after `at_ms`), so they
/// replace that user's older connections as this node's hub just did with its own (Go's
/// CONNECT handler reaches every node through the user's leader). Does not wait; a node alone
/// in the membership, or in a cluster being upgraded from an older release, proposes nothing.
pub fn announce_login(core: &Core, info: &ConnInfo, at_ms: i64) {
    if !super::acks::relays(&core.cluster) {
        return;
    }
    let cmd = Command::DeviceLogin {
        uid: info.uid.clone(),
        device_flag: info.device_flag,
        device_id: info.device_id.clone(),
        master: info.device_level == 1,
        at_ms,
    };
    let core = core.clone();
    tokio::spawn(async move {
        if let Err(e) = core.propose(cmd).await {
            tracing::warn!(error = %e, "announcing a login to the other nodes failed: older connections there stay");
        }
    });
}

/// Applies `effects` to `hub`'s connections and pending messages.
pub fn apply(hub: &Hub, effects: Vec<Effect>) {
    for e in effects {
        match e {
            Effect::Kick {
                uid,
                device_flags,
                before_ms,
                reason,
                text,
            } => {
                let n = hub.kick_before(&uid, &device_flags, before_ms, reason, &text);
                if n > 0 {
                    tracing::info!(%uid, ?device_flags, reason, connections = n, "kicked");
                }
            }
            Effect::Acked { uid, message_ids } => {
                for id in message_ids {
                    hub.ack(&uid, id);
                }
            }
            Effect::Login {
                uid,
                device_flag,
                device_id,
                master,
                before_ms,
            } => {
                let n = hub.replace_before(&uid, device_flag, &device_id, master, before_ms);
                if n > 0 {
                    tracing::info!(%uid, device_flag, %device_id, master, connections = n, "login replaced connections");
                }
            }
        }
    }
}
