//! Message routes: `internal/api/message.go` (send with subscribers, sendBatch, searchMessages,
//! searchMessage, getMessageByClientMsgNo, getChannelMaxMessageSeq, getChannelLastMessage) and
//! `internal/api/route.go` (routeUserIMAddr, routeUserIMAddrOfBatch), with the envelope of
//! `pkg/wkhttp/http.go` (ResponseError: HTTP 400 `{"msg","status":400}`; ResponseStatus(404):
//! HTTP 200 `{"status":404}`).

use super::group;
use serde_json::{json, Value};
use std::time::Duration;
use wk_tests::{get, post, Node, NodeOptions, WkClient};

const PAYLOAD: &str = "eyJ0eXBlIjoxLCJjb250ZW50IjoieCJ9";
const T: Duration = Duration::from_secs(15);

async fn send(node: &Node, from: &str, to: &str, ty: u8, no: &str) -> Value {
    let (st, v) = post(
        &node.url("/message/send"),
        json!({"from_uid": from, "channel_id": to, "channel_type": ty, "client_msg_no": no, "payload": PAYLOAD}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v["data"].clone()
}

/// Go's ResponseError: HTTP 400 with `{"msg": …, "status": 400}`.
fn assert_client_error(st: u16, v: &Value, what: &str) {
    assert_eq!(st, 400, "{what}: {v}");
    assert_eq!(v["status"], 400, "{what}: {v}");
    assert!(
        v["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
}

/// GET `path?q` on `node`.
async fn query(node: &Node, path: &str, q: &str) -> (u16, Value) {
    get(&node.url(&format!("{path}?{q}"))).await
}

/// getChannelMaxMessageSeq and getChannelLastMessage: the highest seq (0 for a channel without
/// messages), the newest message in MessageResp shape (404 status when there is none); a person
/// channel needs login_uid (or its full "a@b" id for the seq).
#[tokio::test]
async fn max_message_seq_and_last_message_of_group_and_person_channels() {
    let node = Node::start(NodeOptions::default()).await;
    group(&node, "g1", &["ann", "ben"]).await;
    for i in 1..=3 {
        send(&node, "ann", "g1", 2, &format!("g{i}")).await;
    }
    send(&node, "ann", "ben", 1, "p1").await;
    send(&node, "ben", "ann", 1, "p2").await;

    let seq = |q: &'static str| query(&node, "/channel/max_message_seq", q);
    assert_eq!(
        seq("channel_id=g1&channel_type=2").await,
        (200, json!({"message_seq": 3}))
    );
    assert_eq!(
        seq("channel_id=empty&channel_type=2").await,
        (200, json!({"message_seq": 0}))
    );
    assert_eq!(
        seq("channel_id=ben&channel_type=1&login_uid=ann").await,
        (200, json!({"message_seq": 2}))
    );
    assert_eq!(
        seq("channel_id=ann@ben&channel_type=1").await,
        (200, json!({"message_seq": 2}))
    );
    let (st, v) = seq("channel_id=ben&channel_type=1").await;
    assert_client_error(st, &v, "person channel without login_uid");
    let (st, v) = seq("channel_type=2").await;
    assert_client_error(st, &v, "no channel_id");
    let (st, v) = seq("channel_id=g1&channel_type=two").await;
    assert_client_error(st, &v, "channel_type not a number");

    let last = |q: &'static str| query(&node, "/channel/last_message", q);
    let (st, m) = last("channel_id=g1&channel_type=2").await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(
        (&m["client_msg_no"], &m["message_seq"], &m["from_uid"]),
        (&json!("g3"), &json!(3), &json!("ann")),
        "{m}"
    );
    assert_eq!(m["payload"], PAYLOAD);
    assert_eq!(m["message_idstr"], m["message_id"].to_string());
    let (st, m) = last("channel_id=ann&channel_type=1&login_uid=ben").await;
    assert_eq!(st, 200);
    assert_eq!(
        (&m["client_msg_no"], &m["channel_id"]),
        (&json!("p2"), &json!("ann")),
        "as ben sees it: {m}"
    );
    assert_eq!(
        last("channel_id=empty&channel_type=2").await,
        (200, json!({"status": 404}))
    );
    let (st, v) = last("channel_id=ann&channel_type=1").await;
    assert_client_error(st, &v, "person channel without login_uid");
}

/// getMessageByClientMsgNo (GET) and searchMessage (POST /message): one message of a channel
/// by client_msg_no or message_id, `{"status":404}` when absent, 400 for missing parameters.
#[tokio::test]
async fn one_message_by_client_msg_no_or_id() {
    let node = Node::start(NodeOptions::default()).await;
    group(&node, "g2", &["ann"]).await;
    let first = send(&node, "ann", "g2", 2, "first").await;
    send(&node, "ann", "g2", 2, "second").await;
    send(&node, "ann", "ben", 1, "dm").await;

    let by_no = |q: &'static str| query(&node, "/message/byclientmsgno", q);
    let (st, m) = by_no("channel_id=g2&channel_type=2&client_msg_no=first").await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(
        (&m["message_seq"], &m["message_id"]),
        (&json!(1), &first["message_id"])
    );
    let (_, m) = by_no("channel_id=ann@ben&channel_type=1&client_msg_no=dm").await;
    assert_eq!(m["client_msg_no"], "dm", "{m}");
    assert_eq!(
        by_no("channel_id=g2&channel_type=2&client_msg_no=none").await,
        (200, json!({"status": 404}))
    );
    for q in [
        "channel_type=2&client_msg_no=first",
        "channel_id=g2&client_msg_no=first",
        "channel_id=g2&channel_type=2",
    ] {
        let (st, v) = by_no(q).await;
        assert_client_error(st, &v, q);
    }

    let (st, m) = post(
        &node.url("/message"),
        json!({"channel_id": "g2", "channel_type": 2, "message_id": first["message_id"]}),
    )
    .await;
    assert_eq!((st, &m["client_msg_no"]), (200, &json!("first")), "{m}");
    let (st, m) = post(
        &node.url("/message"),
        json!({"login_uid": "ben", "channel_id": "ann", "channel_type": 1, "client_msg_no": "dm"}),
    )
    .await;
    assert_eq!((st, &m["channel_id"]), (200, &json!("ann")), "{m}");
    let (st, v) = post(
        &node.url("/message"),
        json!({"channel_id": "g2", "channel_type": 2, "message_id": 1_000_000}),
    )
    .await;
    assert_eq!((st, v), (200, json!({"status": 404})));
    let (st, v) = post(
        &node.url("/message"),
        json!({"channel_id": "ann", "channel_type": 1, "client_msg_no": "dm"}),
    )
    .await;
    assert_client_error(st, &v, "person channel without login_uid");
}

/// searchMessages (POST /messages): by seq, then id, then client_msg_no; ones not found are left
/// out; the answer is the messagesync envelope.
#[tokio::test]
async fn messages_by_seqs_ids_and_client_numbers() {
    let node = Node::start(NodeOptions::default()).await;
    group(&node, "g3", &["ann"]).await;
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(send(&node, "ann", "g3", 2, &format!("m{i}")).await["message_id"].clone());
    }
    let (st, v) = post(
        &node.url("/messages"),
        json!({"channel_id": "g3", "channel_type": 2, "message_seqs": [2, 9],
               "message_ids": [ids[4], 777_777], "client_msg_nos": ["m1", "nope"]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (&v["more"], &v["start_message_seq"]),
        (&json!(0), &json!(0))
    );
    let got: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["client_msg_no"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["m2", "m5", "m1"]);
    let (st, v) = post(
        &node.url("/messages"),
        json!({"channel_id": "g3", "channel_type": 2}),
    )
    .await;
    assert_eq!((st, &v["messages"]), (200, &json!([])));
    let (st, v) = post(&node.url("/messages"), json!({"channel_type": 2})).await;
    assert_client_error(st, &v, "no channel_id");
    let (st, v) = post(
        &node.url("/messages"),
        json!({"channel_id": "g3", "message_ids": "x"}),
    )
    .await;
    assert_client_error(st, &v, "message_ids not a list");
}

/// sendBatch: one person message from from_uid to each subscriber; `{"fail_uids":[],"reason":[]}`;
/// from_uid, subscribers and payload are required (400).
#[tokio::test]
async fn sendbatch_messages_each_subscriber() {
    let node = Node::start(NodeOptions::default()).await;
    let (mut cara, _) = WkClient::connect(&node.tcp_addr(), "cara", "", 4).await;
    let (st, v) = post(
        &node.url("/message/sendbatch"),
        json!({"from_uid": "bot", "subscribers": ["cara", "dan", "eve"], "payload": PAYLOAD,
               "header": {"red_dot": 1}}),
    )
    .await;
    assert_eq!((st, v), (200, json!({"fail_uids": [], "reason": []})));
    let r = cara.next_recv(T).await;
    assert_eq!(
        (r.from_uid.as_str(), r.channel_id.as_str(), r.channel_type),
        ("bot", "bot", 1)
    );
    assert!(r.flags.red_dot);
    for uid in ["cara", "dan", "eve"] {
        let (_, v) = get(&node.url(&format!(
            "/channel/max_message_seq?channel_id={uid}&channel_type=1&login_uid=bot"
        )))
        .await;
        assert_eq!(v["message_seq"], 1, "{uid}: {v}");
    }
    for (body, what) in [
        (
            json!({"subscribers": ["a"], "payload": PAYLOAD}),
            "no from_uid",
        ),
        (
            json!({"from_uid": "bot", "payload": PAYLOAD}),
            "no subscribers",
        ),
        (
            json!({"from_uid": "bot", "subscribers": ["a"]}),
            "no payload",
        ),
        (
            json!({"from_uid": "bot", "subscribers": ["a"], "payload": "%%"}),
            "payload not base64",
        ),
    ] {
        let (st, v) = post(&node.url("/message/sendbatch"), body).await;
        assert_client_error(st, &v, what);
    }
}

/// send with `subscribers`: only a sync_once message, never with channel_id (400 otherwise);
/// it reaches exactly the listed users through the temporary command channel (type 8, id
/// `<fnv64a of the list>____cmd`) and answers `{"status":200}`.
#[tokio::test]
async fn send_with_subscribers_reaches_exactly_them() {
    let node = Node::start(NodeOptions::default()).await;
    let (mut fay, _) = WkClient::connect(&node.tcp_addr(), "fay", "", 4).await;
    let (mut gus, _) = WkClient::connect(&node.tcp_addr(), "gus", "", 4).await;
    let (mut hal, _) = WkClient::connect(&node.tcp_addr(), "hal", "", 4).await;
    let url = node.url("/message/send");
    let (st, v) = post(
        &url,
        json!({"from_uid": "bot", "subscribers": ["fay", "gus"], "payload": PAYLOAD}),
    )
    .await;
    assert_client_error(st, &v, "subscribers without sync_once");
    let (st, v) = post(
        &url,
        json!({"from_uid": "bot", "channel_id": "x", "channel_type": 2, "subscribers": ["fay"],
               "header": {"sync_once": 1}, "payload": PAYLOAD}),
    )
    .await;
    assert_client_error(st, &v, "channel_id with subscribers");

    let (st, v) = post(
        &url,
        json!({"from_uid": "bot", "subscribers": ["fay", "gus"], "header": {"sync_once": 1},
               "payload": PAYLOAD}),
    )
    .await;
    assert_eq!((st, v), (200, json!({"status": 200})));
    let mut cmd_channel = String::new();
    for c in [&mut fay, &mut gus] {
        let r = c.next_recv(T).await;
        cmd_channel = r.channel_id.clone();
        assert_eq!(r.channel_type, 8, "{r:?}");
        assert!(r.channel_id.ends_with("____cmd"), "{r:?}");
        assert!(r.flags.sync_once, "{r:?}");
        assert_eq!(r.from_uid, "bot");
    }
    // The message is stored in the command channel, which conversation sync never lists (Go:
    // conversation.go syncUserConversation skips IsCmdChannel).
    let (_, v) = query(
        &node,
        "/channel/max_message_seq",
        &format!("channel_id={cmd_channel}&channel_type=8"),
    )
    .await;
    assert_eq!(v["message_seq"], 1, "{v}");
    let (st, convs) = post(
        &node.url("/conversation/sync"),
        json!({"uid": "fay", "msg_count": 1}),
    )
    .await;
    assert_eq!((st, convs), (200, json!([])));
    // hal was not listed: the first thing hal receives is the message sent to hal afterwards.
    send(&node, "bot", "hal", 1, "after").await;
    let r = hal.next_recv(T).await;
    assert_eq!(
        (r.client_msg_no.as_str(), r.channel_type),
        ("after", 1),
        "{r:?}"
    );
}

/// routeUserIMAddr and routeUserIMAddrOfBatch: external addresses, or with `intranet=1` only
/// `intranet.tcpAddr`; the batch form echoes the uids in one entry.
#[tokio::test]
async fn route_and_route_batch_with_intranet() {
    let node = Node::start(NodeOptions {
        extra_yaml: "intranet:\n  tcpAddr: 127.0.0.9:5999\n".into(),
        ..NodeOptions::default()
    })
    .await;
    let (st, v) = get(&node.url("/route")).await;
    assert_eq!(st, 200);
    assert_eq!(v["tcp_addr"], node.tcp_addr(), "{v}");
    let (st, v) = get(&node.url("/route?intranet=1")).await;
    assert_eq!(
        (st, v),
        (
            200,
            json!({"tcp_addr": "127.0.0.9:5999", "ws_addr": "", "wss_addr": ""})
        )
    );
    let (st, v) = post(&node.url("/route/batch"), json!(["u1", "u2"])).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v[0]["uids"], json!(["u1", "u2"]));
    assert_eq!(v[0]["tcp_addr"], node.tcp_addr());
    assert!(
        v[0]["ws_addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("ws://")),
        "{v}"
    );
    let (st, v) = post(&node.url("/route/batch?intranet=1"), json!(["u1"])).await;
    assert_eq!(
        (st, v),
        (
            200,
            json!([{"uids": ["u1"], "tcp_addr": "127.0.0.9:5999", "ws_addr": "", "wss_addr": ""}])
        )
    );
    let (st, v) = post(&node.url("/route/batch"), json!({"uids": 1})).await;
    assert_client_error(st, &v, "batch body not a list");
    let (st, v) = get(&node.url("/route?intranet=yes")).await;
    assert_client_error(st, &v, "intranet not 0/1");
}
