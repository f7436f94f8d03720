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

mod count;
mod feed;
mod level;
mod reference;
mod report;
mod seasonal;
mod test;

use std::collections::VecDeque;

pub(crate) use count::joined;
use count::{count_design, rate_summary};
use level::CriticalValues;
pub(crate) use report::human_secs;
use test::{
    floor_noise, Budget, CountModel, DesignPoints, Model, Phase, ScoredDesign, Test, ValueModel,
};

use crate::baseline::Baseline;
use crate::config::{Config, Direction};
use crate::detector::{Cusum, CusumDesign};
use crate::samples::Deploy;
use crate::stats::median;
use crate::verdict::WatchEnd;

/// Share of a deploy's false-alarm budget that its log-signature evidence may spend; the
/// metric tests share the rest (Bonferroni), so every test of a deploy together stays
/// within `false_alarm_rate`.
pub(crate) const LOG_BUDGET_SHARE: f64 = 0.2;

/// Time-ordered points of one metric of one series.
///
/// # Dense series are binned
/// The history keeps a bounded number of points (`max_history`), and that number has to
/// span a whole watch: the baseline window, the deploy tolerance and the monitoring
/// window. A series sampled ten times a second would otherwise hold less than four minutes,
/// so its baseline would be a few minutes long and its evidence would be read from a
/// handful of the latest samples. Samples are therefore pooled into bins of
/// [`Config::sample_bin_ms`] (epoch-aligned, so the bins do not depend on the order the
/// samples arrive in): a bin's point is the mean of its samples (the sum for the
/// `errors` and `requests` counts, whose ratio is then the pooled error rate and whose
/// request total is the evidence the count test weighs) at the time of its earliest
/// sample. A series sampled less often than the bin width has one sample per bin and is
/// kept exactly as it came.
///
/// A bin that holds more than one sample is fed to the tests only once it is complete
/// (the next bin has begun), so the tests see each bin once, with its final value; a
/// sparse series' samples are fed as they arrive.
#[derive(Clone, Debug, Default)]
pub(crate) struct History {
    points: VecDeque<(i64, f64)>,
    /// Samples pooled into each point, kept once the series has pooled any (a sparse
    /// series, one sample a point, pays nothing for it).
    counts: Option<VecDeque<u16>>,
    /// Latest raw time pooled into the newest point.
    newest_raw_ms: i64,
    /// Time of the newest point while its bin is still filling and has not been fed to
    /// the tests; `i64::MAX` when every point has been fed.
    open_from: i64,
}

/// What adding a sample to a [`History`] did, and so what the running watch must be fed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Added {
    /// A new newest point, to be fed now (a sparse series), after `closed`, a dense
    /// bin this sample completed (fed before it), if any.
    Fresh { closed: Option<(i64, f64)> },
    /// A new newest point that opened a dense bin: nothing to feed yet but `closed`.
    Opened { closed: Option<(i64, f64)> },
    /// Pooled into the open newest bin: nothing to feed.
    Pooled,
    /// Pooled into a newest point that had already been fed (the series turned out to
    /// be dense), or put before the newest point (a late sample): the watch must be
    /// recomputed from the history.
    Rewritten,
    /// Replaced the value of a point with the same time (a repeated sample).
    Replaced,
    /// An exact repeat of a sample already pooled: ignored.
    Repeated,
}

impl History {
    /// Points held.
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    pub(crate) fn new() -> History {
        History {
            points: VecDeque::new(),
            counts: None,
            newest_raw_ms: i64::MIN,
            open_from: i64::MAX,
        }
    }

    fn count(&self, j: usize) -> u16 {
        self.counts.as_ref().map_or(1, |c| c[j])
    }

    /// Pools `(t, v)` into point `j` (of `n` samples so far).
    fn pool_into(&mut self, j: usize, t: i64, v: f64, additive: bool) {
        let n = self.count(j);
        let (pt, pv) = self.points[j];
        let value = if additive {
            pv + v
        } else {
            pv + (v - pv) / (f64::from(n) + 1.0)
        };
        self.points[j] = (pt.min(t), value);
        let len = self.points.len();
        let counts = self
            .counts
            .get_or_insert_with(|| std::iter::repeat_n(1, len).collect());
        counts[j] = n.saturating_add(1);
    }

