//! Canary versus stable: judging a new version against the old one running at the same
//! time.
//!
//! # Why a concurrent control
//! Before/after detection compares the minutes after a deploy with the hour before it. That
//! is all there is when a release replaces every instance at once, but it cannot tell the
//! release from anything else that changed at the same time: the daily peak arriving, a
//! shared database failing. During a progressive rollout (Argo Rollouts, Flagger, a
//! Kubernetes rolling update) the previous version keeps serving part of the traffic, and
//! it is the perfect control: it sees the same hour, the same load, the same dependencies.
//! Whatever moves both versions alike is not the release's doing.
//!
//! # Which samples are which
//! A sample carries a `version`: a version string (an image tag, a rollout's pod-template
//! hash) or a group name (`canary`, `stable`, configurable in [`CanaryConfig`]). A version
//! equal to the `deploy_id` of the series' latest deploy (or a canary group name) is the
//! **canary**; every other version is the **stable** one. The before/after tests see the
//! stable samples until the first canary sample of a deploy arrives, and the canary's after
//! it, so their baseline is the old version and their watch is the new one, as without
//! versions. Samples without a version go to the before/after tests as always; with one
//! version only, nothing here applies.
//!
//! # The paired test of a continuous metric
//! Canary and stable samples are paired by time (each canary sample with the stable sample
//! nearest to it, within half a sampling interval). The pair difference `dᵢ` cancels
//! everything the two versions share. Latencies are compared as log ratios
//! `ln(canaryᵢ / stableᵢ)`, so that a shared slowdown that multiplies both by 1.5 also
//! cancels; metrics that can be zero (`error_rate` without counts) as plain differences.
//!
//! If the release changes nothing, canary and stable instances are exchangeable and each
//! `dᵢ` is as likely to be positive as negative, with the same size either way: `dᵢ` is
//! symmetric around 0 whatever the shape of the noise. Wilcoxon's signed-rank statistic
//! `W = Σ sign(dᵢ)·rank(|dᵢ|)` uses exactly that and nothing more: under no difference its
//! mean is 0 and its variance `Σ rank²`, for every symmetric distribution, so its false-
//! alarm rate does not rest on Gaussian noise (heavy tails and outliers only move ranks).
//! Neighbouring pairs can be correlated (a slow canary pod stays slow for a while): the
//! variance is widened by `(1+ρ)/(1−ρ)`, ρ the lag-1 autocorrelation of the signed ranks,
//! the same correction the before/after tests apply to their sums.
//!
//! # The count test of the error rate
//! When both versions report `errors` and `requests`, the error rate is compared exactly.
//! In an interval where canary and stable together had `e` errors, and the canary served a
//! share `q = n_canary / (n_canary + n_stable)` of the requests, equal error rates mean
//! that each error is the canary's with probability `q`: the canary's errors are
//! Binomial(e, q), **whatever the error rate is**. A dependency outage that multiplies
//! both versions' errors by thirty changes `e`, not `q`, so it cannot make the canary look
//! worse. Summed over intervals, `(Σ e_c − Σ e·q) / √(φ·Σ e·q·(1−q))` is standard normal
//! under no difference; `φ ≥ 1` is Pearson's dispersion of the per-interval counts, which
//! widens the test when the counts vary more than binomially.
//!
//! # Calibration
//! The canary comparison gets the deploy's whole false-alarm budget `false_alarm_rate`,
//! split evenly over the metrics compared (Bonferroni). It is looked at as the pairs
//! accumulate, at `min_pairs` pairs and then every time their number has grown by half
//! (a geometric schedule of `L` looks over the expected pairs of the window), and once more
//! when the verdict is built; each look gets `1/(L+1)` of the metric's budget. All looks
//! together therefore stay within the budget, and a bad canary is still stopped early,
//! which is the point of gating a rollout. As everywhere in WatchDog, a significant
//! difference is a regression only when it is also material: at least the metric's
//! `min_absolute_effect` and `min_relative_effect` of the stable version's level.
//!
//! # One verdict from both
//! - The canary is significantly and materially worse than stable on some metric: a
//!   regression, at once.
//! - Before/after called a regression, but for every regressed metric the canary's excess
//!   over stable is bounded (one-sided 95 % upper bound) below the before/after effect:
//!   the shift hit both versions, a shared cause, and the deploy is healthy. (A drop in
//!   throughput is the traffic split itself when the two versions' total did not fall.)
//! - Otherwise the before/after verdict stands, with the canary comparison beside it.
//!
//! While both versions run, a before/after detection waits for the end of the window (or a
//! canary detection) instead of closing the watch, so that the control can speak.

