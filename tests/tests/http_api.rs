//! The HTTP API's node endpoints and its manager-token protection.

use serde_json::json;
use wk_tests::{get, post, post_with, Node, NodeOptions};

#[tokio::test]
async fn route_health_varz_and_manager_token() {
    let node = Node::start(NodeOptions {
        extra_yaml: "managerToken: s3cret\n".into(),
        ..Default::default()
    })
    .await;
    let (st, body) = get(&node.url("/health")).await;
    assert_eq!(
        (st, body),
        (200, json!({"status": "ok"})),
        "health needs no token (load balancer probes)"
    );
    let (st, body) = get(&node.url("/route")).await;
    assert_eq!(st, 401, "{body}");
    assert_eq!(body["status"], 401);
    let resp = reqwest::Client::new()
        .get(node.url("/route"))
        .header("token", "s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let route: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(route["tcp_addr"], format!("127.0.0.1:{}", node.ports.tcp));
    assert_eq!(
        route["ws_addr"],
        format!("ws://127.0.0.1:{}", node.ports.ws)
    );
    let (st, _) = post_with(
        &node.url("/user/token"),
        json!({"uid": "a", "token": "b"}),
        Some("wrong"),
    )
    .await;
    assert_eq!(st, 401);
    let (st, _) = post_with(
        &node.url("/message/send"),
        json!({"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": "aGk="}),
        Some("s3cret"),
    )
    .await;
    assert_eq!(st, 200);
    let resp = reqwest::Client::new()
        .get(node.url("/varz"))
        .header("token", "s3cret")
        .send()
        .await
        .unwrap();
    let varz: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(varz["server_id"], "1");
    assert_eq!(varz["in_msgs"], 1);
    assert!(varz["uptime_seconds"].is_u64());
}

#[tokio::test]
async fn a_single_node_refuses_to_remove_its_last_voter() {
    let node = Node::start(NodeOptions::default()).await;
    let resp = reqwest::Client::new()
        .delete(node.url("/cluster/nodes/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["msg"].as_str().unwrap().contains("last voter"),
        "{body}"
    );
    let (st, v) = get(&node.url("/cluster/nodes")).await;
    assert_eq!(st, 200);
    assert_eq!(
        v["nodes"].as_array().unwrap().len(),
        1,
        "cluster unchanged: {v}"
    );
    let (st, v) = get(&node.url("/cluster/status")).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("healthy")), "{v}");
}

