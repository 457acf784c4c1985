//! Device kicks and acknowledgements across nodes, three processes on loopback, real TCP
//! clients (`wk_tests::WkClient`): `/user/device_quit` and a master `/user/token` called on one
//! node kick the devices connected to the others (DISCONNECT `ConnectKick`, then the
//! connection closes), a login on one node replaces the user's older connections on the others
//! as Go's CONNECT handler does, and a RECVACK sent to one node stops every node from sending
//! that message again when the device reconnects elsewhere.

use base64::Engine;
use serde_json::json;
use std::time::Duration;
use wk_tests::{poll, post, retry, TestCluster, WkClient};
use wukongim::proto::{Packet, ReasonCode};

const T: Duration = Duration::from_secs(30);

/// Connects `uid` on `addr` once that node accepts it (a token registered through another
/// node reaches this one when it applied the update).
async fn connect(addr: &str, uid: &str, token: &str, flag: u8, device: &str) -> WkClient {
    let what = format!("{uid}/{device} connects to {addr}");
    retry(T, &what, || async {
        match WkClient::try_connect_device(addr, uid, token, 5, flag, device).await? {
            (c, ReasonCode::Success) => Ok(c),
            (_, r) => Err(format!("CONNACK {r:?}")),
        }
    })
    .await
    .0
}

async fn register(url: &str, uid: &str, token: &str, flag: u8, level: u8) {
    let (st, v) = post(
        url,
        json!({"uid": uid, "token": token, "device_flag": flag, "device_level": level}),
    )
    .await;
    assert_eq!(st, 200, "/user/token {uid}: {v}");
}

