//! Conversations: `internal/api/conversation.go` (syncUserConversation, setConversationUnread,
//! clearConversationUnread, deleteConversation) and `internal/api/message.go` (send: a blank
//! `from_uid` is the system account), `internal/types/message.go` (MessageResp.From).

use serde_json::{json, Value};
use wk_tests::{post, Node, NodeOptions};

/// A base64 JSON text payload.
const PAYLOAD: &str = "eyJ0eXBlIjoxLCJjb250ZW50IjoieCJ9";

async fn send(node: &Node, from: &str, to: &str, ty: u8, no: &str) -> u64 {
    let (st, v) = post(
        &node.url("/message/send"),
        json!({"from_uid": from, "channel_id": to, "channel_type": ty, "client_msg_no": no, "payload": PAYLOAD}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v["data"]["message_seq"].as_u64().unwrap_or_default()
}

async fn sync(node: &Node, body: Value) -> Vec<Value> {
    let (st, v) = post(&node.url("/conversation/sync"), body).await;
    assert_eq!(st, 200, "{v}");
    v.as_array()
        .cloned()
        .unwrap_or_else(|| panic!("not a list: {v}"))
}

async fn ok(node: &Node, path: &str, body: Value) {
    let (st, v) = post(&node.url(path), body).await;
    assert_eq!(st, 200, "{path}: {v}");
}

fn find<'a>(convs: &'a [Value], channel: &str) -> Option<&'a Value> {
    convs.iter().find(|c| c["channel_id"] == channel)
}

fn seqs(c: &Value) -> Vec<u64> {
    c["recents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_seq"].as_u64().unwrap())
        .collect()
}