use serde::{Deserialize, Serialize};

use crate::config::{Config, Direction};
use crate::samples::Deploy;
use crate::stats::{lag1_autocorrelation, median, normal_quantile};
use crate::time::Timestamp;
use crate::verdict::{DeployVerdict, MetricStatus, VerdictKind};
use crate::watch::{joined, lower_bound, History};

/// How samples are told apart as canary and stable (`[canary]` in the configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanaryConfig {
    /// Whether versions are compared at all. Default true.
    pub enabled: bool,
    /// Version values that name the canary group whatever the deploy's id. Default
    /// `["canary"]`.
    pub canary_groups: Vec<String>,
    /// Version values that name the stable group. Default `["stable", "primary"]`
    /// (Flagger's name for the old version's workload is `<app>-primary`).
    pub stable_groups: Vec<String>,
    /// Fewest canary–stable pairs before the comparison is looked at. Default 10.
    pub min_pairs: usize,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig {
            enabled: true,
            canary_groups: vec!["canary".into()],
            stable_groups: vec!["stable".into(), "primary".into()],
            min_pairs: 10,
        }
    }
}

/// Which test compared a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryTest {
    /// Wilcoxon signed-rank test on paired log ratios (or differences).
    SignedRank,
    /// Conditional binomial test on the two versions' error and request counts.
    ConditionalBinomial,
}

/// What the canary comparison concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryOutcome {
    /// The canary is significantly and materially worse than stable.
    Worse,
    /// No material difference between the versions.
    NoDifference,
    /// Before/after saw a shift, but it hit the stable version as much: a shared cause.
    SharedShift,
    /// Too few concurrent pairs to compare.
    Insufficient,
}

/// One instant of a metric in both versions, for the side-by-side chart.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanaryPoint {
    /// Event time (the canary sample's).
    pub t: Timestamp,
    /// Canary value (per-interval error rate for the count test).
    pub canary: f64,
    /// Stable value nearest in time.
    pub stable: f64,
}

/// Canary against stable on one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanaryMetric {
    /// The metric (`error_rate` for the count test).
    pub metric: String,
    /// The test.
    pub test: CanaryTest,
    /// Pairs compared.
    pub pairs: usize,
    /// Canary level: median over the pairs (pooled rate for the count test).
    pub canary: f64,
    /// Stable level, the same way.
    pub stable: f64,
    /// Canary minus stable, in the metric's unit (positive is worse).
    pub effect_absolute: f64,
    /// The same relative to stable, when stable is not zero.
    pub effect_relative: Option<f64>,
    /// One-sided 95 % upper bound of the canary's excess, in the metric's unit: how much
    /// worse the canary can be, given the data.
    pub upper_bound: f64,
    /// Standardized test statistic (positive: canary worse).
    pub z: f64,
    /// The threshold `z` had to exceed at the last look.
    pub threshold: f64,
    /// Smallest material excess, in the metric's unit.
    pub min_effect: f64,
    /// Whether this metric made the canary worse.
    pub worse: bool,
    /// When it was found worse.
    pub detected_at: Option<Timestamp>,
    /// Lag-1 autocorrelation the variance was widened for.
    pub autocorrelation: f64,
    /// Up to 120 pairs, evenly thinned, for charts.
    pub points: Vec<CanaryPoint>,
}

/// The canary comparison of a deploy, beside its before/after evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanaryEvidence {
    /// The canary's version label as seen in the samples.
    pub canary_version: String,
    /// The stable version's label.
    pub stable_version: String,
    /// What the comparison concluded.
    pub outcome: CanaryOutcome,
    /// What before/after alone concluded.
    pub before_after: VerdictKind,
    /// One readable sentence.
    pub summary: String,
    /// First and last paired instant.
    pub from: Option<Timestamp>,
    /// Last paired instant.
    pub until: Option<Timestamp>,
    /// Per metric, worse first.
    pub metrics: Vec<CanaryMetric>,
    /// The budget the comparison spent (all metrics and looks together).
    pub false_alarm_rate: f64,
}

/// Whether a sample belongs to the new version or the old.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    New,
    Old,
}

/// The versioned samples of one series since its latest deploy.
#[derive(Clone, Debug, Default)]
pub(crate) struct Track {
    /// Latest deploy started on the series: (instant, id).
    deploy: Option<(i64, String)>,
    /// The deploy id for which a canary sample was seen (from then on stable samples stay
    /// out of the before/after tests).
    new_seen_for: Option<String>,
    new_name: String,
    old_name: String,
    /// Per metric id.
    new: Vec<History>,
    old: Vec<History>,
    /// Looks taken during the running watch.
    looks: usize,
    /// Whether the running watch has canary data (its before/after detection waits).
    pub active: bool,
}

