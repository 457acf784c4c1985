//! The HTTP API (default :5001): WuKongIM's IM endpoints with their JSON shapes, plus node info.
//! Every request needs the `token` header when `managerToken` is set (GET /health excepted, so
//! load balancers can probe it).

mod cluster;
mod cmd;
mod error;
mod im;
mod info;
mod messages;
mod perms;
mod snapshot;
pub(crate) mod sync;

pub use cluster::raft_status_json;
pub use error::ApiError;

use crate::app::App;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// Builds the API router over `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/user/token", post(im::user_token))
        .route("/user/device_quit", post(im::device_quit))
        .route("/user/onlinestatus", post(im::online_status))
        .route("/message/send", post(im::message_send))
        .route("/message/sendbatch", post(messages::send_batch))
        .route("/message/sync", post(cmd::sync))
        .route("/message/syncack", post(cmd::syncack))
        .route("/message/byclientmsgno", get(messages::by_client_msg_no))
        .route("/message", post(messages::search_message))
        .route("/messages", post(messages::search_messages))
        .route("/channel/max_message_seq", get(messages::max_message_seq))
        .route("/channel/last_message", get(messages::last_message))
        .route("/channel", post(im::channel_upsert))
        .route("/channel/delete", post(im::channel_delete))
        .route("/channel/subscriber_add", post(im::subscriber_add))
        .route("/channel/subscriber_remove", post(im::subscriber_remove))
        .route("/channel/info", post(perms::channel_info))
        .route(
            "/channel/subscriber_remove_all",
            post(perms::subscriber_remove_all),
        )
        .route(
            "/tmpchannel/subscriber_set",
            post(perms::tmp_subscriber_set),
        )
        .route("/channel/blacklist_add", post(perms::blacklist_add))
        .route("/channel/blacklist_set", post(perms::blacklist_set))
        .route("/channel/blacklist_remove", post(perms::blacklist_remove))
        .route(
            "/channel/blacklist_remove_all",
            post(perms::blacklist_remove_all),
        )
        .route("/channel/whitelist_add", post(perms::whitelist_add))
        .route("/channel/whitelist_set", post(perms::whitelist_set))
        .route("/channel/whitelist_remove", post(perms::whitelist_remove))
        .route(
            "/channel/whitelist_remove_all",
            post(perms::whitelist_remove_all),
        )
        .route("/channel/whitelist", get(perms::whitelist_get))
        .route("/user/systemuids", get(perms::system_uids))
        .route("/user/systemuids_add", post(perms::system_uids_add))
        .route("/user/systemuids_remove", post(perms::system_uids_remove))
        .route("/channel/messagesync", post(sync::message_sync))
        .route("/conversation/sync", post(sync::conversation_sync))
        .route("/conversations/setUnread", post(sync::set_unread))
        .route("/conversations/clearUnread", post(sync::clear_unread))
        .route("/conversations/delete", post(sync::delete_conversation))
        .route(
            "/cluster/nodes",
            get(cluster::nodes).post(cluster::add_node),
        )
        .route(
            "/cluster/nodes/{id}",
            axum::routing::delete(cluster::remove_node),
        )
        .route(
            "/cluster/transfer-leadership",
            post(cluster::transfer_leadership),
        )
        .route("/cluster/status", get(cluster::status))
        .route("/cluster/raft/status", get(cluster::raft_status))
        .route("/cluster/election", post(cluster::election))
        .route("/cluster/data/version", get(cluster::data_version))
        .route("/cluster/sync/force", post(cluster::sync_force))
        .route("/cluster/snapshot", post(snapshot::take))
        .route("/cluster/snapshot/download", get(snapshot::download))
        .route("/route", get(info::route))
        .route("/route/batch", post(info::route_batch))
        .route("/health", get(info::health))
        .route("/varz", get(info::varz))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(app.clone(), require_token))
        .with_state(app)
}

async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if app.manager_token.get().is_some() {
        let exempt = req.uri().path() == "/health";
        let given = req.headers().get("token").and_then(|v| v.to_str().ok());
        let matches = given.is_some_and(|g| app.manager_token.matches(g));
        if !exempt && !matches {
            return ApiError::Unauthorized.into_response();
        }
    }
    if let Err(e) = caught_up(&app, req.uri().path()).await {
        return e.into_response();
    }
    next.run(req).await
}

