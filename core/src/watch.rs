//! One deploy's watch: the tests run on each metric of the deployed series, and the
//! verdict built from them.
//!
//! A watch is created when event time passes the deploy. It fits a [`Baseline`] per metric
//! on the samples before the deploy, designs one sequential test per metric and harmful
//! direction (and a count-aware test of the error rate when `errors` and `requests` are
//! reported), and feeds them every sample until a test fires or the watch ends.
//!
//! Correlation with the deploy happens here: each test starts on the second half of the
//! baseline, not at the deploy, so that a shift already under way before the deploy is
//! seen as such. Its CUSUM excursion then begins before the deploy; when the statistic
//! was already at least half-way to the threshold at the deploy, the shift is called
//! pre-existing. The test is then re-based on the samples since that shift began, and the
//! deploy is judged only on what changed after it.

mod reference;
mod report;

use std::collections::VecDeque;

use reference::{RankReference, TailModel};

pub(crate) use report::human_secs;
use report::summarize;

use crate::baseline::Baseline;
use crate::config::{Config, Direction};
use crate::detector::{CountDesign, Cusum, CusumDesign};
use crate::samples::Deploy;
use crate::stats::median_in_place;
use crate::verdict::{Summary, WatchEnd};

/// Share of a deploy's false-alarm budget that its log-signature evidence may spend; the
/// metric tests share the rest (Bonferroni), so every test of a deploy together stays
/// within `false_alarm_rate`.
pub(crate) const LOG_BUDGET_SHARE: f64 = 0.2;

/// Time-ordered points of one metric of one series.
pub(crate) type History = VecDeque<(i64, f64)>;

/// Index of the first point at or after `t`.
pub(crate) fn lower_bound(h: &History, t: i64) -> usize {
    h.partition_point(|p| p.0 < t)
}

/// What a test concluded so far.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
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
    /// Whether the test takes no more samples. A test stopped by a pre-existing shift
    /// still takes them for its extreme test (see `feed_test`).
    fn done(&self) -> bool {
        !matches!(self, Phase::Running | Phase::PreExistingShort { .. })
    }
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
    sign: f64,
    base: Baseline,
    /// Noise of a running sum (σ widened for autocorrelation), floored.
    noise: f64,
    design: CusumDesign,
    count: Option<CountDesign>,
    count_base: Option<(f64, f64)>,
    min_effect: f64,
    /// The shift, in baseline deviations, the sustained test is tuned for.
    design_shift: f64,
    /// Relative effect floor (count test).
    min_rel: f64,
    guard: f64,
    cusum: Cusum,
    /// Baseline residuals the sustained test ranks new residuals against (continuous
    /// tests; `None` for the count test).
    rank: Option<RankReference>,
    /// Widening of the rank scores for autocorrelation: √((1+ρ)/(1−ρ)).
    widen: f64,
    /// The baseline's tail, for the test of a few extreme samples (continuous tests with a
    /// spread).
    tail: Option<TailModel>,
    phase: Phase,
    /// Samples fed after the deploy, and their requests for the count test.
    n_post: usize,
    /// Of those, the samples inside the deploy tolerance (before the recorded deploy).
    n_tolerance: usize,
    requests_post: f64,
    /// Statistic when the first post-deploy sample arrived.
    s_at_deploy: f64,
    run_start_at_deploy: Option<i64>,
    /// Start of a pre-existing shift that the test was re-based after.
    pre_existing_from: Option<i64>,
    /// The latest sample beyond the tail threshold: (time, its index after the deploy).
    last_extreme: Option<(i64, usize)>,
    /// When the tail test fired: (standardized residual, threshold it exceeded).
    tail_hit: Option<(f64, f64)>,
    /// Last time the effect floor was checked and failed: (statistic, samples).
    last_effect_check: Option<(f64, usize)>,
    /// Start of a shift that the same clock time the day before also showed (a daily
    /// pattern, not the deploy).
    pub seasonal_note: Option<i64>,
    /// Statistic after each fed sample, when tracing.
    pub trace: Option<Vec<(i64, f64)>>,
}

impl Test {
    /// The smallest shift the watch must be able to see to call a deploy healthy, in the
    /// metric's unit, and how many samples after the deploy the tests need to see it. The
    /// shift is the design shift in long-run deviations (the spread widened for
    /// autocorrelation, as the sustained test measures it) or the material floor when
    /// larger. Two samples suffice when such a shift puts a pair beyond the tail threshold;
    /// otherwise it is what the sustained test needs on average. `None` when neither test
    /// can see it at all.
    fn samples_needed(&self) -> (f64, Option<f64>) {
        let spread = self.base.spread;
        let cap = self.rank.as_ref().map_or(0.0, |r| r.max_score()) / self.widen;
        if spread.is_nan() || spread <= 0.0 {
            // A constant baseline: any material shift ranks above every baseline value.
            let drift = cap - self.design.k;
            return (
                self.min_effect,
                (drift > 0.0).then(|| (self.design.h / drift).ceil()),
            );
        }
        let long_run = spread * self.widen;
        let sigmas = self.design_shift.max(self.min_effect / long_run);
        let shift = sigmas * long_run;
        if let Some(tail) = self.tail {
            if tail.exceeds(shift, self.n_post.max(2)) {
                return (shift, Some(2.0));
            }
        }
        let drift = sigmas.min(cap) - self.design.k;
        (shift, (drift > 0.0).then(|| (self.design.h / drift).ceil()))
    }