/// Person channels "a@b"↔"c" and "a"↔"b@c" are two conversations: neither pair shares the
/// other's message log or seq counter, and neither can sync the other's messages.
#[tokio::test]
async fn person_channels_with_at_signs_do_not_collide() {
    let node = Node::start(NodeOptions::default()).await;
    let send = |from: &str, to: &str, payload: &str| {
        let body =
            json!({"from_uid": from, "channel_id": to, "channel_type": 1, "payload": payload});
        let url = node.url("/message/send");
        async move { post(&url, body).await }
    };
    let (st, first) = send("a@b", "c", "b25l").await;
    assert_eq!(st, 200, "{first}");
    let (st, second) = send("a", "b@c", "dHdv").await;
    assert_eq!(st, 200, "{second}");
    assert_eq!(
        (
            first["data"]["message_seq"].as_u64(),
            second["data"]["message_seq"].as_u64()
        ),
        (Some(1), Some(1)),
        "each pair has its own seq counter: {first} {second}"
    );
    let sync = |login: &str, channel: &str| {
        let body =
            json!({"login_uid": login, "channel_id": channel, "channel_type": 1, "limit": 10});
        let url = node.url("/channel/messagesync");
        async move {
            let (st, r) = post(&url, body).await;
            assert_eq!(st, 200, "{r}");
            r["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["payload"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(sync("c", "a@b").await, ["b25l"]);
    assert_eq!(sync("a@b", "c").await, ["b25l"]);
    assert_eq!(sync("a", "b@c").await, ["dHdv"]);
    assert_eq!(sync("b@c", "a").await, ["dHdv"]);
}

/// `conn.maxSyncBytes` bounds a /channel/messagesync page in payload bytes: pages stop before
/// the message that would pass it, say `more`, and walking them returns every message once.
#[tokio::test]
async fn message_sync_pages_are_bounded_in_bytes() {
    use base64::Engine;
    let node = Node::start(NodeOptions {
        extra_yaml: "conn:\n  maxSyncBytes: 1KiB\n".into(),
        ..Default::default()
    })
    .await;
    let payload = base64::engine::general_purpose::STANDARD.encode([b'x'; 400]);
    for i in 0..5 {
        let (st, r) = post(
            &node.url("/message/send"),
            json!({"from_uid": "p", "channel_id": "q", "channel_type": 1,
                   "client_msg_no": format!("m{i}"), "payload": payload}),
        )
        .await;
        assert_eq!(st, 200, "{r}");
    }
    let mut seen: Vec<u64> = Vec::new();
    let mut start = 0u64;
    let mut pages = 0;
    loop {
        let (st, r) = post(
            &node.url("/channel/messagesync"),
            json!({"login_uid": "q", "channel_id": "p", "channel_type": 1,
                   "start_message_seq": start, "limit": 100, "pull_mode": 1}),
        )
        .await;
        assert_eq!(st, 200, "{r}");
        let seqs: Vec<u64> = r["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message_seq"].as_u64().unwrap())
            .collect();
        assert!(seqs.len() <= 2, "400-byte payloads, 1 KiB pages: {seqs:?}");
        pages += 1;
        seen.extend(&seqs);
        if r["more"] == 0 {
            break;
        }
        assert!(pages < 10, "pages never end: {r}");
        start = seqs.last().unwrap() + 1;
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    assert_eq!(pages, 3);
}

/// `conn.maxSyncBytes` also bounds a /conversation/sync answer: past it, each further
/// conversation carries only its newest message (every conversation is still listed, its
/// `recents[0]` the last message, as clients expect).
#[tokio::test]
async fn conversation_sync_recents_are_bounded_in_bytes() {
    use base64::Engine;
    let node = Node::start(NodeOptions {
        extra_yaml: "conn:\n  maxSyncBytes: 2KiB\n".into(),
        ..Default::default()
    })
    .await;
    let payload = base64::engine::general_purpose::STANDARD.encode([b'x'; 400]);
    for peer in ["p1", "p2", "p3"] {
        for i in 0..5 {
            let (st, r) = post(
                &node.url("/message/send"),
                json!({"from_uid": peer, "channel_id": "me", "channel_type": 1,
                       "client_msg_no": format!("{peer}-{i}"), "payload": payload}),
            )
            .await;
            assert_eq!(st, 200, "{r}");
        }
    }
    let (st, r) = post(
        &node.url("/conversation/sync"),
        json!({"uid": "me", "version": 0, "msg_count": 5}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let list = r.as_array().unwrap();
    assert_eq!(list.len(), 3, "every conversation listed: {r}");
    let counts: Vec<usize> = list
        .iter()
        .map(|c| c["recents"].as_array().unwrap().len())
        .collect();
    let total: usize = counts.iter().sum();
    // 2 KiB of 400-byte payloads: 5 recents fit, then one (the newest) per conversation.
    assert!(counts.iter().all(|n| *n >= 1), "{counts:?}");
    assert!(total <= 7, "recents bounded by bytes: {counts:?}");
    assert_eq!(
        counts[0], 5,
        "the first conversation gets its full msg_count: {counts:?}"
    );
    for c in list {
        let newest = c["recents"][0]["message_seq"].as_u64();
        assert_eq!(
            newest,
            c["last_msg_seq"].as_u64(),
            "recents[0] is the last message: {c}"
        );
    }
}

/// `managerTokenFile` is re-read on SIGHUP: the new token is in force and the old one refused,
/// without a restart; a replacement that is empty or readable by others is logged and the
/// token in force stays (a bad edit never opens the API).
#[tokio::test]
async fn manager_token_file_is_reread_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manager-token");
    wk_testkit::write_secret(&file, "first\n").unwrap();
    let node = Node::start(NodeOptions {
        extra_yaml: format!("managerTokenFile: {}\n", file.display()),
        ..Default::default()
    })
    .await;
    let status = |token: &'static str| {
        let url = node.url("/route");
        async move {
            let resp = reqwest::Client::new()
                .get(url)
                .header("token", token)
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    };
    assert_eq!((status("first").await, status("second").await), (200, 401));

    wk_testkit::write_secret(&file, "second\n").unwrap();
    assert_eq!(
        status("first").await,
        200,
        "a replaced file acts only on SIGHUP"
    );
    node.hup();
    wk_tests::poll(
        std::time::Duration::from_secs(10),
        "the new token",
        || async { (status("second").await == 200).then_some(()) },
    )
    .await;
    assert_eq!(status("first").await, 401, "the old token is refused");

    for (contents, mode, logged) in [("", 0o600, "empty"), ("third\n", 0o644, "mode 0644")] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&file, contents).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        node.hup();
        let log = node.log_path();
        wk_tests::poll(std::time::Duration::from_secs(10), logged, || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            async move { text.contains(logged).then_some(()) }
        })
        .await;
        assert_eq!(
            status("second").await,
            200,
            "token in force after a bad {logged} file"
        );
        assert_eq!(status("third").await, 401);
        let (st, _) = get(&node.url("/route")).await;
        assert_eq!(st, 401, "the API stays closed after a bad {logged} file");
    }
}
