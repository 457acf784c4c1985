//! The HTTP API's node endpoints and its manager-token protection.

use serde_json::json;
use wk_tests::{get, post_with, Node, NodeOptions};

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
