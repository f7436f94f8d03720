//! `GET /api/v1/deploys/{id}/traces`: for each log signature in a deploy's verdict, the
//! trace and span ids of the log records behind it (OTLP logs carry them), so that the
//! engineer can go from "a new error after the deploy" to the traces that produced it.
//!
//! The records are those of the deploy's service and environment between the deploy
//! and the end of its watch whose message fits the signature's template, newest stored
//! last; at most `limit` per signature (default 20, at most 200). The search reads at
//! most [`MAX_SCANNED`] stored log records from the deploy on; `truncated` says when it
//! stopped there.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::AppError;
use crate::state::AppState;

/// Most stored log records one request reads.
pub const MAX_SCANNED: usize = 200_000;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/deploys/{id}/traces", get(traces))
}

#[derive(Debug, Deserialize)]
struct Params {
    limit: Option<usize>,
}

/// Whether a message fits a template of the log miner: the same number of
/// whitespace-separated tokens, each equal, `<*>` (any token), or a token with `<*>` in it
/// whose fixed parts appear in order.
pub fn fits(template: &str, message: &str) -> bool {
    let t: Vec<&str> = template.split_whitespace().collect();
    let m: Vec<&str> = message.split_whitespace().collect();
    t.len() == m.len() && t.iter().zip(&m).all(|(a, b)| token_fits(a, b))
}

fn token_fits(pattern: &str, token: &str) -> bool {
    if pattern == token || pattern == "<*>" {
        return true;
    }
    let parts: Vec<&str> = pattern.split("<*>").collect();
    if parts.len() == 1 {
        return false;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !token.starts_with(first) || !token[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &token[first.len()..token.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

async fn traces(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(20);
    if !(1..=200).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and 200, got {limit}"
        )));
    }
    let row = state
        .store
        .get_deploy(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no deploy with id {id}")))?;
    let Some(verdict) = &row.verdict else {
        return Ok(Json(json!({
            "deploy_id": row.deploy_id, "service": row.service, "environment": row.environment,
            "signatures": [], "truncated": false,
        })));
    };
    let from = row.deployed_at.millis();
    let until = verdict.window.watched_until.millis();
    let mut found: Vec<Vec<Value>> = vec![Vec::new(); verdict.signatures.len()];
    let (mut after, mut scanned, mut truncated) = (0i64, 0usize, false);
    'scan: loop {
        let rows = state.store.logs_since(from, after, 5000).await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            after = after.max(r.id);
            scanned += 1;
            let Ok(rec) = serde_json::from_str::<Value>(&r.body) else {
                continue;
            };
            let (Some(trace), Some(message)) = (rec["trace_id"].as_str(), rec["message"].as_str())
            else {
                continue;
            };
            if rec["service"] != row.service.as_str()
                || rec["environment"] != row.environment.as_str()
            {
                continue;
            }
            let ts = rec["timestamp"]
                .as_str()
                .and_then(|t| watchdog_core::Timestamp::parse(t).ok())
                .map(|t| t.millis());
            if ts.is_none_or(|t| t > until) {
                continue;
            }
            for (i, sig) in verdict.signatures.iter().enumerate() {
                if found[i].len() < limit && fits(&sig.template, message) {
                    found[i].push(json!({
                        "timestamp": rec["timestamp"],
                        "trace_id": trace,
                        "span_id": rec["span_id"],
                        "message": message,
                    }));
                }
            }
            if found.iter().all(|f| f.len() >= limit) {
                break 'scan;
            }
            if scanned >= MAX_SCANNED {
                truncated = true;
                break 'scan;
            }
        }
    }
    let signatures: Vec<Value> = verdict
        .signatures
        .iter()
        .zip(found)
        .map(|(s, traces)| {
            json!({ "signature": s.signature, "template": s.template, "traces": traces })
        })
        .collect();
    Ok(Json(json!({
        "deploy_id": row.deploy_id,
        "service": row.service,
        "environment": row.environment,
        "signatures": signatures,
        "truncated": truncated,
    })))
}

#[cfg(test)]
mod tests {
    use super::fits;

    #[test]
    fn templates_fit_their_messages() {
        let t = "payment gateway timeout after <*> ms for order <*>";
        assert!(fits(
            t,
            "payment gateway timeout after 3000 ms for order 81723"
        ));
        assert!(!fits(t, "payment gateway timeout after 3000 ms for order"));
        assert!(!fits(
            t,
            "payment gateway refused after 3000 ms for order 1"
        ));
        assert!(fits(
            "cache miss for key user-<*>",
            "cache miss for key user-881"
        ));
        assert!(!fits(
            "cache miss for key user-<*>",
            "cache miss for key admin-881"
        ));
        assert!(fits("took <*>ms (<*>)", "took 31ms (slow)"));
    }
}