    fn fired(&self) -> Option<(i64, i64)> {
        match self.phase {
            Phase::Fired { at_ms, start_ms } => Some((at_ms, start_ms)),
            _ => None,
        }
    }
}

/// A deploy being watched.
#[derive(Clone, Debug)]
pub(crate) struct Watch {
    pub deploy: Deploy,
    pub deploy_ms: i64,
    /// Where the baseline ends and the test begins: `deploy_tolerance_secs` before the
    /// recorded deploy.
    pub test_from_ms: i64,
    /// End of the monitoring window (or the next deploy's instant).
    pub end_ms: i64,
    /// Why the watch ends at `end_ms`.
    pub end_reason: WatchEnd,
    /// How long after a detection the verdict waits, gathering log evidence.
    pub grace_ms: i64,
    /// When a new error signature made the deploy a regression (waiting out the grace).
    pub log_fired_at: Option<i64>,
    pub tests: Vec<Test>,
    /// Samples after this instant are fed (per metric, the last fed point).
    pub fed_ms: Vec<i64>,
    pub baseline_from: Option<i64>,
    pub baseline_samples: usize,
    pub short_baseline: Vec<String>,
    pub cadence_ms: f64,
    pub alpha: f64,
    /// Set when a sample arrived out of order inside the watched stretch.
    pub dirty: bool,
    pub last_seen_ms: i64,
    /// Error-level log events after the deploy, and the count at which the log evidence
    /// is checked next (doubling, so a burst costs a logarithmic number of checks).
    log_errors: u64,
    next_log_check: u64,
    /// Looks taken at the log evidence so far.
    log_looks: u32,
}

/// The configuration a watch needs, resolved for its series.
pub(crate) struct WatchSetup<'a> {
    pub config: &'a Config,
    pub metric_names: &'a [String],
    pub histories: &'a [History],
    pub tracing: bool,
}

