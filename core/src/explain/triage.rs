//! The triage report: how sure, what probably happened, what to do, what to check next,
//! and what the evidence cannot tell. From the verdict's evidence only.

use serde::{Deserialize, Serialize};

use super::format::{format_duration, format_number, format_percent, format_value, metric_label};
use super::severity::{severity, Severity};
use super::{cause_phrase, dominant_signature, metric_sentence, movement, signature_sentence};
use crate::verdict::{
    DeployVerdict, InconclusiveCause, MetricStatus, SignatureChange, VerdictKind, WatchEnd,
};

/// How far the evidence supports the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Strong, corroborated evidence.
    High,
    /// Real evidence with one weak spot (a single signal, a short watch).
    Medium,
    /// The evidence does not settle it.
    Low,
}

impl Confidence {
    /// Lowercase name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        }
    }
}

/// What the on-call engineer needs to act on a verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriageReport {
    /// How far the evidence supports the verdict.
    pub confidence: Confidence,
    /// Why that confidence, in one sentence.
    pub confidence_reason: String,
    /// The most likely account of what happened, limited to what the evidence shows.
    pub hypothesis: String,
    /// What to do now.
    pub recommended_action: String,
    /// The facts the report rests on.
    pub evidence_used: Vec<String>,
    /// What to look at next to confirm or refute the hypothesis.
    pub next_checks: Vec<String>,
    /// What this evidence cannot tell.
    pub limitations: Vec<String>,
}

/// A shift starting this long after the deploy still reads as caused by it.
const CLOSE_ONSET_SECS: f64 = 600.0;
/// Statistic over threshold for a clear detection.
const CLEAR_MARGIN: f64 = 2.0;
/// Baseline autocorrelation above which the noise estimate deserves a caveat.
const HIGH_AUTOCORRELATION: f64 = 0.5;

/// Builds the triage report of a verdict.
///
/// Confidence for a regression is **high** when the strongest statistic is at least twice
/// its threshold, the shift started within 10 minutes of the deploy and two signals agree
/// (two regressed metrics, or a metric and a new or surging error signature); **medium**
/// when only one of the first two holds with any corroboration, or both hold on a single
/// signal; **low** otherwise. A healthy verdict is high after a full watch without new
/// error signatures, medium when the watch was cut short or error signatures appeared.
/// An inconclusive verdict is always low.
pub fn triage(v: &DeployVerdict) -> TriageReport {
    match v.verdict {
        VerdictKind::Regression => triage_regression(v),
        VerdictKind::Healthy => triage_healthy(v),
        VerdictKind::Inconclusive => triage_inconclusive(v),
    }
}

fn evidence_lines(v: &DeployVerdict) -> Vec<String> {
    let mut out: Vec<String> = v.evidence.iter().map(|e| metric_sentence(v, e)).collect();
    for s in &v.signatures {
        out.push(format!("{}.", signature_sentence(v, s)));
    }
    out.push(format!(
        "Watch: {} after the deploy, {} samples after, {} baseline samples, ended by {}.",
        format_duration(v.window.watched_secs),
        v.window.samples_after,
        v.window.baseline_samples,
        match v.window.ended_by {
            WatchEnd::Detection => "the detection",
            WatchEnd::Window => "the end of the monitoring window",
            WatchEnd::NextDeploy => "the next deploy of the service",
            WatchEnd::EndOfData => "the end of the data",
        }
    ));
    out
}

fn common_limitations(v: &DeployVerdict) -> Vec<String> {
    let mut out = Vec::new();
    let watched: Vec<String> = v.evidence.iter().map(|e| metric_label(&e.metric)).collect();
    if watched.is_empty() {
        out.push("No metric could be watched.".to_string());
    } else {
        out.push(format!(
            "Only these metrics were watched: {}; anything else the release changed is not covered.",
            watched.join(", ")
        ));
    }
    for e in &v.evidence {
        if e.autocorrelation > HIGH_AUTOCORRELATION {
            out.push(format!(
                "The {} baseline is strongly autocorrelated ({}), so its noise estimate was widened and small shifts are detected later.",
                metric_label(&e.metric),
                format_number(e.autocorrelation)
            ));
        }
        if e.metric == "error_rate" && e.counts.is_none() && e.status == MetricStatus::Regressed {
            out.push(
                "The error rate was judged from reported rates, not from error and request counts."
                    .to_string(),
            );
        }
    }
    if v.signatures.is_empty() {
        out.push("No new or surging log signature: either no logs were sent or the logs show nothing new.".to_string());
    }
    for w in &v.warnings {
        out.push(format!("Warning from the watch: {w}"));
    }
    out
}

