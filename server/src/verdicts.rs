//! What happens when the engine reaches a verdict: it is stored (once per deploy), a
//! regression opens an incident with its alerts queued, and live clients are told.

use std::sync::atomic::Ordering;

use watchdog_core::explain::{explain, severity};
use watchdog_core::{DeployVerdict, VerdictKind};

use crate::runner::Output;
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

/// Records verdicts as they come, until the engine stops.
pub async fn task(state: AppState, mut rx: tokio::sync::mpsc::UnboundedReceiver<Output>) {
    while let Some(out) = rx.recv().await {
        match out {
            Output::Verdicts(vs) => {
                for v in vs {
                    // A failed write is retried: a verdict must not be lost.
                    let mut delay_ms = 100;
                    while let Err(e) = record(&state, &v).await {
                        tracing::error!(error = %e, deploy_id = %v.deploy_id, "recording a verdict failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                        delay_ms = (delay_ms * 2).min(5000);
                    }
                }
            }
            Output::Templates(templates) => {
                // Retried like verdicts: a lost template would get a new id after a
                // restart.
                let mut delay_ms = 100;
                while let Err(e) = state
                    .store
                    .upsert_templates(&templates, AppState::now_ms())
                    .await
                {
                    tracing::error!(error = %e, count = templates.len(), "storing log templates failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                    delay_ms = (delay_ms * 2).min(5000);
                }
            }
            Output::LateAfterVerdict(late) => {
                for l in late {
                    // A warning, not a verdict: one failed write is logged, not retried
                    // for ever (the count stays in /metrics either way).
                    match state
                        .store
                        .add_late_after_verdict(&l.deploy, l.samples)
                        .await
                    {
                        Ok(true) => {
                            tracing::warn!(deploy_id = %l.deploy.deploy_id, service = %l.deploy.service, environment = %l.deploy.environment, samples = l.samples, "samples arrived after this deploy's verdict; noted on it")
                        }
                        Ok(false) => {}
                        Err(e) => {
                            tracing::error!(error = %e, deploy_id = %l.deploy.deploy_id, "noting late samples on a verdict failed")
                        }
                    }
                }
            }
            Output::Barrier(reply) => {
                let _ = reply.send(());
            }
        }
    }
}