impl Track {
    /// A deploy started on the series.
    pub fn started(&mut self, deploy: &Deploy) {
        self.deploy = Some((deploy.timestamp.millis(), deploy.deploy_id.clone()));
        self.looks = 0;
        self.active = false;
    }

    /// Sorts a versioned sample: `pending` is the latest deploy not yet started whose
    /// instant is at most the tolerance after the sample (a canary's first samples can
    /// precede the deploy's record).
    pub fn role(&self, cfg: &Config, version: &str, pending: Option<&str>) -> (Role, String) {
        let c = &cfg.canary;
        let deploy = pending
            .map(str::to_string)
            .or_else(|| self.deploy.as_ref().map(|d| d.1.clone()))
            .unwrap_or_default();
        let role = if c.canary_groups.iter().any(|g| g == version) {
            Role::New
        } else if c.stable_groups.iter().any(|g| g == version) {
            Role::Old
        } else if !deploy.is_empty() && version == deploy {
            Role::New
        } else {
            Role::Old
        };
        (role, deploy)
    }

    /// Records a sample's values; returns whether the before/after tests should see it.
    pub fn record(
        &mut self,
        role: Role,
        deploy: &str,
        version: &str,
        t: i64,
        values: &[(usize, f64)],
        max_history: usize,
    ) -> bool {
        let hs = match role {
            Role::New => {
                self.new_name = version.to_string();
                &mut self.new
            }
            Role::Old => {
                self.old_name = version.to_string();
                &mut self.old
            }
        };
        for &(id, v) in values {
            if hs.len() <= id {
                hs.resize_with(id + 1, History::new);
            }
            let h = &mut hs[id];
            // Each sample its own point (a repeated time replaces the value): the canary
            // comparison pairs samples of the two versions by time.
            h.add(t, v, 1, false);
            while h.len() > max_history {
                h.pop_oldest();
            }
        }
        match role {
            Role::New => {
                self.new_seen_for = Some(deploy.to_string());
                true
            }
            Role::Old => self.new_seen_for.as_deref() != Some(deploy),
        }
    }

    /// The stable version's value of metric `id` nearest to `t` (within half a sampling
    /// interval).
    pub fn old_at(&self, id: usize, t: i64) -> Option<f64> {
        let h = self.old.get(id)?;
        nearest(h, t, half_gap(h)).map(|j| h[j].1)
    }

    /// The canary's value of metric `id` nearest to `t` (within half a sampling interval).
    pub fn new_at(&self, id: usize, t: i64) -> Option<f64> {
        let h = self.new.get(id)?;
        nearest(h, t, half_gap(h)).map(|j| h[j].1)
    }

    /// Whether the series has had samples with a version.
    pub fn versioned(&self) -> bool {
        self.new.iter().chain(&self.old).any(|h| !h.is_empty())
    }

    /// Whether the latest canary sample at or after `from_ms` has a stable sample at the
    /// same time: the two versions run side by side (not one after the other).
    pub fn concurrent(&self, from_ms: i64) -> bool {
        self.new.iter().zip(&self.old).any(|(n, o)| {
            n.back()
                .is_some_and(|&(t, _)| t >= from_ms && nearest(o, t, half_gap(o)).is_some())
        })
    }

    /// A look during the watch: due when the pairs reached the next scheduled count.
    /// Returns the detection instant when the canary is worse.
    pub fn look(&mut self, ctx: &Context<'_>) -> Option<i64> {
        let n = self.max_pairs(ctx);
        let due = schedule(ctx.cfg.canary.min_pairs, ctx.expected_pairs())
            .get(self.looks)
            .is_some_and(|&at| n >= at);
        if !due {
            return None;
        }
        self.looks += 1;
        let report = self.compare(ctx, ctx.until_ms);
        report
            .iter()
            .filter(|m| m.worse)
            .filter_map(|m| m.detected_at.map(Timestamp::millis))
            .min()
    }

    fn max_pairs(&self, ctx: &Context<'_>) -> usize {
        (0..self.new.len().min(self.old.len()))
            .filter(|&id| !self.old[id].is_empty())
            .map(|id| {
                let n = &self.new[id];
                n.len() - lower_bound(n, ctx.from_ms)
            })
            .max()
            .unwrap_or(0)
    }