impl Watch {
    /// Starts a watch: fits the baselines and designs the tests, then feeds every sample
    /// already in the histories.
    pub fn start(deploy: Deploy, setup: &WatchSetup<'_>) -> Watch {
        let cfg = setup.config;
        let deploy_ms = deploy.timestamp.millis();
        // The baseline ends, and the test begins, `deploy_tolerance_secs` before the
        // recorded deploy: most delivery systems record a deploy when the rollout has
        // finished, after the new version began taking traffic.
        let tolerant_ms = deploy_ms - cfg.deploy_tolerance_secs as i64 * 1000;
        // Only when the history before it is long enough to be a baseline: a service
        // whose samples began just before the deploy is judged on what it has.
        let enough = |cut: i64| {
            setup
                .histories
                .iter()
                .any(|h| lower_bound(h, cut) >= cfg.min_baseline_samples)
        };
        let cut_ms = if enough(tolerant_ms) || !enough(deploy_ms) {
            tolerant_ms
        } else {
            deploy_ms
        };
        let from_ms = cut_ms - cfg.baseline_window_secs as i64 * 1000;
        let mut watch = Watch {
            deploy,
            deploy_ms,
            test_from_ms: cut_ms,
            end_ms: deploy_ms + cfg.monitoring_window_secs as i64 * 1000,
            end_reason: WatchEnd::Window,
            grace_ms: cfg.evidence_grace_secs.unwrap_or(0) as i64 * 1000,
            log_fired_at: None,
            tests: Vec::new(),
            fed_ms: vec![i64::MIN; setup.histories.len()],
            baseline_from: None,
            baseline_samples: 0,
            short_baseline: Vec::new(),
            cadence_ms: f64::NAN,
            alpha: cfg.false_alarm_rate * (1.0 - LOG_BUDGET_SHARE),
            dirty: false,
            last_seen_ms: deploy_ms,
            log_errors: 0,
            next_log_check: 3,
            log_looks: 0,
        };
        let find = |name: &str| setup.metric_names.iter().position(|m| m == name);
        // The baseline is the preferred window before the deploy, reaching further back
        // (up to `max_baseline_window_secs`) when that window holds fewer than
        // `target_baseline_samples`: sparse metrics (one sample per 5 minutes) need a
        // longer look back to say what normal is.
        let far_ms =
            cut_ms - cfg.max_baseline_window_secs.max(cfg.baseline_window_secs) as i64 * 1000;
        let take_last = |far: usize, pref: usize, hi: usize| -> usize {
            (hi - pref)
                .max(cfg.target_baseline_samples)
                .min(hi - far)
                .min(cfg.max_history)
        };
        let baseline_points = |id: usize| -> Vec<(i64, f64)> {
            let h = &setup.histories[id];
            let far = lower_bound(h, far_ms);
            let pref = lower_bound(h, from_ms);
            let hi = lower_bound(h, cut_ms);
            let take = take_last(far, pref, hi);
            h.range(hi - take..hi).copied().collect()
        };

        // The count-aware error-rate test replaces the continuous tests of `errors` and
        // `error_rate` when both counts are reported.
        let counts = match (find("errors"), find("requests")) {
            (Some(e), Some(r)) if e < setup.histories.len() && r < setup.histories.len() => {
                let all = joined(&setup.histories[e], &setup.histories[r], far_ms, cut_ms);
                let pref = all.partition_point(|p| p.0 < from_ms);
                let take = take_last(0, pref, all.len());
                let pairs = all[all.len() - take..].to_vec();
                (pairs.len() >= cfg.min_baseline_samples).then_some((e, r, pairs))
            }
            _ => None,
        };

        struct Planned {
            metric: usize,
            direction: Direction,
            sign: f64,
            base: Baseline,
            points: Vec<(i64, f64)>,
            pre_from: Option<i64>,
            short: bool,
        }
        let mut planned: Vec<Planned> = Vec::new();
        let mut cadences = Vec::new();
        for (id, name) in setup.metric_names.iter().enumerate() {
            if id >= setup.histories.len() || setup.histories[id].is_empty() || !cfg.watched(name) {
                continue;
            }
            if counts.is_some() && (name == "errors" || name == "error_rate") {
                continue;
            }
            let points = baseline_points(id);
            if points.len() < cfg.min_baseline_samples {
                let after = lower_bound(&setup.histories[id], cut_ms) < setup.histories[id].len();
                if after || !points.is_empty() {
                    watch
                        .short_baseline
                        .push(format!("{name} ({} samples)", points.len()));
                }
                continue;
            }
            // A level shift inside the baseline: judge the deploy against the level after
            // it, or say that too little of it is known yet.
            let typical = crate::stats::median(&points.iter().map(|p| p.1).collect::<Vec<_>>());
            let floor = cfg
                .min_absolute_effect(name)
                .max(cfg.min_relative_effect(name) * typical.abs());
            let (points, pre_from, short) = match crate::baseline::level_shift(&points, floor) {
                Some(tau) => {
                    let from = points[tau].0;
                    if points.len() - tau < cfg.min_baseline_samples {
                        (points, Some(from), true)
                    } else {
                        (
                            crate::baseline::align_to_last_level(&points, tau),
                            Some(from),
                            false,
                        )
                    }
                }
                None => (points, None, false),
            };
            let Some(base) = Baseline::fit(&points) else {
                continue;
            };
            cadences.push(base.cadence_ms);
            let direction = cfg.direction(name);
            let signs: &[f64] = match direction {
                Direction::Up => &[1.0],
                Direction::Down => &[-1.0],
                Direction::Both => &[1.0, -1.0],
            };
            for &sign in signs {
                planned.push(Planned {
                    metric: id,
                    direction,
                    sign,
                    base: base.clone(),
                    points: points.clone(),
                    pre_from,
                    short,
                });
            }
            if watch.baseline_samples < points.len() {
                watch.baseline_samples = points.len();
                watch.baseline_from = Some(points[0].0);
            }
        }
        if let Some((_, _, pairs)) = &counts {
            let mut gaps: Vec<f64> = pairs.windows(2).map(|w| (w[1].0 - w[0].0) as f64).collect();
            cadences.push(median_in_place(&mut gaps).max(1.0));
        }
        watch.cadence_ms = if cadences.is_empty() {
            f64::NAN
        } else {
            median_in_place(&mut cadences)
        };
        // A watch covers the monitoring window, and at least `min_watch_samples` sample
        // intervals when samples are sparse, so that it can reach a decision at all.
        if watch.cadence_ms.is_finite() {
            let min_ms = (cfg.min_watch_samples as f64 * watch.cadence_ms) as i64;
            watch.end_ms = watch.end_ms.max(deploy_ms + min_ms);
        }
        let tests_total = planned.len() + usize::from(counts.is_some());
        if tests_total == 0 {
            return watch;
        }
        let alpha_test = watch.alpha / tests_total as f64;
        let window_ms = (watch.end_ms - cut_ms) as f64;

        for p in planned {
            let steps = (window_ms / p.base.cadence_ms).max(1.0);
            let name = &setup.metric_names[p.metric];
            let level = p.base.expected(cut_ms);
            let min_effect = cfg
                .min_absolute_effect(name)
                .max(cfg.min_relative_effect(name) * level.abs());
            let noise = floor_noise(p.base.sum_noise(), level, min_effect);
            let scored = ScoredDesign::new(&p.base, &p.points, p.sign, alpha_test, steps, cfg);
            watch.tests.push(Test {
                metric: p.metric,
                requests_metric: None,
                name: name.clone(),
                direction: p.direction,
                sign: p.sign,
                base: p.base,
                noise,
                design: scored.design,
                count: None,
                count_base: None,
                min_effect,
                design_shift: cfg.design_shift_sigmas,
                min_rel: cfg.min_relative_effect(name),
                guard: scored.guard,
                cusum: Cusum::default(),
                rank: scored.rank,
                widen: scored.widen,
                tail: scored.tail,
                phase: match (p.short, p.pre_from) {
                    (true, Some(start_ms)) => Phase::PreExistingShort { start_ms },
                    _ => Phase::Running,
                },
                n_post: 0,
                n_tolerance: 0,
                requests_post: 0.0,
                s_at_deploy: 0.0,
                run_start_at_deploy: None,
                pre_existing_from: p.pre_from,
                last_effect_check: None,
                last_extreme: None,
                tail_hit: None,
                seasonal_note: None,
                trace: setup.tracing.then(Vec::new),
            });
        }
        if let Some((e, r, pairs)) = counts {
            let (design, base) = count_design(cfg, &pairs, alpha_test, window_ms);
            let summary = rate_summary(&pairs);
            let n = pairs.len();
            if watch.baseline_samples < n {
                watch.baseline_samples = n;
                watch.baseline_from = Some(pairs[0].0);
            }
            let mut gaps: Vec<f64> = pairs.windows(2).map(|w| (w[1].0 - w[0].0) as f64).collect();
            let cadence = median_in_place(&mut gaps).max(1.0);
            watch.tests.push(Test {
                metric: e,
                requests_metric: Some(r),
                name: "error_rate".to_string(),
                direction: Direction::Up,
                sign: 1.0,
                base: Baseline {
                    n,
                    level: base.0 / base.1.max(1.0),
                    slope_per_sec: 0.0,
                    anchor_ms: pairs[n - 1].0,
                    damping_ms: 1.0,
                    spread: summary.spread,
                    rho: 0.0,
                    cadence_ms: cadence,
                    summary,
                },
                noise: 1.0,
                design: CusumDesign::spending(0.0, design.h, design.clip, 1.0, window_ms / cadence),
                count: Some(design),
                count_base: Some(base),
                min_effect: cfg.min_absolute_effect("error_rate"),
                design_shift: cfg.design_shift_sigmas,
                min_rel: cfg.min_relative_effect("error_rate"),
                guard: 0.0,
                cusum: Cusum::default(),
                rank: None,
                widen: 1.0,
                tail: None,
                phase: Phase::Running,
                n_post: 0,
                n_tolerance: 0,
                requests_post: 0.0,
                s_at_deploy: 0.0,
                run_start_at_deploy: None,
                pre_existing_from: None,
                last_effect_check: None,
                last_extreme: None,
                tail_hit: None,
                seasonal_note: None,
                trace: setup.tracing.then(Vec::new),
            });
        }
        watch.replay(setup.histories, cfg);
        watch
    }

