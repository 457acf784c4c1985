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

/// One WebSocket frame as a fuzzer writes it: any opcode, FIN and RSV bits, masked or not, and
/// a length field that may lie about the payload that follows.
#[derive(Debug, Clone)]
struct WsFrame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// `None`: the true length; `Some(n)`: announce `n` instead.
    claimed: Option<u64>,
    payload: Vec<u8>,
}

impl WsFrame {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push((u8::from(self.fin) << 7) | (self.rsv << 4) | self.opcode);
        let len = self.claimed.unwrap_or(self.payload.len() as u64);
        let m = if self.mask.is_some() { 0x80 } else { 0 };
        if len < 126 {
            out.push(m | len as u8);
        } else if len <= u64::from(u16::MAX) {
            out.push(m | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(m | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
        match self.mask {
            Some(k) => {
                out.extend_from_slice(&k);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
    }
}

fn ws_frame() -> impl proptest::strategy::Strategy<Value = WsFrame> {
    use proptest::prelude::*;
    // Payloads: random bytes, or WuKongIM packets (a PING, a CONNECT header announcing more
    // than follows, a packet split across frames).
    let payload = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..300),
        1 => Just(vec![0x70, 0x00]),
        1 => Just(b"\x10\xe8\x07\x00\x04WKIM".to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..4).prop_map(|mut v| { v.insert(0, 0x10); v }),
    ];
    let opcode = prop_oneof![
        Just(0x0u8),
        Just(0x1),
        Just(0x2),
        Just(0x8),
        Just(0x9),
        Just(0xA),
        0u8..16
    ];
    let claimed = prop_oneof![
        6 => Just(None),
        1 => (0u64..200).prop_map(Some),
        1 => any::<u64>().prop_map(Some),
        1 => Just(Some(u64::MAX)),
    ];
    (
        prop_oneof![5 => Just(true), 1 => Just(false)],
        prop_oneof![6 => Just(0u8), 1 => 0u8..8],
        opcode,
        prop_oneof![5 => any::<[u8; 4]>().prop_map(Some), 1 => Just(None)],
        claimed,
        payload,
    )
        .prop_map(|(fin, rsv, opcode, mask, claimed, payload)| WsFrame {
            fin,
            rsv,
            opcode,
            mask,
            claimed,
            payload,
        })
}

const UPGRADE: &[u8] =
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Upgrades a raw connection; the answer's head is read byte by byte, so nothing after it is
/// consumed. An error if the answer was not 101.
async fn ws_upgrade(addr: &str) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(UPGRADE).await.map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(T, s.read(&mut b)).await {
            Ok(Ok(1)) => head.push(b[0]),
            other => return Err(format!("upgrade answer cut: {other:?} after {head:?}")),
        }
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(format!(
            "upgrade refused: {}",
            String::from_utf8_lossy(&head)
        ));
    }
    Ok(s)
}

/// Upgrades, writes `bytes`, half-closes, and returns once the server closed the connection
/// (an error if it did not within `T`, or refused the upgrade).
async fn ws_throw(addr: &str, bytes: &[u8]) -> Result<(), String> {
    let mut s = ws_upgrade(addr).await?;
    // The server may close before reading everything: write errors are part of the game.
    let _ = s.write_all(bytes).await;
    let _ = s.shutdown().await;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(T, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => {}
            Err(_) => return Err("the server kept a half-closed WebSocket open".into()),
        }
    }
}