/// Asserts that the server sends `c` DISCONNECT with reason `ConnectKick` and closes it;
/// returns the DISCONNECT's text.
async fn assert_kicked(c: &mut WkClient, who: &str) -> String {
    let seen = c.closed_within(T).await;
    seen.iter()
        .find_map(|p| match p {
            Packet::Disconnect(d) if d.reason_code == ReasonCode::ConnectKick => {
                Some(d.reason.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("{who}: no DISCONNECT ConnectKick before the close: {seen:?}"))
}

/// Asserts `c` is still served: PING gets PONG (skipping other packets).
async fn assert_alive(c: &mut WkClient, who: &str) {
    c.write(&Packet::Ping).await;
    loop {
        match c.next(T).await {
            Some(Packet::Pong) => return,
            Some(Packet::Disconnect(d)) => panic!("{who} was disconnected: {d:?}"),
            Some(_) => continue,
            None => panic!("{who}: connection closed or no PONG"),
        }
    }
}

/// Sends text `text` from `from` to person `to` through the HTTP API at `base`.
async fn api_send(base: &str, from: &str, to: &str, text: &str) -> i64 {
    let payload = json!({"type": 1, "content": text}).to_string();
    let (st, v) = post(
        &format!("{base}/message/send"),
        json!({"from_uid": from, "channel_id": to, "channel_type": 1,
               "payload": base64::engine::general_purpose::STANDARD.encode(payload)}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v["data"]["message_id"].as_i64().expect("message_id")
}

fn base(c: &TestCluster, i: usize) -> String {
    c.nodes[i].url("").trim_end_matches('/').to_string()
}

// Go: internal/api/user.go `deviceQuit` + `quitUserDevice` — empties the device's token and
// writes DISCONNECT ReasonConnectKick to every connection of that uid and device flag (the
// user's leader holds the connections of every node); -1 means APP, WEB and PC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_quit_on_one_node_kicks_devices_on_the_others() {
    let c = TestCluster::start(3, "tokenAuthOn: true\n").await;
    let a = base(&c, 0);
    register(&format!("{a}/user/token"), "dora", "t-web", 1, 0).await;
    register(&format!("{a}/user/token"), "dora", "t-app", 0, 0).await;
    let mut web = connect(&c.nodes[1].tcp_addr(), "dora", "t-web", 1, "browser").await;
    let mut app = connect(&c.nodes[2].tcp_addr(), "dora", "t-app", 0, "phone").await;

    let (st, v) = post(
        &format!("{a}/user/device_quit"),
        json!({"uid": "dora", "device_flag": 1}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let text = assert_kicked(&mut web, "WEB device on node 2").await;
    assert_eq!(
        text, "",
        "Go's device quit DISCONNECT carries no reason text"
    );
    let (_, r) =
        WkClient::connect_device(&c.nodes[1].tcp_addr(), "dora", "t-web", 5, 1, "browser").await;
    assert_eq!(
        r,
        ReasonCode::AuthFail,
        "the quit device's token was emptied"
    );
    assert_alive(&mut app, "APP device (other flag) on node 3").await;

    // -1: every device flag.
    let (st, v) = post(
        &format!("{a}/user/device_quit"),
        json!({"uid": "dora", "device_flag": -1}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_kicked(&mut app, "APP device on node 3").await;

    let (st, v) = post(
        &format!("{a}/user/device_quit"),
        json!({"uid": "dora", "device_flag": 256}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains("device_flag"), "{v}");
}

// Go: internal/api/user.go `updateToken` — with device_level master, every older connection
// of that uid and device flag gets DISCONNECT ReasonConnectKick "账号在其他设备上登录".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_token_update_on_one_node_kicks_older_connections_on_the_others() {
    let c = TestCluster::start(3, "tokenAuthOn: true\n").await;
    let a = base(&c, 0);
    register(&format!("{a}/user/token"), "finn", "t-1", 0, 0).await;
    register(&format!("{a}/user/token"), "finn", "t-web", 1, 0).await;
    let (b_addr, c_addr) = (c.nodes[1].tcp_addr(), c.nodes[2].tcp_addr());
    let mut phone1 = connect(&b_addr, "finn", "t-1", 0, "phone-1").await;
    let mut phone2 = connect(&c_addr, "finn", "t-1", 0, "phone-2").await;
    let mut web = connect(&b_addr, "finn", "t-web", 1, "browser").await;

    register(&format!("{a}/user/token"), "finn", "t-2", 0, 1).await;
    for (conn, who) in [(&mut phone1, "node 2"), (&mut phone2, "node 3")] {
        let text = assert_kicked(conn, who).await;
        assert_eq!(text, "账号在其他设备上登录", "Go's reason text");
    }
    assert_alive(&mut web, "WEB device (other flag)").await;

    // A connection made after the update is not kicked by it: the message below is applied
    // after the update on every node, so a kick would have come before its RECV.
    let mut phone3 = connect(&c_addr, "finn", "t-2", 0, "phone-3").await;
    let id = api_send(&a, "gail", "finn", "after the update").await;
    assert_eq!(phone3.next_recv(T).await.message_id, id);
    assert_alive(&mut phone3, "device logged in after the update").await;
}

// Go: internal/user/handler/event_connect.go (`same master kicks each other`) — a master
// login kicks the user's connections of the same device flag from other devices (DISCONNECT
// ReasonConnectKick "login in other device") and closes those of the same device id; a slave
// login closes only those of the same device id. Go's eventbus reaches every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_one_node_replaces_connections_on_the_others() {
    let c = TestCluster::start(3, "tokenAuthOn: true\n").await;
    let a = base(&c, 0);
    register(&format!("{a}/user/token"), "ivan", "t-app", 0, 1).await;
    register(&format!("{a}/user/token"), "ivan", "t-web", 1, 0).await;
    let (b_addr, c_addr) = (c.nodes[1].tcp_addr(), c.nodes[2].tcp_addr());

    let mut phone1 = connect(&b_addr, "ivan", "t-app", 0, "phone-1").await;
    let mut tab1 = connect(&b_addr, "ivan", "t-web", 1, "tab-1").await;
    let mut phone2 = connect(&c_addr, "ivan", "t-app", 0, "phone-2").await;
    let text = assert_kicked(&mut phone1, "older master device on node 2").await;
    assert_eq!(text, "login in other device", "Go's reason text");
    assert_alive(&mut phone2, "the new master device").await;

    // Slave devices coexist; the same device id logging in elsewhere closes its old
    // connection, without a kick.
    let mut tab2 = connect(&c_addr, "ivan", "t-web", 1, "tab-2").await;
    let mut tab1_again = connect(&c_addr, "ivan", "t-web", 1, "tab-1").await;
    let seen = tab1.closed_within(T).await;
    assert!(
        !seen.iter().any(|p| matches!(p, Packet::Disconnect(_))),
        "closed without DISCONNECT: {seen:?}"
    );
    for (conn, who) in [
        (&mut tab2, "another slave device"),
        (&mut tab1_again, "the reconnected device"),
        (&mut phone2, "the master device (other flag)"),
    ] {
        assert_alive(conn, who).await;
    }
}

/// `wukongim_pending_bytes` of the node whose metrics are at `url`.
async fn pending_bytes(url: &str) -> i64 {
    let text = reqwest::get(url)
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix("wukongim_pending_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no wukongim_pending_bytes in\n{text}"))
}

// Go: internal/user/handler/event_recvack.go `recvack` (RemoveRetry: an acknowledged message
// is not sent again) and internal/manager/manager_retry.go `retry` (retries stop with the
// connection). Go never re-sends anything to a device that reconnected; we keep unacknowledged
// messages per user and send them on reconnect, on any node — but never acknowledged ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_on_one_node_is_not_redelivered_by_another() {
    let c = TestCluster::start(3, "").await;
    let a = base(&c, 0);
    let (a_metrics, b_metrics) = (c.nodes[0].metrics_url(), c.nodes[1].metrics_url());
    let mut gus = connect(&c.nodes[0].tcp_addr(), "gus", "", 0, "gus-phone").await;
    let mut ids = Vec::new();
    for text in ["m1", "m2", "m3"] {
        ids.push(api_send(&a, "hal", "gus", text).await);
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(gus.next_recv(T).await);
    }
    assert_eq!(got.iter().map(|r| r.message_id).collect::<Vec<_>>(), ids);
    // Node 2 holds the three for redelivery like node 1 (same size each).
    let three = pending_bytes(&a_metrics).await;
    assert!(three > 0);
    poll(T, "node 2 applied the three messages", || async {
        (pending_bytes(&b_metrics).await == three).then_some(())
    })
    .await;

    // m1 and m2 acknowledged on node 1; m3 not.
    gus.ack(&got[0]).await;
    gus.ack(&got[1]).await;
    assert_alive(&mut gus, "gus on node 1").await;
    poll(T, "node 2 forgot the acknowledged messages", || async {
        (pending_bytes(&b_metrics).await == three / 3).then_some(())
    })
    .await;
    drop(gus);

    // Reconnected to node 2: only m3 is sent again, before anything new.
    let mut gus = connect(&c.nodes[1].tcp_addr(), "gus", "", 0, "gus-phone").await;
    let fresh = api_send(&a, "hal", "gus", "m4").await;
    let mut after: Vec<(i64, String)> = Vec::new();
    loop {
        let r = gus.next_recv(T).await;
        after.push((r.message_id, gus.recv_text(&r)));
        if r.message_id == fresh {
            break;
        }
    }
    assert_eq!(
        after,
        [(ids[2], "m3".to_string()), (fresh, "m4".to_string())],
        "acknowledged m1/m2 not sent again; unacknowledged m3 is"
    );
}
