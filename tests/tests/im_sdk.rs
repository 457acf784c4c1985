//! The real `wukongimjssdk` 1.0.4 client (under Node, over WebSocket) against one node: person
//! chat both ways, a group created through the HTTP API, history through messagesync and
//! conversation sync, and a reconnecting client receiving what it missed.

use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;
use wk_tests::js::recv_text;
use wk_tests::{post, JsClient, Node, NodeOptions};

const T: Duration = Duration::from_secs(20);

fn payload_text(m: &Value) -> String {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(m["payload"].as_str().unwrap())
        .unwrap();
    let v: Value = serde_json::from_slice(&raw).unwrap();
    v["content"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_clients_chat_in_person_and_group_channels_and_catch_up() {
    let node = Node::start(NodeOptions::default()).await;
    let ws = node.ws_addr();
    let mut alice = JsClient::spawn(&ws, "alice", "");
    let mut bob = JsClient::spawn(&ws, "bob", "");
    alice.wait_connected();
    bob.wait_connected();

    // Person messages both ways; the receiver sees the channel as the sender's uid.
    alice.send_text("bob", 1, "hi bob");
    bob.wait_for(
        "alice's message",
        T,
        recv_text("alice", "alice", 1, "hi bob"),
    );
    let ack = alice.wait_for("SENDACK", T, |v| v["ev"] == "ack");
    assert_eq!(ack["reason"], 1, "SENDACK success: {ack}");
    assert_eq!(ack["seq"], 1);
    bob.send_text("alice", 1, "hi alice");
    let m = alice.wait_for("bob's reply", T, recv_text("bob", "bob", 1, "hi alice"));
    assert_eq!(m["seq"], 2, "one message log per pair: {m}");

    // A group created through the API; a third member joins.
    let (st, body) = post(
        &node.url("/channel"),
        json!({"channel_id": "g1", "channel_type": 2, "subscribers": ["alice", "bob", "carol"]}),
    )
    .await;
    assert_eq!((st, &body), (200, &json!({"status": 200})));
    let mut carol = JsClient::spawn(&ws, "carol", "");
    carol.wait_connected();
    alice.send_text("g1", 2, "hello group");
    bob.wait_for(
        "group message",
        T,
        recv_text("alice", "g1", 2, "hello group"),
    );
    carol.wait_for(
        "group message",
        T,
        recv_text("alice", "g1", 2, "hello group"),
    );

    // History through the API.
    let (st, sync) = post(
        &node.url("/channel/messagesync"),
        json!({"login_uid": "bob", "channel_id": "alice", "channel_type": 1, "start_message_seq": 0, "limit": 10, "pull_mode": 1}),
    )
    .await;
    assert_eq!(st, 200, "{sync}");
    let msgs = sync["messages"].as_array().unwrap();
    let texts: Vec<String> = msgs.iter().map(payload_text).collect();
    assert_eq!(texts, ["hi bob", "hi alice"]);
    assert_eq!(msgs[0]["channel_id"], "alice", "channel as bob sees it");
    assert_eq!(msgs[1]["from_uid"], "bob");

    let (st, convs) = post(
        &node.url("/conversation/sync"),
        json!({"uid": "carol", "msg_count": 5}),
    )
    .await;
    assert_eq!(st, 200, "{convs}");
    let g = convs
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel_id"] == "g1")
        .expect("carol has the group conversation");
    assert_eq!(g["channel_type"], 2);
    assert_eq!(g["last_msg_seq"], 1);
    assert_eq!(payload_text(&g["recents"][0]), "hello group");

    // Carol goes offline, misses a message, reconnects and receives it.
    carol.disconnect();
    carol.wait_for("disconnected", T, |v| {
        v["ev"] == "status" && v["status"] == 0
    });
    wk_tests::poll(T, "carol offline on the server", || async {
        let (_, online) = post(&node.url("/user/onlinestatus"), json!(["carol"])).await;
        (online == json!([])).then_some(())
    })
    .await;
    alice.send_text("g1", 2, "while you were away");
    bob.wait_for(
        "second group message",
        T,
        recv_text("alice", "g1", 2, "while you were away"),
    );
    carol.connect();
    carol.wait_for(
        "missed message after reconnect",
        T,
        recv_text("alice", "g1", 2, "while you were away"),
    );
    let (_, sync) = post(
        &node.url("/channel/messagesync"),
        json!({"login_uid": "carol", "channel_id": "g1", "channel_type": 2, "limit": 10, "pull_mode": 1}),
    )
    .await;
    let seqs: Vec<u64> = sync["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2], "group seqs gapless from 1");

    // The SDK's conversation list (the demo's provider over /conversation/sync): carol has not
    // read the group's two messages; clearUnread empties the count.
    let api = node.url("");
    let g1 = |list: &[serde_json::Value]| {
        list.iter()
            .find(|c| c["channel"] == "g1")
            .cloned()
            .unwrap_or_else(|| panic!("g1 in {list:?}"))
    };
    let list = carol.conversations(&api, T);
    let g = g1(&list);
    assert_eq!(
        (g["type"].clone(), g["unread"].clone()),
        (json!(2), json!(2)),
        "{g}"
    );
    assert_eq!(g["lastText"], "while you were away", "{g}");
    assert_eq!(g["lastSeq"], 2, "{g}");
    let (st, v) = post(
        &node.url("/conversations/clearUnread"),
        json!({"uid": "carol", "channel_id": "g1", "channel_type": 2}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let g = g1(&carol.conversations(&api, T));
    assert_eq!(g["unread"], 0, "after clearUnread: {g}");
    eprintln!("sdk conversations after clearUnread: {g}");

    // A command message (Go: header.sync_once, content type 99) reaches the SDK's CMD listener,
    // stays out of the conversation list and is served by /message/sync.
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .encode(r#"{"type":99,"cmd":"groupAvatarUpdate","param":{"group_no":"g1"}}"#);
    let (st, v) = post(
        &node.url("/message/send"),
        json!({"header": {"sync_once": 1}, "from_uid": "", "channel_id": "g1", "channel_type": 2,
               "payload": payload}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let cmd = carol.wait_for("the command message", T, |v| v["ev"] == "cmd");
    assert_eq!(cmd["cmd"], "groupAvatarUpdate", "{cmd}");
    assert_eq!(cmd["param"]["group_no"], "g1", "{cmd}");
    let list = carol.conversations(&api, T);
    assert!(
        list.iter()
            .all(|c| !c["channel"].as_str().unwrap_or("").ends_with("____cmd")),
        "no command channel in the list: {list:?}"
    );
    let (st, synced) = post(
        &node.url("/message/sync"),
        json!({"uid": "carol", "message_seq": 0, "limit": 10}),
    )
    .await;
    assert_eq!(st, 200, "{synced}");
    assert_eq!(synced.as_array().map(Vec::len), Some(1), "{synced}");
}
