//! Device kicks and acknowledgements on every node: this node's side of the replicated device
//! commands (`store/devices.rs`). The state machine hands each applied batch's [`Effect`]s to
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

use super::Hub;
use crate::store::Effect;

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
        }
    }
}
