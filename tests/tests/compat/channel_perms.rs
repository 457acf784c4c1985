//! Channel permissions and system uids: the routes of `internal/api/channel.go`
//! (`updateOrAddChannelInfo`, `blacklist*`, `whitelist*`, `removeAllSubscriber`,
//! `setTmpSubscriber`) and `internal/api/user.go` (`systemUids*`, `getSystemUids`), and the reason
//! codes of `internal/service/permission.go` (`HasPermissionForChannel`, `HasPermissionForSender`),
//! `internal/user/handler/event_onsend.go` (`checkGlobalSendPermission`) and
//! `internal/user/handler/event_connect.go` (a banned user's CONNECT), seen by real clients.
//! The last test runs a 3-node cluster: a list changed through one node holds on another.

use super::group;
use serde_json::{json, Value};
use std::time::Duration;
use wk_tests::{get, poll, post, Node, NodeOptions, TestCluster, WkClient};
use wukongim::proto::{Packet, ReasonCode};

const PAYLOAD: &str = "eyJ0eXBlIjoxLCJjb250ZW50IjoieCJ9";
const T: Duration = Duration::from_secs(15);

const DISBAND: ReasonCode = ReasonCode::Other(24);
const SEND_BAN: ReasonCode = ReasonCode::Other(25);

/// POSTs `body` to `path` and expects Go's `ResponseOK` (HTTP 200).
async fn ok(node: &Node, path: &str, body: Value) {
    let (st, v) = post(&node.url(path), body).await;
    assert_eq!(st, 200, "{path}: {v}");
}