    /// Adds sample `(t, v)`, pooling it into its bin of `bin_ms` (no pooling at 1 ms or
    /// less); `additive` metrics are summed, others averaged.
    pub(crate) fn add(&mut self, t: i64, v: f64, bin_ms: i64, additive: bool) -> Added {
        let bin_ms = bin_ms.max(1);
        let slot = |ts: i64| ts.div_euclid(bin_ms);
        let Some(&(last, last_v)) = self.points.back() else {
            self.push_newest(t, v);
            return Added::Fresh { closed: None };
        };
        let newest = self.points.len() - 1;
        // A whole bin width after the newest point is surely a later bin: the common case
        // of a sparse series needs no division.
        let later = t >= last.saturating_add(bin_ms) || slot(t) > slot(last);
        if !later && slot(t) == slot(last) {
            if t == last && self.count(newest) <= 1 {
                if let Some(b) = self.points.back_mut() {
                    b.1 = v;
                }
                return Added::Replaced;
            }
            if t == self.newest_raw_ms || t == last {
                return Added::Repeated;
            }
            let was_fed = self.open_from == i64::MAX;
            self.pool_into(newest, t, v, additive);
            self.newest_raw_ms = self.newest_raw_ms.max(t);
            self.open_from = last.min(t);
            return if was_fed {
                Added::Rewritten
            } else {
                Added::Pooled
            };
        }
        if later {
            let closed = (self.open_from != i64::MAX).then_some((last, last_v));
            let dense = self.count(newest) > 1;
            self.push_newest(t, v);
            return if dense {
                self.open_from = t;
                Added::Opened { closed }
            } else {
                Added::Fresh { closed }
            };
        }
        // A late sample, before the newest bin: pooled into its bin, or a point of its own.
        let at = lower_bound(self, t);
        let same = [at.checked_sub(1), Some(at)]
            .into_iter()
            .flatten()
            .find(|&j| j < self.points.len() && slot(self.points[j].0) == slot(t));
        match same {
            Some(j) if self.points[j].0 == t && self.count(j) <= 1 => self.points[j].1 = v,
            Some(j) => self.pool_into(j, t, v, additive),
            None => {
                self.points.insert(at, (t, v));
                if let Some(c) = self.counts.as_mut() {
                    c.insert(at, 1);
                }
            }
        }
        Added::Rewritten
    }

    fn push_newest(&mut self, t: i64, v: f64) {
        self.points.push_back((t, v));
        if let Some(c) = self.counts.as_mut() {
            c.push_back(1);
        }
        self.newest_raw_ms = t;
        self.open_from = i64::MAX;
    }

    /// Before adding to a history kept at `limit` points: when its buffer is full, drop
    /// the oldest point first, so the buffer never doubles past the limit (trimming after
    /// the push would grow a 2,048-point buffer to 4,096 and keep it, twice the memory of
    /// every series).
    pub(crate) fn make_room(&mut self, limit: usize) {
        if self.points.len() >= limit && self.points.len() == self.points.capacity() {
            self.pop_oldest();
        }
    }

    /// Drops the oldest point.
    pub(crate) fn pop_oldest(&mut self) {
        self.points.pop_front();
        if let Some(c) = self.counts.as_mut() {
            c.pop_front();
        }
        if self.points.is_empty() {
            self.open_from = i64::MAX;
        }
    }

    /// Points at or after this instant are not yet for the tests (a dense bin still
    /// filling).
    pub(crate) fn fed_until(&self) -> i64 {
        self.open_from
    }

    /// The value of the point at exactly `t`, if there is one.
    pub(crate) fn value_at(&self, t: i64) -> Option<f64> {
        self.points
            .get(lower_bound(self, t))
            .filter(|p| p.0 == t)
            .map(|p| p.1)
    }

    /// The newest point while its bin is still filling (not yet fed to the tests).
    pub(crate) fn open_point(&self) -> Option<(i64, f64)> {
        (self.open_from != i64::MAX)
            .then(|| self.points.back().copied())
            .flatten()
    }
}

impl std::ops::Deref for History {
    type Target = VecDeque<(i64, f64)>;
    fn deref(&self) -> &Self::Target {
        &self.points
    }
}

impl FromIterator<(i64, f64)> for History {
    fn from_iter<I: IntoIterator<Item = (i64, f64)>>(iter: I) -> History {
        let points: VecDeque<(i64, f64)> = iter.into_iter().collect();
        let raw = points.back().map_or(i64::MIN, |p| p.0);
        History {
            points,
            counts: None,
            newest_raw_ms: raw,
            open_from: i64::MAX,
        }
    }
}

