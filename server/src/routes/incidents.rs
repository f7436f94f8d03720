//! Incidents: list, detail, status, notes, explanation, triage, export and chart series.

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use watchdog_core::explain::{explain, severity, triage};
use watchdog_core::export::{self, AuditDoc, IncidentDoc, NoteDoc};
use watchdog_core::{Sample, Timestamp};

use crate::error::AppError;
use crate::routes::deploys::page;
use crate::state::AppState;
use crate::store::{
    IncidentQuery, IncidentRecord, IncidentSort, IncidentStatus, StoredExplanation,
};

/// Longest note accepted, in bytes.
const MAX_NOTE_BYTES: usize = 16 * 1024;
/// Most points per metric in a series response.
const MAX_SERIES_SAMPLES: i64 = 20_000;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/incidents", get(list))
        .route("/incidents/{id}", get(detail).patch(update))
        .route("/incidents/{id}/notes", post(add_note))
        .route("/incidents/{id}/explanation", get(explanation))
        .route("/incidents/{id}/explanation/refresh", post(refresh))
        .route("/incidents/{id}/triage", get(triage_report))
        .route("/incidents/{id}/export", get(export_incident))
        .route("/incidents/{id}/series", get(series))
}

#[derive(Debug, Deserialize)]
struct ListParams {
    status: Option<String>,
    severity: Option<String>,
    service: Option<String>,
    environment: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

const STATUSES: &str = "open, acknowledged, resolved or false_positive";

async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(p) = params?;
    let status = match p.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(IncidentStatus::parse(s).ok_or_else(|| {
            AppError::BadRequest(format!("status must be {STATUSES}, got {s:?}"))
        })?),
    };
    if let Some(s) = p.severity.as_deref().filter(|s| !s.is_empty()) {
        if !["critical", "high", "medium", "low"].contains(&s) {
            return Err(AppError::BadRequest(format!(
                "severity must be critical, high, medium or low, got {s:?}"
            )));
        }
    }
    let sort = match p.sort.as_deref().filter(|s| !s.is_empty()) {
        None => IncidentSort::default(),
        Some(s) => IncidentSort::parse(s).ok_or_else(|| AppError::BadRequest(format!(
            "sort must be opened_at, -opened_at, severity, -severity, updated_at or -updated_at, got {s:?}"
        )))?,
    };
    let (limit, offset) = page(p.limit, p.offset)?;
    let q = IncidentQuery {
        status,
        severity: p.severity.filter(|s| !s.is_empty()),
        service: p.service.filter(|s| !s.is_empty()),
        environment: p.environment.filter(|s| !s.is_empty()),
        text: p.q,
        sort,
        limit,
        offset,
    };
    let (items, total) = state.store.list_incidents(&q).await?;
    Ok(Json(json!({ "items": items, "total": total })))
}

async fn load(state: &AppState, id: i64) -> Result<IncidentRecord, AppError> {
    state
        .store
        .get_incident(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no incident with id {id}")))
}

fn incident_json(rec: &IncidentRecord, explanation: Option<&StoredExplanation>) -> Value {
    let mut v = serde_json::to_value(&rec.summary).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("verdict".into(), json!(rec.verdict));
        obj.insert("notes".into(), json!(rec.notes));
        obj.insert("audit".into(), json!(rec.audit));
        obj.insert("explanation".into(), json!(explanation));
        obj.insert("triage".into(), json!(triage(&rec.verdict)));
    }
    v
}

async fn detail(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, AppError> {
    let rec = load(&state, id).await?;
    let exp = state.store.get_explanation(id).await?;
    Ok(Json(incident_json(&rec, exp.as_ref())))
}

#[derive(Debug, Deserialize)]
struct StatusChange {
    status: String,
    actor: Option<String>,
}

/// The actor an audit entry records for a change made with the API token. The token is
/// the only credential, shared by whoever holds it, so a name the client sends is kept
/// but marked as its claim: `alice (as claimed, API token)`; without one, `API token`.
fn audit_actor(actor: Option<String>) -> String {
    let name = actor_name(actor);
    if name == "api" {
        "API token".into()
    } else {
        format!("{name} (as claimed, API token)")
    }
}

fn actor_name(actor: Option<String>) -> String {
    actor
        .map(|a| a.trim().chars().take(100).collect::<String>())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "api".into())
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<StatusChange>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(change) = body?;
    let status = IncidentStatus::parse(&change.status).ok_or_else(|| {
        AppError::BadRequest(format!(
            "status must be {STATUSES}, got {:?}",
            change.status
        ))
    })?;
    let actor = audit_actor(change.actor);
    let channels = crate::outbox::channel_names(&state.alerts);
    let summary = state
        .store
        .set_status(id, status, &actor, &channels, AppState::now_ms())
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no incident with id {id}")))?;
    state.publish("incident", json!(summary));
    state.outbox_wake.notify_one();
    let rec = load(&state, id).await?;
    let exp = state.store.get_explanation(id).await?;
    Ok(Json(incident_json(&rec, exp.as_ref())))
}

#[derive(Debug, Deserialize)]
struct NewNote {
    text: String,
    author: Option<String>,
}

