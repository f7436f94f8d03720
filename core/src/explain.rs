//! Explanations, severities and triage reports, built from a verdict's evidence alone.
//!
//! Everything here is deterministic: the same verdict gives the same text, byte for byte,
//! natively and in the browser. A language model may rephrase an [`Explanation`] (the
//! server does that, optionally), but [`numbers_consistent`] must then hold between the
//! local text and the rephrasing, so no figure is changed, dropped or invented.

mod format;
mod severity;
mod triage;

use serde::{Deserialize, Serialize};

pub use format::{
    format_change, format_count, format_delta, format_duration, format_number, format_percent,
    format_percent_change, format_value, is_fraction, metric_label, numbers_consistent, numbers_in,
    relative_to_deploy,
};
pub use severity::{severity, Severity};
pub use triage::{triage, Confidence, TriageReport};

use crate::verdict::{
    DeployVerdict, InconclusiveCause, MetricEvidence, MetricStatus, SignatureChange,
    SignatureEvidence, TestKind, VerdictKind,
};
use severity::baseline_level;

/// A readable account of a verdict for the engineer who shipped, the SRE on call and
/// their manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// One line: what happened to which deploy, with the main figure.
    pub headline: String,
    /// A short paragraph: what moved, by how much, when, and how sure.
    pub summary: String,
    /// One sentence per fact: each metric, each log signature, the watch, the warnings.
    pub details: Vec<String>,
}

impl Explanation {
    /// Headline, summary and details as plain text (details as `- ` bullets), the form
    /// that is shown, sent and given to a language model to rephrase.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n\n{}", self.headline, self.summary);
        if !self.details.is_empty() {
            out.push('\n');
            for d in &self.details {
                out.push_str("\n- ");
                out.push_str(d);
            }
        }
        out
    }
}

/// Explains a verdict from its evidence: which metrics moved, from what to what and by
/// how much, when the shift started relative to the deploy, how sure the test is, the
/// dominant log signature; for a healthy deploy what was checked and the smallest change
/// that would have counted; for an inconclusive one why and what would decide it.
pub fn explain(v: &DeployVerdict) -> Explanation {
    match v.verdict {
        VerdictKind::Regression => explain_regression(v),
        VerdictKind::Healthy => explain_healthy(v),
        VerdictKind::Inconclusive => explain_inconclusive(v),
    }
}

/// `checkout v1.4.2 (production)`.
pub(crate) fn deploy_label(v: &DeployVerdict) -> String {
    format!("{} {} ({})", v.service, v.deploy_id, v.environment)
}

/// `error rate 0.5% → 6.2% (12.4x)`.
pub(crate) fn movement(e: &MetricEvidence) -> String {
    let before = baseline_level(e);
    let after = e.observed.mean;
    format!(
        "{} {} → {} ({})",
        metric_label(&e.metric),
        format_value(&e.metric, before),
        format_value(&e.metric, after),
        format_change(before, after)
    )
}

fn rose_or_fell(e: &MetricEvidence) -> &'static str {
    if e.effect_absolute < 0.0 {
        "fell"
    } else {
        "rose"
    }
}

/// The log signature to lead with: new before surging, then the most severe level, then
/// the strongest rise.
pub fn dominant_signature(v: &DeployVerdict) -> Option<&SignatureEvidence> {
    v.signatures.iter().max_by(|a, b| {
        let rank = |s: &SignatureEvidence| (s.change == SignatureChange::New, s.level);
        rank(a)
            .cmp(&rank(b))
            .then(a.score.total_cmp(&b.score))
            .then(b.signature.cmp(&a.signature))
    })
}

/// One sentence about a signature.
pub(crate) fn signature_sentence(v: &DeployVerdict, s: &SignatureEvidence) -> String {
    let what = match s.change {
        SignatureChange::New => format!(
            "New {} log signature \"{}\" appeared {} times after the deploy",
            s.level.as_str(),
            s.template,
            s.count_after
        ),
        SignatureChange::Surging => format!(
            "The {} log signature \"{}\" surged from {}/min to {}/min ({} times after the deploy, {} before)",
            s.level.as_str(),
            s.template,
            format_number(s.rate_before_per_min),
            format_number(s.rate_after_per_min),
            s.count_after,
            s.count_before
        ),
    };
    format!(
        "{what}, first at {} ({}); for example: \"{}\"",
        s.first_seen,
        relative_to_deploy(s.first_seen.secs_since(v.deployed_at)),
        s.example
    )
}

