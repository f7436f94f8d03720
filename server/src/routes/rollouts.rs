//! Gates for progressive delivery: the verdict of a rollout's new version, in the shapes
//! Argo Rollouts and Flagger read.
//!
//! - `POST /api/v1/rollouts/analysis` (and `GET` with the same fields as query
//!   parameters): an Argo Rollouts `web` metric provider. The body names the service,
//!   environment and the new version (`rollouts-pod-template-hash` or the image tag); the
//!   first call of a rollout registers that version as a deploy (the `GET` form never
//!   does). The answer is always 200 with `verdict` = `watching`, `regression`, `healthy`,
//!   `inconclusive` or `unknown`; the shipped `AnalysisTemplate` fails on `regression`,
//!   succeeds on `healthy` and leaves everything else inconclusive, so a rollout whose
//!   watch ends undecided pauses instead of passing. See `docs/rollouts.md`.
//! - `POST /api/v1/rollouts/flagger/rollout` and `.../confirm-promotion`: Flagger
//!   webhooks (payload `{"name","namespace","phase","metadata"}`). A `rollout` hook
//!   answers 2xx unless the verdict is a regression (409: Flagger halts and counts a
//!   failed check); a `confirm-promotion` hook answers 200 only on `healthy`, 409 on a
//!   regression and 425 while undecided or inconclusive, so promotion waits. Flagger
//!   cannot send headers: the API token goes in `metadata.token`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use watchdog_core::{Deploy, Timestamp};

use crate::error::AppError;
use crate::state::AppState;
use crate::store::{DeployQuery, DeployRow};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rollouts/analysis", get(analysis_get).post(analysis_post))
        .route("/rollouts/flagger/{hook}", post(flagger))
}

/// What a gate is asked about.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ask {
    service: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    /// The new version; `deploy_id` is accepted as a synonym.
    version: Option<String>,
    deploy_id: Option<String>,
}

impl Ask {
    fn resolve(self) -> Result<(String, String, String), AppError> {
        let service = self.service.unwrap_or_default().trim().to_string();
        if service.is_empty() {
            return Err(AppError::BadRequest(
                "service is missing: name the service being rolled out, e.g. \"service\": \"checkout\"".into(),
            ));
        }
        let version = self
            .version
            .or(self.deploy_id)
            .unwrap_or_default()
            .trim()
            .to_string();
        if version.is_empty() {
            return Err(AppError::BadRequest(
                "version is missing: pass the new version (the rollout's pod-template hash or image tag), e.g. \"version\": \"{{args.canary-hash}}\"".into(),
            ));
        }
        let environment = self.environment.unwrap_or_default().trim().to_string();
        Ok((service, environment, version))
    }
}

/// The gate's answer.
#[derive(Debug)]
struct Gate {
    verdict: &'static str,
    body: Value,
}

async fn latest_deploys(
    state: &AppState,
    service: &str,
    environment: &str,
) -> Result<Vec<DeployRow>, AppError> {
    let q = DeployQuery {
        service: Some(service.to_string()),
        environment: (!environment.is_empty()).then(|| environment.to_string()),
        verdict: None,
        limit: 200,
        offset: 0,
    };
    Ok(state.store.list_deploys(&q).await?.0)
}

fn gate_of(
    state: &AppState,
    row: Option<&DeployRow>,
    registered: bool,
    ask: (&str, &str, &str),
) -> Gate {
    let base = state.config.public_url.trim_end_matches('/');
    let (service, environment, version) = ask;
    let Some(row) = row else {
        return Gate {
            verdict: "unknown",
            body: json!({
                "verdict": "unknown",
                "decided": false,
                "service": service,
                "environment": environment,
                "deploy_id": version,
                "reason": format!("no deploy {version:?} of {service:?} is registered; POST this request (not GET) to register it, or announce it with watchdog notify"),
            }),
        };
    };
    let (verdict, reason, canary) = match &row.verdict {
        None => (
            "watching",
            "the deploy is being watched; no verdict yet".to_string(),
            Value::Null,
        ),
        Some(v) => (
            v.verdict.as_str(),
            v.reason.clone(),
            v.canary
                .as_ref()
                .map(|c| {
                    json!({
                        "outcome": c.outcome,
                        "canary_version": c.canary_version,
                        "stable_version": c.stable_version,
                        "summary": c.summary,
                    })
                })
                .unwrap_or(Value::Null),
        ),
    };
    Gate {
        verdict,
        body: json!({
            "verdict": verdict,
            "decided": row.verdict.is_some(),
            "service": row.service,
            "environment": row.environment,
            "deploy_id": row.deploy_id,
            "deployed_at": row.deployed_at,
            "registered": registered,
            "reason": reason,
            "canary": canary,
            "deploy_url": format!("{base}/deploys/{}", row.id),
            "incident_url": row.incident_id.map(|i| format!("{base}/incidents/{i}")),
        }),
    }
}

