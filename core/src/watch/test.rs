//! One sequential test of one metric in one direction (or of the error counts): its
//! design from the baseline, what it concluded so far, and the power it had.

use super::count::joined;
use super::level::{CriticalValues, LevelModel};
use super::reference::{self, RankReference, TailModel};
use super::{lower_bound, History};
use crate::baseline::Baseline;
use crate::config::{Config, Direction};
use crate::detector::{CountDesign, Cusum, CusumDesign};
use crate::stats::{median, normal_quantile};

/// What a test concluded so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Phase {
    /// Feeding samples.
    Running,
    /// Fired: a material harmful shift that started at or after the deploy.
    Fired { at_ms: i64, start_ms: i64 },
    /// A pre-existing shift with too little clean baseline after it.
    PreExistingShort { start_ms: i64 },
    /// A material harmful shift that began after the attribution window: seen, reported,
    /// but not taken as the deploy's doing.
    Late { at_ms: i64, start_ms: i64 },
}

impl Phase {
    /// A material harmful change detected at `at_ms` that began at `start_ms`: fired
    /// when it began within the attribution window, late otherwise.
    pub(super) fn decided(
        at_ms: i64,
        start_ms: i64,
        deploy_ms: i64,
        attributable_until: i64,
    ) -> Phase {
        if start_ms > attributable_until {
            Phase::Late { at_ms, start_ms }
        } else {
            Phase::Fired {
                at_ms: at_ms.max(deploy_ms),
                start_ms,
            }
        }
    }

    /// Whether the test takes no more samples. A test stopped by a pre-existing shift
    /// still takes them for its extreme test (see `feed_test`).
    pub(super) fn done(&self) -> bool {
        !matches!(self, Phase::Running | Phase::PreExistingShort { .. })
    }
}

/// The two kinds of test: a continuous metric judged by the ranks and the tail of its
/// baseline values, or the error rate judged by counts of errors among requests.
#[derive(Clone, Debug)]
pub(crate) enum Model {
    Values(ValueModel),
    Counts(CountModel),
}

/// A continuous metric's reference.
#[derive(Clone, Debug)]
pub(crate) struct ValueModel {
    /// Noise of a running sum (σ widened for autocorrelation), floored.
    pub(super) noise: f64,
    /// Baseline residuals the sustained test ranks new residuals against.
    pub(super) rank: Option<RankReference>,
    /// Widening of the rank scores for autocorrelation: √((1+ρ)/(1−ρ)).
    pub(super) widen: f64,
    /// The baseline's tail, for the test of a few extreme samples (with a spread only).
    pub(super) tail: Option<TailModel>,
    /// The level test of the first samples after the deploy (with a spread only).
    pub(super) level: Option<LevelModel>,
}

/// The count-aware error-rate test's design and baseline counts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CountModel {
    pub(super) design: CountDesign,
    /// Baseline (errors, requests).
    pub(super) base: (f64, f64),
}

/// One sequential test of one metric in one direction (or of the error counts).
#[derive(Clone, Debug)]
pub(crate) struct Test {
    pub metric: usize,
    /// Index of the `requests` metric, for the count test.
    pub requests_metric: Option<usize>,
    pub name: String,
    pub direction: Direction,
    /// +1 when up is harmful, −1 when down is.
    pub(super) sign: f64,
    pub(super) base: Baseline,
    pub(super) design: CusumDesign,
    /// What the test ranks or counts its samples against.
    pub(super) model: Model,
    pub(super) min_effect: f64,
    /// The shift, in baseline deviations, the sustained test is tuned for.
    pub(super) design_shift: f64,
    /// The sustained test's false-alarm budget (see [`Test::baseline_needed`]).
    pub(super) alpha: f64,
    /// Relative effect floor (count test).
    pub(super) min_rel: f64,
    pub(super) cusum: Cusum,
    pub(super) phase: Phase,
    /// Samples fed after the deploy, and their requests for the count test.
    pub(super) n_post: usize,
    /// Of those, the samples inside the deploy tolerance (before the recorded deploy).
    pub(super) n_tolerance: usize,
    pub(super) requests_post: f64,
    /// Statistic when the first post-deploy sample arrived.
    pub(super) s_at_deploy: f64,
    pub(super) run_start_at_deploy: Option<i64>,
    /// Start of a pre-existing shift that the test was re-based after.
    pub(super) pre_existing_from: Option<i64>,
    /// Start of a pre-existing shift with too little known after it to re-base on: the
    /// test runs only its extreme and local-level parts, and does so again when fed anew.
    pub(super) short_since: Option<i64>,
    /// The latest sample beyond the tail threshold: (time, its index after the deploy).
    pub(super) last_extreme: Option<(i64, usize)>,
    /// When the tail test fired: (standardized residual, threshold it exceeded).
    pub(super) tail_hit: Option<(f64, f64)>,
    /// The residuals of the three samples before the next one, oldest first, for the
    /// extreme test's local level (see `feed`); `recent_base` is where they start: the
    /// baseline's last three.
    pub(super) recent: [f64; 3],
    pub(super) recent_base: [f64; 3],
    /// Residuals of the samples since the start of the tolerance, in time order, for the
    /// level test (its first samples only), and its statistic and threshold when it fired.
    pub(super) level_resid: Vec<f64>,
    /// How many of them reach the level test's floor (see `LevelModel::floor`), and how
    /// many of those are after the recorded deploy.
    pub(super) level_above: usize,
    pub(super) level_above_post: usize,
    pub(super) level_hit: Option<(f64, f64)>,
    /// The same counts against the local level's floor (see `LevelModel::local_floor`).
    pub(super) local_above: usize,
    pub(super) local_above_post: usize,
    /// When the level test decided against the local level: that level's residual.
    pub(super) level_local: Option<f64>,
    /// Last time the effect floor was checked and failed: (statistic, samples).
    pub(super) last_effect_check: Option<(f64, usize)>,
    /// Start of a shift that the same clock time the day before also showed (a daily
    /// pattern, not the deploy).
    pub seasonal_note: Option<i64>,
    /// Statistic after each fed sample, when tracing.
    pub trace: Option<Vec<(i64, f64)>>,
}

