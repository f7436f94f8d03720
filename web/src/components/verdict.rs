//! A verdict and what it rests on: badge, evidence table, log signatures, warnings,
//! explanation, triage report and timeline.

use leptos::prelude::*;
use watchdog_core::explain::{
    format_percent_change, format_value, metric_label, Explanation, TriageReport,
};
use watchdog_core::export::timeline;
use watchdog_core::{DeployVerdict, MetricStatus, SignatureChange};

/// The verdict as a coloured word.
#[component]
pub fn VerdictBadge(verdict: &'static str) -> impl IntoView {
    view! { <span class=format!("badge verdict-{verdict}") data-verdict=verdict>{verdict}</span> }
}

/// A severity or status as a coloured word.
#[component]
pub fn Tag(kind: &'static str, value: String) -> impl IntoView {
    view! { <span class=format!("tag {kind}-{value}")>{value.replace('_', " ")}</span> }
}

fn status_word(s: MetricStatus) -> &'static str {
    match s {
        MetricStatus::Regressed => "regressed",
        MetricStatus::PreExisting => "pre-existing shift",
        MetricStatus::LateChange => "late change",
        MetricStatus::Ok => "ok",
        MetricStatus::Undecided => "not judged",
        MetricStatus::Insufficient => "not enough data",
    }
}

fn time_of(t: Option<watchdog_core::Timestamp>) -> String {
    t.map(when_ts).unwrap_or_else(|| "—".into())
}

