//! Deploy webhooks: GitHub `deployment_status`, GitLab deployment hooks and Argo CD
//! Notifications. Each turns a successful deployment into a deploy record.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use watchdog_core::Deploy;

use crate::error::AppError;
use crate::ingest::hooks::{
    argocd_deploy, github_deploy, gitlab_deploy, verify_github_signature, HookOutcome,
};
use crate::state::AppState;

/// Routes of this module.
pub fn router(_state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/hooks/github", post(github))
        .route("/hooks/gitlab", post(gitlab))
        .route("/hooks/argocd", post(argocd))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn json_body(body: &[u8]) -> Result<Value, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("webhook body is not JSON: {e}")))
}

async fn finish(
    state: &AppState,
    outcome: HookOutcome,
    source: &str,
) -> Result<Json<Value>, AppError> {
    match outcome {
        HookOutcome::Ignored(why) => Ok(Json(json!({ "accepted": 0, "ignored": why }))),
        HookOutcome::Deploy(d) => {
            let record = deploy_json(&d);
            let ids = crate::ingest::accept::deploys(state, vec![d], source).await?;
            Ok(Json(json!({
                "accepted": 1,
                "id": ids[0],
                "duplicate": ids[0].is_none(),
                "deploy": record,
            })))
        }
    }
}

fn deploy_json(d: &Deploy) -> Value {
    json!({
        "deploy_id": d.deploy_id,
        "service": d.service,
        "environment": d.environment,
        "timestamp": d.timestamp,
    })
}

async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let body = body?;
    let secret = state.config.github_secret.as_ref().ok_or_else(|| {
        AppError::Unauthorized("GitHub webhooks are disabled: set WATCHDOG_GITHUB_SECRET".into())
    })?;
    let signature = header(&headers, "x-hub-signature-256")
        .ok_or_else(|| AppError::Unauthorized("missing X-Hub-Signature-256 header".into()))?;
    if !verify_github_signature(secret.expose(), &body, signature) {
        return Err(AppError::Unauthorized(
            "X-Hub-Signature-256 does not match the body and the configured secret".into(),
        ));
    }
    let event = header(&headers, "x-github-event").unwrap_or("");
    let mut source = "github".to_string();
    let outcome = match event {
        "ping" => HookOutcome::Ignored("ping".into()),
        "deployment_status" => {
            let v = json_body(&body)?;
            // Remembered with the deploy, so its verdict can be posted back as a
            // deployment status (see `feedback::github`).
            if let (Some(repo), Some(id)) = (
                v.pointer("/repository/full_name").and_then(Value::as_str),
                v.pointer("/deployment/id").and_then(Value::as_u64),
            ) {
                source = crate::feedback::github::source_for(repo, id);
            }
            github_deploy(&v, AppState::now_ms()).map_err(AppError::BadRequest)?
        }
        other => HookOutcome::Ignored(format!("event {other:?} is not deployment_status")),
    };
    finish(&state, outcome, &source).await
}

async fn gitlab(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let body = body?;
    let expected = state.config.gitlab_token.as_ref().ok_or_else(|| {
        AppError::Unauthorized("GitLab webhooks are disabled: set WATCHDOG_GITLAB_TOKEN".into())
    })?;
    let token = header(&headers, "x-gitlab-token")
        .ok_or_else(|| AppError::Unauthorized("missing X-Gitlab-Token header".into()))?;
    if !expected.matches(token.as_bytes()) {
        return Err(AppError::Unauthorized("X-Gitlab-Token is wrong".into()));
    }
    let outcome =
        gitlab_deploy(&json_body(&body)?, AppState::now_ms()).map_err(AppError::BadRequest)?;
    finish(&state, outcome, "gitlab").await
}

async fn argocd(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let body = body?;
    let outcome =
        argocd_deploy(&json_body(&body)?, AppState::now_ms()).map_err(AppError::BadRequest)?;
    finish(&state, outcome, "argocd").await
}