/// IM endpoints wait (bounded by `requestTimeout`) until the node caught up after start (see
/// `cluster/catchup.rs`); health, node info and the cluster endpoints answer at once.
async fn caught_up(app: &App, path: &str) -> Result<(), ApiError> {
    let exempt = ["/health", "/varz", "/route", "/cluster/"];
    let gate = &app.core.cluster.read_gate;
    if gate.is_open() || exempt.iter().any(|p| path.starts_with(p)) {
        return Ok(());
    }
    if gate.wait(app.config.cluster.request_timeout.0).await {
        return Ok(());
    }
    Err(ApiError::Unavailable(
        "node is catching up with the cluster after start; retry or use another node".into(),
    ))
}

/// Every JSON body of the API through the real extractor: random bytes and random JSON of the
/// right and wrong shapes give an answer (a value or a 400 naming the problem), never a panic.
#[cfg(test)]
mod fuzz {
    use super::error::Body;
    use axum::extract::FromRequest;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    thread_local! {
        static RT: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().build().unwrap();
    }

    fn extract<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> bool {
        let req = axum::http::Request::builder()
            .method("POST")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(bytes.to_vec()))
            .unwrap();
        RT.with(|rt| rt.block_on(Body::<T>::from_request(req, &())))
            .is_ok()
    }

    /// Runs `bytes` through every body type; returns how many accepted it.
    fn every_body(bytes: &[u8]) -> usize {
        [
            extract::<super::im::TokenReq>(bytes),
            extract::<super::im::DeviceQuitReq>(bytes),
            extract::<super::im::SendReq>(bytes),
            extract::<super::messages::SendBatchReq>(bytes),
            extract::<super::messages::SearchReq>(bytes),
            extract::<super::messages::SearchOneReq>(bytes),
            extract::<super::im::ChannelReq>(bytes),
            extract::<super::im::ChannelRef>(bytes),
            extract::<super::im::SubscribersReq>(bytes),
            extract::<super::sync::SyncReq>(bytes),
            extract::<super::sync::ConvSyncReq>(bytes),
            extract::<super::sync::SetUnreadReq>(bytes),
            extract::<super::sync::ConvReq>(bytes),
            extract::<super::cluster::AddNodeReq>(bytes),
            extract::<super::cluster::TransferReq>(bytes),
            extract::<super::perms::ChannelInfoReq>(bytes),
            extract::<super::perms::ChannelReq>(bytes),
            extract::<super::perms::TmpSubscribersReq>(bytes),
            extract::<super::perms::ListReq>(bytes),
            extract::<super::perms::UidsReq>(bytes),
            extract::<super::cmd::CmdSyncReq>(bytes),
            extract::<super::cmd::CmdSyncAckReq>(bytes),
        ]
        .into_iter()
        .filter(|ok| *ok)
        .count()
    }

    /// JSON values built from the API's own field names, with values of any type.
    fn api_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("uid"),
            Just("token"),
            Just("from_uid"),
            Just("channel_id"),
            Just("channel_type"),
            Just("payload"),
            Just("subscribers"),
            Just("header"),
            Just("login_uid"),
            Just("start_message_seq"),
            Just("limit"),
            Just("version"),
            Just("last_msg_seqs"),
            Just("unread"),
            Just("node_id"),
            Just("addr"),
            Just("device_flag"),
            Just("red_dot"),
            Just("message_seqs"),
            Just("message_ids"),
            Just("client_msg_nos"),
            Just("message_id"),
            Just("client_msg_no"),
            Just("uids"),
            Just("ban"),
            Just("send_ban"),
            Just("message_seq"),
            Just("last_message_seq"),
            Just("x"),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            "[ -~]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(15_000))]

        #[test]
        fn random_bytes_are_refused_or_parsed(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
            every_body(&bytes);
        }

        #[test]
        fn random_json_of_api_fields_is_refused_or_parsed(v in api_json()) {
            every_body(v.to_string().as_bytes());
        }
    }

    #[test]
    fn well_formed_bodies_are_accepted() {
        let send =
            json!({"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": "aGk="});
        assert!(extract::<super::im::SendReq>(send.to_string().as_bytes()));
        assert!(!extract::<super::im::SendReq>(b"  "));
        assert!(!extract::<super::im::SendReq>(b"{\"channel_type\": \"x\"}"));
    }
}
