//! Command messages: `internal/api/message.go` (`send` → `sendMessageToChannel`: a sync_once
//! message goes to the channel's `____cmd` command channel; `sync` and `syncack`),
//! `internal/options/options.go` (`OrginalConvertCmdChannel`, `IsCmdChannel`),
//! `internal/manager/manager_conversation.go` (command conversations of every recipient),
//! `internal/api/conversation.go` (`syncUserConversation` never lists command channels) and
//! `internal/user/handler/event_onsend.go` (`handleOnSend`: a client SEND is never converted).

use super::group;
use serde_json::{json, Value};
use std::time::Duration;
use wk_tests::{poll, post, Node, NodeOptions, TestCluster, WkClient};
use wukongim::proto::Packet;

const PAYLOAD: &str = "eyJ0eXBlIjoxLCJjb250ZW50IjoieCJ9";
const T: Duration = Duration::from_secs(15);

/// POST /message/send; `sync_once` sets the header flag. Returns the answer's `data`.
async fn send(node: &Node, from: &str, to: &str, ty: u8, sync_once: bool) -> Value {
    let (st, v) = post(
        &node.url("/message/send"),
        json!({"from_uid": from, "channel_id": to, "channel_type": ty, "payload": PAYLOAD,
               "header": {"sync_once": sync_once as u8}}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v["data"].clone()
}

/// POST /message/sync: Go answers a bare JSON array of messages.
async fn cmd_sync(node: &Node, uid: &str, limit: i64) -> Vec<Value> {
    let (st, v) = post(
        &node.url("/message/sync"),
        json!({"uid": uid, "message_seq": 0, "limit": limit}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v.as_array()
        .cloned()
        .unwrap_or_else(|| panic!("not a list: {v}"))
}

async fn syncack(node: &Node, uid: &str) {
    let (st, v) = post(
        &node.url("/message/syncack"),
        json!({"uid": uid, "last_message_seq": 1}),
    )
    .await;
    assert_eq!((st, v), (200, json!({"status": 200})));
}

/// The channels /conversation/sync lists for `uid`.
async fn conversation_channels(node: &Node, uid: &str) -> Vec<String> {
    let (st, v) = post(
        &node.url("/conversation/sync"),
        json!({"uid": uid, "msg_count": 5}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|c| c["channel_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn ids(list: &[Value]) -> Vec<(String, u64)> {
    list.iter()
        .map(|m| {
            (
                m["channel_id"].as_str().unwrap_or_default().to_string(),
                m["message_seq"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// send + sendMessageToChannel: an HTTP sync_once message to a group or a person is stored in
/// the command channel (own seqs: the group's chat keeps its own), delivered live with the
/// channel the sender addressed; sync returns it as MessageResp with the `____cmd` id to every
/// recipient (a person channel named after the peer), until syncack; conversation sync never
/// lists it.
#[tokio::test]
async fn sync_once_sends_are_served_by_message_sync_until_acknowledged() {
    let node = Node::start(NodeOptions::default()).await;
    group(&node, "g1", &["ann", "ben"]).await;
    let (mut ben, _) = WkClient::connect(&node.tcp_addr(), "ben", "", 4).await;
    send(&node, "ann", "g1", 2, false).await;
    let chat = ben.next_recv(T).await;
    assert_eq!((chat.channel_id.as_str(), chat.message_seq), ("g1", 1));

    let sent = send(&node, "bot", "g1", 2, true).await;
    assert_eq!(
        sent["message_seq"], 1,
        "the command channel has its own seqs: {sent}"
    );
    let r = ben.next_recv(T).await;
    assert_eq!(
        (r.channel_id.as_str(), r.channel_type, r.message_seq),
        ("g1", 2, 1)
    );
    assert!(r.flags.sync_once, "{r:?}");
    send(&node, "bot", "ben", 1, true).await;
    let r = ben.next_recv(T).await;
    assert_eq!((r.channel_id.as_str(), r.channel_type), ("bot", 1));
    assert!(r.flags.sync_once, "{r:?}");

    let list = cmd_sync(&node, "ben", 0).await;
    assert_eq!(
        ids(&list),
        [("bot____cmd".to_string(), 1), ("g1____cmd".to_string(), 1)]
    );
    let g = &list[1];
    assert_eq!(g["header"]["sync_once"], 1, "{g}");
    assert_eq!(g["channel_type"], 2, "{g}");
    assert_eq!(g["from_uid"], "bot", "{g}");
    assert_eq!(g["payload"], PAYLOAD, "{g}");
    assert_eq!(g["message_id"], sent["message_id"], "{g}");
    assert_eq!(g["message_idstr"], sent["message_id"].to_string(), "{g}");
    assert_eq!(
        conversation_channels(&node, "ben").await,
        ["g1"],
        "command channels stay out of /conversation/sync"
    );

    // Not acknowledged: the same again. Acknowledged: nothing, for ben only.
    assert_eq!(ids(&cmd_sync(&node, "ben", 0).await), ids(&list));
    syncack(&node, "ben").await;
    assert_eq!(cmd_sync(&node, "ben", 0).await, Vec::<Value>::new());
    assert_eq!(
        ids(&cmd_sync(&node, "ann", 0).await),
        [("g1____cmd".to_string(), 1)]
    );
    // Only what follows the acknowledged point comes next.
    send(&node, "bot", "g1", 2, true).await;
    assert_eq!(
        ids(&cmd_sync(&node, "ben", 0).await),
        [("g1____cmd".to_string(), 2)]
    );
}

/// sync's `limit` (default 200) bounds the messages of all command channels together, and
/// syncack acknowledges only what the last sync returned; the temporary channel of a
/// `subscribers` send is a command channel too. Bad input: 400 naming the field (Go's
/// syncReq.Check, syncackReq.Check).
#[tokio::test]
async fn limit_bounds_a_sync_and_syncack_covers_only_what_it_returned() {
    let node = Node::start(NodeOptions::default()).await;
    for _ in 0..3 {
        send(&node, "bot", "cy", 1, true).await;
    }
    let first = cmd_sync(&node, "cy", 2).await;
    assert_eq!(
        ids(&first),
        [("bot____cmd".to_string(), 1), ("bot____cmd".to_string(), 2)]
    );
    syncack(&node, "cy").await;
    let (st, v) = post(
        &node.url("/message/send"),
        json!({"from_uid": "bot", "subscribers": ["cy", "dee"], "header": {"sync_once": 1},
               "payload": PAYLOAD}),
    )
    .await;
    assert_eq!((st, v), (200, json!({"status": 200})));
    let rest = cmd_sync(&node, "cy", 0).await;
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert_eq!(ids(&rest)[0], ("bot____cmd".to_string(), 3));
    let temp = &rest[1];
    assert_eq!(temp["channel_type"], 8, "{temp}");
    assert!(
        temp["channel_id"].as_str().unwrap().ends_with("____cmd"),
        "{temp}"
    );
    assert_eq!(cmd_sync(&node, "dee", 0).await.len(), 1);
    assert_eq!(
        conversation_channels(&node, "cy").await,
        Vec::<String>::new()
    );

    for (path, body, field) in [
        ("/message/sync", json!({"uid": " "}), "uid"),
        ("/message/sync", json!({"uid": "cy", "limit": -1}), "limit"),
        ("/message/sync", json!({"uid": "cy", "limit": "x"}), "limit"),
        (
            "/message/syncack",
            json!({"uid": "", "last_message_seq": 1}),
            "uid",
        ),
        ("/message/syncack", json!({"uid": "cy"}), "last_message_seq"),
    ] {
        let (st, v) = post(&node.url(path), body.clone()).await;
        assert_eq!((st, &v["status"]), (400, &json!(400)), "{path} {body}: {v}");
        let msg = v["msg"].as_str().unwrap_or_default();
        assert!(msg.contains(field), "{path} {body}: {v}");
    }
}

/// handleOnSend: a client SEND with the sync_once flag is not converted (only the HTTP send
/// converts): it is delivered and stored in its own channel like any message, so it is in the
/// conversation and not in /message/sync.
#[tokio::test]
async fn a_client_send_with_the_sync_once_flag_stays_in_its_channel() {
    let node = Node::start(NodeOptions::default()).await;
    let (mut eve, _) = WkClient::connect(&node.tcp_addr(), "eve", "", 4).await;
    let (mut fin, _) = WkClient::connect(&node.tcp_addr(), "fin", "", 4).await;
    let mut p = eve.text_packet("fin", 1, "cmd", "c1");
    p.flags.sync_once = true;
    eve.write(&Packet::Send(p)).await;
    let r = fin.next_recv(T).await;
    assert!(r.flags.sync_once, "{r:?}");
    assert_eq!((r.channel_id.as_str(), r.message_seq), ("eve", 1));
    assert_eq!(fin.recv_text(&r), "cmd");
    assert_eq!(cmd_sync(&node, "fin", 0).await, Vec::<Value>::new());
    assert_eq!(conversation_channels(&node, "fin").await, ["eve"]);
}

/// In a cluster the record of a sync is replicated (Go forwards sync and syncack to the node
/// owning the user): a sync on one node, its ack on another, and every node then serves the
/// same empty answer; the nodes' data versions agree.
#[tokio::test]
async fn sync_and_syncack_on_different_nodes_of_a_cluster_agree() {
    let mut c = TestCluster::start(3, "").await;
    group(&c.nodes[0], "ops", &["gil", "hana"]).await;
    send(&c.nodes[1], "bot", "ops", 2, true).await;
    send(&c.nodes[1], "bot", "gil", 1, true).await;
    let want = [("bot____cmd".to_string(), 1), ("ops____cmd".to_string(), 1)];
    for node in &c.nodes {
        let want = &want;
        poll(
            T,
            "the command messages on every node",
            move || async move {
                let got = ids(&cmd_sync(node, "gil", 0).await);
                (got == *want).then_some(())
            },
        )
        .await;
    }
    // The last sync above ran on node 3; acknowledge on node 1.
    syncack(&c.nodes[0], "gil").await;
    for node in &c.nodes {
        poll(T, "no command message after syncack", move || async move {
            cmd_sync(node, "gil", 0).await.is_empty().then_some(())
        })
        .await;
    }
    assert_eq!(
        ids(&cmd_sync(&c.nodes[2], "hana", 0).await),
        [want[1].clone()]
    );
    c.wait_converged(T).await;
}

/// recvack (`internal/user/handler/event_recvack.go`): a master device's RECVACK of a stored
/// sync_once message marks it read, so sync no longer returns it; a slave device's does not
/// (devices are masters only through the token checked with tokenAuthOn).
#[tokio::test]
async fn a_master_device_recvack_marks_the_command_message_read() {
    let node = Node::start(NodeOptions {
        extra_yaml: "tokenAuthOn: true\n".into(),
        ..NodeOptions::default()
    })
    .await;
    for (uid, level) in [("ivy", 1), ("jo", 0)] {
        let (st, v) = post(
            &node.url("/user/token"),
            json!({"uid": uid, "token": format!("{uid}-t"), "device_flag": 0, "device_level": level}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    group(&node, "g2", &["ivy", "jo"]).await;
    let (mut ivy, _) = WkClient::connect(&node.tcp_addr(), "ivy", "ivy-t", 4).await;
    let (mut jo, _) = WkClient::connect(&node.tcp_addr(), "jo", "jo-t", 4).await;
    send(&node, "bot", "g2", 2, true).await;
    for c in [&mut ivy, &mut jo] {
        let r = c.next_recv(T).await;
        assert!(r.flags.sync_once, "{r:?}");
        c.ack(&r).await;
    }
    let node = &node;
    poll(
        T,
        "the master's RECVACK to mark the message read",
        move || async move { cmd_sync(node, "ivy", 0).await.is_empty().then_some(()) },
    )
    .await;
    assert_eq!(
        ids(&cmd_sync(node, "jo", 0).await),
        [("g2____cmd".to_string(), 1)]
    );
}
