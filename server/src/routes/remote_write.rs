//! Prometheus remote-write 1.0 receiver: `POST /api/v1/write`.
//!
//! Status codes as the remote-write specification reads them: 204 when stored; 400 for
//! a body that is not a snappy `WriteRequest` and for invalid series (Prometheus does not
//! retry a 4xx; the valid series of that request are stored all the same and the body
//! names the first bad one); 413 past `max_body_bytes`; 415 for another content type or
//! encoding; 503 with `Retry-After` when overloaded or when the store failed (Prometheus
//! retries 5xx).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use prost::Message;
use serde_json::json;

use crate::error::AppError;
use crate::ingest::receivers::{store_samples, Receivers, Refused, RETRY_AFTER_SECS};
use crate::ingest::remote_write::{convert, decompress, proto::WriteRequest};
use crate::routes::otlp::refused_text;
use crate::state::AppState;

/// The route, sharing `receivers`.
pub fn router(state: &AppState, receivers: Arc<Receivers>) -> Router<AppState> {
    Router::new()
        .route("/write", post(write))
        .layer(Extension(receivers))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
}

fn failure(status: StatusCode, message: String) -> Response {
    let mut resp = (
        status,
        Json(json!({ "error": message, "code": crate::error::code(status) })),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    resp
}

fn unavailable(e: AppError) -> Response {
    tracing::error!(error = %e, "storing remote-write samples failed; Prometheus will retry");
    failure(
        StatusCode::SERVICE_UNAVAILABLE,
        "the samples could not be stored; retry later".into(),
    )
}

async fn write(
    State(state): State<AppState>,
    Extension(rx): Extension<Arc<Receivers>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(_permit) = rx.in_flight.try_acquire() else {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many write requests in flight; retry after the Retry-After delay".into(),
        );
    };
    let text = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = text(header::CONTENT_TYPE)
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media != "application/x-protobuf" {
        return failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported Content-Type {:?}: remote write sends application/x-protobuf",
                text(header::CONTENT_TYPE)
            ),
        );
    }
    let encoding = text(header::CONTENT_ENCODING).trim().to_ascii_lowercase();
    if encoding != "snappy" {
        return failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {encoding:?}: remote write bodies are snappy-compressed"),
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                "request body is larger than max_body_bytes ({} bytes); lower max_samples_per_send",
                state.config.max_body_bytes
            ),
            )
        }
        Err(r) => {
            return failure(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {r}"),
            )
        }
    };
    let limit = state.config.max_body_bytes;
    let rx2 = rx.clone();
    let converted = tokio::task::spawn_blocking(move || {
        let raw = decompress(&body, limit).map_err(|(too_large, m)| {
            let status = if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            (status, m)
        })?;
        let req = WriteRequest::decode(raw.as_slice()).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("body is not a valid protobuf prometheus.WriteRequest: {e}"),
            )
        })?;
        let mut st = rx2
            .remote_write_state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Ok::<_, (StatusCode, String)>(convert(&req, &mut st, &rx2.remote_write))
    })
    .await;
    let batch = match converted {
        Ok(Ok(b)) => b,
        Ok(Err((status, m))) => return failure(status, m),
        Err(e) => return unavailable(AppError::Internal(format!("decoder task: {e}"))),
    };
    state
        .metrics
        .rejected
        .fetch_add(batch.rejected as u64, Ordering::Relaxed);
    let undo = batch.undo;
    let samples = batch.samples.len();
    let stored = async {
        let deploys = if rx.remote_write.version_deploys {
            rx.deploys(&state, batch.sightings, "remote_write").await?
        } else {
            Refused::default()
        };
        Ok::<_, AppError>((deploys, store_samples(&state, batch.samples).await?))
    }
    .await;
    let (deploys_refused, refused) = match stored {
        Ok(r) => r,
        Err(e) => {
            // Prometheus retries: difference its retry against the same references.
            rx.remote_write_state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .rollback(undo);
            return unavailable(e);
        }
    };
    // Refusals are 400s: Prometheus does not retry what would be refused again.
    let mut problems = Vec::new();
    if batch.rejected > 0 {
        problems.push(format!(
            "{} of {} samples rejected (the others were stored); first: {}",
            batch.rejected,
            batch.received,
            batch.first_error.unwrap_or_default()
        ));
    }
    if refused.count > 0 {
        problems.push(refused_text(
            &refused,
            samples,
            "records made from the samples",
        ));
    }
    if deploys_refused.count > 0 {
        problems.push(refused_text(&deploys_refused, 0, "version deploys"));
    }
    if !problems.is_empty() {
        return failure(StatusCode::BAD_REQUEST, problems.join("; "));
    }
    StatusCode::NO_CONTENT.into_response()
}
