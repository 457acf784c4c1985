//! Our own TCP client (the `wukongim::proto` codec) against one node over :5100: every protocol
//! version 2–6, person and group delivery with RECVACK, msgKey checking, token auth and
//! WuKongIM's multi-device rules.

use serde_json::json;
use std::time::Duration;
use wk_tests::{post, post_with, Node, NodeOptions, WkClient};
use wukongim::proto::{Packet, ReasonCode};

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn every_protocol_version_sends_and_receives() {
    let node = Node::start(NodeOptions::default()).await;
    for version in 2..=6u8 {
        let (a, b) = (format!("a{version}"), format!("b{version}"));
        let (mut ca, r) = WkClient::connect(&node.tcp_addr(), &a, "", version).await;
        assert_eq!(r, ReasonCode::Success);
        let connack = ca.connack.clone().unwrap();
        if version >= 4 {
            assert_eq!(connack.node_id, 1, "v{version} CONNACK carries the node id");
        }
        let (mut cb, r) = WkClient::connect(&node.tcp_addr(), &b, "", version).await;
        assert_eq!(r, ReasonCode::Success);
        for i in 1..=3u64 {
            let seq = ca.send_text(&b, 1, &format!("m{i}")).await;
            let ack = ca.next_sendack(T).await;
            assert_eq!(
                (ack.client_seq, ack.reason_code, ack.message_seq),
                (seq, ReasonCode::Success, i),
                "v{version}"
            );
            let r = cb.next_recv(T).await;
            assert_eq!(
                (r.from_uid.as_str(), r.channel_id.as_str(), r.message_seq),
                (a.as_str(), a.as_str(), i)
            );
            assert_eq!(r.message_id, ack.message_id);
            assert_eq!(cb.recv_text(&r), format!("m{i}"));
            cb.ack(&r).await;
        }
        // PING → PONG
        ca.write(&Packet::Ping).await;
        assert_eq!(ca.next(T).await, Some(Packet::Pong));
    }
}

#[tokio::test]
async fn group_messages_reach_every_online_member_and_non_members_are_refused() {
    let node = Node::start(NodeOptions::default()).await;
    let (st, _) = post(
        &node.url("/channel"),
        json!({"channel_id": "team", "channel_type": 2, "subscribers": ["u1", "u2", "u3"]}),
    )
    .await;
    assert_eq!(st, 200);
    let addr = node.tcp_addr();
    let (mut u1, _) = WkClient::connect(&addr, "u1", "", 5).await;
    let (mut u2, _) = WkClient::connect(&addr, "u2", "", 5).await;
    let (mut u3, _) = WkClient::connect(&addr, "u3", "", 5).await;
    let (mut outsider, _) = WkClient::connect(&addr, "mallory", "", 5).await;
    u1.send_text("team", 2, "standup").await;
    assert_eq!(u1.next_sendack(T).await.reason_code, ReasonCode::Success);
    for c in [&mut u2, &mut u3] {
        let r = c.next_recv(T).await;
        assert_eq!(
            (r.channel_id.as_str(), r.channel_type, r.message_seq),
            ("team", 2, 1)
        );
        assert_eq!(c.recv_text(&r), "standup");
    }
    outsider.send_text("team", 2, "let me in").await;
    assert_eq!(
        outsider.next_sendack(T).await.reason_code,
        ReasonCode::SubscriberNotExist
    );
    // Go (permission.go): a group never created has no subscribers.
    outsider.send_text("nosuchgroup", 2, "hello?").await;
    assert_eq!(
        outsider.next_sendack(T).await.reason_code,
        ReasonCode::SubscriberNotExist
    );
    // Removing a subscriber stops delivery to them.
    let (st, _) = post(
        &node.url("/channel/subscriber_remove"),
        json!({"channel_id": "team", "channel_type": 2, "subscribers": ["u3"]}),
    )
    .await;
    assert_eq!(st, 200);
    u3.send_text("team", 2, "still here?").await;
    assert_eq!(
        u3.next_sendack(T).await.reason_code,
        ReasonCode::SubscriberNotExist
    );
}