    /// Counts one error-level log event after the deploy; true when the log evidence is
    /// due for a check.
    pub fn count_error_log(&mut self) -> bool {
        self.log_errors += 1;
        if self.log_errors >= self.next_log_check {
            self.next_log_check = self.log_errors * 2;
            self.log_looks += 1;
            true
        } else {
            false
        }
    }

    /// The false-alarm budget of the latest look at the log evidence.
    ///
    /// The evidence is looked at repeatedly (each time the error count after the deploy
    /// doubles, and once more when the verdict is built), and each look is a chance for a
    /// false alarm. The logs' share of the budget is spent geometrically: look `j` of `J`
    /// gets `2^−j` of it and the final look, when the verdict is built, `2^−J`, so that all
    /// looks together spend exactly the share, and the early looks get the most.
    pub fn log_alpha(&self, cfg: &Config) -> f64 {
        cfg.false_alarm_rate * LOG_BUDGET_SHARE * 0.5f64.powi(self.log_looks.min(60) as i32)
    }

    /// When the engine must next look at this watch: its detection, or its end.
    pub fn due_ms(&self) -> i64 {
        self.fired_at()
            .or(self.log_fired_at)
            .map_or(self.end_ms, |at| {
                (at + self.grace_ms).min(self.end_ms.max(at))
            })
    }

    /// Whether a tested metric misses samples (a gap over 1.5 typical intervals) between
    /// the deploy and `until_ms`: samples that may still arrive late.
    pub fn has_gaps(&self, histories: &[History], until_ms: i64) -> bool {
        self.tests.iter().any(|t| {
            let h = &histories[t.metric];
            let lo = lower_bound(h, self.deploy_ms).saturating_sub(1);
            let hi = lower_bound(h, until_ms + 1);
            let limit = 1.5 * t.base.cadence_ms;
            (lo + 1..hi).any(|i| (h[i].0 - h[i - 1].0) as f64 > limit)
        })
    }

    /// When the first test fired.
    pub fn fired_at(&self) -> Option<i64> {
        self.tests
            .iter()
            .filter_map(|t| t.fired().map(|f| f.0))
            .min()
    }

    /// Whether any test has fired.
    pub fn fired(&self) -> bool {
        self.tests.iter().any(|t| t.fired().is_some())
    }

    /// Resets every test and feeds it again from the histories (after an out-of-order
    /// sample, or at start).
    pub fn replay(&mut self, histories: &[History], cfg: &Config) {
        let deploy_ms = self.test_from_ms;
        for t in self.tests.iter_mut() {
            t.cusum = Cusum::default();
            if !matches!(t.phase, Phase::PreExistingShort { .. }) {
                t.phase = Phase::Running;
            }
            t.n_post = 0;
            t.n_tolerance = 0;
            t.requests_post = 0.0;
            t.s_at_deploy = 0.0;
            t.run_start_at_deploy = None;
            t.last_effect_check = None;
            t.last_extreme = None;
            t.tail_hit = None;
            if let Some(tr) = t.trace.as_mut() {
                tr.clear();
            }
        }
        for f in self.fed_ms.iter_mut() {
            *f = i64::MIN;
        }
        // Tests start on the second half of their baseline (see the module docs). They
        // are fed in event-time order, sample by sample and metric by metric as the live
        // path feeds them, and all stop at the first detection as the live path does, so
        // that a watch rebuilt from stored data (a restart, a late sample) ends with the
        // very statistics of one fed as the data arrived.
        let mut feed: Vec<(i64, usize, usize, f64, f64)> = Vec::new();
        for i in 0..self.tests.len() {
            let from = self.tail_start(i, histories);
            let metric = self.tests[i].metric;
            feed.extend(
                self.points_for(i, histories, from, self.end_ms)
                    .into_iter()
                    .map(|(t, x, r)| (t, metric, i, x, r)),
            );
        }
        feed.sort_by_key(|p| (p.0, p.1, p.2));
        for (t, _, i, x, r) in feed {
            if self.fired() {
                break;
            }
            self.feed_test(i, t, x, r, histories, cfg);
        }
        for (m, h) in histories.iter().enumerate() {
            let hi = lower_bound(h, self.end_ms);
            if hi > 0 && m < self.fed_ms.len() {
                self.fed_ms[m] = h[hi - 1].0;
                self.last_seen_ms = self.last_seen_ms.max(h[hi - 1].0);
            }
        }
        let _ = deploy_ms;
        self.dirty = false;
    }

