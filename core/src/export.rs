//! Incident exports: a triage-ready Markdown report and a JSON document, plus the
//! Markdown of a bare verdict for the browser playground.
//!
//! Pure functions of their inputs: the server passes the incident's stored state (notes,
//! audit trail, cached explanation) and gets text back.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::explain::{
    explain, format_change, format_delta, format_number, format_value, metric_label,
    relative_to_deploy, severity, triage, Explanation, Severity, TriageReport,
};
use crate::time::Timestamp;
use crate::verdict::{DeployVerdict, MetricStatus, SignatureChange};

/// A note on an incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteDoc {
    /// Who wrote it.
    pub author: String,
    /// When.
    pub at: Timestamp,
    /// What they wrote (Markdown is kept as is).
    pub text: String,
}

/// One change in an incident's audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDoc {
    /// When.
    pub at: Timestamp,
    /// Who (a user name, or `watchdog` for the engine).
    pub actor: String,
    /// What kind of change (`opened`, `status`, `note`, …).
    pub action: String,
    /// The change in words (`open → acknowledged`).
    pub detail: String,
}

/// Everything an incident export shows. Borrowed, so the caller keeps ownership.
#[derive(Clone, Copy, Debug)]
pub struct IncidentDoc<'a> {
    /// Incident id as shown to users.
    pub id: &'a str,
    /// Title.
    pub title: &'a str,
    /// Status (`open`, `acknowledged`, `resolved`, `false_positive`).
    pub status: &'a str,
    /// Severity.
    pub severity: Severity,
    /// When the incident was opened.
    pub opened_at: Timestamp,
    /// The verdict that opened it.
    pub verdict: &'a DeployVerdict,
    /// Its explanation (possibly a rephrased one cached by the server).
    pub explanation: &'a Explanation,
    /// Its triage report.
    pub triage: &'a TriageReport,
    /// Notes, oldest first.
    pub notes: &'a [NoteDoc],
    /// Audit trail, oldest first.
    pub audit: &'a [AuditDoc],
}

/// One dated event of a verdict's story.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When.
    pub at: Timestamp,
    /// What happened, in a few words.
    pub event: String,
}

/// The dated events of a verdict, in time order: baseline start, deploy, shift starts,
/// first sightings of log signatures, detection, end of the watch.
pub fn timeline(v: &DeployVerdict) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    if let Some(t) = v.window.baseline_from {
        out.push(TimelineEntry {
            at: t,
            event: format!("baseline starts ({} samples)", v.window.baseline_samples),
        });
    }
    out.push(TimelineEntry {
        at: v.deployed_at,
        event: format!(
            "deploy {} of {} to {}",
            v.deploy_id, v.service, v.environment
        ),
    });
    for e in &v.evidence {
        if let Some(t) = e.change_started_at {
            let what = match e.status {
                MetricStatus::PreExisting => "pre-existing shift starts",
                _ => "shift starts",
            };
            out.push(TimelineEntry {
                at: t,
                event: format!("{} {what}", metric_label(&e.metric)),
            });
        }
    }
    for s in &v.signatures {
        out.push(TimelineEntry {
            at: s.first_seen,
            event: format!(
                "{} log signature \"{}\" first seen after the deploy",
                match s.change {
                    SignatureChange::New => "new",
                    SignatureChange::Surging => "surging",
                },
                s.template
            ),
        });
    }
    if let Some(t) = v.detected_at {
        out.push(TimelineEntry {
            at: t,
            event: "regression detected".into(),
        });
    } else {
        out.push(TimelineEntry {
            at: v.window.watched_until,
            event: format!("watch ends: {}", v.verdict.as_str()),
        });
    }
    // Stable sort keeps the causal order of events with equal times.
    out.sort_by_key(|e| e.at);
    out
}

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn evidence_table(v: &DeployVerdict, out: &mut String) {
    if v.evidence.is_empty() {
        out.push_str("No metric evidence.\n");
        return;
    }
    out.push_str("| Metric | Status | Baseline | Observed | Change | Effect | Sigmas | Statistic / threshold | Shift started |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for e in &v.evidence {
        let before = e.observed.mean - e.effect_absolute;
        let status = match e.status {
            MetricStatus::Regressed => "**regressed**",
            MetricStatus::PreExisting => "pre-existing",
            MetricStatus::LateChange => "late change",
            MetricStatus::Ok => "ok",
            MetricStatus::Undecided => "not judged",
            MetricStatus::Insufficient => "insufficient data",
        };
        let started = e
            .change_started_at
            .map(|t| relative_to_deploy(t.secs_since(v.deployed_at)))
            .unwrap_or_else(|| "–".into());
        out.push_str(&format!(
            "| {} | {} | {} (n={}) | {} (n={}) | {} | {} | {} | {} / {} | {} |\n",
            cell(&metric_label(&e.metric)),
            status,
            format_value(&e.metric, before),
            e.baseline.n,
            format_value(&e.metric, e.observed.mean),
            e.observed.n,
            format_change(before, e.observed.mean),
            format_delta(&e.metric, e.effect_absolute),
            format_number(e.effect_sigmas),
            format_number(e.statistic),
            format_number(e.threshold),
            started
        ));
    }
}