    /// Compares every comparable metric over `[from_ms, until_ms]`.
    fn compare(&self, ctx: &Context<'_>, until_ms: i64) -> Vec<CanaryMetric> {
        let cfg = ctx.cfg;
        let names = ctx.metric_names;
        let find = |name: &str| names.iter().position(|m| m == name);
        let mut out = Vec::new();
        let counts = match (find("errors"), find("requests")) {
            (Some(e), Some(r)) => self.count_pairs(e, r, ctx.from_ms, until_ms),
            _ => Vec::new(),
        };
        let with_counts = counts.len() >= cfg.canary.min_pairs;
        let mut planned: Vec<usize> = Vec::new();
        for (id, name) in names.iter().enumerate() {
            let comparable = cfg.watched(name)
                && cfg.direction(name) == Direction::Up
                && name != "errors"
                && name != "requests"
                && !(with_counts && name == "error_rate");
            if comparable && id < self.new.len() && id < self.old.len() {
                planned.push(id);
            }
        }
        let tests = planned.len() + usize::from(with_counts);
        if tests == 0 {
            return out;
        }
        let looks = schedule(cfg.canary.min_pairs, ctx.expected_pairs()).len() + 1;
        let alpha_look = cfg.false_alarm_rate / tests as f64 / looks as f64;
        let threshold = normal_quantile(1.0 - alpha_look);
        if with_counts {
            out.push(count_test(&counts, cfg, threshold));
        }
        for id in planned {
            let pairs = pair(&self.new[id], &self.old[id], ctx.from_ms, until_ms);
            if pairs.len() < cfg.canary.min_pairs {
                continue;
            }
            out.push(signed_rank_test(&names[id], &pairs, cfg, threshold));
        }
        out.sort_by_key(|m| !m.worse);
        out
    }

    /// `(t, canary errors, canary requests, stable errors, stable requests)`.
    fn count_pairs(&self, e: usize, r: usize, from: i64, until: i64) -> Vec<CountPair> {
        let get = |hs: &[History], id: usize| hs.get(id).cloned().unwrap_or_default();
        let new = joined(&get(&self.new, e), &get(&self.new, r), from, until + 1);
        let old = joined(&get(&self.old, e), &get(&self.old, r), from, until + 1);
        let old_t: History = old.iter().map(|p| (p.0, 0.0)).collect();
        let gap = half_gap(&old_t);
        new.iter()
            .filter_map(|&(t, ec, nc)| {
                let j = nearest(&old_t, t, gap)?;
                let (_, es, ns) = old[j];
                (nc > 0.0 && ns > 0.0 && ec >= 0.0 && es >= 0.0).then_some(CountPair {
                    t,
                    ec,
                    nc,
                    es,
                    ns,
                })
            })
            .collect()
    }