fn timing_sentence(v: &DeployVerdict, e: &MetricEvidence) -> Option<String> {
    let start = e.change_started_at?;
    let mut s = format!(
        "The shift started at {} ({})",
        start,
        relative_to_deploy(start.secs_since(v.deployed_at))
    );
    if let Some(d) = e.detected_at.or(v.detected_at) {
        s.push_str(&format!(
            " and was detected at {} ({})",
            d,
            relative_to_deploy(d.secs_since(v.deployed_at))
        ));
    }
    s.push('.');
    Some(s)
}

fn certainty_sentence(v: &DeployVerdict, e: &MetricEvidence) -> String {
    // Which test decided, in words: the reader should know whether a few extreme samples,
    // a sustained drift or a new level made the call.
    let test = match e.test {
        TestKind::Cusum => "sequential test (CUSUM of the values' ranks among the baseline's)",
        TestKind::TailExceedance => {
            "extreme-sample test (samples beyond the baseline's fitted tail, in baseline spreads)"
        }
        TestKind::LevelShift => {
            "level test (median since the deploy against the baseline's level, in standard errors)"
        }
        TestKind::LocalLevel => {
            "local-level test (median since the deploy against the level just before it, in standard errors of the series' own steps)"
        }
        TestKind::BinomialCusum => "error-count test (binomial CUSUM of errors among requests)",
    };
    format!(
        "The {} {test} reached {} against a threshold of {}, set for a false-alarm target of {} per deploy.",
        metric_label(&e.metric),
        format_number(e.statistic),
        format_number(e.threshold),
        format_percent(v.false_alarm_rate)
    )
}

/// One sentence about one metric, whatever its status.
pub(crate) fn metric_sentence(v: &DeployVerdict, e: &MetricEvidence) -> String {
    let label = metric_label(&e.metric);
    let before = baseline_level(e);
    let after = e.observed.mean;
    let mut s = match e.status {
        MetricStatus::Regressed => {
            let mut s = format!(
                "{label}: {} before, {} after ({}, {}, {} σ)",
                format_value(&e.metric, before),
                format_value(&e.metric, after),
                format_delta(&e.metric, e.effect_absolute),
                format_change(before, after),
                format_number(e.effect_sigmas)
            );
            if let Some(start) = e.change_started_at {
                s.push_str(&format!(
                    "; shift from {}",
                    relative_to_deploy(start.secs_since(v.deployed_at))
                ));
            }
            s.push_str(&format!(
                "; statistic {} vs threshold {}",
                format_number(e.statistic),
                format_number(e.threshold)
            ));
            s
        }
        MetricStatus::Ok => format!(
            "{label}: {} before, {} after ({}), within the {} that would have counted as material",
            format_value(&e.metric, before),
            format_value(&e.metric, after),
            format_delta(&e.metric, e.effect_absolute),
            format_delta(&e.metric, e.min_effect).trim_start_matches('+')
        ),
        MetricStatus::PreExisting => {
            let when = e
                .change_started_at
                .map(|t| format!(" from {}", relative_to_deploy(t.secs_since(v.deployed_at))))
                .unwrap_or_default();
            format!(
                "{label}: already shifting{when} ({} → {}), so not attributed to this deploy",
                format_value(&e.metric, before),
                format_value(&e.metric, after)
            )
        }
        MetricStatus::LateChange => {
            let when = e
                .change_started_at
                .map(|t| format!(" {}", relative_to_deploy(t.secs_since(v.deployed_at))))
                .unwrap_or_default();
            format!(
                "{label}: changed ({} → {}, {}), but it began{when}, too late to be taken as its doing",
                format_value(&e.metric, before),
                format_value(&e.metric, after),
                format_delta(&e.metric, e.effect_absolute)
            )
        }
        MetricStatus::Undecided => format!(
            "{label}: {} before, {} after ({}), not judged: the watch stopped at the first regression",
            format_value(&e.metric, before),
            format_value(&e.metric, after),
            format_delta(&e.metric, e.effect_absolute)
        ),
        MetricStatus::Insufficient => format!(
            "{label}: not enough data to test ({} samples before, {} after)",
            e.baseline.n, e.observed.n
        ),
    };
    if let Some(c) = &e.counts {
        if c.baseline_requests > 0.0 || c.observed_requests > 0.0 {
            s.push_str(&format!(
                "; {} errors in {} requests before, {} in {} after",
                format_count(c.baseline_errors),
                format_count(c.baseline_requests),
                format_count(c.observed_errors),
                format_count(c.observed_requests)
            ));
        }
    }
    if let Some(note) = &e.note {
        s.push_str("; ");
        s.push_str(note.trim_end_matches('.'));
    }
    s.push('.');
    s
}