/// syncUserConversation: unread = last_msg_seq − readed_to_msg_seq whatever `red_dot` says,
/// 0 for the sender; recents newest first (the official demo takes recents[0] as the last
/// message); version is the last message's time in Unix nanoseconds; msg_count 0 gives [].
#[tokio::test]
async fn unread_is_derived_and_recents_are_newest_first() {
    let node = Node::start(NodeOptions::default()).await;
    for i in 1..=3 {
        assert_eq!(send(&node, "sam", "tia", 1, &format!("c{i}")).await, i);
    }
    let tia = sync(&node, json!({"uid": "tia", "msg_count": 2})).await;
    let c = find(&tia, "sam").expect("tia has a conversation with sam");
    assert_eq!(
        (c["unread"].as_u64(), c["last_msg_seq"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(c["readed_to_msg_seq"], 0);
    assert_eq!(seqs(c), [3, 2], "newest first, msg_count of them");
    let ts = c["recents"][0]["timestamp"].as_i64().unwrap();
    assert_eq!(c["version"].as_i64(), Some(ts * 1_000_000_000));
    assert_eq!(c["timestamp"].as_i64(), Some(ts));

    let sam = sync(&node, json!({"uid": "sam", "msg_count": 5})).await;
    let c = find(&sam, "tia").expect("sam has a conversation with tia");
    assert_eq!(
        (c["unread"].as_u64(), c["readed_to_msg_seq"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(seqs(c), [3, 2, 1]);

    assert_eq!(
        sync(&node, json!({"uid": "tia", "msg_count": 0})).await,
        Vec::<Value>::new()
    );
    // tia replies: her own message is the last one, so nothing is unread for her.
    send(&node, "tia", "sam", 1, "r1").await;
    let tia = sync(&node, json!({"uid": "tia", "msg_count": 1})).await;
    let c = find(&tia, "sam").unwrap();
    assert_eq!(
        (c["unread"].as_u64(), c["readed_to_msg_seq"].as_u64()),
        (Some(0), Some(4))
    );
}

/// setConversationUnread / clearConversationUnread: the read position becomes last − unread,
/// never moves backwards, and a missing conversation is created.
#[tokio::test]
async fn set_and_clear_unread() {
    let node = Node::start(NodeOptions::default()).await;
    for i in 1..=5 {
        send(&node, "sam", "tia", 1, &format!("c{i}")).await;
    }
    let unread = |body: Value| {
        let node = &node;
        async move {
            let convs = sync(node, body).await;
            find(&convs, "sam").map(|c| {
                (
                    c["unread"].as_u64().unwrap(),
                    c["readed_to_msg_seq"].as_u64().unwrap(),
                )
            })
        }
    };
    let set = json!({"uid": "tia", "channel_id": "sam", "channel_type": 1, "unread": 2});
    ok(&node, "/conversations/setUnread", set).await;
    assert_eq!(
        unread(json!({"uid": "tia", "msg_count": 1})).await,
        Some((2, 3))
    );
    // Raising the unread count would move the read position back: Go leaves it.
    let set = json!({"uid": "tia", "channel_id": "sam", "channel_type": 1, "unread": 4});
    ok(&node, "/conversations/setUnread", set).await;
    assert_eq!(
        unread(json!({"uid": "tia", "msg_count": 1})).await,
        Some((2, 3))
    );
    ok(
        &node,
        "/conversations/clearUnread",
        json!({"uid": "tia", "channel_id": "sam", "channel_type": 1}),
    )
    .await;
    assert_eq!(
        unread(json!({"uid": "tia", "msg_count": 1})).await,
        Some((0, 5))
    );
    // With a version (or only_unread) only conversations with messages after the read
    // position come back.
    assert_eq!(
        unread(json!({"uid": "tia", "msg_count": 1, "version": 1})).await,
        None
    );
    assert_eq!(
        unread(json!({"uid": "tia", "msg_count": 1, "only_unread": 1})).await,
        None
    );
    send(&node, "sam", "tia", 1, "c6").await;
    assert_eq!(
        unread(json!({"uid": "tia", "msg_count": 1, "only_unread": 1})).await,
        Some((1, 5))
    );

    // A conversation the user never had is created by setUnread.
    ok(
        &node,
        "/channel",
        json!({"channel_id": "g1", "channel_type": 2, "subscribers": ["sam"]}),
    )
    .await;
    send(&node, "sam", "g1", 2, "g1").await;
    send(&node, "sam", "g1", 2, "g2").await;
    assert!(sync(&node, json!({"uid": "zed", "msg_count": 5}))
        .await
        .is_empty());
    ok(
        &node,
        "/conversations/setUnread",
        json!({"uid": "zed", "channel_id": "g1", "channel_type": 2, "unread": 1}),
    )
    .await;
    let zed = sync(&node, json!({"uid": "zed", "msg_count": 5})).await;
    let g = find(&zed, "g1").expect("created by setUnread");
    assert_eq!(
        (g["unread"].as_u64(), g["last_msg_seq"].as_u64()),
        (Some(1), Some(2))
    );

    let (st, v) = post(
        &node.url("/conversations/setUnread"),
        json!({"uid": "tia", "channel_id": "sam", "channel_type": 0}),
    )
    .await;
    assert_eq!(st, 400, "channel_type 0 is a client error: {v}");
}

/// deleteConversation records the deleted-at seq: the conversation stays away until a newer
/// message, which then comes back alone.
#[tokio::test]
async fn deleted_conversations_come_back_with_the_next_message_only() {
    let node = Node::start(NodeOptions::default()).await;
    for i in 1..=3 {
        send(&node, "sam", "tia", 1, &format!("c{i}")).await;
    }
    ok(
        &node,
        "/conversations/delete",
        json!({"uid": "tia", "channel_id": "sam", "channel_type": 1}),
    )
    .await;
    assert!(find(
        &sync(&node, json!({"uid": "tia", "msg_count": 10})).await,
        "sam"
    )
    .is_none());
    assert!(
        find(
            &sync(&node, json!({"uid": "sam", "msg_count": 10})).await,
            "tia"
        )
        .is_some(),
        "only tia's copy is deleted"
    );
    send(&node, "sam", "tia", 1, "c4").await;
    let tia = sync(&node, json!({"uid": "tia", "msg_count": 10})).await;
    let c = find(&tia, "sam").expect("back with the new message");
    assert_eq!(seqs(c), [4], "older messages stay hidden");
    assert_eq!(
        c["unread"], 4,
        "unread still counts from the read position, as in Go"
    );
}

/// syncUserConversation with `last_msg_seqs`: a conversation the client is up to date on is
/// omitted, otherwise only newer messages; malformed entries are skipped (getChannelLastMsgSeqMap);
/// `exclude_channel_types` drops a type unless the client lists the channel; page/page_size.
#[tokio::test]
async fn last_msg_seqs_exclusions_and_pages() {
    let node = Node::start(NodeOptions::default()).await;
    for i in 1..=4 {
        send(&node, "sam", "tia", 1, &format!("c{i}")).await;
    }
    ok(
        &node,
        "/channel",
        json!({"channel_id": "g1", "channel_type": 2, "subscribers": ["sam", "tia"]}),
    )
    .await;
    send(&node, "sam", "g1", 2, "g1").await;
    send(&node, "kim", "tia", 1, "k1").await;

    let tia = sync(
        &node,
        json!({"uid": "tia", "msg_count": 10, "last_msg_seqs": "sam:1:4|g1:2:0"}),
    )
    .await;
    assert!(
        find(&tia, "sam").is_none(),
        "client has sam up to 4: {tia:?}"
    );
    assert!(find(&tia, "g1").is_some() && find(&tia, "kim").is_some());
    let tia = sync(
        &node,
        json!({"uid": "tia", "msg_count": 10, "last_msg_seqs": "garbage|x:y:z|sam:1:2|::"}),
    )
    .await;
    assert_eq!(
        seqs(find(&tia, "sam").expect("sam")),
        [4, 3],
        "only messages after 2"
    );

    let tia = sync(
        &node,
        json!({"uid": "tia", "msg_count": 1, "exclude_channel_types": [2]}),
    )
    .await;
    assert!(find(&tia, "g1").is_none() && find(&tia, "sam").is_some());
    let tia = sync(&node, json!({"uid": "tia", "msg_count": 1, "exclude_channel_types": [2], "last_msg_seqs": "g1:2:0"})).await;
    assert!(
        find(&tia, "g1").is_some(),
        "an excluded type the client lists is kept"
    );

    let mut seen = Vec::new();
    for page in 1..=2 {
        let convs = sync(
            &node,
            json!({"uid": "tia", "msg_count": 1, "page": page, "page_size": 2}),
        )
        .await;
        assert_eq!(
            convs.len(),
            if page == 1 { 2 } else { 1 },
            "page {page}: {convs:?}"
        );
        seen.extend(
            convs
                .iter()
                .map(|c| c["channel_id"].as_str().unwrap().to_string()),
        );
    }
    seen.sort();
    assert_eq!(seen, ["g1", "kim", "sam"]);
    assert!(sync(
        &node,
        json!({"uid": "tia", "msg_count": 1, "page": 3, "page_size": 2})
    )
    .await
    .is_empty());
}

/// message.send: a blank from_uid is the system uid, shown blank (MessageResp.From), and the
/// system account's person conversation is not listed.
#[tokio::test]
async fn a_blank_sender_is_the_system_account() {
    let node = Node::start(NodeOptions::default()).await;
    send(&node, "", "tia", 1, "s1").await;
    send(&node, "  ", "tia", 1, "s2").await;
    let (st, v) = post(
        &node.url("/channel/messagesync"),
        json!({"login_uid": "tia", "channel_id": "____system", "channel_type": 1, "limit": 10}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(
        msgs.len(),
        2,
        "both blank senders are one system account: {v}"
    );
    assert!(msgs.iter().all(|m| m["from_uid"] == ""), "{v}");
    assert!(find(
        &sync(&node, json!({"uid": "tia", "msg_count": 5})).await,
        "____system"
    )
    .is_none());
}