fn triage_regression(v: &DeployVerdict) -> TriageReport {
    let regressed: Vec<_> = v.regressed().collect();
    let error_signatures = v.signatures.iter().filter(|s| s.level.is_error()).count();
    let signals = regressed.len() + usize::from(error_signatures > 0);
    let margin = regressed
        .iter()
        .filter(|e| e.threshold > 0.0)
        .map(|e| e.statistic / e.threshold)
        .fold(0.0_f64, f64::max);
    let onset = regressed
        .iter()
        .filter_map(|e| e.change_started_at)
        .map(|t| t.secs_since(v.deployed_at))
        .fold(None, |acc: Option<f64>, s| {
            Some(acc.map_or(s, |a| a.min(s)))
        });
    let close = onset.is_some_and(|s| (0.0..=CLOSE_ONSET_SECS).contains(&s));
    // A sequential test stops as soon as it crosses its threshold, so the statistic at
    // detection is always close to it; how clear a regression is shows in the size of the
    // shift instead: several noise units, and well past the smallest material change.
    let clear = margin >= CLEAR_MARGIN
        || regressed
            .iter()
            .any(|e| e.effect_sigmas.abs() >= 3.0 && e.effect_absolute.abs() >= 2.0 * e.min_effect);
    let preexisting = v
        .evidence
        .iter()
        .any(|e| e.status == MetricStatus::PreExisting);

    let mut confidence = match (clear, close, signals >= 2) {
        (true, true, true) => Confidence::High,
        (true, true, false) | (true, false, true) | (false, true, true) => Confidence::Medium,
        _ => Confidence::Low,
    };
    if preexisting && confidence == Confidence::High {
        confidence = Confidence::Medium;
    }
    let mut why = vec![format!(
        "strongest statistic {} times its threshold",
        format_number(margin)
    )];
    match onset {
        Some(s) if close => why.push(format!(
            "shift began {} after the deploy",
            format_duration(s)
        )),
        Some(s) if s < 0.0 => why.push(format!(
            "shift began {} before the deploy",
            format_duration(s)
        )),
        Some(s) => why.push(format!(
            "shift began only {} after the deploy",
            format_duration(s)
        )),
        None => why.push("no estimate of when the shift began".to_string()),
    }
    why.push(format!(
        "{} independent {} agree",
        signals,
        if signals == 1 { "signal" } else { "signals" }
    ));
    if preexisting {
        why.push("another metric was already shifting before the deploy".to_string());
    }
    let confidence_reason = format!("{}.", capitalize(&why.join("; ")));

    let mut hypothesis = format!(
        "Deploy {} of {} introduced a change that",
        v.deploy_id, v.service
    );
    if regressed.is_empty() {
        hypothesis.push_str(" produces new errors in the logs");
    } else {
        let moves: Vec<String> = regressed.iter().map(|e| movement(e)).collect();
        hypothesis.push_str(&format!(" moved {}", moves.join(" and ")));
    }
    if let Some(s) = dominant_signature(v) {
        hypothesis.push_str(&format!(
            "; the {} log signature \"{}\" points at the code path that logs it",
            if s.change == SignatureChange::New {
                "new"
            } else {
                "surging"
            },
            s.template
        ));
    }
    hypothesis.push('.');

    let sev = severity(v);
    let restore: Vec<String> = regressed
        .iter()
        .map(|e| {
            format!(
                "{} is back near {}",
                metric_label(&e.metric),
                format_value(&e.metric, super::severity::baseline_level(e))
            )
        })
        .collect();
    let confirm = if restore.is_empty() {
        "the new log signatures stop".to_string()
    } else {
        restore.join(" and ")
    };
    let recommended_action = match (sev, confidence) {
        (Severity::Critical | Severity::High, Confidence::High | Confidence::Medium)
        | (Severity::Critical, Confidence::Low) => format!(
            "Roll back deploy {} of {} in {} (or halt its rollout), then confirm that {}.",
            v.deploy_id, v.service, v.environment, confirm
        ),
        _ => format!(
            "Hold further rollouts of {} in {} and investigate deploy {} before deciding on a rollback; roll back if the shift persists.",
            v.service, v.environment, v.deploy_id
        ),
    };

    let mut next_checks = Vec::new();
    if let Some(s) = dominant_signature(v) {
        next_checks.push(format!(
            "Read the logs around {} for \"{}\" and find the change in {} that logs it.",
            s.first_seen, s.template, v.deploy_id
        ));
    }
    for e in &regressed {
        next_checks.push(format!(
            "Compare {} between instances on {} and instances still on the previous version, if any remain.",
            metric_label(&e.metric),
            v.deploy_id
        ));
    }
    next_checks.push(format!(
        "Check whether a dependency of {} or another service changed in {} around {}.",
        v.service,
        v.environment,
        onset
            .map(|s| v.deployed_at.add_secs(s))
            .unwrap_or(v.deployed_at)
    ));
    next_checks.push(format!(
        "Read the diff of {} for changes to the paths these metrics cover.",
        v.deploy_id
    ));

    let mut limitations = common_limitations(v);
    limitations.insert(
        0,
        "The evidence is a correlation in time with the deploy; it does not prove the cause."
            .to_string(),
    );

    TriageReport {
        confidence,
        confidence_reason,
        hypothesis,
        recommended_action,
        evidence_used: evidence_lines(v),
        next_checks,
        limitations,
    }
}