fn watch_sentence(v: &DeployVerdict) -> String {
    let w = &v.window;
    let from = w
        .baseline_from
        .map(|t| format!(" from {t}"))
        .unwrap_or_default();
    format!(
        "Watched {} after the deploy ({} samples, until {}) against a baseline of {} samples{from}.",
        format_duration(w.watched_secs),
        w.samples_after,
        w.watched_until,
        w.baseline_samples
    )
}

fn common_details(v: &DeployVerdict, details: &mut Vec<String>) {
    for e in &v.evidence {
        details.push(metric_sentence(v, e));
    }
    for s in &v.signatures {
        details.push(format!("{}.", signature_sentence(v, s)));
    }
    details.push(watch_sentence(v));
    for w in &v.warnings {
        details.push(format!("Note: {}", w));
    }
}

fn join_and(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

/// The canary comparison, when it found the new version worse than the old one running
/// at the same time.
fn canary_worse(v: &DeployVerdict) -> Option<&crate::canary::CanaryEvidence> {
    v.canary
        .as_ref()
        .filter(|c| c.outcome == crate::canary::CanaryOutcome::Worse)
}

fn explain_regression(v: &DeployVerdict) -> Explanation {
    let regressed: Vec<&MetricEvidence> = v.regressed().collect();
    let dominant = dominant_signature(v);
    let headline = match (regressed.first(), dominant) {
        (Some(e), _) => format!("{}: regression, {}", deploy_label(v), movement(e)),
        (None, Some(s)) => format!(
            "{}: regression, {} log signature \"{}\" ({} times)",
            deploy_label(v),
            match s.change {
                SignatureChange::New => "new",
                SignatureChange::Surging => "surging",
            },
            s.template,
            s.count_after
        ),
        (None, None) => match canary_worse(v) {
            Some(c) => format!("{}: regression, {}", deploy_label(v), c.summary),
            None => format!("{}: regression", deploy_label(v)),
        },
    };

    let mut summary = format!(
        "Deploy {} of {} to {} at {} was followed by a regression",
        v.deploy_id, v.service, v.environment, v.deployed_at
    );
    if let Some(c) = canary_worse(v) {
        summary.push_str(&format!(" ({})", c.summary));
    }
    if regressed.is_empty() {
        summary.push('.');
    } else {
        let moves: Vec<String> = regressed
            .iter()
            .map(|e| {
                let before = baseline_level(e);
                format!(
                    "{} {} from {} to {} ({})",
                    metric_label(&e.metric),
                    rose_or_fell(e),
                    format_value(&e.metric, before),
                    format_value(&e.metric, e.observed.mean),
                    format_change(before, e.observed.mean)
                )
            })
            .collect();
        summary.push_str(&format!(": {}.", join_and(&moves)));
    }
    if let Some(first) = regressed.first() {
        if let Some(t) = timing_sentence(v, first) {
            summary.push(' ');
            summary.push_str(&t);
        }
        summary.push(' ');
        summary.push_str(&certainty_sentence(v, first));
    } else if let Some(d) = v.detected_at {
        summary.push_str(&format!(
            " It was detected at {} ({}).",
            d,
            relative_to_deploy(d.secs_since(v.deployed_at))
        ));
    }
    if let Some(s) = dominant {
        summary.push_str(&format!(
            " Dominant log signature: \"{}\", {} times after the deploy, first at {}.",
            s.template, s.count_after, s.first_seen
        ));
    }

    let mut details = Vec::new();
    common_details(v, &mut details);
    Explanation {
        headline,
        summary,
        details,
    }
}

fn explain_healthy(v: &DeployVerdict) -> Explanation {
    let tested: Vec<&MetricEvidence> = v
        .evidence
        .iter()
        .filter(|e| e.status == MetricStatus::Ok)
        .collect();
    let headline = format!(
        "{}: healthy, no material change in {} watched {} over {}",
        deploy_label(v),
        tested.len(),
        if tested.len() == 1 {
            "metric"
        } else {
            "metrics"
        },
        format_duration(v.window.watched_secs)
    );
    let mut summary = format!(
        "Deploy {} of {} to {} at {} looks healthy. {}",
        v.deploy_id,
        v.service,
        v.environment,
        v.deployed_at,
        watch_sentence(v)
    );
    if !tested.is_empty() {
        let moves: Vec<String> = tested.iter().map(|e| movement(e)).collect();
        let floors: Vec<String> = tested
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    format_delta(&e.metric, harmful_sign(e) * e.min_effect),
                    metric_label(&e.metric)
                )
            })
            .collect();
        summary.push_str(&format!(
            " No watched metric moved materially: {}. The smallest changes that would have counted: {}.",
            join_and(&moves),
            join_and(&floors)
        ));
    }
    if !v.signatures.is_empty() {
        summary.push_str(&format!(
            " {} log {} new or surging; see the details.",
            v.signatures.len(),
            if v.signatures.len() == 1 {
                "signature is"
            } else {
                "signatures are"
            }
        ));
    }
    let mut details = Vec::new();
    common_details(v, &mut details);
    details.push(format!(
        "Thresholds were set for a false-alarm target of {} per deploy.",
        format_percent(v.false_alarm_rate)
    ));
    Explanation {
        headline,
        summary,
        details,
    }
}

