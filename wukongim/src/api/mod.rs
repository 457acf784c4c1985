//! The HTTP API (default :5001): WuKongIM's IM endpoints with their JSON shapes, plus node info.
//! Every request needs the `token` header when `managerToken` is set (GET /health excepted, so
//! load balancers can probe it).

mod cluster;
mod error;
mod im;
mod info;
mod snapshot;
mod sync;

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
        .route("/channel", post(im::channel_upsert))
        .route("/channel/delete", post(im::channel_delete))
        .route("/channel/subscriber_add", post(im::subscriber_add))
        .route("/channel/subscriber_remove", post(im::subscriber_remove))
        .route("/channel/messagesync", post(sync::message_sync))
        .route("/conversation/sync", post(sync::conversation_sync))
        .route("/conversations/setUnread", post(sync::set_unread))
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
        .route("/health", get(info::health))
        .route("/varz", get(info::varz))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(app.clone(), require_token))
        .with_state(app)
}

async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(expected) = &app.manager_token {
        let exempt = req.uri().path() == "/health";
        let given = req.headers().get("token").and_then(|v| v.to_str().ok());
        let matches =
            given.is_some_and(|g| crate::secret::ct_eq(g.as_bytes(), expected.as_bytes()));
        if !exempt && !matches {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(req).await
}