fn signature_table(v: &DeployVerdict, out: &mut String) {
    if v.signatures.is_empty() {
        out.push_str("No new or surging log signature.\n");
        return;
    }
    out.push_str(
        "| Signature | Template | Change | Level | Before | After | First seen | Example |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for s in &v.signatures {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&s.signature.replace('`', "'")),
            cell(&s.template),
            match s.change {
                SignatureChange::New => "new",
                SignatureChange::Surging => "surging",
            },
            s.level.as_str(),
            s.count_before,
            s.count_after,
            s.first_seen,
            cell(&s.example)
        ));
    }
}

fn body(
    v: &DeployVerdict,
    explanation: &Explanation,
    report: &TriageReport,
    sev: Severity,
    out: &mut String,
) {
    out.push_str(&format!(
        "**{}**\n\n{}\n\n",
        explanation.headline, explanation.summary
    ));

    out.push_str("## Triage\n\n");
    out.push_str(&format!(
        "- **Severity:** {}\n- **Confidence:** {}. {}\n- **Hypothesis:** {}\n- **Recommended action:** {}\n\n",
        sev,
        report.confidence.as_str(),
        report.confidence_reason,
        report.hypothesis,
        report.recommended_action
    ));
    if !report.next_checks.is_empty() {
        out.push_str("### Next checks\n\n");
        for (i, c) in report.next_checks.iter().enumerate() {
            out.push_str(&format!("{}. {}\n", i + 1, c));
        }
        out.push('\n');
    }
    if !report.limitations.is_empty() {
        out.push_str("### Limitations\n\n");
        for l in &report.limitations {
            out.push_str(&format!("- {l}\n"));
        }
        out.push('\n');
    }

    out.push_str("## Evidence\n\n");
    evidence_table(v, out);
    out.push_str(&format!(
        "\nFalse-alarm target: {} per deploy. Watched {} samples after the deploy against {} baseline samples.\n\n",
        crate::explain::format_percent(v.false_alarm_rate),
        v.window.samples_after,
        v.window.baseline_samples
    ));

    out.push_str("## Log signatures\n\n");
    signature_table(v, out);
    out.push('\n');

    out.push_str("## Timeline\n\n");
    for t in timeline(v) {
        out.push_str(&format!(
            "- {} ({}): {}\n",
            t.at,
            relative_to_deploy(t.at.secs_since(v.deployed_at)),
            t.event
        ));
    }
    out.push('\n');

    if !explanation.details.is_empty() {
        out.push_str("## Details\n\n");
        for d in &explanation.details {
            out.push_str(&format!("- {d}\n"));
        }
        out.push('\n');
    }
}

/// The incident as a triage-ready Markdown report: facts, summary, triage, evidence
/// table, log signatures, timeline, details, notes and audit trail.
pub fn markdown(doc: &IncidentDoc) -> String {
    let v = doc.verdict;
    let mut out = format!("# Incident {}: {}\n\n", doc.id, doc.title);
    out.push_str("| | |\n|---|---|\n");
    let detected = v
        .detected_at
        .map(|t| format!(", detected at {t}"))
        .unwrap_or_default();
    for (k, val) in [
        ("Status", doc.status.to_string()),
        ("Severity", doc.severity.to_string()),
        ("Service", format!("{} ({})", v.service, v.environment)),
        ("Deploy", format!("{} at {}", v.deploy_id, v.deployed_at)),
        ("Verdict", format!("{}{detected}", v.verdict.as_str())),
        ("Opened", doc.opened_at.to_string()),
    ] {
        out.push_str(&format!("| {k} | {} |\n", cell(&val)));
    }
    out.push('\n');
    body(v, doc.explanation, doc.triage, doc.severity, &mut out);

    out.push_str("## Notes\n\n");
    if doc.notes.is_empty() {
        out.push_str("No notes.\n");
    }
    for n in doc.notes {
        out.push_str(&format!(
            "- **{}** at {}: {}\n",
            n.author,
            n.at,
            n.text.replace('\n', "\n  ")
        ));
    }
    out.push_str("\n## Audit trail\n\n");
    if doc.audit.is_empty() {
        out.push_str("No changes recorded.\n");
    } else {
        out.push_str("| At | Actor | Action | Detail |\n|---|---|---|---|\n");
        for a in doc.audit {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                a.at,
                cell(&a.actor),
                cell(&a.action),
                cell(&a.detail)
            ));
        }
    }
    out
}

/// The incident as one JSON document: the facts, the verdict as the API serializes it,
/// explanation, triage report, timeline, notes and audit trail.
pub fn json(doc: &IncidentDoc) -> serde_json::Value {
    let v = doc.verdict;
    json!({
        "id": doc.id,
        "title": doc.title,
        "status": doc.status,
        "severity": doc.severity,
        "opened_at": doc.opened_at,
        "service": v.service,
        "environment": v.environment,
        "deploy_id": v.deploy_id,
        "deployed_at": v.deployed_at,
        "verdict": v,
        "explanation": doc.explanation,
        "triage": doc.triage,
        "timeline": timeline(v),
        "notes": doc.notes,
        "audit": doc.audit,
    })
}

/// A verdict alone as Markdown (no incident): what the browser playground shows and
/// offers to copy. Explanation, triage and severity are computed here.
pub fn verdict_markdown(v: &DeployVerdict) -> String {
    let explanation = explain(v);
    let report = triage(v);
    let sev = severity(v);
    let mut out = format!(
        "# {} {} ({}): {}\n\n",
        v.service,
        v.deploy_id,
        v.environment,
        v.verdict.as_str()
    );
    body(v, &explanation, &report, sev, &mut out);
    out
}