/// Go's `ResponseError`: HTTP 400 `{"msg", "status": 400}`.
async fn refused(node: &Node, path: &str, body: Value) {
    let (st, v) = post(&node.url(path), body).await;
    assert_eq!((st, &v["status"]), (400, &json!(400)), "{path}: {v}");
    assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

async fn connect(node: &Node, uid: &str) -> WkClient {
    let (c, r) = WkClient::connect(&node.tcp_addr(), uid, "", 5).await;
    assert_eq!(r, ReasonCode::Success, "{uid} connects");
    c
}

/// Sends a text message and returns its SENDACK's reason.
async fn send(c: &mut WkClient, channel: &str, ty: u8) -> ReasonCode {
    let seq = c.send_text(channel, ty, "hi").await;
    loop {
        match c.next(T).await {
            Some(Packet::Sendack(a)) if a.client_seq == seq => return a.reason_code,
            Some(_) => continue,
            None => panic!("no SENDACK"),
        }
    }
}

/// POST /message/send from the app server; returns the `data` of Go's 200 answer.
async fn api_send(node: &Node, from: &str, channel: &str, ty: u8) -> Value {
    let (st, v) = post(
        &node.url("/message/send"),
        json!({"from_uid": from, "channel_id": channel, "channel_type": ty, "payload": PAYLOAD}),
    )
    .await;
    assert_eq!((st, &v["status"]), (200, &json!(200)), "{v}");
    v["data"].clone()
}

async fn max_seq(node: &Node, channel: &str) -> u64 {
    let (_, v) = get(&node.url(&format!(
        "/channel/max_message_seq?channel_id={channel}&channel_type=2"
    )))
    .await;
    v["message_seq"].as_u64().unwrap()
}

fn list_body(id: &str, ty: u8, uids: &[&str]) -> Value {
    json!({"channel_id": id, "channel_type": ty, "uids": uids})
}

/// The channel ids of `uid`'s conversations (POST /conversation/sync).
async fn conversations(node: &Node, uid: &str) -> Vec<String> {
    let (st, v) = post(
        &node.url("/conversation/sync"),
        json!({"uid": uid, "msg_count": 1}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let list = v.as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|c| c["channel_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// FNV-1a 64 of a uid: the member id and order of Go's lists (`key.HashWithString`).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `updateOrAddChannelInfo` + `HasPermissionForChannel`: ban 19 before disband 24, for clients
/// and the app server alike (whose send Go answers 200 and drops); `checkGlobalSendPermission`:
/// a send-banned user's SENDs get 25, the app server may still send as them; a banned user's
/// CONNECT gets 19. /channel/info keeps the subscribers.
#[tokio::test]
async fn ban_disband_and_send_ban_refuse_with_gos_reasons() {
    let node = Node::start(NodeOptions::default()).await;
    group(&node, "g", &["a", "b"]).await;
    let mut a = connect(&node, "a").await;
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::Success);

    let info = |ban: u8, disband: u8| json!({"channel_id": "g", "channel_type": 2, "ban": ban, "disband": disband});
    ok(&node, "/channel/info", info(1, 1)).await;
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::Ban);
    let data = api_send(&node, "", "g", 2).await;
    assert_eq!(data["message_id"], 0, "dropped, nothing stored: {data}");
    assert_eq!(data["reason_code"], 19, "{data}");
    ok(&node, "/channel/info", info(0, 1)).await;
    assert_eq!(send(&mut a, "g", 2).await, DISBAND);
    ok(&node, "/channel/info", info(0, 0)).await;
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::Success);
    assert_eq!(max_seq(&node, "g").await, 2, "only the two accepted sends");

    ok(
        &node,
        "/channel/info",
        json!({"channel_id": "a", "channel_type": 1, "send_ban": 1}),
    )
    .await;
    assert_eq!(send(&mut a, "g", 2).await, SEND_BAN);
    assert_eq!(send(&mut a, "b", 1).await, SEND_BAN);
    let data = api_send(&node, "a", "g", 2).await;
    assert_eq!(data["message_seq"], 3, "the app server sends as a: {data}");

    ok(
        &node,
        "/channel/info",
        json!({"channel_id": "mallory", "channel_type": 1, "ban": 1}),
    )
    .await;
    let (_, r) = WkClient::connect(&node.tcp_addr(), "mallory", "", 5).await;
    assert_eq!(r, ReasonCode::Ban);
    refused(&node, "/channel/info", json!({"channel_type": 2, "ban": 1})).await;
}

/// `blacklist*`, `whitelist*` and `hasPermissionForCommChannel`: blacklist 4 (checked before
/// membership), not a subscriber 3, a non-empty whitelist 13; `hasPermissionForPerson`: the
/// receiver's blacklist; blacklistAdd deletes the listed users' conversation with the channel.
/// GET /channel/whitelist lists Go's members (`id`, `uid`) in id order.
#[tokio::test]
async fn blacklist_and_whitelist_routes_are_enforced() {
    let node = Node::start(NodeOptions::default()).await;
    group(&node, "g", &["a", "b"]).await;
    let (mut a, mut b, mut c) = (
        connect(&node, "a").await,
        connect(&node, "b").await,
        connect(&node, "c").await,
    );
    assert_eq!(send(&mut c, "g", 2).await, ReasonCode::SubscriberNotExist);
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::Success);
    assert_eq!(conversations(&node, "a").await, vec!["g"]);
    ok(
        &node,
        "/channel/blacklist_add",
        list_body("g", 2, &["a", "c"]),
    )
    .await;
    assert!(
        conversations(&node, "a").await.is_empty(),
        "blacklistAdd deletes the conversation"
    );
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::InBlacklist);
    assert_eq!(send(&mut c, "g", 2).await, ReasonCode::InBlacklist);
    ok(
        &node,
        "/channel/blacklist_remove",
        list_body("g", 2, &["a"]),
    )
    .await;
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::Success);
    ok(&node, "/channel/blacklist_set", list_body("g", 2, &["b"])).await;
    assert_eq!(send(&mut b, "g", 2).await, ReasonCode::InBlacklist);
    assert_eq!(send(&mut c, "g", 2).await, ReasonCode::SubscriberNotExist);
    ok(
        &node,
        "/channel/blacklist_remove_all",
        json!({"channel_id": "g", "channel_type": 2}),
    )
    .await;
    assert_eq!(send(&mut b, "g", 2).await, ReasonCode::Success);

    ok(&node, "/channel/whitelist_add", list_body("g", 2, &["a"])).await;
    assert_eq!(send(&mut b, "g", 2).await, ReasonCode::NotInWhitelist);
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::Success);
    ok(
        &node,
        "/channel/whitelist_set",
        list_body("g", 2, &["a", "b"]),
    )
    .await;
    assert_eq!(send(&mut b, "g", 2).await, ReasonCode::Success);
    let (st, v) = get(&node.url("/channel/whitelist?channel_id=g&channel_type=2")).await;
    let mut want = [(fnv("a"), "a"), (fnv("b"), "b")];
    want.sort();
    let want: Vec<Value> = want
        .iter()
        .map(|(id, uid)| json!({"id": id, "uid": uid}))
        .collect();
    assert_eq!((st, v), (200, json!(want)));
    ok(
        &node,
        "/channel/whitelist_remove",
        list_body("g", 2, &["a"]),
    )
    .await;
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::NotInWhitelist);
    ok(
        &node,
        "/channel/whitelist_remove_all",
        json!({"channel_id": "g", "channel_type": 2}),
    )
    .await;
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::Success);
    let (_, v) = get(&node.url("/channel/whitelist?channel_id=g&channel_type=2")).await;
    assert_eq!(v, json!([]));

    // Person channels: the receiver's blacklist, one way.
    ok(&node, "/channel/blacklist_add", list_body("b", 1, &["c"])).await;
    assert_eq!(send(&mut c, "b", 1).await, ReasonCode::InBlacklist);
    assert_eq!(send(&mut b, "c", 1).await, ReasonCode::Success);
    assert_eq!(send(&mut a, "b", 1).await, ReasonCode::Success);

    // Go's request checks: add/remove need channel_type and uids; set needs only the id.
    refused(&node, "/channel/blacklist_add", list_body("g", 2, &[])).await;
    refused(&node, "/channel/whitelist_add", list_body("g", 0, &["a"])).await;
    refused(&node, "/channel/whitelist_remove", list_body("", 2, &["a"])).await;
    ok(&node, "/channel/blacklist_set", json!({"channel_id": "g"})).await;
    refused(
        &node,
        "/channel/blacklist_remove_all",
        json!({"channel_id": "g"}),
    )
    .await;
}

