//! PagerDuty Events API v2: `trigger` when an incident opens (and on updates, which
//! PagerDuty folds into the same alert by `dedup_key`), `acknowledge` when it is
//! acknowledged, `resolve` when it is resolved.

use serde_json::{json, Map, Value};
use watchdog_core::explain::dominant_signature;
use watchdog_core::explain::{format_change, format_value, Severity};
use watchdog_core::export::timeline;

use super::{truncate, AlertEvent, AlertKind};

/// PagerDuty rejects summaries longer than this.
const SUMMARY_MAX: usize = 1024;

/// PagerDuty's four severities.
fn pd_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "info",
    }
}

fn action(ev: &AlertEvent) -> &'static str {
    match ev.kind {
        AlertKind::Opened => "trigger",
        AlertKind::Resolved => "resolve",
        AlertKind::Updated if ev.status == "acknowledged" => "acknowledge",
        AlertKind::Updated if ev.status == "resolved" || ev.status == "false_positive" => "resolve",
        AlertKind::Updated => "trigger",
    }
}

pub(super) fn payload(routing_key: &str, ev: &AlertEvent) -> Value {
    let action = action(ev);
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": ev.dedup_key.as_deref().unwrap_or(&ev.incident_id),
    });
    if action != "trigger" {
        // Acknowledge and resolve events only need the key.
        return body;
    }
    let v = &ev.verdict;
    let mut metrics = Map::new();
    for e in &v.evidence {
        let before = e.observed.mean - e.effect_absolute;
        metrics.insert(
            e.metric.clone(),
            json!(format!(
                "{} → {} ({}), {:?}",
                format_value(&e.metric, before),
                format_value(&e.metric, e.observed.mean),
                format_change(before, e.observed.mean),
                e.status
            )
            .to_lowercase()),
        );
    }
    let signature = dominant_signature(v).map(|s| {
        json!({
            "template": s.template,
            "change": s.change,
            "level": s.level.as_str(),
            "count_after": s.count_after,
            "first_seen": s.first_seen,
            "example": s.example,
        })
    });
    let tl: Vec<String> = timeline(v)
        .iter()
        .map(|t| format!("{} {}", t.at, t.event))
        .collect();
    body["payload"] = json!({
        "summary": truncate(&format!("[{}] {}", ev.severity.as_str(), ev.explanation.headline), SUMMARY_MAX),
        "severity": pd_severity(ev.severity),
        "source": format!("{}/{}", ev.service, ev.environment),
        "component": ev.service,
        "group": ev.environment,
        "class": "deploy_regression",
        "timestamp": v.detected_at.unwrap_or(ev.opened_at),
        "custom_details": {
            "incident_id": ev.incident_id,
            "title": ev.title,
            "status": ev.status,
            "deploy_id": ev.deploy_id,
            "deployed_at": v.deployed_at,
            "verdict": v.verdict,
            "summary": ev.explanation.summary,
            "details": ev.explanation.details,
            "metrics": metrics,
            "dominant_signature": signature,
            "timeline": tl,
        },
    });
    if !ev.link.is_empty() {
        body["links"] =
            json!([{"href": ev.link, "text": format!("WatchDog incident {}", ev.incident_id)}]);
        body["client_url"] = json!(ev.link);
    }
    body["client"] = json!("WatchDog");
    body
}
