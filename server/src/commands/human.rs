//! Verdicts printed for people: the block `watchdog demo` and `watchdog run` show.

use std::fmt::Write;

use watchdog_core::explain::{format_value, metric_label, triage};
use watchdog_core::{DeployVerdict, MetricStatus, VerdictKind};

/// One verdict as a readable block: verdict, detection time, the explanation (given, so
/// that a model's rephrasing can be shown), a metric table, the top log signatures, the
/// warnings and the triage line.
pub fn verdict_block(v: &DeployVerdict, explanation: &str) -> String {
    let mut out = String::new();
    let verdict = match v.verdict {
        VerdictKind::Regression => "REGRESSION",
        VerdictKind::Healthy => "HEALTHY",
        VerdictKind::Inconclusive => "INCONCLUSIVE",
    };
    let _ = writeln!(
        out,
        "━━ {} {} ({}) deployed {}",
        v.service, v.deploy_id, v.environment, v.deployed_at
    );
    let _ = writeln!(out, "   verdict: {verdict}");
    if let Some(at) = v.detected_at {
        let _ = writeln!(
            out,
            "   detected: {} ({:.0} s after the deploy)",
            at,
            at.secs_since(v.deployed_at)
        );
    }
    out.push('\n');
    for line in explanation.lines() {
        let _ = writeln!(out, "   {line}");
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "   {:<18} {:>12} {:>12} {:>9} {:>16}",
        "metric", "baseline", "observed", "status", "statistic/limit"
    );
    for m in &v.evidence {
        let center =
            |s: &watchdog_core::Summary| if m.counts.is_some() { s.mean } else { s.median };
        let _ = writeln!(
            out,
            "   {:<18} {:>12} {:>12} {:>9} {:>16}",
            metric_label(&m.metric),
            format_value(&m.metric, center(&m.baseline)),
            format_value(&m.metric, center(&m.observed)),
            match m.status {
                MetricStatus::Regressed => "REGRESSED",
                MetricStatus::PreExisting => "pre-exist",
                MetricStatus::LateChange => "late",
                MetricStatus::Ok => "ok",
                MetricStatus::Undecided => "not judged",
                MetricStatus::Insufficient => "no data",
            },
            format!("{:.1} / {:.1}", m.statistic, m.threshold)
        );
    }
    for s in v.signatures.iter().take(3) {
        let _ = writeln!(
            out,
            "   log: {:?} {} x{} after the deploy (first {}), e.g. {:?}",
            s.change, s.template, s.count_after, s.first_seen, s.example
        );
    }
    for w in &v.warnings {
        let _ = writeln!(out, "   note: {w}");
    }
    let t = triage(v);
    let _ = writeln!(
        out,
        "\n   triage: {} — {}",
        t.hypothesis, t.recommended_action
    );
    out
}