/// `+1` when a rise is harmful, `-1` when a fall is.
fn harmful_sign(e: &MetricEvidence) -> f64 {
    if e.direction == crate::config::Direction::Down {
        -1.0
    } else {
        1.0
    }
}

/// A short phrase for an inconclusive cause.
pub(crate) fn cause_phrase(cause: Option<InconclusiveCause>) -> &'static str {
    match cause {
        Some(InconclusiveCause::NoData) => "no data for the service",
        Some(InconclusiveCause::ShortBaseline) => "too little baseline before the deploy",
        Some(InconclusiveCause::LowTraffic) => "too little traffic after the deploy",
        Some(InconclusiveCause::Gaps) => "gaps in the data during the watch",
        Some(InconclusiveCause::UnsteadyBaseline) => "a baseline too unsteady to judge against",
        Some(InconclusiveCause::PreExistingShift) => "a shift that began before the deploy",
        Some(InconclusiveCause::LateChange) => "a change that began too long after the deploy",
        None => "not enough information",
    }
}

fn explain_inconclusive(v: &DeployVerdict) -> Explanation {
    let headline = format!(
        "{}: inconclusive, {}",
        deploy_label(v),
        cause_phrase(v.inconclusive_cause)
    );
    let mut summary = format!(
        "Deploy {} of {} to {} at {} could not be judged: {}. {}",
        v.deploy_id,
        v.service,
        v.environment,
        v.deployed_at,
        cause_phrase(v.inconclusive_cause),
        v.reason.trim()
    );
    if !summary.ends_with('.') {
        summary.push('.');
    }
    match &v.needed {
        Some(n) => {
            summary.push_str(" What would decide it: ");
            summary.push_str(n.trim());
            if !summary.ends_with('.') {
                summary.push('.');
            }
        }
        None => summary.push_str(" More data after the deploy would decide it."),
    }
    let mut details = Vec::new();
    common_details(v, &mut details);
    Explanation {
        headline,
        summary,
        details,
    }
}