/// The typical interval between the last samples before `t` (the median of up to 16
/// gaps per metric), or 0 when no metric has two samples before it.
fn recent_interval_ms(histories: &[History], t: i64) -> i64 {
    let mut gaps: Vec<i64> = Vec::new();
    for h in histories {
        let hi = lower_bound(h, t);
        let lo = hi.saturating_sub(17);
        gaps.extend(
            h.range(lo..hi)
                .zip(h.range(lo..hi).skip(1))
                .map(|(a, b)| b.0 - a.0),
        );
    }
    if gaps.is_empty() {
        return 0;
    }
    let mid = gaps.len() / 2;
    *gaps.select_nth_unstable(mid).1
}

/// Index of the first point at or after `t`.
pub(crate) fn lower_bound(h: &History, t: i64) -> usize {
    h.partition_point(|p| p.0 < t)
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
        //
        // The tolerance is never less than one sample interval. A sample stands for the
        // interval it aggregates, and many sources stamp that interval by its start (NAB,
        // CloudWatch and most rollups; Prometheus' `rate` over a range ending at the
        // stamp is the mirror case). Then the sample just before the recorded deploy can
        // already hold the new version's traffic, and it belongs to neither side cleanly:
        // in the baseline it would make the deploy's own first effect look normal.
        let interval_ms = recent_interval_ms(setup.histories, deploy_ms);
        let tolerance_ms = (cfg.deploy_tolerance_secs as i64)
            .saturating_mul(1000)
            .max(interval_ms);
        let tolerant_ms = deploy_ms.saturating_sub(tolerance_ms);
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
            /// The points' values sorted ascending (`None` when not at hand).
            sorted: Option<Vec<f64>>,
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
            // The values' median and spread serve the effect floor, the level-shift search
            // and, when the baseline is not re-based, the fit.
            // The values are sorted once: the median and spread are read off the sorted
            // values, and each test's rank reference is the sorted values mapped through
            // its residual (see `ScoredDesign::new`) instead of a sort of its own.
            let values: Vec<f64> = points.iter().map(|p| p.1).collect();
            let mut sorted = values.clone();
            crate::stats::sort_total(&mut sorted);
            let raw = crate::stats::robust_location_scale_sorted(&values, &sorted);
            let typical = raw.0;
            let floor = cfg
                .min_absolute_effect(name)
                .max(cfg.min_relative_effect(name) * typical.abs());
            let cuts = crate::baseline::level_shifts_with(&points, Some(raw), floor);
            let (points, pre_from, short) = match cuts.last() {
                Some(&tau) => {
                    let from = points[tau].0;
                    if points.len() - tau < cfg.min_baseline_samples {
                        (points, Some(from), true)
                    } else {
                        (
                            crate::baseline::align_to_last_level(&points, &cuts),
                            Some(from),
                            false,
                        )
                    }
                }
                None => (points, None, false),
            };
            // Re-based points are other values than the ones sorted.
            let sorted = (pre_from.is_none() || short).then_some(sorted);
            let unchanged = pre_from.is_none() || short;
            let Some(base) = Baseline::fit_with(&points, unchanged.then_some(raw)) else {
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
                    base: base.for_harm(sign),
                    points: points.clone(),
                    sorted: sorted.clone(),
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
            let gaps: Vec<f64> = pairs.windows(2).map(|w| (w[1].0 - w[0].0) as f64).collect();
            cadences.push(median(&gaps).max(1.0));
        }
        watch.cadence_ms = if cadences.is_empty() {
            f64::NAN
        } else {
            median(&cadences)
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

        let mut critical = CriticalValues::default();
        for p in planned {
            let steps = (window_ms / p.base.cadence_ms).max(1.0);
            let name = &setup.metric_names[p.metric];
            let level = p.base.level_at(cut_ms);
            let min_effect = cfg
                .min_absolute_effect(name)
                .max(cfg.min_relative_effect(name) * level.abs());
            let noise = floor_noise(p.base.sum_noise(), level, min_effect);
            let scored = ScoredDesign::new(
                &p.base,
                DesignPoints {
                    in_time: &p.points,
                    sorted_values: p.sorted.as_deref(),
                },
                p.sign,
                Budget {
                    alpha_test,
                    steps,
                    tolerance_ms: deploy_ms - cut_ms,
                },
                &mut critical,
                cfg,
            );
            let mut recent_base = [0.0; 3];
            for (slot, &(t, x)) in recent_base.iter_mut().rev().zip(p.points.iter().rev()) {
                *slot = p.sign * (x - p.base.expected(t));
            }
            watch.tests.push(Test {
                metric: p.metric,
                requests_metric: None,
                name: name.clone(),
                direction: p.direction,
                sign: p.sign,
                base: p.base,
                design: scored.design,
                model: Model::Values(ValueModel {
                    noise,
                    rank: scored.rank,
                    widen: scored.widen,
                    tail: scored.tail,
                    level: scored.level,
                }),
                alpha: scored.alpha,
                min_effect,
                design_shift: cfg.design_shift_sigmas,
                min_rel: cfg.min_relative_effect(name),
                cusum: Cusum::default(),
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
                short_since: p.short.then_some(p.pre_from).flatten(),
                last_effect_check: None,
                last_extreme: None,
                tail_hit: None,
                recent: recent_base,
                recent_base,
                // The level test keeps at most `max_k` residuals: room for them once,
                // not a doubling at every power of two.
                level_resid: Vec::with_capacity(scored.level.map_or(0, |l| l.max_k)),
                level_above: 0,
                level_above_post: 0,
                level_hit: None,
                local_above: 0,
                local_above_post: 0,
                level_local: None,
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
            let gaps: Vec<f64> = pairs.windows(2).map(|w| (w[1].0 - w[0].0) as f64).collect();
            let cadence = median(&gaps).max(1.0);
            watch.tests.push(Test {
                metric: e,
                requests_metric: Some(r),
                name: "error_rate".to_string(),
                direction: Direction::Up,
                sign: 1.0,
                base: Baseline {
                    n,
                    level: base.0 / base.1.max(1.0),
                    held_level: base.0 / base.1.max(1.0),
                    slope_per_sec: 0.0,
                    drift: 0.0,
                    untrended: None,
                    season: None,
                    anchor_ms: pairs[n - 1].0,
                    extrapolated: true,
                    spread: summary.spread,
                    rho: 0.0,
                    cadence_ms: cadence,
                    summary,
                },
                design: CusumDesign::spending(0.0, design.h, design.clip, 1.0, window_ms / cadence),
                model: Model::Counts(CountModel { design, base }),
                alpha: 0.0,
                min_effect: cfg.min_absolute_effect("error_rate"),
                design_shift: cfg.design_shift_sigmas,
                min_rel: cfg.min_relative_effect("error_rate"),
                cusum: Cusum::default(),
                phase: Phase::Running,
                n_post: 0,
                n_tolerance: 0,
                requests_post: 0.0,
                s_at_deploy: 0.0,
                run_start_at_deploy: None,
                pre_existing_from: None,
                short_since: None,
                last_effect_check: None,
                last_extreme: None,
                tail_hit: None,
                recent: [0.0; 3],
                recent_base: [0.0; 3],
                level_resid: Vec::new(),
                level_above: 0,
                level_above_post: 0,
                level_hit: None,
                local_above: 0,
                local_above_post: 0,
                level_local: None,
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

    /// The end of the latest hole in a tested metric (a gap over 1.5 typical intervals)
    /// between the deploy and `until_ms`: the timestamp of the sample after it. Samples
    /// missing from the hole may still arrive late until the watermark passes this time;
    /// after that they are late whatever happens. `None` when there is no hole.
    pub fn last_gap_end(&self, histories: &[History], until_ms: i64) -> Option<i64> {
        self.tests
            .iter()
            .filter_map(|t| {
                let h = &histories[t.metric];
                let lo = lower_bound(h, self.deploy_ms).saturating_sub(1);
                let hi = lower_bound(h, until_ms + 1);
                let limit = 1.5 * t.base.cadence_ms;
                (lo + 1..hi)
                    .rev()
                    .find(|&i| (h[i].0 - h[i - 1].0) as f64 > limit)
                    .map(|i| h[i].0)
            })
            .max()
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
            // A test stopped by a pre-existing shift stays stopped, also when one of the
            // tests that still run after it (extreme, local level) had fired: fed again,
            // it must take the same path.
            t.phase = match t.short_since {
                Some(start_ms) => Phase::PreExistingShort { start_ms },
                None => Phase::Running,
            };
            t.restart();
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
        // Each test's points are in time order already, so the feed is a merge of those
        // runs by (time, metric, test), not a sort of their concatenation.
        // (metric, its points as (time, value, requests))
        type Run = (usize, Vec<(i64, f64, f64)>);
        let runs: Vec<Run> = (0..self.tests.len())
            .map(|i| {
                let from = self.tail_start(i, histories);
                (
                    self.tests[i].metric,
                    self.points_for(i, histories, from, self.end_ms),
                )
            })
            .collect();
        let mut next = vec![0usize; runs.len()];
        // The runs in (metric, test) order: the first run with the earliest time is then
        // the least (time, metric, test), with one comparison of times per run.
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by_key(|&i| (runs[i].0, i));
        // Feeding test `i` changes no other test's phase, so whether any test has fired
        // is kept up to date from the test just fed instead of asked of every test at
        // every point.
        let mut fired = self.fired();
        loop {
            let mut best: Option<(i64, usize)> = None;
            for &i in &order {
                if let Some(p) = runs[i].1.get(next[i]) {
                    if best.is_none_or(|b| p.0 < b.0) {
                        best = Some((p.0, i));
                    }
                }
            }
            let Some((t, i)) = best else { break };
            if fired {
                break;
            }
            let (_, x, r) = runs[i].1[next[i]];
            next[i] += 1;
            self.feed_test(i, t, x, r, histories, cfg);
            fired = self.tests[i].fired().is_some();
        }
        for (m, h) in histories.iter().enumerate() {
            let hi = lower_bound(h, self.end_ms.min(h.fed_until()));
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
            Some(r) => joined(
                &histories[t.metric],
                &histories[r],
                from,
                until
                    .min(histories[t.metric].fed_until())
                    .min(histories[r].fed_until()),
            ),
            None => {
                let h = &histories[t.metric];
                let lo = lower_bound(h, from);
                let hi = lower_bound(h, until.min(h.fed_until()));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(samples: &[(i64, f64)], additive: bool) -> History {
        let mut h = History::new();
        for &(t, v) in samples {
            h.add(t, v, 1_000, additive);
        }
        h
    }

    #[test]
    fn bins_pool_dense_samples_whatever_their_order() {
        let samples: Vec<(i64, f64)> = (0..30).map(|i| (i * 100, i as f64)).collect();
        let mut reversed = samples.clone();
        reversed.reverse();
        let mut shuffled = samples.clone();
        for chunk in shuffled.chunks_mut(4) {
            chunk.reverse();
        }
        let a = filled(&samples, false);
        assert_eq!(a.len(), 3);
        // ten samples a bin, at the earliest one's time, their mean as the value
        assert_eq!(a[1], (1_000, 14.5));
        for other in [&reversed, &shuffled] {
            let b = filled(other, false);
            assert_eq!(b.len(), 3);
            for (x, y) in a.iter().zip(b.iter()) {
                assert_eq!(x.0, y.0);
                assert!((x.1 - y.1).abs() < 1e-9, "{x:?} vs {y:?}");
            }
        }
        // counts are summed
        assert_eq!(filled(&samples, true)[1], (1_000, 145.0));
    }

    #[test]
    fn a_history_at_its_limit_does_not_double_its_buffer() {
        let mut h = History::new();
        for i in 0..10_000 {
            h.make_room(2_048);
            h.add(i * 10_000, 1.0, 1_000, false);
            while h.len() > 2_048 {
                h.pop_oldest();
            }
        }
        assert_eq!(h.len(), 2_048);
        assert!(h.capacity() < 4_096, "{}", h.capacity());
    }

    #[test]
    fn sparse_samples_are_kept_as_they_came_and_dense_bins_wait_until_complete() {
        let mut h = History::new();
        assert_eq!(h.add(0, 1.0, 1_000, false), Added::Fresh { closed: None });
        assert_eq!(
            h.add(5_000, 2.0, 1_000, false),
            Added::Fresh { closed: None }
        );
        // a repeated time replaces the value, as a re-sent sample does
        assert_eq!(h.add(5_000, 3.0, 1_000, false), Added::Replaced);
        assert_eq!(
            h.iter().copied().collect::<Vec<_>>(),
            [(0, 1.0), (5_000, 3.0)]
        );
        // a second sample in the newest bin: the series is dense, the bin was fed too soon
        assert_eq!(h.add(5_500, 5.0, 1_000, false), Added::Rewritten);
        assert_eq!(h.open_point(), Some((5_000, 4.0)));
        // the repeat of a pooled sample is ignored
        assert_eq!(h.add(5_500, 5.0, 1_000, false), Added::Repeated);
        assert_eq!(h.add(5_700, 4.0, 1_000, false), Added::Pooled);
        // the next bin completes it: fed then, with its final value
        assert_eq!(
            h.add(6_000, 1.0, 1_000, false),
            Added::Opened {
                closed: Some((5_000, 4.0))
            }
        );
        assert_eq!(h.fed_until(), 6_000);
    }
}
