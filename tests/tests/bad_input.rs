//! Hostile and broken input: each bad connection is answered with the right reason or closed,
//! and the server keeps serving everyone else.

use rand::{Rng, SeedableRng};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wk_tests::{get, post, Node, NodeOptions, WkClient};
use wukongim::proto::{Packet, ReasonCode};

const T: Duration = Duration::from_secs(10);

/// Reads until the server closes the connection (or panics after `T`); returns what it sent.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(T, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => panic!("server did not close the connection; got {all:?}"),
        }
    }
}

async fn still_serving(node: &Node) {
    let (st, _) = get(&node.url("/health")).await;
    assert_eq!(st, 200);
    let (mut c, r) = WkClient::connect(&node.tcp_addr(), "healthy-user", "", 5).await;
    assert_eq!(r, ReasonCode::Success);
    c.send_text("someone", 1, "still fine").await;
    loop {
        match c.next(T).await {
            Some(Packet::Sendack(a)) => {
                assert_eq!(a.reason_code, ReasonCode::Success);
                break;
            }
            Some(_) => {}
            None => panic!("no SENDACK from a healthy connection"),
        }
    }
}

#[tokio::test]
async fn garbage_truncated_oversized_and_unknown_packets_close_only_that_connection() {
    let node = Node::start(NodeOptions::default()).await;
    let addr = node.tcp_addr();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);

    // Random bytes (never a valid CONNECT).
    for _ in 0..20 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let mut junk: Vec<u8> = (0..rng.gen_range(1..512)).map(|_| rng.gen()).collect();
        junk[0] = 0xF0 | (junk[0] & 0x0F); // unknown packet type 15
        s.write_all(&junk).await.unwrap();
        read_until_closed(&mut s).await;
    }

    // Oversized remaining length (16 MiB) announced in the header: refused before the body.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&[0x10, 0x80, 0x80, 0x80, 0x08]).await.unwrap();
    read_until_closed(&mut s).await;

    // Varint longer than four bytes.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        .await
        .unwrap();
    read_until_closed(&mut s).await;

    // A truncated CONNECT followed by close: nothing breaks.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&[0x10, 0x40, 0x02, 0x00]).await.unwrap();
    drop(s);

    // Oversized packet after a good CONNECT: DISCONNECT, then close.
    let (mut c, _) = WkClient::connect(&addr, "big", "", 5).await;
    c.write_raw(&[0x30, 0x80, 0x80, 0x80, 0x01]).await.unwrap(); // SEND of 2 MiB > 1 MiB limit
    let seen = c.closed_within(T).await;
    assert!(
        seen.iter().any(|p| matches!(p, Packet::Disconnect(_))),
        "{seen:?}"
    );

    // A second CONNECT on an established session is a protocol error.
    let (mut c, _) = WkClient::connect(&addr, "twice", "", 5).await;
    let again = Packet::Connect(wukongim::proto::ConnectPacket {
        version: 5,
        device_flag: 0,
        device_id: "d".into(),
        uid: "twice".into(),
        token: String::new(),
        client_timestamp: 0,
        client_key: wukongim::proto::ClientKeys::generate().public_key(),
    });
    c.write(&again).await;
    c.closed_within(T).await;

    // CONNECT without a client key: reason ClientKeyIsEmpty.
    let mut c = WkClient::open(&addr, 5).await;
    c.write(&Packet::Connect(wukongim::proto::ConnectPacket {
        version: 5,
        device_flag: 0,
        device_id: "d".into(),
        uid: "nokey".into(),
        token: String::new(),
        client_timestamp: 0,
        client_key: String::new(),
    }))
    .await;
    match c.next(T).await {
        Some(Packet::Connack(a)) => assert_eq!(a.reason_code, ReasonCode::ClientKeyIsEmpty),
        other => panic!("expected CONNACK, got {other:?}"),
    }

    still_serving(&node).await;
}

#[tokio::test]
async fn a_flood_of_connects_does_not_stop_the_server() {
    let node = Node::start(NodeOptions::default()).await;
    let addr = node.tcp_addr();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let (c, r) = WkClient::connect(&addr, &format!("flood{}", i % 20), "", 5).await;
            assert_eq!(r, ReasonCode::Success);
            c
        }));
    }
    let mut conns = Vec::new();
    for t in tasks {
        conns.push(t.await.unwrap());
    }
    still_serving(&node).await;
    drop(conns);
    still_serving(&node).await;
}

#[tokio::test]
async fn http_bad_input_gets_400_with_the_field_named() {
    let node = Node::start(NodeOptions::default()).await;
    let (st, body) = post(&node.url("/user/token"), json!({"token": "x"})).await;
    assert_eq!(st, 400);
    assert!(body["msg"].as_str().unwrap().contains("uid"), "{body}");
    assert_eq!(body["status"], 400);
    let (st, body) = post(
        &node.url("/message/send"),
        json!({"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": "***"}),
    )
    .await;
    assert_eq!(st, 400);
    assert!(body["msg"].as_str().unwrap().contains("payload"), "{body}");
    let (st, body) = post(
        &node.url("/channel/messagesync"),
        json!({"channel_id": "b", "channel_type": "one"}),
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        body["msg"].as_str().unwrap().contains("channel_type"),
        "{body}"
    );
    let resp = reqwest::Client::new()
        .post(node.url("/channel"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let (st, _) = post(&node.url("/no/such/endpoint"), json!({})).await;
    assert_eq!(st, 404);
}

/// A client that stops reading is dropped once a write makes no progress within
/// `conn.writeTimeout` (or its outbound queue fills), not buffered; the node keeps serving.
#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_not_buffered() {
    use base64::Engine;
    let node = Node::start(NodeOptions {
        extra_yaml: "conn:\n  writeTimeout: 1s\n".into(),
        ..Default::default()
    })
    .await;
    let (mut slow, r) = WkClient::connect(&node.tcp_addr(), "slow", "", 4).await;
    assert_eq!(r, ReasonCode::Success);
    let connections = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("wukongim_connections{transport=\"tcp\"} "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let scrape = || async {
        reqwest::get(node.metrics_url())
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // Registration follows the CONNACK: wait until the node counts the connection.
    let deadline = tokio::time::Instant::now() + T;
    while connections(&scrape().await) != Some(1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connection never counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 60 KB messages to a client that reads nothing: its socket buffers fill within a few
    // hundred; the node must drop it instead of queueing more.
    let payload = base64::engine::general_purpose::STANDARD.encode(vec![b'z'; 60_000]);
    let mut dropped = false;
    for i in 0..1500 {
        let (st, _) = post(
            &node.url("/message/send"),
            json!({"from_uid": "fast", "channel_id": "slow", "channel_type": 1,
                   "client_msg_no": format!("f{i}"), "payload": payload}),
        )
        .await;
        assert_eq!(st, 200);
        if i % 50 == 49 && connections(&scrape().await) == Some(0) {
            dropped = true;
            break;
        }
    }
    if !dropped {
        let deadline = tokio::time::Instant::now() + T;
        while connections(&scrape().await) != Some(0) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "slow client never dropped"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The client sees its connection end after what was already in flight.
    slow.closed_within(T).await;
    still_serving(&node).await;
}
