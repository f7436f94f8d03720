//! The outcome of a deploy's watch: a verdict with its evidence.

use serde::{Deserialize, Serialize};

use crate::config::Direction;
use crate::time::Timestamp;

/// The three answers to "did this release break something?".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictKind {
    /// A harmful, material change that started at or after the deploy.
    Regression,
    /// Watched long enough with enough data, and nothing material changed.
    Healthy,
    /// Not enough information to say either; the reason says what is missing.
    Inconclusive,
}

impl VerdictKind {
    /// Lowercase name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Regression => "regression",
            VerdictKind::Healthy => "healthy",
            VerdictKind::Inconclusive => "inconclusive",
        }
    }
}

/// Why a verdict could not be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InconclusiveCause {
    /// No samples at all for the deployed service.
    NoData,
    /// Too few samples before the deploy to know what normal looks like.
    ShortBaseline,
    /// Too few samples (or requests) after the deploy to detect the smallest material change.
    LowTraffic,
    /// Samples missing for long stretches of the watch.
    Gaps,
    /// The baseline wanders so much (strong autocorrelation) that no test could tell the
    /// smallest material change from its own drift.
    UnsteadyBaseline,
    /// A shift that began before the deploy leaves too little clean baseline to judge it.
    PreExistingShift,
    /// A material change began, but later after the deploy than a change can be taken
    /// as the deploy's (`attribution_window_secs`).
    LateChange,
}

/// What was concluded about one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricStatus {
    /// Material harmful shift that started at or after the deploy.
    Regressed,
    /// Material harmful shift that started before the deploy.
    PreExisting,
    /// Material harmful shift that began later after the deploy than a change is taken
    /// as the deploy's (`attribution_window_secs`).
    LateChange,
    /// No material harmful shift.
    Ok,
    /// Not judged: another metric's regression ended the watch before this metric's
    /// test reached a decision either way (its numbers are still shown).
    Undecided,
    /// Not enough data to test this metric.
    Insufficient,
}

/// Which test produced the metric's evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestKind {
    /// CUSUM on the rank scores of the values among the baseline's.
    Cusum,
    /// Two samples beyond the baseline's extrapolated tail, close together.
    TailExceedance,
    /// The median of the samples since the deploy against the baseline's level, with an
    /// error that allows for autocorrelation (see `watch::level`).
    LevelShift,
    /// The median of the samples since the deploy against the level just before it,
    /// with the error of a random walk (a sticky series; see `watch::level`).
    LocalLevel,
    /// Bernoulli-likelihood CUSUM on error and request counts.
    BinomialCusum,
}

/// Location and spread of a stretch of one metric.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// Mean.
    pub mean: f64,
    /// Robust standard deviation (outliers winsorized).
    pub spread: f64,
}

/// Error and request totals behind a count-aware test.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct CountEvidence {
    /// Errors in the baseline.
    pub baseline_errors: f64,
    /// Requests in the baseline.
    pub baseline_requests: f64,
    /// Errors after the deploy (after the change start, for a regression).
    pub observed_errors: f64,
    /// Requests after the deploy (after the change start, for a regression).
    pub observed_requests: f64,
    /// Requests the test needs after the deploy to detect the smallest material rise.
    pub requests_needed: f64,
    /// Extra-binomial variation factor estimated from the baseline (1 = pure binomial).
    pub overdispersion: f64,
}

/// The evidence about one metric of a deploy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricEvidence {
    /// Metric name (`error_rate` for the count test).
    pub metric: String,
    /// Harmful direction that was tested.
    pub direction: Direction,
    /// What was concluded.
    pub status: MetricStatus,
    /// Which test.
    pub test: TestKind,
    /// The baseline before the deploy.
    pub baseline: Summary,
    /// After the deploy (after the estimated change start when there is one).
    pub observed: Summary,
    /// `observed.mean - baseline level`, in the metric's unit.
    pub effect_absolute: f64,
    /// Effect relative to the baseline level, when the level is not zero.
    pub effect_relative: Option<f64>,
    /// Effect in baseline standard deviations.
    pub effect_sigmas: f64,
    /// Smallest effect that counts as material for this metric, in its unit.
    pub min_effect: f64,
    /// Estimated start of the shift.
    pub change_started_at: Option<Timestamp>,
    /// When the sequential test crossed its threshold.
    pub detected_at: Option<Timestamp>,
    /// The test statistic's largest value during the watch.
    pub statistic: f64,
    /// The threshold derived from the false-alarm target.
    pub threshold: f64,
    /// Lag-1 autocorrelation of the baseline, used to widen the noise estimate.
    pub autocorrelation: f64,
    /// Counts, for the count-aware test.
    pub counts: Option<CountEvidence>,
    /// Anything else worth saying in one sentence.
    pub note: Option<String>,
}