    /// The canary comparison of a watch that is being closed, folded into its verdict.
    pub fn attach(&self, verdict: &mut DeployVerdict, ctx: &Context<'_>) {
        if self.paired_range(ctx).is_none() {
            return;
        }
        let metrics = self.compare(ctx, ctx.until_ms);
        let before_after = verdict.verdict;
        let n = metrics.iter().map(|m| m.pairs).max().unwrap_or(0);
        let from = self.paired_range(ctx).map(|r| Timestamp(r.0));
        let until = self.paired_range(ctx).map(|r| Timestamp(r.1));
        let mut ev = CanaryEvidence {
            canary_version: self.new_name.clone(),
            stable_version: self.old_name.clone(),
            outcome: CanaryOutcome::Insufficient,
            before_after,
            summary: String::new(),
            from,
            until,
            metrics,
            false_alarm_rate: ctx.cfg.false_alarm_rate,
        };
        if let Some(worst) = ev.metrics.iter().find(|m| m.worse) {
            ev.outcome = CanaryOutcome::Worse;
            ev.summary = format!(
                "canary {} is worse than stable {} running at the same time: {} {} against {} ({}), z = {:.1} over {} pairs",
                ev.canary_version,
                ev.stable_version,
                worst.metric,
                fmt_value(worst.canary),
                fmt_value(worst.stable),
                fmt_rel(worst.effect_relative, worst.effect_absolute),
                worst.z,
                worst.pairs
            );
            let at = worst.detected_at;
            verdict.verdict = VerdictKind::Regression;
            verdict.inconclusive_cause = None;
            verdict.needed = None;
            verdict.detected_at = match (verdict.detected_at, at) {
                (Some(a), Some(b)) if before_after == VerdictKind::Regression => Some(a.min(b)),
                (_, b) => b.or(verdict.detected_at),
            };
            verdict.reason = format!("{}.", capitalize(&ev.summary));
        } else if n < ctx.cfg.canary.min_pairs {
            ev.summary = format!(
                "canary {} and stable {} overlapped for only {n} paired samples (at least {} are needed to compare them); the before/after verdict stands",
                ev.canary_version, ev.stable_version, ctx.cfg.canary.min_pairs
            );
        } else if before_after == VerdictKind::Regression && self.explains(verdict, &ev, ctx) {
            ev.outcome = CanaryOutcome::SharedShift;
            let shifted: Vec<String> = verdict.regressed().map(|e| e.metric.clone()).collect();
            ev.summary = format!(
                "{} moved after the deploy, but stable {} running at the same time moved as much: a shared cause (load, a dependency), not canary {}",
                shifted.join(", "),
                ev.stable_version,
                ev.canary_version
            );
            verdict.warnings.push(format!(
                "before/after alone would call this a regression: {}",
                verdict.reason
            ));
            for e in verdict.evidence.iter_mut() {
                if e.status == MetricStatus::Regressed {
                    e.status = MetricStatus::Ok;
                    e.note = Some(
                        "shifted after the deploy in both versions: explained by the stable version running at the same time".into(),
                    );
                }
            }
            verdict.verdict = VerdictKind::Healthy;
            verdict.detected_at = None;
            verdict.reason = format!(
                "Healthy against the concurrent stable version: {}.",
                ev.summary
            );
        } else {
            ev.outcome = CanaryOutcome::NoDifference;
            ev.summary = format!(
                "canary {} is not materially worse than stable {} over {n} paired samples",
                ev.canary_version, ev.stable_version
            );
            if before_after == VerdictKind::Regression {
                verdict.warnings.push(format!(
                    "the canary comparison did not find canary {} worse than stable, but it cannot rule out the before/after shift",
                    ev.canary_version
                ));
            }
        }
        verdict.canary = Some(ev);
    }

    /// Whether every regressed before/after metric is explained by the stable version
    /// moving as much (or, for throughput, by the traffic split).
    fn explains(&self, verdict: &DeployVerdict, ev: &CanaryEvidence, ctx: &Context<'_>) -> bool {
        let mut any = false;
        for e in verdict.regressed() {
            any = true;
            let ok = match e.direction {
                Direction::Down => {
                    self.total_holds(&e.metric, e.baseline.median, e.effect_absolute, ctx)
                }
                _ => ev
                    .metrics
                    .iter()
                    .find(|m| m.metric == e.metric)
                    .is_some_and(|m| !m.worse && m.upper_bound < e.effect_absolute.abs()),
            };
            if !ok {
                return false;
            }
        }
        any
    }

    /// Whether the two versions together kept the throughput the before/after test saw
    /// fall: then the fall is the canary's share of the traffic, not lost traffic.
    fn total_holds(&self, metric: &str, level: f64, effect: f64, ctx: &Context<'_>) -> bool {
        let Some(id) = ctx.metric_names.iter().position(|m| m == metric) else {
            return false;
        };
        if id >= self.new.len() || id >= self.old.len() {
            return false;
        }
        let pairs = pair(&self.new[id], &self.old[id], ctx.from_ms, ctx.until_ms);
        if pairs.len() < ctx.cfg.canary.min_pairs {
            return false;
        }
        let totals: Vec<f64> = pairs.iter().map(|p| p.1 + p.2).collect();
        median(&totals) >= level - effect.abs() / 2.0
    }

    fn paired_range(&self, ctx: &Context<'_>) -> Option<(i64, i64)> {
        let mut lo = i64::MAX;
        let mut hi = i64::MIN;
        for id in 0..self.new.len().min(self.old.len()) {
            for p in pair(&self.new[id], &self.old[id], ctx.from_ms, ctx.until_ms) {
                lo = lo.min(p.0);
                hi = hi.max(p.0);
            }
        }
        (lo <= hi).then_some((lo, hi))
    }
}

/// How long a before/after detection of a versioned series waits for the other version's
/// sample of the same instant: two sampling intervals (30 s when unknown).
pub(crate) fn hold_ms(cadence_ms: f64) -> i64 {
    if cadence_ms.is_finite() && cadence_ms > 0.0 {
        (2.0 * cadence_ms) as i64
    } else {
        30_000
    }
}

/// What a look or the verdict needs to know about the watch.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub cfg: &'a Config,
    pub metric_names: &'a [String],
    /// Pairs from here on are compared (the watch's test start).
    pub from_ms: i64,
    /// Up to here.
    pub until_ms: i64,
    /// The watch's window end and sampling interval, for the look schedule.
    pub end_ms: i64,
    pub cadence_ms: f64,
}

