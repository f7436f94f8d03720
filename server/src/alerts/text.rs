//! The plain-text alert body: what the original WatchDog posted to a `webhook_url` that
//! was not Slack's. The same facts as the Slack message (summary, metric deltas, the
//! dominant log signature, the timeline), as lines of text without markup.

use std::fmt::Write;

use watchdog_core::explain::{
    dominant_signature, format_change, format_delta, format_value, metric_label, relative_to_deploy,
};
use watchdog_core::export::timeline;
use watchdog_core::{MetricStatus, SignatureChange};

use super::{AlertEvent, AlertKind};

pub(super) fn body(ev: &AlertEvent) -> String {
    let v = &ev.verdict;
    let what = match ev.kind {
        AlertKind::Opened => format!("{} regression", ev.severity.as_str().to_uppercase()),
        AlertKind::Resolved => "Resolved".to_string(),
        AlertKind::Updated => format!("Updated ({})", ev.status),
    };
    let mut out = format!(
        "[WatchDog] {what}: {} {} ({})\n\n{}\n{}\n",
        ev.service, ev.deploy_id, ev.environment, ev.explanation.headline, ev.explanation.summary
    );
    if !v.evidence.is_empty() {
        out.push_str("\nMetrics:\n");
        for e in &v.evidence {
            let before = e.observed.mean - e.effect_absolute;
            let status = match e.status {
                MetricStatus::Regressed => " (regressed)",
                MetricStatus::PreExisting => " (pre-existing)",
                MetricStatus::LateChange => " (late change)",
                MetricStatus::Insufficient => " (no data)",
                MetricStatus::Ok => "",
                MetricStatus::Undecided => " (not judged)",
            };
            let _ = writeln!(
                out,
                "- {}{status}: {} -> {} ({}, {})",
                metric_label(&e.metric),
                format_value(&e.metric, before),
                format_value(&e.metric, e.observed.mean),
                format_change(before, e.observed.mean),
                format_delta(&e.metric, e.effect_absolute)
            );
        }
    }
    if let Some(s) = dominant_signature(v) {
        let _ = writeln!(
            out,
            "\nDominant log signature ({}, {}, {}x after the deploy, first {}):\n  {}\n  e.g. {}",
            match s.change {
                SignatureChange::New => "new",
                SignatureChange::Surging => "surging",
            },
            s.level.as_str(),
            s.count_after,
            relative_to_deploy(s.first_seen.secs_since(v.deployed_at)),
            s.template,
            s.example
        );
    }
    out.push_str("\nTimeline:\n");
    for t in timeline(v) {
        let _ = writeln!(out, "- {} {}", t.at, t.event);
    }
    let _ = writeln!(out, "- {} incident {} opened", ev.opened_at, ev.incident_id);
    if let (AlertKind::Resolved, Some(at)) = (ev.kind, ev.resolved_at) {
        let _ = writeln!(out, "- {at} incident resolved");
    }
    if !ev.link.is_empty() {
        let _ = writeln!(out, "\n{}", ev.link);
    }
    out
}
