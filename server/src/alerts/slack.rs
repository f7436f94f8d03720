//! Slack incoming-webhook payload in Block Kit: header, summary, metric deltas as fields,
//! the dominant log signature, a timeline and a button back to the incident.

use serde_json::{json, Value};
use watchdog_core::explain::dominant_signature;
use watchdog_core::explain::{
    format_change, format_delta, format_value, metric_label, relative_to_deploy, Severity,
};
use watchdog_core::export::timeline;
use watchdog_core::MetricStatus;

use super::{escape_slack, truncate, AlertEvent, AlertKind};

/// Slack's limits: header text, section text, fields per section, field text.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;
const FIELDS_MAX: usize = 10;
const FIELD_MAX: usize = 2000;

fn severity_mark(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "🔴",
        Severity::High => "🟠",
        Severity::Medium => "🟡",
        Severity::Low => "⚪",
    }
}

fn mrkdwn(text: &str, max: usize) -> Value {
    json!({"type": "mrkdwn", "text": truncate(text, max)})
}

pub(super) fn payload(ev: &AlertEvent) -> Value {
    let v = &ev.verdict;
    let prefix = match ev.kind {
        AlertKind::Opened => format!(
            "{} {} regression",
            severity_mark(ev.severity),
            ev.severity.as_str().to_uppercase()
        ),
        AlertKind::Resolved => "✅ Resolved".to_string(),
        AlertKind::Updated => format!("{} Updated ({})", severity_mark(ev.severity), ev.status),
    };
    let head = format!(
        "{prefix}: {} {} ({})",
        ev.service, ev.deploy_id, ev.environment
    );
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&head, HEADER_MAX), "emoji": true}}),
        json!({"type": "section", "text": mrkdwn(
            &format!("*{}*\n{}", escape_slack(&ev.explanation.headline), escape_slack(&ev.explanation.summary)),
            SECTION_MAX,
        )}),
    ];

    // Regressed metrics first (the evidence is already ordered that way), then the rest.
    let fields: Vec<Value> = v
        .evidence
        .iter()
        .take(FIELDS_MAX)
        .map(|e| {
            let before = e.observed.mean - e.effect_absolute;
            let status = match e.status {
                MetricStatus::Regressed => " (regressed)",
                MetricStatus::PreExisting => " (pre-existing)",
                MetricStatus::LateChange => " (late change)",
                MetricStatus::Insufficient => " (no data)",
                MetricStatus::Ok => "",
                MetricStatus::Undecided => " (not judged)",
            };
            mrkdwn(
                &format!(
                    "*{}*{status}\n{} → {} ({}, {})",
                    escape_slack(&metric_label(&e.metric)),
                    format_value(&e.metric, before),
                    format_value(&e.metric, e.observed.mean),
                    format_change(before, e.observed.mean),
                    format_delta(&e.metric, e.effect_absolute)
                ),
                FIELD_MAX,
            )
        })
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }

    if let Some(s) = dominant_signature(v) {
        let text = format!(
            "*Dominant log signature* ({}, {}, {}× after the deploy, first {}):\n`{}`\n> {}",
            match s.change {
                watchdog_core::SignatureChange::New => "new",
                watchdog_core::SignatureChange::Surging => "surging",
            },
            s.level.as_str(),
            s.count_after,
            relative_to_deploy(s.first_seen.secs_since(v.deployed_at)),
            escape_slack(&s.template.replace('`', "'")),
            escape_slack(&s.example)
        );
        blocks.push(json!({"type": "section", "text": mrkdwn(&text, SECTION_MAX)}));
    }

    let mut lines: Vec<String> = timeline(v)
        .iter()
        .map(|t| format!("`{}` {}", t.at, escape_slack(&t.event)))
        .collect();
    lines.push(format!(
        "`{}` incident {} opened",
        ev.opened_at, ev.incident_id
    ));
    if let (AlertKind::Resolved, Some(at)) = (ev.kind, ev.resolved_at) {
        lines.push(format!("`{at}` incident resolved"));
    }
    blocks.push(json!({"type": "section", "text": mrkdwn(&format!("*Timeline*\n{}", lines.join("\n")), SECTION_MAX)}));

    blocks.push(json!({"type": "context", "elements": [mrkdwn(
        &format!(
            "Incident {} · severity {} · status {} · {} {}",
            escape_slack(&ev.incident_id),
            ev.severity.as_str(),
            escape_slack(&ev.status),
            escape_slack(&ev.service),
            escape_slack(&ev.environment)
        ),
        FIELD_MAX,
    )]}));
    if !ev.link.is_empty() {
        let mut button = json!({
            "type": "button",
            "text": {"type": "plain_text", "text": "Open incident"},
            "url": ev.link,
            "action_id": "open_incident",
        });
        if ev.kind == AlertKind::Opened && ev.severity <= Severity::High {
            button["style"] = json!("danger");
        }
        blocks.push(json!({"type": "actions", "elements": [button]}));
    }

    json!({
        // Shown in notifications and by clients that cannot render blocks.
        "text": truncate(&format!("{}: {}", prefix.trim_end_matches(" regression"), ev.explanation.headline), SECTION_MAX),
        "blocks": blocks,
    })
}