impl Test {
    /// The continuous reference, `None` for the count test.
    pub(super) fn values(&self) -> Option<&ValueModel> {
        match &self.model {
            Model::Values(v) => Some(v),
            Model::Counts(_) => None,
        }
    }

    /// The count design, `None` for a continuous test.
    pub(super) fn counts(&self) -> Option<&CountModel> {
        match &self.model {
            Model::Counts(c) => Some(c),
            Model::Values(_) => None,
        }
    }
    /// Clears what the test gathered from its samples (to feed it again from the start
    /// of its stretch, after a re-base or a late sample).
    pub(super) fn restart(&mut self) {
        self.cusum = Cusum::default();
        self.n_post = 0;
        self.n_tolerance = 0;
        self.requests_post = 0.0;
        self.s_at_deploy = 0.0;
        self.run_start_at_deploy = None;
        self.last_effect_check = None;
        self.last_extreme = None;
        self.tail_hit = None;
        self.recent = self.recent_base;
        self.level_resid.clear();
        self.level_above = 0;
        self.level_above_post = 0;
        self.level_hit = None;
        self.local_above = 0;
        self.local_above_post = 0;
        self.level_local = None;
    }

    /// The smallest shift the watch must be able to see to call a deploy healthy, in the
    /// metric's unit, and how many samples after the deploy the tests need to see it. The
    /// shift is the design shift in long-run deviations (the spread widened for
    /// autocorrelation, as the sustained test measures it) or the material floor when
    /// larger. Two samples suffice when such a shift puts a pair beyond the tail threshold;
    /// otherwise it is what the sustained test needs on average. `None` when neither test
    /// can see it at all.
    pub(super) fn samples_needed(&self) -> (f64, Option<f64>) {
        let spread = self.base.spread;
        let (rank, widen, tail) = match &self.model {
            Model::Values(v) => (v.rank.as_ref(), v.widen, v.tail),
            Model::Counts(_) => (None, 1.0, None),
        };
        let cap = rank.map_or(0.0, |r| r.max_score()) / widen;
        if spread.is_nan() || spread <= 0.0 {
            // A constant baseline: any material shift ranks above every baseline value.
            let drift = cap - self.design.k;
            return (
                self.min_effect,
                (drift > 0.0).then(|| (self.design.h / drift).ceil()),
            );
        }
        let long_run = spread * widen;
        let sigmas = self.design_shift.max(self.min_effect / long_run);
        let shift = sigmas * long_run;
        if let Some(tail) = tail {
            if tail.exceeds(shift, self.n_post.max(2)) {
                return (shift, Some(2.0));
            }
        }
        // The level test's power is not counted here: it looks only at the first samples
        // and is blocked by the baseline's own bursts, so a watch it could not decide is
        // not called healthy on its account.
        let drift = sigmas.min(cap) - self.design.k;
        (shift, (drift > 0.0).then(|| (self.design.h / drift).ceil()))
    }

