//! API compatibility with the Go WuKongIM server (v2.2.5): each test drives a route with the
//! request shapes of Go's handlers and asserts the values Go produces, citing the Go file and
//! function it mirrors. Run against one real node over HTTP.

mod channel_perms;
mod cmd_messages;
mod conversations;
mod messages;

/// Creates group `id` with `members` through POST /channel (must answer 200).
async fn group(node: &wk_tests::Node, id: &str, members: &[&str]) {
    let (st, v) = wk_tests::post(
        &node.url("/channel"),
        serde_json::json!({"channel_id": id, "channel_type": 2, "subscribers": members}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
}
