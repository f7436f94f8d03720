//! Typed client of the server's HTTP API (docs/api.md). Every call returns an [`ApiError`]
//! that the page shows; nothing is swallowed here.

use gloo_net::http::{Request, RequestBuilder, Response};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use watchdog_core::explain::TriageReport;
use watchdog_core::DeployVerdict;

use crate::state;

/// Base of every API path; the app is served by `watchdog serve` (or proxied by `trunk serve`).
pub const BASE: &str = "/api/v1";

/// What went wrong talking to the server, in words a user can act on.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The request never got an answer (server down, network, CORS).
    #[error("could not reach the server: {0}")]
    Network(String),
    /// The server answered with an error status and (usually) `{"error": …}`.
    #[error("the server answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The server's message, or the raw body.
        message: String,
    },
    /// The answer was not the JSON the client expects.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

impl ApiError {
    /// Whether the error is about authentication, so the page can point at the token field.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            ApiError::Status {
                status: 401 | 403,
                ..
            }
        )
    }
}

/// A page of results.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// How many match in all.
    pub total: u64,
}

/// A deploy as the server lists it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct DeployRow {
    pub id: i64,
    pub deploy_id: String,
    pub service: String,
    pub environment: String,
    pub deployed_at: String,
    pub status: String,
    pub verdict: Option<DeployVerdict>,
    pub incident_id: Option<i64>,
}

/// An incident in a list.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct IncidentSummary {
    pub id: i64,
    pub title: String,
    pub status: String,
    pub severity: String,
    pub service: String,
    pub environment: String,
    pub deploy_id: String,
    pub opened_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub headline: String,
}

/// A note on an incident.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Note {
    pub id: i64,
    pub author: String,
    pub text: String,
    pub created_at: String,
}

/// One line of an incident's audit trail.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    #[serde(default)]
    pub detail: String,
}

/// An incident with everything the detail page shows.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Incident {
    #[serde(flatten)]
    pub summary: IncidentSummary,
    pub verdict: DeployVerdict,
    #[serde(default)]
    pub notes: Vec<Note>,
    #[serde(default)]
    pub audit: Vec<AuditEntry>,
    pub triage: Option<TriageReport>,
}

/// The cached explanation of an incident.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ExplanationText {
    pub text: String,
    pub source: String,
    pub model: Option<String>,
    pub generated_at: Option<String>,
    pub fallback_reason: Option<String>,
}

/// One metric's raw samples around the deploy.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SeriesMetric {
    pub metric: String,
    pub points: Vec<(String, f64)>,
    pub baseline_level: Option<f64>,
    pub baseline_spread: Option<f64>,
    pub deployed_at: Option<String>,
    pub detected_at: Option<String>,
    pub change_started_at: Option<String>,
}

/// The evidence series of an incident.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Series {
    pub metrics: Vec<SeriesMetric>,
}

/// Filters and sort of the incident list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentQuery {
    pub q: String,
    pub status: String,
    pub severity: String,
    pub service: String,
    pub environment: String,
    pub sort: String,
}

impl IncidentQuery {
    /// Reads filters from a query string (with or without `?`).
    pub fn from_query(query: &str) -> IncidentQuery {
        let mut out = IncidentQuery::default();
        for (key, value) in state::query_pairs(query) {
            match key.as_str() {
                "q" => out.q = value,
                "status" => out.status = value,
                "severity" => out.severity = value,
                "service" => out.service = value,
                "environment" => out.environment = value,
                "sort" => out.sort = value,
                _ => {}
            }
        }
        out
    }

    /// The filters as a query string (without `?`), empty ones and the default sort left out.
    pub fn to_query(&self) -> String {
        self.pairs()
            .into_iter()
            .filter(|(k, v)| !(*k == "sort" && v == "-opened_at"))
            .map(|(k, v)| format!("{k}={}", state::encode(&v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("q", &self.q),
            ("status", &self.status),
            ("severity", &self.severity),
            ("service", &self.service),
            ("environment", &self.environment),
            ("sort", &self.sort),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k, v.trim().to_string()))
        .collect()
    }
}

#[derive(Serialize)]
struct StatusChange<'a> {
    status: &'a str,
    actor: &'a str,
}

#[derive(Serialize)]
struct NewNote<'a> {
    text: &'a str,
    author: &'a str,
}

fn with_auth(req: RequestBuilder) -> RequestBuilder {
    match state::load_token() {
        Some(token) if !token.is_empty() => req.header("Authorization", &format!("Bearer {token}")),
        _ => req,
    }
}

