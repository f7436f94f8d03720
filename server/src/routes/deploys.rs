//! `GET /api/v1/deploys`, `GET /api/v1/deploys/{id}` (and `POST /api/v1/deploys`, whose
//! handler is in `ingest`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::AppError;
use crate::state::AppState;
use crate::store::{DeployQuery, DeployRow};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/deploys",
            get(list)
                .post(super::ingest::deploys)
                .layer(DefaultBodyLimit::max(4 * 1024 * 1024)),
        )
        .route("/deploys/{id}", get(one))
}

#[derive(Debug, Deserialize)]
struct ListParams {
    service: Option<String>,
    environment: Option<String>,
    verdict: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// Validated page size and offset.
pub fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), AppError> {
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and 500, got {limit}"
        )));
    }
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(AppError::BadRequest(format!(
            "offset must be 0 or more, got {offset}"
        )));
    }
    Ok((limit, offset))
}

async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(p) = params?;
    if let Some(v) = p.verdict.as_deref() {
        if !["regression", "healthy", "inconclusive", "watching"].contains(&v) {
            return Err(AppError::BadRequest(format!(
                "verdict must be regression, healthy, inconclusive or watching, got {v:?}"
            )));
        }
    }
    let (limit, offset) = page(p.limit, p.offset)?;
    let q = DeployQuery {
        service: p.service.filter(|s| !s.is_empty()),
        environment: p.environment.filter(|s| !s.is_empty()),
        verdict: p.verdict,
        limit,
        offset,
    };
    let (items, total) = state.store.list_deploys(&q).await?;
    Ok(Json(json!({ "items": items, "total": total })))
}

async fn one(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<DeployRow>, AppError> {
    state
        .store
        .get_deploy(id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("no deploy with id {id}")))
}