/// How a log signature became evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureChange {
    /// Never seen in the baseline.
    New,
    /// Seen before, significantly more often now.
    Surging,
}

/// A log signature that is new or surging after the deploy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignatureEvidence {
    /// Stable signature id.
    pub signature: String,
    /// Template with `<*>` for variables.
    pub template: String,
    /// New or surging.
    pub change: SignatureChange,
    /// Most severe level seen for it after the deploy.
    pub level: crate::samples::LogLevel,
    /// Occurrences in the baseline window.
    pub count_before: u64,
    /// Occurrences after the deploy.
    pub count_after: u64,
    /// Occurrences per minute before.
    pub rate_before_per_min: f64,
    /// Occurrences per minute after.
    pub rate_after_per_min: f64,
    /// First occurrence after the deploy.
    pub first_seen: Timestamp,
    /// One message as logged.
    pub example: String,
    /// Significance of the rise: -log10 of the test's p-value (higher is stronger).
    pub score: f64,
    /// The occurrence at which the count after the deploy first became significant.
    #[serde(default)]
    pub significant_at: Option<Timestamp>,
}

/// How a watch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchEnd {
    /// A regression was detected; the verdict is final.
    Detection,
    /// The monitoring window elapsed.
    Window,
    /// The next deploy of the same service closed this one.
    NextDeploy,
    /// The data ended (replay) or the engine was flushed.
    EndOfData,
}

/// The stretch of time a verdict is about.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchWindow {
    /// First baseline sample used.
    pub baseline_from: Option<Timestamp>,
    /// Number of baseline samples (of the fullest metric).
    pub baseline_samples: usize,
    /// Last instant covered.
    pub watched_until: Timestamp,
    /// Seconds watched after the deploy.
    pub watched_secs: f64,
    /// Samples after the deploy (of the fullest metric).
    pub samples_after: usize,
    /// Why the watch ended.
    pub ended_by: WatchEnd,
}

/// The verdict on one deploy, with everything it rests on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeployVerdict {
    /// The deploy's id.
    pub deploy_id: String,
    /// Service deployed.
    pub service: String,
    /// Environment deployed to.
    pub environment: String,
    /// When it was deployed.
    pub deployed_at: Timestamp,
    /// The answer.
    pub verdict: VerdictKind,
    /// When the regression was detected (regressions only).
    pub detected_at: Option<Timestamp>,
    /// One readable sentence that says why.
    pub reason: String,
    /// For inconclusive verdicts, what was missing.
    pub inconclusive_cause: Option<InconclusiveCause>,
    /// For inconclusive verdicts, what would decide it, when it can be said.
    pub needed: Option<String>,
    /// Time covered.
    pub window: WatchWindow,
    /// Per-metric evidence, regressed metrics first.
    pub evidence: Vec<MetricEvidence>,
    /// New or surging log signatures, strongest first.
    pub signatures: Vec<SignatureEvidence>,
    /// Things a reader should know that did not change the verdict (pre-existing shifts,
    /// a burst of a new error signature on an otherwise healthy deploy, late samples).
    pub warnings: Vec<String>,
    /// The per-deploy false-alarm target the thresholds were derived from.
    pub false_alarm_rate: f64,
    /// The canary-versus-stable comparison, when both versions ran at the same time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<crate::canary::CanaryEvidence>,
}

impl DeployVerdict {
    /// The regressed metrics' evidence.
    pub fn regressed(&self) -> impl Iterator<Item = &MetricEvidence> {
        self.evidence
            .iter()
            .filter(|e| e.status == MetricStatus::Regressed)
    }
}
