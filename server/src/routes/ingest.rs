//! `POST /api/v1/metrics`, `/deploys`, `/logs`: validate every item, store the valid ones
//! durably, then feed them to the engine and answer with what was accepted and rejected.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::sync::atomic::Ordering;
use watchdog_core::{Deploy, LogEvent, Sample};

use crate::error::AppError;
use crate::ingest::body::{parse_body, Parsed, Rejection};
use crate::ingest::metric_record::parse_sample;
use crate::state::AppState;
use crate::store::{NewDeploy, NewRecord};

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
    let (rows, samples): (Vec<NewRecord>, Vec<Sample>) = parsed
        .items
        .into_iter()
        .map(|i| {
            let row = NewRecord {
                ts_ms: i.record.timestamp.millis(),
                service: i.record.service.clone(),
                environment: i.record.environment.clone(),
                body: i.raw,
            };
            (row, i.record)
        })
        .unzip();
    let n = rows.len();
    state
        .store
        .insert_samples(&rows, AppState::now_ms())
        .await?;
    drop(rows);
    if n > 0 {
        state
            .engine
            .samples(samples)
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
    }
    state.metrics.samples.fetch_add(n as u64, Ordering::Relaxed);
    outcome(&state, n, parsed.rejected, json!({}))
}

async fn logs(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let parsed = parse_blocking(body?, LogEvent::from_json_line).await?;
    let (rows, events): (Vec<NewRecord>, Vec<LogEvent>) = parsed
        .items
        .into_iter()
        .map(|i| {
            let row = NewRecord {
                ts_ms: i.record.timestamp.millis(),
                service: i.record.service.clone(),
                environment: i.record.environment.clone(),
                body: i.raw,
            };
            (row, i.record)
        })
        .unzip();
    let n = rows.len();
    state.store.insert_logs(&rows).await?;
    if n > 0 {
        state
            .engine
            .logs(events)
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
    }
    state.metrics.logs.fetch_add(n as u64, Ordering::Relaxed);
    outcome(&state, n, parsed.rejected, json!({}))
}

/// Stores deploys and feeds the new ones to the engine. Returns each one's row id, `None`
/// for a deploy that was already stored (a retried notification).
///
/// # Errors
/// Store failures or the engine gone.
pub async fn accept_deploys(
    state: &AppState,
    deploys: Vec<Deploy>,
    source: &str,
) -> Result<Vec<Option<i64>>, AppError> {
    let rows: Vec<NewDeploy> = deploys
        .iter()
        .map(|d| NewDeploy {
            deploy: d.clone(),
            source: source.to_string(),
        })
        .collect();
    let ids = state
        .store
        .insert_deploys(&rows, AppState::now_ms())
        .await?;
    let fresh: Vec<Deploy> = deploys
        .into_iter()
        .zip(&ids)
        .filter_map(|(d, id)| id.map(|_| d))
        .collect();
    if !fresh.is_empty() {
        state
            .metrics
            .deploys
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        for d in &fresh {
            tracing::info!(deploy_id = %d.deploy_id, service = %d.service, environment = %d.environment, source, "deploy");
        }
        state
            .engine
            .deploys(fresh)
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
    }
    Ok(ids)
}

/// `POST /api/v1/deploys`.
pub async fn deploys(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let parsed = parse_blocking(body?, Deploy::from_json_line).await?;
    let deploys: Vec<Deploy> = parsed.items.into_iter().map(|i| i.record).collect();
    let n = deploys.len();
    let ids = accept_deploys(&state, deploys, "api").await?;
    let duplicates = ids.iter().filter(|i| i.is_none()).count();
    outcome(
        &state,
        n,
        parsed.rejected,
        json!({ "ids": ids, "duplicates": duplicates }),
    )
}