impl Context<'_> {
    fn expected_pairs(&self) -> usize {
        let c = if self.cadence_ms.is_finite() && self.cadence_ms > 0.0 {
            self.cadence_ms
        } else {
            10_000.0
        };
        (((self.end_ms - self.from_ms).max(0) as f64) / c).ceil() as usize
    }
}

/// The pair counts at which the comparison is looked at during a watch: `min_pairs`, then
/// every time the count has grown by half, up to the pairs a window holds.
fn schedule(min_pairs: usize, expected: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut n = min_pairs.max(3);
    while n <= expected.max(min_pairs) {
        out.push(n);
        n = (n as f64 * 1.5).ceil() as usize;
    }
    out
}

#[derive(Clone, Copy, Debug)]
struct CountPair {
    t: i64,
    ec: f64,
    nc: f64,
    es: f64,
    ns: f64,
}

fn half_gap(h: &History) -> i64 {
    let gaps: Vec<f64> = h
        .iter()
        .zip(h.iter().skip(1))
        .map(|(a, b)| (b.0 - a.0) as f64)
        .collect();
    if gaps.is_empty() {
        return 0;
    }
    (crate::stats::median(&gaps) / 2.0) as i64
}

/// Index of the point of `h` nearest to `t`, when within `gap`.
fn nearest(h: &History, t: i64, gap: i64) -> Option<usize> {
    let at = lower_bound(h, t);
    [at.checked_sub(1), Some(at)]
        .into_iter()
        .flatten()
        .filter(|&i| i < h.len())
        .map(|i| (i, (h[i].0 - t).abs()))
        .filter(|&(_, d)| d <= gap)
        .min_by_key(|&(_, d)| d)
        .map(|(i, _)| i)
}

/// `(t, canary, stable)` pairs in `[from, until]`.
fn pair(new: &History, old: &History, from: i64, until: i64) -> Vec<(i64, f64, f64)> {
    let gap = half_gap(old);
    let lo = lower_bound(new, from);
    let hi = lower_bound(new, until + 1);
    new.range(lo..hi)
        .filter_map(|&(t, c)| nearest(old, t, gap).map(|j| (t, c, old[j].1)))
        .collect()
}

fn material_floor(cfg: &Config, metric: &str, stable: f64) -> f64 {
    cfg.min_absolute_effect(metric)
        .max(cfg.min_relative_effect(metric) * stable.abs())
}

fn thin(points: impl ExactSizeIterator<Item = CanaryPoint>) -> Vec<CanaryPoint> {
    let n = points.len();
    let step = n.div_ceil(120).max(1);
    points.step_by(step).collect()
}

/// Lag-1 autocorrelation, clamped to `[0, 0.9]`: negative correlation would narrow the
/// test, and a value near 1 from a short stretch would make it meaningless.
fn rho_of(values: &[f64]) -> f64 {
    let center = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let spread = values.iter().fold(0.0f64, |a, v| a.max((v - center).abs()));
    lag1_autocorrelation(values, center, spread.max(1e-12) * 2.0).clamp(0.0, 0.9)
}