fn triage_healthy(v: &DeployVerdict) -> TriageReport {
    let error_signatures: Vec<_> = v.signatures.iter().filter(|s| s.level.is_error()).collect();
    let full = v.window.ended_by == WatchEnd::Window;
    let (confidence, confidence_reason) = if !error_signatures.is_empty() {
        (
            Confidence::Medium,
            format!(
                "Metrics held, but {} new or surging error log {} appeared.",
                error_signatures.len(),
                if error_signatures.len() == 1 {
                    "signature"
                } else {
                    "signatures"
                }
            ),
        )
    } else if !full {
        (
            Confidence::Medium,
            format!(
                "Metrics held, but the watch was cut short after {}.",
                format_duration(v.window.watched_secs)
            ),
        )
    } else {
        (
            Confidence::High,
            format!(
                "Metrics held for the full {} monitoring window with no new error signatures.",
                format_duration(v.window.watched_secs)
            ),
        )
    };
    let recommended_action = if error_signatures.is_empty() {
        "No action needed.".to_string()
    } else {
        format!(
            "No rollback needed; have the owner of {} look at the new error log signatures.",
            v.service
        )
    };
    let mut next_checks = Vec::new();
    for s in &error_signatures {
        next_checks.push(format!(
            "Look at the {} log signature \"{}\" first seen at {}.",
            s.level.as_str(),
            s.template,
            s.first_seen
        ));
    }
    if !full {
        next_checks.push("Keep an eye on the service: the watch ended early.".to_string());
    }
    let mut limitations = common_limitations(v);
    limitations.push(format!(
        "Shifts smaller than each metric's material floor are not reported, and about {} of regressions that small could pass unseen.",
        format_percent(v.false_alarm_rate)
    ));
    TriageReport {
        confidence,
        confidence_reason,
        hypothesis: format!(
            "Deploy {} did not change the watched behaviour of {} materially.",
            v.deploy_id, v.service
        ),
        recommended_action,
        evidence_used: evidence_lines(v),
        next_checks,
        limitations,
    }
}

fn triage_inconclusive(v: &DeployVerdict) -> TriageReport {
    let cause = cause_phrase(v.inconclusive_cause);
    let mut next_checks = Vec::new();
    if let Some(n) = &v.needed {
        next_checks.push(capitalize(n.trim()));
    }
    next_checks.push(match v.inconclusive_cause {
        Some(InconclusiveCause::NoData) => format!(
            "Check that metrics for {} in {} reach WatchDog (service and environment labels match the deploy).",
            v.service, v.environment
        ),
        Some(InconclusiveCause::Gaps) => {
            "Check the metrics pipeline for dropped or delayed samples during the watch.".into()
        }
        Some(InconclusiveCause::PreExistingShift) => {
            "Find what started the shift before the deploy; judge the deploy once it settles."
                .into()
        }
        Some(InconclusiveCause::UnsteadyBaseline) => {
            "Compare against a steadier signal (a canary beside the stable version, or a longer baseline) before promoting."
                .into()
        }
        Some(InconclusiveCause::LateChange) => {
            "Check what else changed when the shift began (traffic, a dependency, another deploy) before blaming this deploy."
                .into()
        }
        Some(InconclusiveCause::LowTraffic) => {
            "Watch longer or wait for more traffic; send error and request counts if you can."
                .into()
        }
        _ => "Watch the service by hand until more data arrives.".into(),
    });
    TriageReport {
        confidence: Confidence::Low,
        confidence_reason: format!("No verdict could be reached: {cause}."),
        hypothesis: format!(
            "Unknown: the evidence cannot tell whether deploy {} changed {}.",
            v.deploy_id, v.service
        ),
        recommended_action: format!(
            "Hold: keep deploy {} under watch and do not promote it further until it is decided.",
            v.deploy_id
        ),
        evidence_used: evidence_lines(v),
        next_checks,
        limitations: common_limitations(v),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
