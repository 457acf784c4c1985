//! Replicated device commands: token updates, `/user/device_quit`, logins and relayed RECVACKs. Their
//! stored part (tokens) is applied like any command; what they do to connections is returned as
//! [`Effect`]s, which every node's state machine hands to its own hub after the batch committed
//! (`core/devices.rs`). So a kick or an acknowledgement reaches the connections and pending
//! messages of every node, in log order with the messages themselves.

use super::*;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

/// Go's device flags that `device_flag: -1` of `/user/device_quit` means (APP, WEB, PC).
pub const QUIT_ALL_FLAGS: [u8; 3] = [0, 1, 2];

/// WuKongIM's DISCONNECT reason code for a kicked connection (`ReasonConnectKick`).
pub const REASON_CONNECT_KICK: u8 = 12;

/// Go's DISCONNECT reason text of the master kick on a token update (user.go `updateToken`:
/// "the account logged in on another device").
pub const TOKEN_KICK_TEXT: &str = "账号在其他设备上登录";

/// The RECVACKs one user sent to one node, relayed to all ([`Command::Recvacks`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidAcks {
    pub uid: String,
    pub message_ids: Vec<i64>,
}

/// What an applied command does to this node's connections and pending messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send DISCONNECT `reason`/`text` to the connections of `uid` with one of `device_flags`
    /// that were registered before `before_ms` (unix ms, the proposer's clock), and close them.
    Kick {
        uid: String,
        device_flags: Vec<u8>,
        before_ms: i64,
        reason: u8,
        text: String,
    },
    /// `uid` acknowledged these messages on some node: stop keeping them for redelivery.
    Acked { uid: String, message_ids: Vec<i64> },
    /// `device_id` of `uid` logged in with `device_flag` on some node: of the connections with
    /// that flag made before `before_ms`, a master login kicks those of other devices
    /// (DISCONNECT `ConnectKick`) and any login closes those of the same device (no DISCONNECT).
    Login {
        uid: String,
        device_flag: u8,
        device_id: String,
        master: bool,
        before_ms: i64,
    },
}

/// Stores the token of `uid` and `device_flag`.
pub(super) fn save_token(
    txn: &Tx,
    uid: &str,
    device_flag: u8,
    device_level: u8,
    token: &str,
) -> Result<()> {
    let rec = UserToken {
        token: token.to_string(),
        device_level,
    };
    let mut t = txn.open_table(TOKENS)?;
    // The data version counts users holding a token: count this uid on its first token.
    let first = t.range((uid, 0u8)..=(uid, u8::MAX))?.next().is_none();
    t.insert((uid, device_flag), to_bytes(&rec).as_slice())?;
    if first {
        txn.user_added();
    }
    Ok(())
}

/// [`Command::TokenUpdate`]: stores the token; a master device kicks the older connections of
/// that uid and device flag, as Go's `updateToken` does.
pub(super) fn token_update(
    txn: &Tx,
    uid: &str,
    device_flag: u8,
    device_level: u8,
    token: &str,
    at_ms: i64,
    effects: &mut Vec<Effect>,
) -> Result<Outcome> {
    save_token(txn, uid, device_flag, device_level, token)?;
    if device_level == 1 {
        effects.push(Effect::Kick {
            uid: uid.to_string(),
            device_flags: vec![device_flag],
            before_ms: at_ms,
            reason: REASON_CONNECT_KICK,
            text: TOKEN_KICK_TEXT.into(),
        });
    }
    Ok(Outcome::Done)
}

/// [`Command::DeviceQuit`], as Go's `quitUserDevice`: for every flag whose device is
/// registered, empties its token (an empty token never authenticates) and kicks its
/// connections (DISCONNECT `ConnectKick`, no text). A flag without a registered device is left
/// alone, connections included, as in Go.
pub(super) fn device_quit(
    txn: &Tx,
    uid: &str,
    device_flags: &[u8],
    at_ms: i64,
    effects: &mut Vec<Effect>,
) -> Result<Outcome> {
    let mut kicked = Vec::new();
    for &flag in device_flags {
        let known = txn.open_table(TOKENS)?.get((uid, flag))?.is_some();
        if known {
            // Go stores level master here ("any level will do").
            save_token(txn, uid, flag, 1, "")?;
            kicked.push(flag);
        }
    }
    if !kicked.is_empty() {
        effects.push(Effect::Kick {
            uid: uid.to_string(),
            device_flags: kicked,
            before_ms: at_ms,
            reason: REASON_CONNECT_KICK,
            text: String::new(),
        });
    }
    Ok(Outcome::Done)
}

/// [`Command::Recvacks`]: nothing stored; every node forgets the acknowledged messages.
pub(super) fn recvacks(acks: &[UidAcks], effects: &mut Vec<Effect>) -> Outcome {
    for a in acks {
        effects.push(Effect::Acked {
            uid: a.uid.clone(),
            message_ids: a.message_ids.clone(),
        });
    }
    Outcome::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(store: &Store, seq: u64, cmds: Vec<Command>) -> Vec<Effect> {
        let b = Batch::numbered(seq, cmds);
        let mut a = store.apply_entries(&[Some(b)], &[]).unwrap();
        a.pop().unwrap().effects
    }

    fn token(uid: &str, flag: u8, level: u8, at_ms: i64) -> Command {
        Command::TokenUpdate {
            uid: uid.into(),
            device_flag: flag,
            device_level: level,
            token: "t".into(),
            at_ms,
        }
    }

    #[test]
    fn master_tokens_kick_and_device_quit_empties_only_registered_devices() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(
            apply(&store, 1, vec![token("u", 0, 0, 5)]).is_empty(),
            "slave"
        );
        let kick = |flags: Vec<u8>, before_ms, text: &str| Effect::Kick {
            uid: "u".into(),
            device_flags: flags,
            before_ms,
            reason: REASON_CONNECT_KICK,
            text: text.into(),
        };
        assert_eq!(
            apply(&store, 2, vec![token("u", 1, 1, 7)]),
            [kick(vec![1], 7, TOKEN_KICK_TEXT)]
        );
        let quit = Command::DeviceQuit {
            uid: "u".into(),
            device_flags: QUIT_ALL_FLAGS.to_vec(),
            at_ms: 9,
        };
        // Flag 2 has no token: untouched, not kicked (Go's quitUserDevice).
        assert_eq!(apply(&store, 3, vec![quit]), [kick(vec![0, 1], 9, "")]);
        for flag in [0, 1] {
            let t = store.token("u", flag).unwrap().unwrap();
            assert_eq!((t.token.as_str(), t.device_level), ("", 1));
        }
        assert_eq!(store.token("u", 2).unwrap(), None);
    }
}