fn signed_rank_test(
    metric: &str,
    pairs: &[(i64, f64, f64)],
    cfg: &Config,
    threshold: f64,
) -> CanaryMetric {
    let ratio = metric != "error_rate" && pairs.iter().all(|p| p.1 > 0.0 && p.2 > 0.0);
    let d: Vec<f64> = pairs
        .iter()
        .map(|p| if ratio { (p.1 / p.2).ln() } else { p.1 - p.2 })
        .collect();
    // Ranks of |d| among the non-zero differences, ties sharing their average rank.
    let mut idx: Vec<usize> = (0..d.len()).filter(|&i| d[i] != 0.0).collect();
    idx.sort_by(|&a, &b| d[a].abs().total_cmp(&d[b].abs()));
    let mut rank = vec![0.0; d.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && d[idx[j + 1]].abs() == d[idx[i]].abs() {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            rank[k] = r;
        }
        i = j + 1;
    }
    let scores: Vec<f64> = (0..d.len()).map(|k| d[k].signum() * rank[k]).collect();
    let w: f64 = scores.iter().sum();
    let var: f64 = rank.iter().map(|r| r * r).sum();
    let rho = rho_of(&scores);
    let z = if var > 0.0 {
        w / (var * (1.0 + rho) / (1.0 - rho)).sqrt()
    } else {
        0.0
    };
    let canary = median(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
    let stable = median(&pairs.iter().map(|p| p.2).collect::<Vec<_>>());
    let md = median(&d);
    // The upper bound of the mean difference, with the same widening for correlation.
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let sd = (d.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    let rho_d = rho_of(&d);
    let upper = mean.max(md) + 1.645 * sd * ((1.0 + rho_d) / (1.0 - rho_d)).sqrt() / n.sqrt();
    let (effect_absolute, effect_relative, upper_bound) = if ratio {
        let rel = md.exp() - 1.0;
        (stable * rel, Some(rel), stable * (upper.exp() - 1.0))
    } else {
        (md, (stable != 0.0).then(|| md / stable), upper)
    };
    let min_effect = material_floor(cfg, metric, stable);
    let worse = z > threshold && effect_absolute >= min_effect && effect_absolute > 0.0;
    CanaryMetric {
        metric: metric.to_string(),
        test: CanaryTest::SignedRank,
        pairs: pairs.len(),
        canary,
        stable,
        effect_absolute,
        effect_relative,
        upper_bound,
        z,
        threshold,
        min_effect,
        worse,
        detected_at: worse.then(|| Timestamp(pairs[pairs.len() - 1].0)),
        autocorrelation: rho,
        points: thin(pairs.iter().map(|p| CanaryPoint {
            t: Timestamp(p.0),
            canary: p.1,
            stable: p.2,
        })),
    }
}

fn count_test(pairs: &[CountPair], cfg: &Config, threshold: f64) -> CanaryMetric {
    let (mut observed, mut expected, mut var, mut x2, mut df) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut ec, mut nc, mut es, mut ns) = (0.0, 0.0, 0.0, 0.0);
    for p in pairs {
        ec += p.ec;
        nc += p.nc;
        es += p.es;
        ns += p.ns;
        let e = p.ec + p.es;
        let q = p.nc / (p.nc + p.ns);
        if e > 0.0 && q > 0.0 && q < 1.0 {
            observed += p.ec;
            expected += e * q;
            let v = e * q * (1.0 - q);
            var += v;
            x2 += (p.ec - e * q).powi(2) / v;
            df += 1.0;
        }
    }
    // Pearson's dispersion: per-interval counts that vary more than binomially (a burst
    // on one canary pod) widen the test rather than fire it.
    let phi = if df > 1.0 {
        (x2 / (df - 1.0)).max(1.0)
    } else {
        1.0
    };
    let z = if var > 0.0 {
        (observed - expected) / (phi * var).sqrt()
    } else {
        0.0
    };
    let pc = if nc > 0.0 { ec / nc } else { 0.0 };
    let ps = if ns > 0.0 { es / ns } else { 0.0 };
    let effect = pc - ps;
    let se = (phi * (pc * (1.0 - pc) / nc.max(1.0) + ps * (1.0 - ps) / ns.max(1.0))).sqrt();
    let min_effect = material_floor(cfg, "error_rate", ps);
    let worse = z > threshold && effect >= min_effect && effect > 0.0;
    CanaryMetric {
        metric: "error_rate".into(),
        test: CanaryTest::ConditionalBinomial,
        pairs: pairs.len(),
        canary: pc,
        stable: ps,
        effect_absolute: effect,
        effect_relative: (ps > 0.0).then(|| effect / ps),
        upper_bound: effect + 1.645 * se,
        z,
        threshold,
        min_effect,
        worse,
        detected_at: worse.then(|| Timestamp(pairs[pairs.len() - 1].t)),
        autocorrelation: phi,
        points: thin(pairs.iter().map(|p| CanaryPoint {
            t: Timestamp(p.t),
            canary: p.ec / p.nc,
            stable: p.es / p.ns,
        })),
    }
}

fn fmt_value(v: f64) -> String {
    if v.abs() < 1.0 && v != 0.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.1}")
    }
}