/// `systemUidsAdd`/`systemUidsRemove`/`getSystemUids` and `HasPermissionForSender`: a system uid
/// passes the sender checks (membership, blacklist), and a system receiver accepts everyone.
#[tokio::test]
async fn system_uids_bypass_the_sender_checks() {
    let node = Node::start(NodeOptions::default()).await;
    group(&node, "g", &["a"]).await;
    ok(&node, "/channel/blacklist_add", list_body("g", 2, &["bot"])).await;
    ok(&node, "/channel/blacklist_add", list_body("bot", 1, &["c"])).await;
    let (mut bot, mut c) = (connect(&node, "bot").await, connect(&node, "c").await);
    assert_eq!(send(&mut bot, "g", 2).await, ReasonCode::InBlacklist);
    assert_eq!(send(&mut c, "bot", 1).await, ReasonCode::InBlacklist);

    let (st, v) = get(&node.url("/user/systemuids")).await;
    assert_eq!((st, v), (200, json!([])));
    ok(
        &node,
        "/user/systemuids_add",
        json!({"uids": ["bot", "zed"]}),
    )
    .await;
    let (_, v) = get(&node.url("/user/systemuids")).await;
    let mut want = ["bot", "zed"];
    want.sort_by_key(|u| fnv(u));
    assert_eq!(v, json!(want));
    assert_eq!(send(&mut bot, "g", 2).await, ReasonCode::Success);
    assert_eq!(send(&mut c, "bot", 1).await, ReasonCode::Success);

    ok(&node, "/user/systemuids_remove", json!({"uids": ["bot"]})).await;
    let (_, v) = get(&node.url("/user/systemuids")).await;
    assert_eq!(v, json!(["zed"]));
    assert_eq!(send(&mut bot, "g", 2).await, ReasonCode::InBlacklist);
    ok(&node, "/user/systemuids_add", json!({"uids": []})).await;
}

/// `removeAllSubscriber` (not for person channels), `setTmpSubscriber` (a temporary channel's
/// receivers), and a group never created: Go refuses a client (not a subscriber, 3) and stores
/// the app server's message.
#[tokio::test]
async fn subscriber_remove_all_tmp_subscribers_and_groups_never_created() {
    let node = Node::start(NodeOptions::default()).await;
    group(&node, "g", &["a", "b"]).await;
    let (mut a, mut x) = (connect(&node, "a").await, connect(&node, "x").await);
    let removed = json!({"channel_id": "g", "channel_type": 2});
    ok(&node, "/channel/subscriber_remove_all", removed).await;
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::SubscriberNotExist);
    refused(
        &node,
        "/channel/subscriber_remove_all",
        json!({"channel_id": "a", "channel_type": 1}),
    )
    .await;

    ok(
        &node,
        "/tmpchannel/subscriber_set",
        json!({"channel_id": "t1", "uids": ["x"]}),
    )
    .await;
    api_send(&node, "", "t1", 8).await;
    let r = x.next_recv(T).await;
    assert_eq!((r.channel_id.as_str(), r.channel_type), ("t1", 8));
    refused(
        &node,
        "/tmpchannel/subscriber_set",
        json!({"channel_id": "t1"}),
    )
    .await;

    assert_eq!(
        send(&mut a, "nosuch", 2).await,
        ReasonCode::SubscriberNotExist
    );
    let data = api_send(&node, "a", "nosuch", 2).await;
    assert_eq!(data["message_seq"], 1, "{data}");
}

/// A blacklist added through one node is enforced for a client of another, and every node
/// lists the same whitelist once it applied the change (the lists are replicated state).
#[tokio::test]
async fn a_list_changed_on_one_node_holds_on_another() {
    let mut c = TestCluster::start(3, "").await;
    c.wait_leader(T).await;
    let (n0, n2) = (&c.nodes[0], &c.nodes[2]);
    group(n0, "g", &["a", "b"]).await;
    let mut a = connect(n2, "a").await;
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::Success);
    ok(n0, "/channel/blacklist_add", list_body("g", 2, &["a"])).await;
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::InBlacklist);
    ok(n0, "/channel/whitelist_add", list_body("g", 2, &["b"])).await;
    for node in &c.nodes {
        poll(T, "the whitelist on every node", || async {
            let (_, v) = get(&node.url("/channel/whitelist?channel_id=g&channel_type=2")).await;
            (v == json!([{"id": fnv("b"), "uid": "b"}])).then_some(())
        })
        .await;
    }
    ok(n2, "/channel/blacklist_remove", list_body("g", 2, &["a"])).await;
    assert_eq!(send(&mut a, "g", 2).await, ReasonCode::NotInWhitelist);
    c.wait_converged(T).await;
}
