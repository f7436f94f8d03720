//! What happens when the engine reaches a verdict: it is stored (once per deploy), a
//! regression opens an incident with its alerts queued, and live clients are told.

use std::sync::atomic::Ordering;

use watchdog_core::explain::{explain, severity};
use watchdog_core::{DeployVerdict, VerdictKind};

use crate::state::AppState;
use crate::store::{NewIncident, StoreError};

/// The incident a regression verdict opens.
pub fn new_incident(v: &DeployVerdict, channels: Vec<String>) -> NewIncident {
    let sev = severity(v);
    let service = if v.service.is_empty() {
        "(all services)"
    } else {
        &v.service
    };
    let env = if v.environment.is_empty() {
        String::new()
    } else {
        format!(" in {}", v.environment)
    };
    NewIncident {
        title: format!("{service}{env}: regression after deploy {}", v.deploy_id),
        severity: sev.as_str().to_string(),
        severity_rank: sev as i64,
        headline: explain(v).headline,
        channels,
    }
}

/// Records one verdict. A verdict the store already has (re-fed after a restart) changes
/// nothing and announces nothing.
///
/// # Errors
/// Store failures (the caller retries).
pub async fn record(state: &AppState, v: &DeployVerdict) -> Result<(), StoreError> {
    let incident = (v.verdict == VerdictKind::Regression)
        .then(|| new_incident(v, crate::outbox::channel_names(&state.alerts)));
    let Some(rec) = state
        .store
        .record_verdict(v, incident.as_ref(), AppState::now_ms())
        .await?
    else {
        return Ok(());
    };
    state.metrics.verdict(v.verdict);
    crate::feedback::github::on_verdict(state, &rec);
    tracing::info!(deploy_id = %v.deploy_id, service = %v.service, environment = %v.environment, verdict = v.verdict.as_str(), "verdict");
    state.publish(
        "verdict",
        serde_json::to_value(&rec.deploy).unwrap_or_default(),
    );
    if let Some(inc) = rec.incident {
        state.metrics.incidents.fetch_add(1, Ordering::Relaxed);
        state.publish("incident", serde_json::to_value(&inc).unwrap_or_default());
        state.outbox_wake.notify_one();
    }
    Ok(())
}