async fn check(resp: Response) -> Result<Response, ApiError> {
    if resp.ok() {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| {
            if body.trim().is_empty() {
                resp.status_text()
            } else {
                body.chars().take(300).collect()
            }
        });
    Err(ApiError::Status { status, message })
}

async fn send(req: RequestBuilder) -> Result<Response, ApiError> {
    let resp = with_auth(req)
        .send()
        .await
        .map_err(|e| ApiError::Network(e.to_string()))?;
    check(resp).await
}

async fn send_json<T: DeserializeOwned>(req: RequestBuilder) -> Result<T, ApiError> {
    let resp = send(req).await?;
    resp.json::<T>()
        .await
        .map_err(|e| ApiError::Decode(e.to_string()))
}

async fn send_body<T: DeserializeOwned, B: Serialize>(
    req: RequestBuilder,
    body: &B,
) -> Result<T, ApiError> {
    let req = with_auth(req)
        .json(body)
        .map_err(|e| ApiError::Decode(e.to_string()))?;
    let resp = req
        .send()
        .await
        .map_err(|e| ApiError::Network(e.to_string()))?;
    check(resp)
        .await?
        .json::<T>()
        .await
        .map_err(|e| ApiError::Decode(e.to_string()))
}

/// `GET /incidents` with filters.
pub async fn list_incidents(query: &IncidentQuery) -> Result<Page<IncidentSummary>, ApiError> {
    let mut req = Request::get(&format!("{BASE}/incidents"));
    let pairs = query.pairs();
    if !pairs.is_empty() {
        req = req.query(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    }
    send_json(req.query([("limit", "200")])).await
}

/// `GET /incidents/{id}`.
pub async fn incident(id: i64) -> Result<Incident, ApiError> {
    send_json(Request::get(&format!("{BASE}/incidents/{id}"))).await
}

/// `GET /incidents/{id}/series`.
pub async fn series(id: i64) -> Result<Series, ApiError> {
    send_json(Request::get(&format!("{BASE}/incidents/{id}/series"))).await
}

/// `GET /incidents/{id}/explanation`.
pub async fn explanation(id: i64) -> Result<ExplanationText, ApiError> {
    send_json(Request::get(&format!("{BASE}/incidents/{id}/explanation"))).await
}

/// `POST /incidents/{id}/explanation/refresh`.
pub async fn refresh_explanation(id: i64) -> Result<ExplanationText, ApiError> {
    send_json(Request::post(&format!(
        "{BASE}/incidents/{id}/explanation/refresh"
    )))
    .await
}

/// `PATCH /incidents/{id}` with a new status.
pub async fn set_status(id: i64, status: &str, actor: &str) -> Result<Incident, ApiError> {
    send_body(
        Request::patch(&format!("{BASE}/incidents/{id}")),
        &StatusChange { status, actor },
    )
    .await
}

/// `POST /incidents/{id}/notes`.
pub async fn add_note(id: i64, text: &str, author: &str) -> Result<Note, ApiError> {
    send_body(
        Request::post(&format!("{BASE}/incidents/{id}/notes")),
        &NewNote { text, author },
    )
    .await
}

/// `GET /incidents/{id}/export?format=…` as text, for a download.
pub async fn export(id: i64, format: &str) -> Result<String, ApiError> {
    let resp =
        send(Request::get(&format!("{BASE}/incidents/{id}/export")).query([("format", format)]))
            .await?;
    resp.text()
        .await
        .map_err(|e| ApiError::Decode(e.to_string()))
}

/// `GET /deploys/{id}`.
pub async fn deploy(id: i64) -> Result<DeployRow, ApiError> {
    send_json(Request::get(&format!("{BASE}/deploys/{id}"))).await
}

/// `GET /deploys`.
pub async fn list_deploys(verdict: &str, service: &str) -> Result<Page<DeployRow>, ApiError> {
    let mut req = Request::get(&format!("{BASE}/deploys")).query([("limit", "200")]);
    if !verdict.is_empty() {
        req = req.query([("verdict", verdict)]);
    }
    if !service.trim().is_empty() {
        req = req.query([("service", service.trim())]);
    }
    send_json(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn incident_filters_round_trip_through_the_url() {
        let q = IncidentQuery {
            q: "p95 latency".into(),
            status: "open".into(),
            sort: "-opened_at".into(),
            ..IncidentQuery::default()
        };
        let text = q.to_query();
        assert_eq!(text, "q=p95%20latency&status=open");
        let back = IncidentQuery::from_query(&format!("?{text}"));
        assert_eq!(back.q, "p95 latency");
        assert_eq!(back.status, "open");
        assert_eq!(back.sort, "");
    }
}
