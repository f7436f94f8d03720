//! The alert outbox worker: delivers each pending outbox row with
//! [`crate::alerts::deliver`], retrying with exponential backoff, and marks it delivered
//! once. Rows are written in the same transaction as the incident change that causes
//! them, so an alert is never lost; delivery is at-least-once, and every delivery
//! carries its outbox id (`X-WatchDog-Delivery`; PagerDuty's dedup key is the incident,
//! prefixed with the installation's id so two installations never share one)
//! so that a receiver can drop the rare repeat after a crash between sending and marking.

use std::time::Duration;

use tokio::sync::watch;

use crate::alerts::{AlertEvent, AlertKind, Channel};
use crate::state::AppState;
use crate::store::{IncidentStatus, OutboxItem};

/// Longest wait between two attempts of one alert.
const MAX_BACKOFF_SECS: u64 = 600;
/// How often the worker looks at the outbox when nothing wakes it.
const POLL: Duration = Duration::from_secs(5);

/// Backoff before attempt `attempts + 1`: 1 s, 2 s, 4 s, … capped at 10 minutes.
pub fn backoff_secs(attempts: i64) -> u64 {
    1u64.checked_shl(attempts.clamp(0, 20) as u32)
        .unwrap_or(MAX_BACKOFF_SECS)
        .min(MAX_BACKOFF_SECS)
}

/// Delivers alerts until `shutdown` turns true; finishes the delivery in progress first.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = AppState::now_ms();
        let due = match state.store.due_alerts(now, 32).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "reading the alert outbox failed");
                Vec::new()
            }
        };
        for item in &due {
            if *shutdown.borrow() {
                return;
            }
            attempt(&state, item).await;
        }
        if !due.is_empty() {
            continue;
        }
        let wait = match state.store.next_alert_due_ms().await {
            Ok(Some(next)) => {
                Duration::from_millis((next - AppState::now_ms()).clamp(0, 5000) as u64)
            }
            _ => POLL,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = state.outbox_wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn attempt(state: &AppState, item: &OutboxItem) {
    let store = &state.store;
    let channel = state.alerts.iter().find(|c| c.name() == item.channel);
    let result = match channel {
        None => Err((
            format!("channel {:?} is no longer configured", item.channel),
            None,
        )),
        Some(channel) => match event_for(state, item).await {
            Ok(Some(ev)) => crate::alerts::deliver(&state.http, channel, &ev)
                .await
                .map_err(|e| {
                    let retry = e
                        .is_retryable()
                        .then(|| e.retry_after_secs.unwrap_or(backoff_secs(item.attempts)));
                    (e.to_string(), retry)
                }),
            Ok(None) => Err((format!("incident {} is gone", item.incident_id), None)),
            Err(e) => Err((e, Some(backoff_secs(item.attempts)))),
        },
    };
    let now = AppState::now_ms();
    let outcome = match result {
        Ok(()) => store.mark_alert_delivered(item.id, now).await.map(|_| 0),
        Err((error, retry)) => {
            let next = retry.map(|s| now + (s.min(MAX_BACKOFF_SECS) * 1000) as i64);
            if next.is_some() {
                tracing::warn!(alert = item.id, channel = %item.channel, %error, "alert delivery failed; will retry");
            } else {
                tracing::error!(alert = item.id, channel = %item.channel, %error, "alert delivery failed for good");
            }
            store
                .mark_alert_failed(item.id, &error, next)
                .await
                .map(|_| if next.is_some() { 1 } else { 2 })
        }
    };
    match outcome {
        Ok(i) => {
            state.metrics.alerts[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Err(e) => tracing::error!(error = %e, alert = item.id, "recording an alert attempt failed"),
    }
}

/// The alert of an outbox row, from the incident as it is now.
async fn event_for(state: &AppState, item: &OutboxItem) -> Result<Option<AlertEvent>, String> {
    let Some(inc) = state
        .store
        .get_incident(item.incident_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    // The row says what changed; the incident may have changed again since (a later row
    // announces that), so the status sent is the row's, not the incident's current one.
    let s = &inc.summary;
    let (kind, status) = match item.kind.as_str() {
        "opened" => (AlertKind::Opened, IncidentStatus::Open.as_str()),
        "resolved" => (AlertKind::Resolved, "resolved"),
        other => (AlertKind::Updated, other),
    };
    Ok(Some(AlertEvent {
        kind,
        incident_id: s.id.to_string(),
        title: s.title.clone(),
        severity: watchdog_core::explain::severity(&inc.verdict),
        status: status.to_string(),
        service: s.service.clone(),
        environment: s.environment.clone(),
        deploy_id: s.deploy_id.clone(),
        opened_at: s.opened_at,
        resolved_at: (kind == AlertKind::Resolved).then_some(s.updated_at),
        explanation: watchdog_core::explain::explain(&inc.verdict),
        verdict: inc.verdict,
        link: format!(
            "{}/incidents/{}",
            state.config.public_url.trim_end_matches('/'),
            s.id
        ),
        delivery_id: Some(item.id.to_string()),
        dedup_key: Some(format!("watchdog-{}-{}", state.installation, s.id)),
    }))
}

/// The names of the configured channels, as stored in outbox rows.
pub fn channel_names(channels: &[Channel]) -> Vec<String> {
    channels.iter().map(|c| c.name().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_secs(0), 1);
        assert_eq!(backoff_secs(3), 8);
        assert_eq!(backoff_secs(9), 512);
        assert_eq!(backoff_secs(10), 600);
        assert_eq!(backoff_secs(60), 600);
    }
}