    fn tail_start(&self, i: usize, histories: &[History]) -> i64 {
        let t = &self.tests[i];
        if let Some(from) = t.pre_existing_from {
            return from.max(self.test_from_ms);
        }
        let h = &histories[t.metric];
        let hi = lower_bound(h, self.test_from_ms);
        let n = t.base.n.min(hi);
        let lo = hi - n / 2;
        if lo < hi {
            h[lo].0
        } else {
            self.test_from_ms
        }
    }

    /// `(t, value, requests)` points of test `i` in `[from, until)`.
    fn points_for(
        &self,
        i: usize,
        histories: &[History],
        from: i64,
        until: i64,
    ) -> Vec<(i64, f64, f64)> {
        let t = &self.tests[i];
        match t.requests_metric {
            Some(r) => joined(&histories[t.metric], &histories[r], from, until),
            None => {
                let h = &histories[t.metric];
                let lo = lower_bound(h, from);
                let hi = lower_bound(h, until);
                h.range(lo..hi).map(|&(t, x)| (t, x, 0.0)).collect()
            }
        }
    }

    /// Feeds one new in-order sample of metric `m` (called by the engine for each value of
    /// an in-order sample). `requests` is the same sample's `requests` value, if any.
    pub fn on_value(
        &mut self,
        m: usize,
        t: i64,
        x: f64,
        requests: Option<f64>,
        histories: &[History],
        cfg: &Config,
    ) {
        if t >= self.end_ms || self.fired() {
            return;
        }
        self.last_seen_ms = self.last_seen_ms.max(t);
        if m < self.fed_ms.len() {
            if t <= self.fed_ms[m] {
                self.dirty = true;
                return;
            }
            self.fed_ms[m] = t;
        }
        for i in 0..self.tests.len() {
            let test = &self.tests[i];
            if test.metric != m || test.phase.done() {
                continue;
            }
            if test.requests_metric.is_some() {
                match requests {
                    Some(r) => self.feed_test(i, t, x, r, histories, cfg),
                    None => continue,
                }
            } else {
                self.feed_test(i, t, x, 0.0, histories, cfg);
            }
        }
    }

