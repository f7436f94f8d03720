//! One error type for every handler: client errors carry their status and a JSON
//! `{"error": …}` message; internal errors become a bare 500 and are logged once, here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;

/// What a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or wrong token.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: no such resource.
    #[error("{0}")]
    NotFound(String),
    /// 413: the body is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// 422: well-formed but nothing usable; carries the full response body.
    #[error("{message}")]
    Unprocessable {
        /// The error sentence.
        message: String,
        /// Extra fields merged into the body (e.g. `accepted`, `rejected`).
        body: serde_json::Value,
    },
    /// 503: not ready (shutting down, store unreachable).
    #[error("{0}")]
    Unavailable(String),
    /// 500: storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 500: anything else internal.
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, json!({ "error": m })),
            AppError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, json!({ "error": m })),
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, json!({ "error": m })),
            AppError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, json!({ "error": m })),
            AppError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": m })),
            AppError::Unprocessable { message, mut body } => {
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("error".into(), message.into());
                }
                (StatusCode::UNPROCESSABLE_ENTITY, body)
            }
            AppError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "internal error" }),
                )
            }
            AppError::Internal(e) => {
                tracing::error!(error = %e, "internal failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "internal error" }),
                )
            }
        };
        let mut body = body;
        if let Some(obj) = body.as_object_mut() {
            obj.insert("code".into(), code(status).into());
        }
        (status, Json(body)).into_response()
    }
}

/// The machine-readable `code` of an error answer, from its status.
pub fn code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "too_many_requests",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

impl From<axum::extract::rejection::BytesRejection> for AppError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge(
                "request body is larger than max_body_bytes; send smaller batches".into(),
            )
        } else {
            AppError::BadRequest(format!("could not read the request body: {r}"))
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for AppError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge("request body is larger than max_body_bytes".into())
        } else {
            AppError::BadRequest(r.body_text())
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for AppError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        AppError::BadRequest(r.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for AppError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        AppError::BadRequest(r.body_text())
    }
}
