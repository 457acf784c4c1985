//! Durability: every acknowledged message survives `kill -9` of the server.

use serde_json::json;
use std::time::Duration;
use wk_tests::{post, Node, NodeOptions, WkClient};
use wukongim::proto::{Packet, ReasonCode};

#[tokio::test]
async fn a_thousand_acknowledged_sends_survive_kill_9() {
    let mut node = Node::start(NodeOptions::default()).await;
    let (mut c, r) = WkClient::connect(&node.tcp_addr(), "writer", "", 5).await;
    assert_eq!(r, ReasonCode::Success);
    const N: u64 = 1000;
    // Pipeline the sends; SENDACKs come back in order.
    for i in 0..N {
        c.send_text("reader", 1, &format!("msg-{i}")).await;
    }
    let mut acked = 0u64;
    while acked < N {
        match c.next(Duration::from_secs(30)).await {
            Some(Packet::Sendack(a)) => {
                assert_eq!(a.reason_code, ReasonCode::Success);
                acked += 1;
                assert_eq!(a.message_seq, acked, "acks in order, seqs gapless");
            }
            Some(_) => {}
            None => panic!("only {acked} of {N} acknowledged"),
        }
    }
    // Also an HTTP-acknowledged message.
    let (st, _) = post(&node.url("/message/send"), json!({"from_uid": "writer", "channel_id": "reader", "channel_type": 1, "payload": "eyJ0eXBlIjoxLCJjb250ZW50IjoiaHR0cCJ9"})).await;
    assert_eq!(st, 200);

    node.kill9();
    node.spawn();
    node.wait_healthy(Duration::from_secs(30)).await;
    let (st, sync) = post(
        &node.url("/channel/messagesync"),
        json!({"login_uid": "reader", "channel_id": "writer", "channel_type": 1, "start_message_seq": 1, "limit": 5000, "pull_mode": 1}),
    )
    .await;
    assert_eq!(st, 200);
    let msgs = sync["messages"].as_array().unwrap();
    assert_eq!(
        msgs.len() as u64,
        N + 1,
        "all acknowledged messages after kill -9"
    );
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m["message_seq"].as_u64().unwrap(), i as u64 + 1);
    }
    // The store keeps counting where it left off.
    let (mut c, _) = WkClient::connect(&node.tcp_addr(), "writer", "", 5).await;
    c.send_text("reader", 1, "after restart").await;
    loop {
        if let Some(Packet::Sendack(a)) = c.next(Duration::from_secs(10)).await {
            assert_eq!(a.message_seq, N + 2);
            break;
        }
    }
}