    fn feed_test(
        &mut self,
        i: usize,
        t: i64,
        x: f64,
        requests: f64,
        histories: &[History],
        cfg: &Config,
    ) {
        let deploy_ms = self.test_from_ms;
        let actual_deploy = self.deploy_ms;
        let attributable_until = self.attributable_until_ms(i, cfg);
        let test = &mut self.tests[i];
        // A shift that began before the deploy, with too little of it known to re-base on,
        // stops the sustained test; the extreme test goes on against the whole baseline,
        // shifted stretch included: samples far beyond everything the service did before,
        // the pre-existing shift too, are still the deploy's.
        let tail_only = matches!(test.phase, Phase::PreExistingShort { .. });
        if test.phase.done() || (tail_only && test.count.is_some()) {
            return;
        }
        let inc = match test.count {
            Some(d) => {
                if !(requests > 0.0 && x >= 0.0 && x <= requests) {
                    return;
                }
                d.increment(x, requests)
            }
            None => {
                // The rank score of the residual among the baseline's residuals (see
                // `reference`), shrunk by √((1+ρ)/(1−ρ)): for AR(1) noise with lag-1
                // correlation ρ the variance of a long sum of n values is n·(1+ρ)/(1−ρ)
                // times that of one, so the shrunk scores sum like independent ones and
                // the threshold's false-alarm guarantee holds.
                let r = test.sign * (x - test.base.expected(t));
                let z = test.rank.as_ref().map_or(0.0, |rk| rk.score(r)) / test.widen;
                z.clamp(-test.design.clip, test.design.clip) - test.design.k
            }
        };
        let post = t >= deploy_ms;
        if post && test.n_post == 0 && !tail_only {
            test.s_at_deploy = test.cusum.s;
            test.run_start_at_deploy = test.cusum.run_start_ms;
            // The statistic carried over from the baseline tail only matters when it
            // already points to a shift (half-way to the threshold); otherwise the test
            // starts afresh at the deploy, which is what its threshold was derived for.
            // It also has to be a shift the samples still show: when the median of the
            // excursion's samples is not materially off the baseline, the excursion was a
            // burst that is over, not a level the deploy inherited.
            let carried = test.s_at_deploy >= test.design.h / 2.0
                && test.run_start_at_deploy.is_some_and(|from| {
                    test.requests_metric.is_some()
                        || run_effect(test, histories, from, deploy_ms) >= test.min_effect
                });
            if !carried {
                test.cusum = Cusum::default();
                test.s_at_deploy = 0.0;
            }
        }
        let s = if tail_only {
            test.cusum.s
        } else {
            let s = test.cusum.push(t, inc);
            if let Some(tr) = test.trace.as_mut() {
                tr.push((t, s));
            }
            s
        };
        if !post {
            return;
        }
        test.n_post += 1;
        if t < actual_deploy {
            test.n_tolerance += 1;
        }
        test.requests_post += requests;
        // The extreme test counts its samples from the recorded deploy, both ways: the
        // `i`-th sample after it, or the one `i − 1` intervals before it inside the
        // tolerance, gets the budget of index `i` (see `reference`).
        let tail_i = if t >= actual_deploy {
            (test.n_post - test.n_tolerance).max(1)
        } else {
            1 + ((actual_deploy - t) as f64 / test.base.cadence_ms)
                .round()
                .max(0.0) as usize
        };
        // A few extreme samples: one beyond the baseline's extrapolated tail decides at
        // once when the excess itself is material (see `reference`).
        if let Some(tail) = test.tail {
            let r = test.sign * (x - test.base.expected(t));
            // One sample alone decides only right after the recorded deploy, among its
            // first few samples; before it (inside the tolerance) or later, a lone spike
            // is just that.
            let since = (t - actual_deploy) as f64;
            let at_deploy =
                since >= 0.0 && since <= reference::PAIR_SPAN as f64 * test.base.cadence_ms;
            if at_deploy
                && r >= test.min_effect
                && r > 0.0
                && tail.exceeds_alone(r, tail_i)
                && !daily_pattern_explains(test, histories, deploy_ms, (t, t + 1), r, cfg, 1)
            {
                test.tail_hit = Some((r / tail.scale, tail.single_threshold(tail_i)));
                test.phase = Phase::Fired {
                    at_ms: t.max(actual_deploy),
                    start_ms: t,
                };
                return;
            }
            if r >= test.min_effect && r > 0.0 && tail.exceeds(r, tail_i) {
                match test.last_extreme {
                    Some((first_ms, n)) if test.n_post - n < reference::PAIR_SPAN => {
                        // The same check as for sustained shifts: did the same clock
                        // time the day before move as much?
                        if daily_pattern_explains(
                            test,
                            histories,
                            deploy_ms,
                            (first_ms, t + 1),
                            r,
                            cfg,
                            1,
                        ) {
                            test.seasonal_note = Some(first_ms);
                            test.last_extreme = None;
                        } else {
                            test.tail_hit = Some((r / tail.scale, tail.threshold(tail_i)));
                            test.phase = if first_ms > attributable_until {
                                Phase::Late {
                                    at_ms: t,
                                    start_ms: first_ms,
                                }
                            } else {
                                Phase::Fired {
                                    at_ms: t.max(actual_deploy),
                                    start_ms: first_ms,
                                }
                            };
                            return;
                        }
                    }
                    _ => test.last_extreme = Some((t, test.n_post)),
                }
            }
        }
        if tail_only || s <= test.design.threshold_at(test.n_post) {
            return;
        }
        // Crossed the threshold: is it the deploy's doing, and is it material?
        let start = test.cusum.run_start_ms.unwrap_or(t);
        let began_before = start < deploy_ms && test.s_at_deploy >= test.design.h / 2.0;
        if began_before && test.pre_existing_from.is_none() {
            self.rebase_after_shift(i, start, histories, cfg);
            return;
        }
        let test = &mut self.tests[i];
        if let Some((s_prev, n_prev)) = test.last_effect_check {
            if s < s_prev * 1.25 && test.n_post < n_prev + 8 {
                return;
            }
        }
        let start = start.max(deploy_ms);
        let effect = run_effect(test, histories, start, t + 1);
        let seasonal = effect >= test.min_effect
            && effect > 0.0
            && daily_pattern_explains(test, histories, deploy_ms, (start, t + 1), effect, cfg, 3);
        if seasonal {
            test.seasonal_note = Some(start);
        }
        if effect >= test.min_effect && effect > 0.0 && !seasonal {
            test.phase = if start > attributable_until {
                Phase::Late {
                    at_ms: t,
                    start_ms: start,
                }
            } else {
                Phase::Fired {
                    at_ms: t.max(actual_deploy),
                    start_ms: start,
                }
            };
        } else {
            test.last_effect_check = Some((s, test.n_post));
        }
    }

    /// The latest instant a change in test `i` may begin and still be the deploy's: the
    /// attribution window after the recorded deploy, at least three sample intervals.
    fn attributable_until_ms(&self, i: usize, cfg: &Config) -> i64 {
        let cadence = self.tests[i].base.cadence_ms;
        let window = (cfg.attribution_window_secs as f64 * 1000.0).max(if cadence.is_finite() {
            3.0 * cadence
        } else {
            0.0
        });
        self.deploy_ms.saturating_add(window as i64)
    }

