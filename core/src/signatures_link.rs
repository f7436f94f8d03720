//! Log signatures as deploy evidence: attaches new and surging signatures to a verdict,
//! and turns a brand-new error signature into a regression when the configuration says
//! so.
//!
//! Policy (`Config::new_error_signature`, default `regression`): a signature never seen
//! in the baseline, logged at error level or worse, whose count after the deploy is
//! significant under the conditional binomial test of [`signature_evidence`], makes the
//! deploy a regression even when every metric looks healthy — a release that starts
//! throwing a new exception is broken for someone, whether or not the error rate metric
//! moved (it may not even be measured). Its detection time is the instant the count
//! became significant. With `warning`, the verdict keeps what the metrics say and the
//! signature is listed in its warnings. Surging (known) signatures are always evidence,
//! never a verdict on their own: a known error getting more frequent is what the error
//! rate measures.

use crate::config::{Config, SignaturePolicy};
use crate::signatures::{signature_evidence, LogHistory, TemplateMiner};
use crate::time::Timestamp;
use crate::verdict::{
    DeployVerdict, InconclusiveCause, SignatureChange, SignatureEvidence, VerdictKind,
};
use crate::watch::{human_secs, Watch};

/// Start of the log baseline: the metric baseline's start, or the preferred baseline
/// window, whichever reaches further back.
fn baseline_from(w: &Watch, cfg: &Config) -> Timestamp {
    let pref = w.deploy_ms - cfg.baseline_window_secs as i64 * 1000;
    Timestamp(w.baseline_from.map_or(pref, |b| b.min(pref)))
}

fn new_error(ev: &[SignatureEvidence]) -> Option<&SignatureEvidence> {
    ev.iter()
        .filter(|s| s.change == SignatureChange::New && s.level.is_error())
        .filter(|s| s.significant_at.is_some())
        .min_by_key(|s| s.significant_at)
}

/// When a new error signature became significant, if one has by `now_ms`.
pub(crate) fn new_error_at(
    logs: &LogHistory,
    miner: &TemplateMiner,
    w: &Watch,
    now_ms: i64,
    cfg: &Config,
    alpha: f64,
) -> Option<i64> {
    let ev = signature_evidence(
        logs,
        miner,
        baseline_from(w, cfg),
        w.deploy.timestamp,
        Timestamp(now_ms),
        alpha,
    );
    new_error(&ev)
        .and_then(|s| s.significant_at)
        .map(|t| t.millis())
}

/// Adds the log evidence to `v` and applies the new-error-signature policy.
pub(crate) fn attach(
    v: &mut DeployVerdict,
    logs: &LogHistory,
    miner: &TemplateMiner,
    w: &Watch,
    until_ms: i64,
    cfg: &Config,
) {
    let from = baseline_from(w, cfg);
    // The list shown with the verdict is evidence, not a decision: it is tested at the
    // whole budget. What may turn the verdict is tested at the logs' share of it, after
    // the looks already taken (see `Watch::log_alpha`).
    let window =
        |alpha| signature_evidence(logs, miner, from, v.deployed_at, Timestamp(until_ms), alpha);
    v.signatures = window(cfg.false_alarm_rate);
    let decisive = window(w.log_alpha(cfg));
    for shown in v
        .signatures
        .iter_mut()
        .filter(|s| s.change == SignatureChange::New && s.level.is_error())
    {
        shown.significant_at = decisive
            .iter()
            .find(|d| d.signature == shown.signature)
            .and_then(|d| d.significant_at);
    }
    let Some(s) = new_error(&decisive).cloned() else {
        return;
    };
    let sentence = format!(
        "new {} signature \"{}\" logged {} times in the {} after the deploy, never in the {} before (first at {}, e.g. {:?})",
        s.level.as_str(),
        s.template,
        s.count_after,
        human_secs((until_ms - v.deployed_at.millis()) as f64 / 1000.0),
        human_secs(v.deployed_at.secs_since(from)),
        s.first_seen,
        s.example
    );
    match (cfg.new_error_signature, v.verdict) {
        (SignaturePolicy::Regression, VerdictKind::Regression) => {}
        (SignaturePolicy::Regression, _) => {
            let metrics_said = v.reason.clone();
            v.verdict = VerdictKind::Regression;
            v.detected_at = s.significant_at;
            v.inconclusive_cause = None::<InconclusiveCause>;
            v.needed = None;
            v.reason = sentence;
            v.warnings.push(format!("metrics alone: {metrics_said}"));
        }
        (SignaturePolicy::Warning, _) => v.warnings.push(sentence),
    }
}