/// The WebSocket entry under a fuzzer: sequences of arbitrary frames (any opcode, FIN/RSV bits,
/// masked or not, lying lengths up to 2^64−1, WuKongIM packets split or cut) after a valid
/// upgrade. Every such connection is closed by the server once the client stops, no case
/// panics the node, and afterwards a WebSocket client still CONNECTs and a TCP client still
/// chats.
#[test]
fn websocket_framing_fuzz_closes_each_bad_connection_and_the_node_keeps_serving() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let node = rt.block_on(Node::start(NodeOptions::default()));
    let addr = node.ws_addr().trim_start_matches("ws://").to_string();
    let mut runner = TestRunner::new(Config {
        cases: 1500,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(ws_frame(), 1..6),
        proptest::collection::vec(any::<u8>(), 0..16),
    );
    runner
        .run(&strategy, |(frames, tail)| {
            let mut bytes = Vec::new();
            for f in &frames {
                f.encode(&mut bytes);
            }
            bytes.extend_from_slice(&tail);
            rt.block_on(ws_throw(&addr, &bytes))
                .map_err(proptest::test_runner::TestCaseError::fail)
        })
        .unwrap();
    rt.block_on(async {
        still_serving(&node).await;
        // A real WebSocket client: CONNECT in one binary frame, CONNACK back.
        use futures::{SinkExt, StreamExt};
        use wukongim::proto::{encode, ClientKeys, ConnectPacket, Decoder};
        let (mut ws, _) = tokio_tungstenite::connect_async(node.ws_addr())
            .await
            .expect("WebSocket upgrade after the fuzz");
        let connect = Packet::Connect(ConnectPacket {
            version: 5,
            device_flag: 0,
            device_id: "fuzz-check".into(),
            uid: "after-fuzz".into(),
            token: String::new(),
            client_timestamp: 0,
            client_key: ClientKeys::generate().public_key(),
        });
        ws.send(tokio_tungstenite::tungstenite::Message::Binary(
            encode(&connect, 5).unwrap().to_vec().into(),
        ))
        .await
        .unwrap();
        let frame = tokio::time::timeout(T, ws.next())
            .await
            .expect("CONNACK in time")
            .expect("a frame")
            .expect("a good frame");
        let mut buf = bytes::BytesMut::from(&frame.into_data()[..]);
        match Decoder::default().decode(&mut buf, 5) {
            Ok(Some(Packet::Connack(a))) => assert_eq!(a.reason_code, ReasonCode::Success),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    });
}

/// A masked client frame (as every client frame must be).
fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    WsFrame {
        fin,
        rsv: 0,
        opcode,
        mask: Some([0x12, 0x34, 0x56, 0x78]),
        claimed: None,
        payload: payload.to_vec(),
    }
    .encode(&mut v);
    v
}

/// The next server frame: its first byte (FIN and opcode) and payload; server frames are never
/// masked.
async fn server_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    tokio::time::timeout(T, s.read_exact(&mut h))
        .await
        .expect("a frame in time")
        .expect("a frame header");
    assert_eq!(h[1] & 0x80, 0, "a masked server frame");
    let len = match h[1] & 0x7F {
        126 => u64::from(s.read_u16().await.unwrap()),
        127 => s.read_u64().await.unwrap(),
        n => u64::from(n),
    };
    let mut p = vec![0u8; len as usize];
    tokio::time::timeout(T, s.read_exact(&mut p))
        .await
        .expect("a payload in time")
        .expect("a whole payload");
    (h[0], p)
}

/// Writes a raw HTTP request to the WebSocket port; the whole answer (the server closes).
async fn ws_answer(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    String::from_utf8_lossy(&read_until_closed(&mut s).await).into_owned()
}

