//! `POST /api/v1/metrics`, `/deploys`, `/logs`: validate every item, hand the valid ones
//! to the ingest path ([`accept`]: stored durably, then fed to the engine) and answer
//! with what was accepted, rejected, and (for samples) late.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::sync::atomic::Ordering;
use watchdog_core::{Deploy, LogEvent};

use crate::error::AppError;
use crate::ingest::accept;
use crate::ingest::body::{parse_body, Parsed, Rejection};
use crate::ingest::metric_record::parse_sample;
use crate::state::AppState;

/// Most rejections listed in one response (the count is always complete).
const MAX_LISTED_REJECTIONS: usize = 1000;

/// Routes of this module (POST /deploys lives with GET /deploys in `deploys`).
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/metrics", post(metrics))
        .route("/logs", post(logs))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
}

async fn parse_blocking<T: Send + 'static>(
    body: Bytes,
    parse: fn(&str) -> Result<T, watchdog_core::Error>,
) -> Result<Parsed<T>, AppError> {
    tokio::task::spawn_blocking(move || parse_body(&body, parse))
        .await
        .map_err(|e| AppError::Internal(format!("parser task: {e}")))?
        .map_err(|e| AppError::BadRequest(e.0))
}

/// The response: 200 with counts, or 422 when nothing was valid.
pub fn outcome(
    state: &AppState,
    accepted: usize,
    mut rejected: Vec<Rejection>,
    extra: serde_json::Value,
) -> Result<Response, AppError> {
    state
        .metrics
        .rejected
        .fetch_add(rejected.len() as u64, Ordering::Relaxed);
    let rejected_total = rejected.len();
    let first = rejected.first().map(|r| {
        format!(
            "no valid record; first problem at item {} (line {}), field `{}`: {}",
            r.index, r.line, r.field, r.error
        )
    });
    rejected.truncate(MAX_LISTED_REJECTIONS);
    let mut body = json!({
        "accepted": accepted,
        "rejected": rejected,
        "rejected_total": rejected_total,
    });
    if let (Some(obj), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        obj.extend(extra.clone());
    }
    if accepted == 0 {
        if let Some(message) = first {
            return Err(AppError::Unprocessable { message, body });
        }
    }
    Ok((StatusCode::OK, Json(body)).into_response())
}

async fn metrics(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let parsed = parse_blocking(body?, parse_sample).await?;
    let done = accept::samples(&state, parsed.items).await?;
    outcome(
        &state,
        done.accepted,
        merged(parsed.rejected, done.rejected),
        json!({ "late": done.late }),
    )
}

/// Rejections of parsing and of later checks, in the body's order.
fn merged(mut a: Vec<Rejection>, b: Vec<Rejection>) -> Vec<Rejection> {
    if !b.is_empty() {
        a.extend(b);
        a.sort_by_key(|r| r.index);
    }
    a
}

async fn logs(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let parsed = parse_blocking(body?, LogEvent::from_json_line).await?;
    let done = accept::logs(&state, parsed.items).await?;
    outcome(
        &state,
        done.accepted,
        merged(parsed.rejected, done.rejected),
        json!({}),
    )
}

/// `POST /api/v1/deploys`.
pub async fn deploys(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let parsed = parse_blocking(body?, Deploy::from_json_line).await?;
    let (items, refused) = accept::check_event_times(
        parsed.items,
        |d| d.timestamp,
        AppState::now_ms(),
        state.config.max_future_skew_secs,
    );
    let (items, over) = state.admission.deploys(items);
    let deploys: Vec<Deploy> = items.into_iter().map(|i| i.record).collect();
    let n = deploys.len();
    let ids = if n > 0 {
        accept::deploys(&state, deploys, "api").await?
    } else {
        Vec::new()
    };
    let duplicates = ids.iter().filter(|i| i.is_none()).count();
    outcome(
        &state,
        n,
        merged(parsed.rejected, refused.into_iter().chain(over).collect()),
        json!({ "ids": ids, "duplicates": duplicates }),
    )
}