fn fmt_rel(rel: Option<f64>, abs: f64) -> String {
    match rel {
        Some(r) => format!("{:+.0}%", r * 100.0),
        None => format!("{abs:+.4}"),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::Rng;

    /// Share of `runs` null experiments in which the test at level `alpha` rejects.
    fn null_rejections(runs: usize, n: usize, noise: impl Fn(&mut Rng) -> f64) -> f64 {
        let cfg = Config::default();
        let threshold = normal_quantile(1.0 - 0.05);
        let mut rng = Rng::new(7);
        let mut hits = 0;
        for _ in 0..runs {
            // A shared factor that moves both versions (cancels in the pair), and each
            // version's own noise.
            let pairs: Vec<(i64, f64, f64)> = (0..n)
                .map(|i| {
                    let shared = 200.0 * (1.0 + 0.5 * rng.uniform());
                    let c = shared * (1.0 + 0.05 * noise(&mut rng)).max(0.01);
                    let s = shared * (1.0 + 0.05 * noise(&mut rng)).max(0.01);
                    (i as i64 * 10_000, c, s)
                })
                .collect();
            if signed_rank_test("p95_latency_ms", &pairs, &cfg, threshold).z > threshold {
                hits += 1;
            }
        }
        hits as f64 / runs as f64
    }

    #[test]
    fn the_signed_rank_test_keeps_its_level_whatever_the_noise_shape() {
        // Gaussian, heavy-tailed (Student-t-like ratio of normals, clipped) and skewed
        // but identical for both versions: the level is 5 %, within Monte Carlo error.
        let gauss = null_rejections(2000, 60, |r| r.normal());
        let heavy = null_rejections(2000, 60, |r| {
            let d = r.normal().abs().max(0.05);
            (r.normal() / d).clamp(-15.0, 15.0)
        });
        let skewed = null_rejections(2000, 60, |r| r.normal().exp() - 1.6);
        for (what, rate) in [("gaussian", gauss), ("heavy", heavy), ("skewed", skewed)] {
            assert!(rate < 0.065, "{what}: rejected {rate} at a 5% level");
            assert!(
                rate > 0.02,
                "{what}: rejected only {rate}, the test is dead"
            );
        }
    }

    #[test]
    fn the_count_test_ignores_an_error_rate_shared_by_both_versions() {
        let cfg = Config::default();
        let threshold = normal_quantile(1.0 - 0.01);
        let mut rng = Rng::new(3);
        let mut hits = 0;
        for _ in 0..500 {
            let pairs: Vec<CountPair> = (0..60)
                .map(|i| {
                    // An outage: the rate jumps from 1 % to 30 % for a third of the time.
                    let p = if (20..40).contains(&i) { 0.3 } else { 0.01 };
                    let (nc, ns) = (rng.poisson(400.0), rng.poisson(1600.0));
                    CountPair {
                        t: i * 10_000,
                        ec: rng.binomial(nc, p),
                        nc,
                        es: rng.binomial(ns, p),
                        ns,
                    }
                })
                .collect();
            let m = count_test(&pairs, &cfg, threshold);
            if m.worse {
                hits += 1;
            }
            assert!(m.upper_bound < 0.02, "upper bound {}", m.upper_bound);
        }
        assert!(hits <= 10, "{hits} false alarms in 500 at a 1% level");
        // And a canary with twice the errors is found.
        let pairs: Vec<CountPair> = (0..30)
            .map(|i| {
                let (nc, ns) = (rng.poisson(400.0), rng.poisson(1600.0));
                CountPair {
                    t: i * 10_000,
                    ec: rng.binomial(nc, 0.03),
                    nc,
                    es: rng.binomial(ns, 0.01),
                    ns,
                }
            })
            .collect();
        let m = count_test(&pairs, &cfg, threshold);
        assert!(m.worse, "z {} effect {}", m.z, m.effect_absolute);
    }

    #[test]
    fn looks_follow_a_geometric_schedule() {
        assert_eq!(schedule(10, 180), vec![10, 15, 23, 35, 53, 80, 120, 180]);
        assert_eq!(schedule(10, 4), vec![10]);
    }

    #[test]
    fn versions_are_sorted_by_the_deploy_and_by_group_names() {
        let cfg = Config::default();
        let mut track = Track::default();
        assert_eq!(track.role(&cfg, "v1", None).0, Role::Old);
        assert_eq!(track.role(&cfg, "canary", None).0, Role::New);
        assert_eq!(track.role(&cfg, "v2", Some("v2")).0, Role::New);
        track.started(&Deploy {
            timestamp: Timestamp(0),
            deploy_id: "v2".into(),
            service: String::new(),
            environment: String::new(),
        });
        assert_eq!(track.role(&cfg, "v2", None).0, Role::New);
        assert_eq!(track.role(&cfg, "primary", None).0, Role::Old);
        // Stable samples feed the before/after tests until the canary's first sample.
        assert!(track.record(Role::Old, "v2", "v1", 0, &[(0, 1.0)], 64));
        assert!(track.record(Role::New, "v2", "v2", 10, &[(0, 1.0)], 64));
        assert!(!track.record(Role::Old, "v2", "v1", 10, &[(0, 1.0)], 64));
    }
}