/// RFC 6455 beyond plain binary frames: a ping is answered by a pong with its payload (a flood
/// of them by pongs in order, the last for the last); a
/// message may come in fragments (text, then continuations, control frames between); a close
/// is echoed with its code and the connection ends. An unmasked frame is refused with close
/// 1002, a frame announcing more than `conn.maxPacketSize` with 1009 (before its payload
/// comes); a request that is no upgrade gets 400 or 405, and past `conn.maxConnections` an
/// upgrade gets 503.
#[tokio::test]
async fn websocket_pings_fragments_close_codes_and_refusals() {
    use wukongim::proto::{encode, ClientKeys, ConnectPacket, Decoder};
    let node = Node::start(NodeOptions {
        extra_yaml: "conn:\n  maxConnections: 2\n".into(),
        ..NodeOptions::default()
    })
    .await;
    let addr = node.ws_addr().trim_start_matches("ws://").to_string();

    let mut s = ws_upgrade(&addr).await.unwrap();
    let connect = Packet::Connect(ConnectPacket {
        version: 5,
        device_flag: 0,
        device_id: "frag".into(),
        uid: "fragmented".into(),
        token: String::new(),
        client_timestamp: 0,
        client_key: ClientKeys::generate().public_key(),
    });
    let connect = encode(&connect, 5).unwrap();
    let (a, rest) = connect.split_at(3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut bytes = masked(false, 0x1, a);
    bytes.extend(masked(true, 0x9, b"are you there"));
    bytes.extend(masked(false, 0x0, b));
    bytes.extend(masked(true, 0xA, b""));
    bytes.extend(masked(true, 0x0, c));
    s.write_all(&bytes).await.unwrap();
    // The pong and the CONNACK, in either order: the pong goes out on its own task, the
    // CONNACK after the session's key exchange.
    let (first, second) = (server_frame(&mut s).await, server_frame(&mut s).await);
    let (pong, (op, connack)) = if first.0 == 0x8A {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(pong, (0x8A, b"are you there".to_vec()));
    assert_eq!(op, 0x82, "CONNACK in one binary frame");
    match Decoder::default().decode(&mut bytes::BytesMut::from(&connack[..]), 5) {
        Ok(Some(Packet::Connack(a))) => assert_eq!(a.reason_code, ReasonCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // A ping flood: pongs in order, the last one answering the last ping (an endpoint may
    // answer only the latest of the pings it has not answered yet).
    let flood: Vec<u8> = (0..200)
        .flat_map(|i| masked(true, 0x9, format!("p{i}").as_bytes()))
        .collect();
    s.write_all(&flood).await.unwrap();
    let mut last = -1;
    while last < 199 {
        let (op, p) = server_frame(&mut s).await;
        assert_eq!(op, 0x8A, "only pongs");
        let n: i32 = String::from_utf8(p[1..].to_vec()).unwrap().parse().unwrap();
        assert!(n > last, "pong p{n} after p{last}");
        last = n;
    }
    s.write_all(&masked(true, 0x8, &4000u16.to_be_bytes()))
        .await
        .unwrap();
    assert_eq!(
        server_frame(&mut s).await,
        (0x88, 4000u16.to_be_bytes().to_vec())
    );
    assert_eq!(read_until_closed(&mut s).await, b"");

    let mut s = ws_upgrade(&addr).await.unwrap();
    s.write_all(&[0x82, 0x02, 0x70, 0x00]).await.unwrap(); // a PING packet, unmasked
    assert_eq!(
        server_frame(&mut s).await,
        (0x88, 1002u16.to_be_bytes().to_vec())
    );
    assert_eq!(read_until_closed(&mut s).await, b"");

    let mut s = ws_upgrade(&addr).await.unwrap();
    let mut big = Vec::new();
    WsFrame {
        fin: true,
        rsv: 0,
        opcode: 0x2,
        mask: Some([1, 2, 3, 4]),
        claimed: Some((1 << 20) + 17),
        payload: Vec::new(),
    }
    .encode(&mut big);
    s.write_all(&big).await.unwrap();
    assert_eq!(
        server_frame(&mut s).await,
        (0x88, 1009u16.to_be_bytes().to_vec())
    );
    assert_eq!(read_until_closed(&mut s).await, b"");

    let plain = ws_answer(&addr, b"GET /anything HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        plain.starts_with("HTTP/1.1 400")
            && plain.ends_with("Connection header did not include 'upgrade'"),
        "{plain}"
    );
    let post = ws_answer(&addr, &[b"POST", &UPGRADE[3..]].concat()).await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");

    // Two open (upgraded, no CONNECT yet): a third upgrade is refused. The connections above
    // free their places just after the client sees them end, so the first two may need a retry.
    let mut held = Vec::new();
    let deadline = std::time::Instant::now() + T;
    while held.len() < 2 {
        match ws_upgrade(&addr).await {
            Ok(s) => held.push(s),
            Err(e) if e.contains(" 503 ") && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    let full = ws_answer(&addr, UPGRADE).await;
    assert!(
        full.starts_with("HTTP/1.1 503") && full.ends_with("too many client connections\n"),
        "{full}"
    );
}