    /// How many baseline samples would have let the sustained test decide on the
    /// `n_post` samples this watch has seen, when it cannot on its baseline now (a sticky
    /// series, see [`Test::samples_needed`]): `None` when it can already (or has no rank
    /// test), `usize::MAX` when not even a million samples would do.
    ///
    /// Why a longer baseline decides: the rank scores are capped at the score of a value
    /// beyond every baseline value, `Φ⁻¹((n+½)/(n+1))`, which grows with `n`, while the
    /// test's allowance for the baseline's own error, `1.2533/√n_eff`, shrinks with it;
    /// only once the cap clears the allowance can any shift drift the test upwards.
    ///
    /// The figure keeps the baseline's stickiness and spread as they are, and designs
    /// the test as [`ScoredDesign::new`] designs it for each size, so it is the size at
    /// which the shift would have been seen in these samples if the series is as sticky
    /// as it looks. A longer baseline measures the stickiness anew, and on a short one
    /// the lag-1 autocorrelation comes out low (Kendall's bias, `(1+4ρ)/n`), so a figure
    /// can fall short; adding that bias back instead doubled the figures, as the needed
    /// size grows about as `((1+ρ)/(1−ρ))²`, and on AR(1) noise at ρ = 0.9 the figure
    /// as it is was enough on most seeds (`a_wandering_baseline_says_how_long_a_baseline_would_decide`).
    pub(super) fn baseline_needed(&self) -> Option<usize> {
        let (widen, alpha) = match &self.model {
            Model::Values(v) if v.rank.is_some() => (v.widen, self.alpha),
            _ => return None,
        };
        let spread = self.base.spread;
        if !(spread.is_finite() && spread > 0.0 && widen.is_finite() && widen > 0.0) {
            return None;
        }
        let now = self.base.n.max(1);
        let rho = self.base.rho;
        let sigmas = self.design_shift.max(self.min_effect / (spread * widen));
        let post = self.n_post as f64;
        let steps = self.design.steps;
        let decides = |n: usize| {
            let cap = normal_quantile((n as f64 + 0.5) / (n as f64 + 1.0)) / widen;
            let n_eff = (n as f64 * (1.0 - rho) / (1.0 + rho)).max(2.0);
            let shift = self.design_shift.min(0.8 * cap);
            let design = CusumDesign::new(shift, 1.2533 / n_eff.sqrt(), alpha, steps);
            let drift = sigmas.min(cap) - design.k;
            drift > 0.0 && (design.h / drift).ceil() <= post
        };
        if decides(now) {
            return None;
        }
        // Longer baselines decide sooner: double until one does, then bisect.
        let (mut lo, mut hi) = (now, now);
        while !decides(hi) {
            if hi >= 1_000_000 {
                return Some(usize::MAX);
            }
            lo = hi;
            hi = (hi * 2).min(1_000_000);
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if decides(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }

    pub(super) fn fired(&self) -> Option<(i64, i64)> {
        match self.phase {
            Phase::Fired { at_ms, start_ms } => Some((at_ms, start_ms)),
            _ => None,
        }
    }
}

/// The design of a continuous test: the rank-score CUSUM for sustained shifts, the tail
/// model for a few extreme samples and the level test of the first samples, each with a
/// third of the test's false-alarm budget.
pub(super) struct ScoredDesign {
    pub(super) design: CusumDesign,
    pub(super) rank: Option<RankReference>,
    pub(super) widen: f64,
    pub(super) tail: Option<TailModel>,
    pub(super) level: Option<LevelModel>,
    /// The sustained test's share of the budget.
    pub(super) alpha: f64,
}

/// The points a test is designed on, in time order, and their values sorted ascending
/// when the caller has them (`None` otherwise).
pub(super) struct DesignPoints<'a> {
    pub(super) in_time: &'a [(i64, f64)],
    pub(super) sorted_values: Option<&'a [f64]>,
}

/// A test's false-alarm budget and the samples it is spent over.
pub(super) struct Budget {
    /// The test's share of the watch's false-alarm budget.
    pub(super) alpha_test: f64,
    /// Samples the watch is expected to see after the end of the baseline.
    pub(super) steps: f64,
    /// From the end of the baseline to the recorded deploy (the deploy tolerance).
    pub(super) tolerance_ms: i64,
}

impl ScoredDesign {
    /// `critical`: the level test's critical values found for the other tests of the
    /// watch (see [`CriticalValues`]).
    pub(super) fn new(
        base: &Baseline,
        points: DesignPoints<'_>,
        sign: f64,
        budget: Budget,
        critical: &mut CriticalValues,
        cfg: &Config,
    ) -> ScoredDesign {
        let Budget {
            alpha_test,
            steps,
            tolerance_ms,
        } = budget;
        let DesignPoints {
            in_time: points,
            sorted_values,
        } = points;
        // Whether every point has the same expectation (bit for bit), and so one residual
        // function for all values (see `RankReference::from_mapped`).
        let mut expected = points.first().map(|&(t, _)| base.expected(t));
        let residuals: Vec<f64> = points
            .iter()
            .map(|&(t, x)| {
                let e = base.expected(t);
                if expected.is_some_and(|c| c.to_bits() != e.to_bits()) {
                    expected = None;
                }
                sign * (x - e)
            })
            .collect();
        let rho = base.rho;
        let widen = ((1.0 + rho) / (1.0 - rho)).sqrt();
        // The baseline is itself a sample: its median is off by about 1.2533/√n_eff
        // standard deviations (n_eff = n(1−ρ)/(1+ρ) independent values), and that error
        // is shared by every later score. Raising k by it keeps a baseline that happened
        // to come out low from turning into a slow false drift.
        let n_eff = (base.n as f64 * (1.0 - rho) / (1.0 + rho)).max(2.0);
        let guard = 1.2533 / n_eff.sqrt();
        // Rank scores are bounded (a value beyond every baseline value scores
        // Φ⁻¹((n+½)/(n+1))), so after the autocorrelation shrinkage no sample can add more
        // than `cap`. The test is tuned for the design shift, or for 80 % of that cap when
        // the cap is lower (sticky series), so that a large shift still drifts upwards.
        let rank = match (expected, sorted_values) {
            (Some(e), Some(sorted)) if sorted.len() == residuals.len() => {
                RankReference::from_mapped(&residuals, sorted, |x| sign * (x - e))
            }
            _ => RankReference::new(&residuals),
        };
        let cap = rank.as_ref().map_or(0.0, |r| r.max_score()) / widen;
        let shift = cfg.design_shift_sigmas.min(0.8 * cap);
        let share = alpha_test / 3.0;
        let design = CusumDesign::new(shift, guard, share, steps);
        // The extreme test can only decide on a change that begins inside the attribution
        // window (a pair that starts later is a late change, not a regression), so its
        // budget is spent over the samples of that window, not over the whole watch.
        let attribution = (cfg.attribution_window_secs as f64 * 1000.0 / base.cadence_ms).max(3.0);
        let tail_steps = if attribution.is_finite() {
            steps.min(attribution + reference::PAIR_SPAN as f64)
        } else {
            steps
        };
        let tolerance = (tolerance_ms as f64 / base.cadence_ms).floor().max(0.0);
        let tolerance = if tolerance.is_finite() {
            tolerance
        } else {
            0.0
        };
        // The level test looks at the samples of the attribution window and the tolerance
        // before the deploy: a level that is reached later is the sustained test's (or a
        // late change).
        let window = attribution.min(steps);
        let tail = rank.as_ref().and_then(|r| {
            TailModel::fit_sorted(&residuals, r.sorted(), rho, share, tail_steps, tolerance)
        });
        ScoredDesign {
            design,
            rank,
            widen,
            tail,
            level: LevelModel::new(base, &residuals, share, window, tolerance, critical),
            alpha: share,
        }
    }
}

pub(super) fn test_alpha(alpha: f64, tests: usize) -> f64 {
    alpha / tests.max(1) as f64
}

/// Noise floor: a baseline with (nearly) no variation would make any wiggle infinitely
/// significant. The floor is a quarter of the smallest material effect, so that effect is
/// still four noise units away; when no effect floor applies, a relative 1e-9 of the level.
pub(super) fn floor_noise(noise: f64, level: f64, min_effect: f64) -> f64 {
    let floor = (min_effect / 4.0).max(level.abs() * 1e-9).max(1e-12);
    if noise.is_finite() {
        noise.max(floor)
    } else {
        floor
    }
}

/// Size of the harmful shift over `[from, until)`, in the metric's unit: the median
/// residual against the baseline (pooled rate minus baseline rate for counts).
pub(super) fn run_effect(t: &Test, histories: &[History], from: i64, until: i64) -> f64 {
    match (t.requests_metric, t.counts().map(|c| c.base)) {
        (Some(r), Some((be, br))) => {
            let pairs = joined(&histories[t.metric], &histories[r], from, until);
            let (e, n): (f64, f64) = pairs.iter().fold((0.0, 0.0), |a, p| (a.0 + p.1, a.1 + p.2));
            if n <= 0.0 {
                return 0.0;
            }
            let p0 = be / br.max(1.0);
            let rise = e / n - p0;
            // Both floors must hold: the absolute one is `min_effect`, the relative one
            // is checked here so that a rise that is big in points but small against a
            // high baseline rate (40% -> 41%) does not count.
            if rise >= t.min_rel * p0 {
                rise
            } else {
                0.0
            }
        }
        _ => {
            let h = &histories[t.metric];
            let res: Vec<f64> = h
                .range(lower_bound(h, from)..lower_bound(h, until))
                .map(|&(ts, x)| t.sign * (x - t.base.expected(ts)))
                .collect();
            if res.is_empty() {
                0.0
            } else {
                median(&res)
            }
        }
    }
}
