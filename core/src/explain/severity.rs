//! How bad a regression is, from its evidence alone.

use serde::{Deserialize, Serialize};

use crate::config::Direction;
use crate::samples::LogLevel;
use crate::verdict::{DeployVerdict, MetricEvidence, VerdictKind};

/// How urgently a deploy's outcome needs a human. Ordered from most to least severe, so
/// `Severity::Critical < Severity::Low` and sorting puts the worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Customers are failing at scale: page someone now.
    Critical,
    /// A user-facing regression that warrants a rollback decision soon.
    High,
    /// A real but contained regression: look at it during working hours.
    Medium,
    /// Nothing regressed (healthy or inconclusive deploys).
    Low,
}

impl Severity {
    /// Lowercase name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error-rate rise, in absolute terms (a fraction), that is critical on its own.
const CRITICAL_ERROR_RISE: f64 = 0.05;
/// Error-rate fold that is critical when the rise is also at least [`NOTABLE_ERROR_RISE`].
const CRITICAL_ERROR_FOLD: f64 = 10.0;
/// Smallest absolute error-rate rise for the fold rule, so 0.01 % → 0.1 % is not critical.
const NOTABLE_ERROR_RISE: f64 = 0.01;
/// Latency fold (observed over baseline) that is critical.
const CRITICAL_LATENCY_FOLD: f64 = 3.0;
/// Relative latency rise that is high.
const HIGH_LATENCY_RISE: f64 = 0.5;
/// Latency shift, in baseline standard deviations, that is high whatever its size.
const HIGH_LATENCY_SIGMAS: f64 = 10.0;
/// Relative throughput drop that is critical (traffic is not arriving or not served).
const CRITICAL_THROUGHPUT_DROP: f64 = 0.5;
/// Relative throughput drop that is high.
const HIGH_THROUGHPUT_DROP: f64 = 0.2;
/// Occurrences of a new error-level signature that make a regression high.
const HIGH_SIGNATURE_COUNT: u64 = 10;

/// How severe a deploy's outcome is. The rules, first match wins:
///
/// - Not a regression (healthy or inconclusive): **low**.
/// - **Critical** when any of: the error rate rose by 5 percentage points or more; the
///   error rate rose at least 10-fold and by at least 1 point; a latency metric at least
///   tripled; request throughput fell by half or more; a log signature at fatal level is
///   new or surging after the deploy.
/// - **High** when any of: the error rate regressed at all; a latency metric rose by 50 %
///   or more, or by 10 baseline standard deviations or more; throughput fell by 20 % or
///   more; an error-level signature is new after the deploy with at least 10 occurrences.
/// - **Medium**: every other regression (a modest latency rise, an unknown metric, a
///   surge of warnings).
///
/// Error rate and latency are what users feel, which is why they dominate.
pub fn severity(v: &DeployVerdict) -> Severity {
    if v.verdict != VerdictKind::Regression {
        return Severity::Low;
    }
    let mut worst = Severity::Medium;
    for e in v.regressed() {
        worst = worst.min(metric_severity(e));
    }
    for s in &v.signatures {
        let sev = if s.level >= LogLevel::Fatal {
            Severity::Critical
        } else if s.level.is_error()
            && s.change == crate::verdict::SignatureChange::New
            && s.count_after >= HIGH_SIGNATURE_COUNT
        {
            Severity::High
        } else {
            Severity::Medium
        };
        worst = worst.min(sev);
    }
    worst
}

/// The level before the deploy: the observed mean minus the effect.
pub(crate) fn baseline_level(e: &MetricEvidence) -> f64 {
    e.observed.mean - e.effect_absolute
}

fn is_latency(metric: &str) -> bool {
    metric.ends_with("_latency_ms") || metric.ends_with("_latency") || metric == "latency_ms"
}

fn is_throughput(metric: &str) -> bool {
    matches!(metric, "request_rate" | "requests" | "throughput" | "rps")
}

fn metric_severity(e: &MetricEvidence) -> Severity {
    let before = baseline_level(e);
    let after = e.observed.mean;
    let fold = if before > 0.0 {
        after / before
    } else {
        f64::INFINITY
    };
    if e.metric == "error_rate" || e.metric.ends_with("_error_rate") {
        let rise = e.effect_absolute;
        if rise >= CRITICAL_ERROR_RISE
            || (fold >= CRITICAL_ERROR_FOLD && rise >= NOTABLE_ERROR_RISE)
        {
            return Severity::Critical;
        }
        return Severity::High;
    }
    if is_latency(&e.metric) && e.effect_absolute > 0.0 {
        if fold >= CRITICAL_LATENCY_FOLD {
            return Severity::Critical;
        }
        if fold >= 1.0 + HIGH_LATENCY_RISE || e.effect_sigmas >= HIGH_LATENCY_SIGMAS {
            return Severity::High;
        }
        return Severity::Medium;
    }
    if is_throughput(&e.metric) && e.direction != Direction::Up && e.effect_absolute < 0.0 {
        let drop = if before > 0.0 {
            -e.effect_absolute / before
        } else {
            0.0
        };
        if drop >= CRITICAL_THROUGHPUT_DROP {
            return Severity::Critical;
        }
        if drop >= HIGH_THROUGHPUT_DROP {
            return Severity::High;
        }
    }
    Severity::Medium
}
