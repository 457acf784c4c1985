//! The JSON bodies Go's webhooks carry (`internal/types`: `MessageResp`,
//! `MessageOfflineNotify`, the online-status strings).

use super::feed::Item;
use crate::api::sync::message_json;
use serde_json::Value;

/// `msg.notify`: an array of `MessageResp`.
pub fn notify(items: &[Item]) -> Vec<u8> {
    let list: Vec<Value> = items.iter().map(|i| message_json(&i.message, "")).collect();
    serde_json::to_vec(&list).unwrap_or_default()
}

/// `msg.offline`: one `MessageResp` with `to_uids` (who to push to) and `source_id` (this node).
pub fn offline(item: &Item, to_uids: &[String], node_id: u64) -> Vec<u8> {
    let mut v = message_json(&item.message, "");
    if let Value::Object(o) = &mut v {
        o.insert("to_uids".into(), to_uids.into());
        o.insert("source_id".into(), node_id.into());
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// `user.onlinestatus` entry: `uid-deviceFlag-online-connId-deviceOnlineCount-totalOnlineCount`.
pub fn online_status(
    uid: &str,
    device_flag: u8,
    online: bool,
    conn_id: u64,
    device_count: usize,
    total: usize,
) -> String {
    format!(
        "{uid}-{device_flag}-{}-{conn_id}-{device_count}-{total}",
        online as u8
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_status_is_gos_dash_format() {
        assert_eq!(online_status("u1", 1, true, 7, 1, 2), "u1-1-1-7-1-2");
        assert_eq!(online_status("u1", 0, false, 7, 0, 0), "u1-0-0-7-0-0");
    }
}