async fn add_note(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<NewNote>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(note) = body?;
    let text = note.text.trim();
    if text.is_empty() {
        return Err(AppError::BadRequest("note text is empty".into()));
    }
    if text.len() > MAX_NOTE_BYTES {
        return Err(AppError::BadRequest(format!(
            "note text is {} bytes; the limit is {MAX_NOTE_BYTES}",
            text.len()
        )));
    }
    let author = actor_name(note.author);
    let saved = state
        .store
        .add_note(id, &author, text, AppState::now_ms())
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no incident with id {id}")))?;
    state.publish("note", json!(saved));
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

async fn generate(
    state: &AppState,
    rec: &IncidentRecord,
    actor: &str,
) -> Result<StoredExplanation, AppError> {
    let r = state.explainer.explain(&rec.verdict).await;
    let exp = StoredExplanation {
        text: r.text,
        source: match r.source {
            crate::explainer::ExplanationSource::Local => "local".into(),
            crate::explainer::ExplanationSource::Llm => "llm".into(),
        },
        model: r.model,
        generated_at: Timestamp(AppState::now_ms()),
        fallback_reason: r.fallback_reason,
    };
    state
        .store
        .put_explanation(rec.summary.id, &exp, actor)
        .await?;
    Ok(exp)
}

async fn explanation(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<StoredExplanation>, AppError> {
    if let Some(cached) = state.store.get_explanation(id).await? {
        return Ok(Json(cached));
    }
    // A read writes nothing and calls no model (reads may need no token): the local text,
    // built from the evidence, until a POST to `…/explanation/refresh` stores one.
    let rec = load(&state, id).await?;
    Ok(Json(StoredExplanation {
        text: explain(&rec.verdict).to_text(),
        source: "local".into(),
        model: None,
        generated_at: Timestamp(AppState::now_ms()),
        fallback_reason: None,
    }))
}

#[derive(Debug, Deserialize, Default)]
struct RefreshBody {
    actor: Option<String>,
}

async fn refresh(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Option<Json<RefreshBody>>,
) -> Result<Json<StoredExplanation>, AppError> {
    let rec = load(&state, id).await?;
    let actor = audit_actor(body.and_then(|b| b.0.actor));
    Ok(Json(generate(&state, &rec, &actor).await?))
}

async fn triage_report(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, AppError> {
    let rec = load(&state, id).await?;
    Ok(Json(json!(triage(&rec.verdict))))
}

#[derive(Debug, Deserialize)]
struct ExportParams {
    format: Option<String>,
}

async fn export_incident(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(p) = params?;
    let format = p.format.unwrap_or_else(|| "markdown".into());
    if format != "markdown" && format != "json" {
        return Err(AppError::BadRequest(format!(
            "format must be markdown or json, got {format:?}"
        )));
    }
    let rec = load(&state, id).await?;
    let explanation = explain(&rec.verdict);
    let report = triage(&rec.verdict);
    let notes: Vec<NoteDoc> = rec
        .notes
        .iter()
        .map(|n| NoteDoc {
            author: n.author.clone(),
            at: n.created_at,
            text: n.text.clone(),
        })
        .collect();
    let audit: Vec<AuditDoc> = rec
        .audit
        .iter()
        .map(|a| AuditDoc {
            at: a.at,
            actor: a.actor.clone(),
            action: a.action.clone(),
            detail: a.detail.clone(),
        })
        .collect();
    let id_text = rec.summary.id.to_string();
    let doc = IncidentDoc {
        id: &id_text,
        title: &rec.summary.title,
        status: rec.summary.status.as_str(),
        severity: severity(&rec.verdict),
        opened_at: rec.summary.opened_at,
        verdict: &rec.verdict,
        explanation: &explanation,
        triage: &report,
        notes: &notes,
        audit: &audit,
    };
    let disposition = format!(
        "attachment; filename=\"incident-{id}.{}\"",
        if format == "json" { "json" } else { "md" }
    );
    Ok(if format == "json" {
        (
            [(header::CONTENT_DISPOSITION, disposition)],
            Json(export::json(&doc)),
        )
            .into_response()
    } else {
        (
            [
                (
                    header::CONTENT_TYPE,
                    "text/markdown; charset=utf-8".to_string(),
                ),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            export::markdown(&doc),
        )
            .into_response()
    })
}

async fn series(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, AppError> {
    let rec = load(&state, id).await?;
    let v = &rec.verdict;
    let detector = &state.config.detector;
    let from = v.window.baseline_from.unwrap_or(
        v.deployed_at
            .add_secs(-(detector.baseline_window_secs as f64)),
    );
    let to = v.window.watched_until.max(
        v.deployed_at
            .add_secs(detector.monitoring_window_secs as f64),
    );
    let rows = state
        .store
        .series(
            &v.service,
            &v.environment,
            from.millis(),
            to.millis(),
            MAX_SERIES_SAMPLES,
        )
        .await?;
    let mut points: BTreeMap<String, Vec<(Timestamp, f64)>> = BTreeMap::new();
    // With two versions side by side, the charts follow the new version after the deploy;
    // the stable one is beside it in the verdict's canary comparison.
    let stable_after = |s: &Sample| {
        v.canary.as_ref().is_some_and(|c| {
            s.timestamp >= v.deployed_at && s.version.as_deref() == Some(c.stable_version.as_str())
        })
    };
    for r in &rows {
        if let Ok(s) = Sample::from_json_line(&r.body) {
            if stable_after(&s) {
                continue;
            }
            for (name, value) in s.metrics {
                points.entry(name).or_default().push((s.timestamp, value));
            }
        }
    }
    let metrics: Vec<Value> = points
        .into_iter()
        .map(|(metric, pts)| {
            let ev = v.evidence.iter().find(|e| e.metric == metric);
            json!({
                "metric": metric,
                "points": pts.iter().map(|(t, x)| json!([t, x])).collect::<Vec<_>>(),
                "baseline_level": ev.map(|e| e.baseline.median),
                "baseline_spread": ev.map(|e| e.baseline.spread),
                "deployed_at": v.deployed_at,
                "detected_at": ev.and_then(|e| e.detected_at),
                "change_started_at": ev.and_then(|e| e.change_started_at),
            })
        })
        .collect();
    Ok(Json(json!({ "metrics": metrics })))
}