/// Finds the deploy of `version`, registering it at the server's clock when asked and
/// absent.
async fn gate(
    state: &AppState,
    (service, environment, version): (String, String, String),
    register: Option<&str>,
) -> Result<Gate, AppError> {
    let rows = latest_deploys(state, &service, &environment).await?;
    let found = rows.iter().find(|r| {
        r.deploy_id == version && (environment.is_empty() || r.environment == environment)
    });
    let ask = (service.as_str(), environment.as_str(), version.as_str());
    if found.is_some() || register.is_none() {
        return Ok(gate_of(state, found, false, ask));
    }
    let deploy = Deploy {
        timestamp: Timestamp(AppState::now_ms()),
        deploy_id: version.clone(),
        service: service.clone(),
        environment: environment.clone(),
    };
    crate::ingest::accept::deploys(state, vec![deploy], register.unwrap_or("rollouts")).await?;
    let rows = latest_deploys(state, &service, &environment).await?;
    let found = rows.iter().find(|r| r.deploy_id == version);
    Ok(gate_of(state, found, true, ask))
}

async fn analysis_get(
    State(state): State<AppState>,
    ask: Result<Query<Ask>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(ask) = ask?;
    Ok(Json(gate(&state, ask.resolve()?, None).await?.body))
}

async fn analysis_post(
    State(state): State<AppState>,
    ask: Result<Json<Ask>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(ask) = ask?;
    Ok(Json(
        gate(&state, ask.resolve()?, Some("argo-rollouts"))
            .await?
            .body,
    ))
}

/// Flagger's webhook payload (<https://docs.flagger.app/usage/webhooks>).
#[derive(Debug, Deserialize)]
struct FlaggerHook {
    name: String,
    namespace: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    metadata: Map<String, Value>,
}

fn meta<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

async fn flagger(
    State(state): State<AppState>,
    Path(hook): Path<String>,
    body: Result<Json<FlaggerHook>, JsonRejection>,
) -> Result<Response, AppError> {
    if hook != "rollout" && hook != "confirm-promotion" {
        return Err(AppError::NotFound(format!(
            "no Flagger hook {hook:?}: use /api/v1/rollouts/flagger/rollout or /api/v1/rollouts/flagger/confirm-promotion"
        )));
    }
    let Json(h) = body?;
    // The authorization middleware lets these through: Flagger cannot send headers, so
    // the token is in the payload's metadata.
    let cfg = &state.config;
    match (&cfg.api_token, meta(&h.metadata, "token")) {
        (Some(expected), Some(t)) if expected.matches(t.as_bytes()) => {}
        (Some(_), Some(_)) => return Err(AppError::Unauthorized("metadata.token is wrong".into())),
        (Some(_), None) => {
            return Err(AppError::Unauthorized(
                "metadata.token is missing: Flagger webhooks carry the API token in metadata.token".into(),
            ))
        }
        (None, _) if cfg.allow_unauthenticated => {}
        (None, _) => {
            return Err(AppError::Unauthorized(
                "this server is read-only: it was started without an API token (set WATCHDOG_API_TOKEN where it runs)".into(),
            ))
        }
    }
    if h.name.trim().is_empty() {
        return Err(AppError::BadRequest(
            "name is empty: Flagger sends the canary's name".into(),
        ));
    }
    let service = meta(&h.metadata, "service")
        .unwrap_or(h.name.trim())
        .to_string();
    let environment = meta(&h.metadata, "environment")
        .unwrap_or(h.namespace.trim())
        .to_string();
    let version = match meta(&h.metadata, "deploy_id").or(meta(&h.metadata, "version")) {
        Some(v) => v.to_string(),
        None => {
            // Without an id, the rollout is the latest deploy of the service within a
            // monitoring window (announced by CI, or registered by an earlier call), or
            // a new one named after the canary and the time.
            let window_ms = cfg.detector.monitoring_window_secs as i64 * 1000;
            let now = AppState::now_ms();
            let rows = latest_deploys(&state, &service, &environment).await?;
            match rows
                .iter()
                .filter(|r| r.environment == environment)
                .find(|r| r.deployed_at.millis() >= now - 2 * window_ms)
            {
                Some(r) => r.deploy_id.clone(),
                None => format!("{}-{}", service, Timestamp(now).to_rfc3339()),
            }
        }
    };
    let g = gate(&state, (service, environment, version), Some("flagger")).await?;
    let status = match (hook.as_str(), g.verdict) {
        (_, "regression") => StatusCode::CONFLICT,
        ("rollout", _) => StatusCode::OK,
        (_, "healthy") => StatusCode::OK,
        _ => StatusCode::TOO_EARLY,
    };
    let mut body = g.body;
    body["hook"] = json!(hook);
    body["phase"] = json!(h.phase);
    if !status.is_success() {
        // A halt is also an error answer like every other (`error`, `code`), with the
        // gate's fields beside them; Flagger logs the body.
        body["error"] = json!(format!(
            "{}: {}",
            g.verdict,
            body["reason"].as_str().unwrap_or("")
        ));
        body["code"] = json!(crate::error::code(status));
    }
    Ok((status, Json(body)).into_response())
}
