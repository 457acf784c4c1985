//! API errors and the JSON body extractor: every failure becomes WuKongIM's error envelope
//! `{"msg": …, "status": code}`, never a panic or an HTML page.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("token invalid")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "msg": self.to_string(), "status": status.as_u16() });
        (status, axum::Json(body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<crate::core::ProposeError> for ApiError {
    fn from(e: crate::core::ProposeError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

/// JSON request body; malformed JSON or a missing/mistyped field is a 400 naming it.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest(
                "request body is empty; expected JSON".into(),
            ));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(Body).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                ApiError::BadRequest(format!("invalid JSON: {inner}"))
            } else {
                ApiError::BadRequest(format!("invalid JSON at `{path}`: {inner}"))
            }
        })
    }
}

/// `{"status":200}`
pub fn ok() -> Response {
    axum::Json(serde_json::json!({ "status": 200 })).into_response()
}

/// `{"status":200,"data":…}`
pub fn ok_data(data: serde_json::Value) -> Response {
    axum::Json(serde_json::json!({ "status": 200, "data": data })).into_response()
}

/// Rejects an empty required string field.
pub fn required(name: &str, v: &str) -> Result<(), ApiError> {
    if v.trim().is_empty() {
        return Err(ApiError::BadRequest(format!("{name} must not be empty")));
    }
    Ok(())
}