#[tokio::test]
async fn wrong_msg_key_gets_payload_decode_error_and_is_not_stored() {
    let node = Node::start(NodeOptions::default()).await;
    let (mut c, _) = WkClient::connect(&node.tcp_addr(), "eve", "", 2).await;
    let mut p = c.text_packet("frank", 1, "tampered", "no-1");
    p.msg_key = "0".repeat(32);
    c.write(&Packet::Send(p)).await;
    let ack = c.next_sendack(T).await;
    assert_eq!(ack.reason_code, ReasonCode::PayloadDecodeError);
    let mut p = c.text_packet("frank", 1, "garbage", "no-2");
    p.payload = b"not base64 at all".to_vec().into();
    p.msg_key = c.cipher().send_msg_key(&p);
    c.write(&Packet::Send(p)).await;
    assert_eq!(
        c.next_sendack(T).await.reason_code,
        ReasonCode::PayloadDecodeError
    );
    let (_, sync) = post(
        &node.url("/channel/messagesync"),
        json!({"login_uid": "eve", "channel_id": "frank", "channel_type": 1, "limit": 10}),
    )
    .await;
    assert_eq!(sync["messages"], json!([]), "nothing stored");
    // The connection still works.
    c.send_text("frank", 1, "fine").await;
    assert_eq!(c.next_sendack(T).await.reason_code, ReasonCode::Success);
}

#[tokio::test]
async fn resending_the_same_client_msg_no_is_stored_once() {
    let node = Node::start(NodeOptions::default()).await;
    let (mut c, _) = WkClient::connect(&node.tcp_addr(), "gina", "", 5).await;
    let p = c.text_packet("hank", 1, "once", "dup-no");
    c.write(&Packet::Send(p.clone())).await;
    let first = c.next_sendack(T).await;
    c.write(&Packet::Send(p)).await;
    let second = c.next_sendack(T).await;
    assert_eq!(first.reason_code, ReasonCode::Success);
    assert_eq!(
        (second.message_id, second.message_seq),
        (first.message_id, first.message_seq)
    );
    let (_, sync) = post(
        &node.url("/channel/messagesync"),
        json!({"login_uid": "gina", "channel_id": "hank", "channel_type": 1, "limit": 10}),
    )
    .await;
    assert_eq!(sync["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn token_auth_and_device_rules() {
    let node = Node::start(NodeOptions {
        extra_yaml: "tokenAuthOn: true\nmanagerToken: admin-secret\n".into(),
        ..Default::default()
    })
    .await;
    let addr = node.tcp_addr();
    let (_, r) = WkClient::connect(&addr, "ivy", "whatever", 5).await;
    assert_eq!(r, ReasonCode::AuthFail, "no token registered");
    let (st, _) = post(
        &node.url("/user/token"),
        json!({"uid": "ivy", "token": "t-ivy", "device_flag": 0, "device_level": 1}),
    )
    .await;
    assert_eq!(st, 401, "API needs the manager token");
    let tok = Some("admin-secret");
    let (st, _) = post_with(
        &node.url("/user/token"),
        json!({"uid": "ivy", "token": "t-ivy", "device_flag": 0, "device_level": 1}),
        tok,
    )
    .await;
    assert_eq!(st, 200);
    let (_, r) = WkClient::connect(&addr, "ivy", "wrong", 5).await;
    assert_eq!(r, ReasonCode::AuthFail);
    let (_, r) = WkClient::connect_device(&addr, "ivy", "t-ivy", 5, 1, "web").await;
    assert_eq!(r, ReasonCode::AuthFail, "tokens are per device flag");

    // Master level: a second login of the same uid and device flag kicks the first.
    let (mut first, r) = WkClient::connect_device(&addr, "ivy", "t-ivy", 5, 0, "phone-1").await;
    assert_eq!(r, ReasonCode::Success);
    let (mut second, r) = WkClient::connect_device(&addr, "ivy", "t-ivy", 5, 0, "phone-2").await;
    assert_eq!(r, ReasonCode::Success);
    let seen = first.closed_within(T).await;
    assert!(
        seen.iter().any(
            |p| matches!(p, Packet::Disconnect(d) if d.reason_code == ReasonCode::ConnectKick)
        ),
        "first device got DISCONNECT ConnectKick: {seen:?}"
    );

    // Slave level (default): devices coexist; both receive.
    post_with(
        &node.url("/user/token"),
        json!({"uid": "jay", "token": "t-jay", "device_flag": 1}),
        tok,
    )
    .await;
    let (mut w1, _) = WkClient::connect_device(&addr, "jay", "t-jay", 5, 1, "tab-1").await;
    let (mut w2, _) = WkClient::connect_device(&addr, "jay", "t-jay", 5, 1, "tab-2").await;
    second.send_text("jay", 1, "to both tabs").await;
    assert_eq!(
        second.next_sendack(T).await.reason_code,
        ReasonCode::Success
    );
    for w in [&mut w1, &mut w2] {
        let r = w.next_recv(T).await;
        assert_eq!(w.recv_text(&r), "to both tabs");
    }
    // A reconnect with the same device id replaces its predecessor.
    let (_w1b, _) = WkClient::connect_device(&addr, "jay", "t-jay", 5, 1, "tab-1").await;
    let seen = w1.closed_within(T).await;
    assert!(
        seen.iter().any(|p| matches!(p, Packet::Disconnect(_))),
        "{seen:?}"
    );
}