    /// A shift began before the deploy. Re-base the test on the samples since it began, or
    /// give up on it when there are too few of them.
    fn rebase_after_shift(&mut self, i: usize, start: i64, histories: &[History], cfg: &Config) {
        let deploy_ms = self.test_from_ms;
        let (metric, requests_metric) = (self.tests[i].metric, self.tests[i].requests_metric);
        self.tests[i].pre_existing_from = Some(start);
        let n_clean = match requests_metric {
            Some(r) => joined(&histories[metric], &histories[r], start, deploy_ms).len(),
            None => {
                let h = &histories[metric];
                lower_bound(h, deploy_ms) - lower_bound(h, start)
            }
        };
        if n_clean < cfg.min_baseline_samples {
            self.tests[i].phase = Phase::PreExistingShort { start_ms: start };
            return;
        }
        let window_ms = (self.end_ms - deploy_ms) as f64;
        let alpha_test = test_alpha(self.alpha, self.tests.len());
        let test = &mut self.tests[i];
        match requests_metric {
            Some(r) => {
                let pairs = joined(&histories[metric], &histories[r], start, deploy_ms);
                let (design, base) = count_design(cfg, &pairs, alpha_test, window_ms);
                test.count = Some(design);
                test.count_base = Some(base);
                test.base.level = base.0 / base.1.max(1.0);
                test.base.summary = rate_summary(&pairs);
                test.base.n = pairs.len();
                test.design = CusumDesign::spending(
                    0.0,
                    design.h,
                    design.clip,
                    1.0,
                    window_ms / test.base.cadence_ms,
                );
            }
            None => {
                let h = &histories[metric];
                let pts: Vec<(i64, f64)> = h
                    .range(lower_bound(h, start)..lower_bound(h, deploy_ms))
                    .copied()
                    .collect();
                if let Some(base) = Baseline::fit(&pts) {
                    let level = base.expected(deploy_ms);
                    let min_effect = cfg
                        .min_absolute_effect(&test.name)
                        .max(cfg.min_relative_effect(&test.name) * level.abs());
                    let noise = floor_noise(base.sum_noise(), level, min_effect);
                    let steps = (window_ms / base.cadence_ms).max(1.0);
                    let scored = ScoredDesign::new(&base, &pts, test.sign, alpha_test, steps, cfg);
                    test.design = scored.design;
                    test.rank = scored.rank;
                    test.widen = scored.widen;
                    test.tail = scored.tail;
                    test.noise = noise;
                    test.min_effect = min_effect;
                    test.guard = scored.guard;
                    test.base = base;
                }
            }
        }
        test.cusum = Cusum::default();
        test.n_post = 0;
        test.n_tolerance = 0;
        test.requests_post = 0.0;
        test.s_at_deploy = 0.0;
        test.run_start_at_deploy = None;
        test.last_effect_check = None;
        test.last_extreme = None;
        test.tail_hit = None;
        if let Some(tr) = test.trace.as_mut() {
            tr.retain(|p| p.0 < deploy_ms);
        }
        let last = self.last_seen_ms.max(deploy_ms);
        let points = self.points_for(i, histories, deploy_ms, (last + 1).min(self.end_ms));
        for (t, x, r) in points {
            self.feed_test(i, t, x, r, histories, cfg);
            if self.tests[i].fired().is_some() {
                break;
            }
        }
    }
}

/// Whether the day before, over the same clock-time stretch, the metric moved the same way
/// by at least 80 % of today's shift: then the shift is the service's daily pattern (the
/// morning ramp, the evening peak), not the deploy.
///
/// Yesterday's shift is measured like today's: the mean over `[start, until)` moved back
/// by the period, against the median of the hour before the deploy's time the day before.
/// It needs at least `min_baseline_samples` samples in that hour and `min_points` in the
/// stretch; without a day of history (or for the count test) nothing is explained away.
fn daily_pattern_explains(
    t: &Test,
    histories: &[History],
    deploy_ms: i64,
    (start, until): (i64, i64),
    effect: f64,
    cfg: &Config,
    min_points: usize,
) -> bool {
    let period = cfg.seasonal_period_secs as i64 * 1000;
    if period <= 0 || t.requests_metric.is_some() {
        return false;
    }
    let h = &histories[t.metric];
    let base_lo = lower_bound(
        h,
        deploy_ms - period - cfg.baseline_window_secs as i64 * 1000,
    );
    let base_hi = lower_bound(h, deploy_ms - period);
    let (lo, hi) = (
        lower_bound(h, start - period),
        lower_bound(h, until - period),
    );
    if base_hi - base_lo < cfg.min_baseline_samples || hi - lo < min_points {
        return false;
    }
    let mut base: Vec<f64> = h.range(base_lo..base_hi).map(|p| p.1).collect();
    let level = median_in_place(&mut base);
    let then = h.range(lo..hi).map(|p| p.1).sum::<f64>() / (hi - lo) as f64;
    t.sign * (then - level) >= 0.8 * effect
}

/// The design of a continuous test: the rank-score CUSUM for sustained shifts and the tail
/// model for a few extreme samples, each with half of the test's false-alarm budget.
struct ScoredDesign {
    design: CusumDesign,
    guard: f64,
    rank: Option<RankReference>,
    widen: f64,
    tail: Option<TailModel>,
}