/// Per-metric evidence as a table.
#[component]
pub fn EvidenceTable(verdict: DeployVerdict) -> impl IntoView {
    let rows = verdict
        .evidence
        .iter()
        .map(|e| {
            let m = e.metric.clone();
            view! {
                <tr class=format!("status-{:?}", e.status).to_lowercase()>
                    <th scope="row">{metric_label(&m)}</th>
                    <td data-label="Status">{status_word(e.status)}</td>
                    <td data-label="Baseline">{format_value(&m, e.observed.mean - e.effect_absolute)}</td>
                    <td data-label="After">{format_value(&m, e.observed.mean)}</td>
                    <td data-label="Change">{e.effect_relative.map(format_percent_change).unwrap_or_else(|| "—".into())}
                        {format!(" ({:+.1}σ)", e.effect_sigmas)}</td>
                    <td data-label="Statistic / threshold">{format!("{:.1} / {:.1}", e.statistic, e.threshold)}</td>
                    <td data-label="Detected">{time_of(e.detected_at)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-wrap">
            <table class="evidence">
                <caption>"Evidence per metric"</caption>
                <thead><tr>
                    <th scope="col">"Metric"</th><th scope="col">"Status"</th>
                    <th scope="col">"Baseline"</th><th scope="col">"After"</th>
                    <th scope="col">"Change"</th><th scope="col">"Statistic / threshold"</th>
                    <th scope="col">"Detected"</th>
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

/// New or surging log signatures.
#[component]
pub fn SignatureTable(verdict: DeployVerdict) -> impl IntoView {
    if verdict.signatures.is_empty() {
        return view! { <p class="muted">"No new or surging log signatures."</p> }.into_any();
    }
    let rows = verdict
        .signatures
        .iter()
        .map(|s| {
            view! {
                <tr>
                    <td><code>{s.template.clone()}</code><br/>
                        <span class="muted small">{format!("{} · {}", s.signature, s.example)}</span></td>
                    <td>{match s.change { SignatureChange::New => "new", SignatureChange::Surging => "surging" }}</td>
                    <td>{s.level.as_str()}</td>
                    <td>{format!("{} → {}", s.count_before, s.count_after)}</td>
                    <td>{when_ts(s.first_seen)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-wrap">
            <table class="signatures">
                <caption>"Log signatures"</caption>
                <thead><tr>
                    <th scope="col">"Template"</th><th scope="col">"Change"</th>
                    <th scope="col">"Level"</th><th scope="col">"Before → after"</th>
                    <th scope="col">"First seen"</th>
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

/// The verdict's headline facts: badge, reason, what was missing, warnings.
#[component]
pub fn VerdictSummary(verdict: DeployVerdict) -> impl IntoView {
    let v = verdict;
    view! {
        <div class="verdict-summary">
            <p class="verdict-line">
                <VerdictBadge verdict=v.verdict.as_str() />
                <strong>{format!(" {} {} ({})", v.service, v.deploy_id, v.environment)}</strong>
                <span class="muted">{format!(" deployed {}", when_ts(v.deployed_at))}</span>
            </p>
            <p class="reason">{v.reason.clone()}</p>
            {v.needed.clone().map(|n| view! { <p class="needed">"Needed: " {n}</p> })}
            {(!v.warnings.is_empty()).then(|| view! {
                <ul class="warnings" aria-label="warnings">
                    {v.warnings.iter().map(|w| view! { <li>{w.clone()}</li> }).collect_view()}
                </ul>
            })}
        </div>
    }
}

/// The deterministic explanation.
#[component]
pub fn ExplanationView(explanation: Explanation) -> impl IntoView {
    view! {
        <div class="explanation">
            <p><strong>{explanation.headline}</strong></p>
            <p>{explanation.summary}</p>
            <ul>{explanation.details.into_iter().map(|d| view! { <li>{d}</li> }).collect_view()}</ul>
        </div>
    }
}

fn list(title: &'static str, items: Vec<String>) -> impl IntoView {
    (!items.is_empty()).then(|| {
        view! {
            <h4>{title}</h4>
            <ul>{items.into_iter().map(|i| view! { <li>{i}</li> }).collect_view()}</ul>
        }
    })
}

/// The triage report.
#[component]
pub fn TriageView(report: TriageReport) -> impl IntoView {
    view! {
        <div class="triage">
            <p><span class=format!("tag confidence-{}", report.confidence.as_str())>
                {format!("{} confidence", report.confidence.as_str())}</span>
                " " {report.confidence_reason}</p>
            <p><strong>"Hypothesis: "</strong>{report.hypothesis}</p>
            <p><strong>"Recommended action: "</strong>{report.recommended_action}</p>
            {list("Evidence used", report.evidence_used)}
            {list("Next checks", report.next_checks)}
            {list("Limitations", report.limitations)}
        </div>
    }
}

/// The dated events of a verdict.
#[component]
pub fn TimelineView(verdict: DeployVerdict) -> impl IntoView {
    view! {
        <ol class="timeline">
            {timeline(&verdict).into_iter().map(|e| view! {
                <li><time datetime=e.at.to_rfc3339()>{when_ts(e.at)}</time> " " {e.event}</li>
            }).collect_view()}
        </ol>
    }
}

/// An RFC 3339 time as `2026-03-30 12:00:00 UTC` (text that does not parse is shown as is).
pub fn when(text: &str) -> String {
    match watchdog_core::Timestamp::parse(text) {
        Ok(t) => when_ts(t),
        Err(_) => text.to_string(),
    }
}

/// A timestamp as `2026-03-30 12:00:00 UTC`.
pub fn when_ts(t: watchdog_core::Timestamp) -> String {
    let iso = t.to_rfc3339();
    if iso.len() >= 19 {
        format!("{} {} UTC", &iso[..10], &iso[11..19])
    } else {
        iso
    }
}

/// Explanation text as the server sends it (headline, paragraph, `- ` details) laid out
/// as a heading, paragraphs and a list.
#[component]
pub fn ExplanationText(text: String) -> impl IntoView {
    let mut blocks = Vec::new();
    for (i, block) in text.split("\n\n").enumerate() {
        let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            continue;
        }
        if lines.iter().all(|l| l.starts_with("- ")) {
            blocks.push(
                view! { <ul>{lines.iter().map(|l| view! { <li>{l[2..].to_string()}</li> }).collect_view()}</ul> }
                    .into_any(),
            );
        } else if i == 0 {
            blocks.push(view! { <p><strong>{block.to_string()}</strong></p> }.into_any());
        } else {
            blocks.push(view! { <p>{block.to_string()}</p> }.into_any());
        }
    }
    view! { <div class="explanation-text">{blocks}</div> }
}