impl ScoredDesign {
    fn new(
        base: &Baseline,
        points: &[(i64, f64)],
        sign: f64,
        alpha_test: f64,
        steps: f64,
        cfg: &Config,
    ) -> ScoredDesign {
        let residuals: Vec<f64> = points
            .iter()
            .map(|&(t, x)| sign * (x - base.expected(t)))
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
        let rank = RankReference::new(&residuals);
        let cap = rank.as_ref().map_or(0.0, |r| r.max_score()) / widen;
        let shift = cfg.design_shift_sigmas.min(0.8 * cap);
        let design = CusumDesign::new(shift, guard, alpha_test / 2.0, steps);
        // The extreme test can only decide on a change that begins inside the attribution
        // window (a pair that starts later is a late change, not a regression), so its
        // budget is spent over the samples of that window, not over the whole watch.
        let attribution = (cfg.attribution_window_secs as f64 * 1000.0 / base.cadence_ms).max(3.0);
        let tail_steps = if attribution.is_finite() {
            steps.min(attribution + reference::PAIR_SPAN as f64)
        } else {
            steps
        };
        let tolerance = (cfg.deploy_tolerance_secs as f64 * 1000.0 / base.cadence_ms)
            .floor()
            .max(0.0);
        let tolerance = if tolerance.is_finite() {
            tolerance
        } else {
            0.0
        };
        ScoredDesign {
            design,
            guard,
            rank,
            widen,
            tail: TailModel::fit(&residuals, rho, alpha_test / 2.0, tail_steps, tolerance),
        }
    }
}

fn test_alpha(alpha: f64, tests: usize) -> f64 {
    alpha / tests.max(1) as f64
}

/// Noise floor: a baseline with (nearly) no variation would make any wiggle infinitely
/// significant. The floor is a quarter of the smallest material effect, so that effect is
/// still four noise units away; when no effect floor applies, a relative 1e-9 of the level.
fn floor_noise(noise: f64, level: f64, min_effect: f64) -> f64 {
    let floor = (min_effect / 4.0).max(level.abs() * 1e-9).max(1e-12);
    if noise.is_finite() {
        noise.max(floor)
    } else {
        floor
    }
}

/// Baseline design of the count test from `(t, errors, requests)` points.
fn count_design(
    cfg: &Config,
    pairs: &[(i64, f64, f64)],
    alpha: f64,
    window_ms: f64,
) -> (CountDesign, (f64, f64)) {
    let (e, r): (f64, f64) = pairs.iter().fold((0.0, 0.0), |a, p| (a.0 + p.1, a.1 + p.2));
    let p = ((e + 0.5) / (r + 1.0)).clamp(1e-9, 1.0 - 1e-9);
    // Pearson's dispersion statistic: how much more the per-interval error counts vary
    // than a binomial with the pooled rate would.
    let mut x2 = 0.0;
    let mut df = 0.0;
    for &(_, ei, ri) in pairs {
        if ri > 0.0 {
            let exp = p * ri;
            x2 += (ei - exp) * (ei - exp) / (ri * p * (1.0 - p));
            df += 1.0;
        }
    }
    let phi = if df > 1.0 {
        (x2 / (df - 1.0)).max(1.0)
    } else {
        1.0
    };
    let mut gaps: Vec<f64> = pairs.windows(2).map(|w| (w[1].0 - w[0].0) as f64).collect();
    let cadence = median_in_place(&mut gaps).max(1.0);
    let steps = (window_ms / cadence).max(1.0);
    let d = CountDesign::new(
        e,
        r,
        phi,
        cfg.min_absolute_effect("error_rate"),
        cfg.min_relative_effect("error_rate"),
        alpha,
        steps,
    );
    (d, (e, r))
}

/// Per-interval error rates as a summary (mean is the pooled rate).
fn rate_summary(pairs: &[(i64, f64, f64)]) -> Summary {
    let rates: Vec<f64> = pairs
        .iter()
        .filter(|p| p.2 > 0.0)
        .map(|p| p.1 / p.2)
        .collect();
    let mut s = summarize(&rates);
    let (e, r): (f64, f64) = pairs.iter().fold((0.0, 0.0), |a, p| (a.0 + p.1, a.1 + p.2));
    s.n = pairs.len();
    if r > 0.0 {
        s.mean = e / r;
    }
    s
}

/// Joins the errors and requests histories on equal timestamps within `[from, until)`.
pub(crate) fn joined(
    errors: &History,
    requests: &History,
    from: i64,
    until: i64,
) -> Vec<(i64, f64, f64)> {
    let (mut i, mut j) = (lower_bound(errors, from), lower_bound(requests, from));
    let mut out = Vec::new();
    while i < errors.len() && j < requests.len() {
        let (te, e) = errors[i];
        let (tr, r) = requests[j];
        if te >= until || tr >= until {
            break;
        }
        match te.cmp(&tr) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push((te, e, r));
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Size of the harmful shift over `[from, until)`, in the metric's unit: the median
/// residual against the baseline (pooled rate minus baseline rate for counts).
fn run_effect(t: &Test, histories: &[History], from: i64, until: i64) -> f64 {
    match (t.requests_metric, t.count_base) {
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
            let mut res: Vec<f64> = h
                .range(lower_bound(h, from)..lower_bound(h, until))
                .map(|&(ts, x)| t.sign * (x - t.base.expected(ts)))
                .collect();
            if res.is_empty() {
                0.0
            } else {
                median_in_place(&mut res)
            }
        }
    }
}
