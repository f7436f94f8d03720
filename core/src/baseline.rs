//! Baselines: what normal looked like before the deploy.
//!
//! A baseline is fitted once per watch from the samples in the baseline window. It gives
//! the expected level at any later instant (a robust line when the baseline trends, a
//! robust constant otherwise), the typical spread around it, and the lag-1 autocorrelation
//! that the detector needs to turn the spread into the noise of a running sum.

use crate::season::{find_season, Season};
use crate::stats::{lag1_autocorrelation, median, robust_location_scale};
use crate::verdict::Summary;

/// A fitted baseline for one metric of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Baseline {
    /// Number of samples it was fitted on.
    pub n: usize,
    /// Expected level at `anchor_ms` (the median of the detrended samples).
    pub level: f64,
    /// Where the series stood at the end of the baseline without a trend: the median of
    /// the last quarter's values (at least 12) when it trends or drifts, `level`
    /// otherwise. The expectation after the baseline when its trend is not extrapolated
    /// (see [`Baseline::for_harm`]).
    pub held_level: f64,
    /// Trend in units per second; zero unless the baseline trends significantly.
    pub slope_per_sec: f64,
    /// The sign of a trend found over the whole baseline that its recent half did not
    /// confirm (a drift that may have levelled off); zero otherwise, and whenever
    /// `slope_per_sec` is not. See [`Baseline::for_harm`].
    pub drift: f64,
    /// For a trend found at two to three standard errors only (a weak trend): the level,
    /// spread and lag-1 autocorrelation of the baseline without it, which a test for
    /// which the trend runs the harmless way takes instead. See [`Baseline::for_harm`].
    pub untrended: Option<(f64, f64, f64)>,
    /// A cycle of a few samples the baseline repeats (see [`crate::season`]): its offset
    /// is part of every expectation, inside the baseline and after it, and the level,
    /// spread and correlation are those of the samples around it.
    pub season: Option<Season>,
    /// Instant the level refers to (the last baseline sample).
    pub anchor_ms: i64,
    /// Whether the trend is carried past `anchor_ms` (see [`Baseline::expected`]); false
    /// when it runs the harmless way of a test (see [`Baseline::for_harm`]), which then
    /// expects `held_level`.
    pub extrapolated: bool,
    /// Robust standard deviation of the samples around the (trend) line.
    pub spread: f64,
    /// Lag-1 autocorrelation of the residuals, clamped to `[0, 0.95]`.
    pub rho: f64,
    /// Median interval between samples, in milliseconds.
    pub cadence_ms: f64,
    /// Location and spread of the raw samples, for the evidence.
    pub summary: Summary,
}

impl Baseline {
    /// Fits a baseline to `(timestamp_ms, value)` points in time order. `None` with fewer
    /// than three points.
    pub fn fit(points: &[(i64, f64)]) -> Option<Baseline> {
        Baseline::fit_with(points, None)
    }

    /// [`Baseline::fit`], given the [`robust_location_scale`] of the points' values when
    /// the caller has it already (a watch computes it once per metric for the level-shift
    /// search, the effect floor and the fit).
    pub fn fit_with(points: &[(i64, f64)], raw: Option<(f64, f64)>) -> Option<Baseline> {
        let n = points.len();
        if n < 3 {
            return None;
        }
        let values: Vec<f64> = points.iter().map(|p| p.1).collect();
        let (raw_median, raw_spread) = raw.unwrap_or_else(|| robust_location_scale(&values));
        let summary = Summary {
            n,
            median: raw_median,
            mean: values.iter().sum::<f64>() / n as f64,
            spread: raw_spread,
        };
        let anchor_ms = points[n - 1].0;
        let gaps: Vec<f64> = points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) as f64)
            .collect();
        let cadence_ms = median(&gaps).max(1.0);

        // A trend at three standard errors serves every test; one at two to three only the
        // test for which it runs the harmful way (see `for_harm`).
        let (mut slope, z) = trend_at(points, raw_spread, 2.0);
        let weak = slope != 0.0 && z <= 3.0;
        let mut drift = 0.0;
        // The residuals around the line and their robust location and spread, while the
        // trend holds; without a trend the residuals are the values themselves.
        let mut line = None;
        if slope != 0.0 {
            let residuals: Vec<f64> = points
                .iter()
                .map(|&(t, v)| v - slope * (t - anchor_ms) as f64 / 1000.0)
                .collect();
            let (center, line_spread) = robust_location_scale(&residuals);
            if trend_still_holds(&points[n / 2..], slope, line_spread, raw_spread) {
                line = Some((residuals, center, line_spread));
            } else {
                drift = slope.signum();
                slope = 0.0;
            }
        }
        let mut held_level = f64::NAN;
        let (residuals, mut level, spread) = match &line {
            Some((r, c, s)) => (r.as_slice(), *c, *s),
            None => (values.as_slice(), raw_median, raw_spread),
        };
        // A short cycle is looked for around the level or line; when there is one, every
        // figure below is taken on the samples with its offsets removed.
        let season = find_season(points, residuals, level, spread, cadence_ms);
        let off_cycle = |xs: &[f64], s: &Season| -> Vec<f64> {
            xs.iter()
                .zip(points)
                .map(|(x, &(t, _))| x - s.at(t))
                .collect()
        };
        let deseasoned = season
            .as_ref()
            .map(|s| (off_cycle(residuals, s), off_cycle(&values, s), s.widen));
        let (residuals, values, spread) = match &deseasoned {
            Some((r, v, widen)) => {
                let (center, s) = robust_location_scale(r);
                level = center;
                (r.as_slice(), v.as_slice(), s * widen)
            }
            None => (residuals, values.as_slice(), spread),
        };
        let k = (n / 4).max(12).min(n);
        if slope != 0.0 {
            // A line is only a local description: on a curved stretch (the shoulder of a
            // daily cycle) the line through the whole window misses its end, and the
            // residuals of the last samples all sit on one side of it. What the deploy is
            // compared with is where the series was when the baseline ended, so the line
            // is anchored on the median residual of the last quarter (at least 12 samples).
            level = median(&residuals[n - k..]);
        }
        if slope != 0.0 || drift != 0.0 {
            held_level = median(&values[n - k..]);
        }
        let rho_of = |residuals: &[f64], level: f64, spread: f64| {
            lag1_autocorrelation(residuals, level, 3.0 * spread.max(f64::MIN_POSITIVE))
                .clamp(0.0, 0.95)
        };
        let rho = rho_of(residuals, level, spread);
        let untrended = (weak && slope != 0.0).then(|| {
            let (median, spread) = match &deseasoned {
                Some((_, v, widen)) => {
                    let (m, s) = robust_location_scale(v);
                    (m, s * widen)
                }
                None => (raw_median, raw_spread),
            };
            (median, spread, rho_of(values, median, spread))
        });
        Some(Baseline {
            n,
            level,
            held_level: if slope == 0.0 && drift == 0.0 {
                level
            } else {
                held_level
            },
            slope_per_sec: slope,
            drift,
            untrended,
            season,
            anchor_ms,
            extrapolated: true,
            spread,
            rho,
            cadence_ms,
            summary,
        })
    }

    /// Expected value at `t_ms` under the baseline.
    ///
    /// Inside the baseline it is the fitted line, and after it too while the trend is
    /// extrapolated; otherwise it holds at `held_level`.
    ///
    /// # Why the line is not damped
    /// A trend fitted on a window is a local estimate (the morning ramp, a slow drain),
    /// and a forecaster would damp it, expecting it to flatten. A test has another
    /// question: which expectation can it not be wrong against? It only extrapolates a
    /// trend that runs the harmful way (see [`Baseline::for_harm`]), and there the full
    /// line is the expectation least favourable to an alarm: if the trend flattens, the
    /// samples fall short of the line on the harmless side and raise nothing. A damped
    /// line expects the flattening, so a trend that simply goes on becomes a growing
    /// harmful residual: on steady synthetic ramps (a line plus independent noise, the
    /// line 8 σ an hour) every watch of 30 minutes ended a false alarm, and on
    /// random-walk and trending series a damped trend made a quarter of the false
    /// alarms. What the full line costs is power against a change that adds to a trend
    /// already under way: the test then asks for a change beyond that worsening.
    pub fn expected(&self, t_ms: i64) -> f64 {
        self.level_at(t_ms) + self.season.as_ref().map_or(0.0, |s| s.at(t_ms))
    }

    /// [`Baseline::expected`] without a short cycle's offset: the level the cycle swings
    /// around, which effect floors relative to the level are taken of.
    pub fn level_at(&self, t_ms: i64) -> f64 {
        let dt = (t_ms - self.anchor_ms) as f64;
        if dt > 0.0 && !self.extrapolated {
            return self.held_level;
        }
        self.level + self.slope_per_sec * dt / 1000.0
    }

    /// This baseline as the expectation of a test for which `sign · (x − expected)` is
    /// harmful: a trend that runs the harmless way (a latency falling, a throughput
    /// rising) is not extrapolated past the baseline's end, and the expectation holds at
    /// the median of the baseline's last values, where the series stood without counting
    /// on the trend at all (the line through those values, anchored at their end, already
    /// assumes the trend went on through them).
    ///
    /// # Why only one way
    /// A trend seen over a baseline window is a local estimate, and the most common thing
    /// a healthy series does next is to stop trending: a ramp levels off, a drain reaches
    /// its floor, a recovery completes. Extrapolating a trend that runs the harmless way
    /// turns that ordinary levelling-off into a harmful residual that grows with the
    /// horizon (a falling queue that stops falling "rises" against the line). Continuing a
    /// trend that runs the harmful way is the cautious choice: the test then asks for a
    /// change beyond the worsening already under way. Either way the test only ever takes
    /// the expectation less favourable to an alarm, so no change to a series' own trend
    /// can make a false alarm more likely.
    ///
    /// # A drift that may have stopped
    /// A trend that the whole baseline shows but its recent half has left (see
    /// `trend_still_holds`) is not extrapolated (it may have levelled off), yet the series did
    /// move. When it moved the harmful way, the whole baseline's median is a level the
    /// series has already left behind, and every sample after the deploy would count the
    /// distance covered before it as a shift. Such a test expects `held_level`, where the
    /// series stood over the baseline's last quarter, when that lies on the harmful side of
    /// the median: again the less favourable of the two expectations, so this can only
    /// remove alarms. On series trending at a few standard deviations per baseline (line
    /// plus independent noise), the median of the whole window made most healthy watches
    /// false alarms.
    ///
    /// # A weak trend
    /// A trend at two to three standard errors is kept for the test it runs the harmful
    /// way, because extrapolating it there is the cautious choice this doc describes: a
    /// steady climb of a few standard deviations per baseline is common (a queue, a heap,
    /// a slowly growing load), the three-standard-error bar misses most of them, and the
    /// test against the baseline's median then counts the climb's plain continuation as
    /// a shift. (The line's spread is the smaller one, which sharpens that test a little;
    /// the line is only kept when it fits better than the median.) For the test it runs
    /// the harmless way, a trend that weak is not evidence enough to move the expectation
    /// to where the line ended, so that test takes the baseline without the trend
    /// (`untrended`): its median, spread and autocorrelation, as if no trend was found.
    pub fn for_harm(&self, sign: f64) -> Baseline {
        let mut b = self.clone();
        b.untrended = None;
        if let (Some((level, spread, rho)), true) =
            (self.untrended, self.slope_per_sec * sign < 0.0)
        {
            b.level = level;
            b.held_level = level;
            b.spread = spread;
            b.rho = rho;
            b.slope_per_sec = 0.0;
            return b;
        }
        if b.slope_per_sec * sign < 0.0
            || (b.slope_per_sec == 0.0
                && b.drift * sign > 0.0
                && sign * (b.held_level - b.level) > 0.0)
        {
            b.extrapolated = false;
        }
        b
    }

    /// Standard deviation of the noise as it accumulates in a running sum.
    ///
    /// Neighbouring samples of real metrics are correlated (a slow minute is followed by a
    /// slow minute). For an AR(1) process with lag-1 correlation ρ the variance of a long
    /// sum of n values is n·σ²·(1+ρ)/(1−ρ) instead of n·σ², so a CUSUM tuned for
    /// independent noise would cross its threshold far too often. Scaling σ by
    /// √((1+ρ)/(1−ρ)) restores the false-alarm rate the threshold was derived for.
    ///
    /// The result is also raised by one standard error of the spread estimate,
    /// `σ/√(2·n_eff)` with `n_eff = n·(1−ρ)/(1+ρ)` the effective number of independent
    /// samples: a spread that happened to come out low on a short or sticky baseline would
    /// otherwise turn ordinary noise into evidence.
    pub fn sum_noise(&self) -> f64 {
        let widen = ((1.0 + self.rho) / (1.0 - self.rho)).sqrt();
        let n_eff = (self.n as f64 * (1.0 - self.rho) / (1.0 + self.rho)).max(2.0);
        self.spread * widen * (1.0 + 1.0 / (2.0 * n_eff).sqrt())
    }
}

/// Robust variance of `values`: the winsorized variance around the median (see
/// [`robust_location_scale`]).
fn robust_var(values: &[f64]) -> f64 {
    let (_, sd) = robust_location_scale(values);
    if sd.is_finite() {
        sd * sd
    } else {
        0.0
    }
}

/// Long-run noise of a series estimated from its lag-1 and lag-2 differences, which a
/// level shift barely touches (it spoils one or two differences, which winsorizing
/// absorbs). For AR(1) noise with variance σ² and correlation ρ,
/// `Var(x_t − x_{t−1}) = 2σ²(1−ρ)` and `Var(x_t − x_{t−2}) = 2σ²(1−ρ²)`, so their ratio is
/// `1+ρ`; the long-run deviation is then `σ·√((1+ρ)/(1−ρ))`. A wandering, random-walk-like
/// series comes out with ρ near 1 and a large long-run noise, which makes the shift test
/// below cautious exactly where it should be.
///
/// `v1` is the robust variance of the lag-1 differences (see [`lag1_difference_var`]).
fn shift_robust_noise(values: &[f64], v1: f64) -> f64 {
    let d2: Vec<f64> = values.windows(3).map(|w| w[2] - w[0]).collect();
    let v2 = robust_var(&d2);
    if v1 <= 0.0 {
        return 0.0;
    }
    let rho = (v2 / v1 - 1.0).clamp(0.0, 0.95);
    let var = v1 / (2.0 * (1.0 - rho));
    (var * (1.0 + rho) / (1.0 - rho)).sqrt()
}

/// The robust variance of the lag-1 differences of `values`, the first part of
/// [`shift_robust_noise`].
fn lag1_difference_var(values: &[f64]) -> f64 {
    let d1: Vec<f64> = values.windows(2).map(|w| w[1] - w[0]).collect();
    robust_var(&d1)
}

/// The largest two-sample z statistic over the split points of `w` for long-run noise
/// `noise` (see [`level_shift`]), where it is reached, and the prefix sums of `w`.
fn best_split(w: &[f64], noise: f64) -> (f64, usize, Vec<f64>) {
    let n = w.len();
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0);
    for v in w {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
    }
    let total = prefix[n];
    let (mut best, mut best_at) = (0.0, 0);
    for (tau, &before) in prefix.iter().enumerate().take(n - 2).skip((n / 10).max(3)) {
        let (n1, n2) = (tau as f64, (n - tau) as f64);
        let m1 = before / n1;
        let m2 = (total - before) / n2;
        let z = (m2 - m1).abs() / (noise * (1.0 / n1 + 1.0 / n2).sqrt());
        if z > best {
            best = z;
            best_at = tau;
        }
    }
    (best, best_at, prefix)
}

/// Looks for a level shift inside a baseline and returns the index where the latest
/// stable stretch begins, when there is one.
///
/// For every split point the difference of the two stretches' means is standardized by
/// the shift-robust long-run noise (two-sample z statistic); the largest is a shift when
/// it exceeds 5 (the maximum of this statistic over all splits of stationary noise stays
/// under about 4.5 with probability 0.999 for a few hundred samples) and the difference is
/// at least `min_effect`. A steady trend also makes the two halves differ; the split is
/// only taken when a step explains the data better than a straight line (smaller
/// residual spread), so a daily ramp stays a trend.
pub fn level_shift(points: &[(i64, f64)], min_effect: f64) -> Option<usize> {
    level_shift_with(points, None, min_effect)
}

/// [`level_shift`], given the [`robust_location_scale`] of the points' values when the
/// caller has it already.
pub fn level_shift_with(
    points: &[(i64, f64)],
    raw: Option<(f64, f64)>,
    min_effect: f64,
) -> Option<usize> {
    level_shift_search(points, raw, min_effect, true)
}

/// [`level_shift_with`], with or without the early answer for a baseline whose bound
/// already rules a shift out (the same result either way; the tests compare them).
fn level_shift_search(
    points: &[(i64, f64)],
    raw: Option<(f64, f64)>,
    min_effect: f64,
    early: bool,
) -> Option<usize> {
    let n = points.len();
    if n < 20 {
        return None;
    }
    let values: Vec<f64> = points.iter().map(|p| p.1).collect();
    let v1 = lag1_difference_var(&values);
    if v1 <= 0.0 {
        return None;
    }
    let (med, sd) = raw.unwrap_or_else(|| robust_location_scale(&values));
    // Most baselines have no shift, and that can be told before the lag-2 differences
    // are looked at. The long-run noise is never below `√(v1/2)` (its correlation
    // factors are at least 1, and every rounding step is monotone), so the statistic
    // with that floor for the noise bounds the true one from above, provided the clip
    // at `4·max(sd, noise)` moves no value: when no value lies beyond the clip at the
    // floor, none lies beyond the wider true clip either, and the clipped values are the
    // values themselves. A bound under 5 is then a `None`, as the full search would give.
    if early && v1.is_finite() {
        let floor = (v1 / 2.0).sqrt();
        let clip = 4.0 * sd.max(floor);
        let (lo, hi) = (med - clip, med + clip);
        if values.iter().all(|v| *v >= lo && *v <= hi) && best_split(&values, floor).0 < 5.0 {
            return None;
        }
    }
    let noise = shift_robust_noise(&values, v1);
    if noise <= 0.0 || !noise.is_finite() {
        return None;
    }
    let clip = 4.0 * sd.max(noise);
    let w: Vec<f64> = values
        .iter()
        .map(|v| v.clamp(med - clip, med + clip))
        .collect();
    let (best, best_at, prefix) = best_split(&w, noise);
    let total = prefix[n];
    if best < 5.0 {
        return None;
    }
    let m1 = prefix[best_at] / best_at as f64;
    let m2 = (total - prefix[best_at]) / (n - best_at) as f64;
    if (m2 - m1).abs() < min_effect {
        return None;
    }
    // A level shift moves the median of what follows it; a transient burst (a few samples
    // far off, then back to normal) moves the means of the two stretches but not their
    // medians. Only a shift that the medians confirm, by at least half the difference of
    // the means and by the effect floor, re-bases the baseline.
    let med_before = median(&values[..best_at]);
    let med_after = median(&values[best_at..]);
    let med_step = (med_after - med_before).abs();
    if med_step < min_effect || med_step < 0.5 * (m2 - m1).abs() {
        return None;
    }
    // Step or trend: compare the residual spread of both models.
    let step_resid: Vec<f64> = w
        .iter()
        .enumerate()
        .map(|(i, v)| v - if i < best_at { m1 } else { m2 })
        .collect();
    let (_, step_sd) = robust_location_scale(&step_resid);
    let slope = significant_trend(points, sd);
    if slope != 0.0 {
        let t0 = points[n - 1].0;
        let trend_resid: Vec<f64> = points
            .iter()
            .map(|&(t, v)| v - slope * (t - t0) as f64 / 1000.0)
            .collect();
        let (_, trend_sd) = robust_location_scale(&trend_resid);
        if trend_sd <= step_sd {
            return None;
        }
    }
    Some(best_at)
}

/// Every level shift of the baseline that the last one found leaves behind: the first
/// search ([`level_shift_with`]) finds the largest step, and the stretch after it is
/// searched again, and so on until a stretch shows none (binary segmentation, kept to the
/// right-hand side: only the level the service sits at when the deploy comes matters).
///
/// One step is not always the whole story. A service that steps up and then keeps
/// climbing, or steps down twice (a failover, then a second drain), has a stretch after
/// its largest step that is not one level either; a baseline re-based onto it would judge
/// the deploy against a level the service had already left, and call the level it has
/// reached before the deploy a change at the deploy. Each further search is the same test
/// with the same effect floor on its own stretch, so it adds no shift that the first search
/// would not have called on a baseline of that stretch alone. The cut points come back in
/// time order; empty when the baseline has no shift.
pub fn level_shifts_with(
    points: &[(i64, f64)],
    raw: Option<(f64, f64)>,
    min_effect: f64,
) -> Vec<usize> {
    let mut cuts = Vec::new();
    let Some(mut tau) = level_shift_with(points, raw, min_effect) else {
        return cuts;
    };
    cuts.push(tau);
    // Each cut lies at least three samples into its stretch, so the stretches shrink and
    // the search ends (a stretch under 20 samples has no shift to find).
    while let Some(next) = level_shift_with(&points[tau..], None, min_effect) {
        tau += next;
        cuts.push(tau);
    }
    cuts
}

/// The baseline points with every stretch before the last level shift moved to the level
/// the service sits at after it: the stretch between two cuts (see [`level_shifts_with`])
/// by the difference of its median from that level. `cuts` ascend and lie inside
/// `points`.
///
/// The deploy is judged against the level after the last shift, but the noise around a
/// level (spread, autocorrelation, tail) is taken to be the same on every side of a step,
/// so the whole baseline still describes it: a stretch of a dozen samples after the shift
/// says little about how wide the noise is or how heavy its tail, and judging a deploy on
/// so thin a reference raises false alarms.
///
/// The level after the last shift is the last stretch's median, unless that stretch is
/// still moving: a service often steps and then settles (caches refilling after a
/// failover, a queue draining), and the median of a climb lies below where it ended. When
/// the stretch's own trend passes the same three-standard-error test as a baseline's
/// (with the stretch's spread, which the trend itself widens, so a doubtful climb is left
/// alone), its samples are brought to its end along that trend and the level is their
/// median: where the service stood when the baseline ended.
pub fn align_to_last_level(points: &[(i64, f64)], cuts: &[usize]) -> Vec<(i64, f64)> {
    let Some(&last) = cuts.last() else {
        return points.to_vec();
    };
    let level = |stretch: &[(i64, f64)]| -> f64 {
        let vals: Vec<f64> = stretch.iter().map(|p| p.1).collect();
        median(&vals)
    };
    let tail = &points[last..];
    let vals: Vec<f64> = tail.iter().map(|p| p.1).collect();
    let (_, spread) = robust_location_scale(&vals);
    let slope = significant_trend(tail, spread);
    let end_ms = tail.last().map_or(0, |p| p.0);
    let settled: Vec<(i64, f64)> = if slope != 0.0 {
        tail.iter()
            .map(|&(t, v)| (t, v + slope * (end_ms - t) as f64 / 1000.0))
            .collect()
    } else {
        tail.to_vec()
    };
    let target = level(&settled);
    let mut out = Vec::with_capacity(points.len());
    let mut from = 0;
    for &cut in cuts {
        let step = target - level(&points[from..cut]);
        out.extend(points[from..cut].iter().map(|&(t, v)| (t, v + step)));
        from = cut;
    }
    out.extend_from_slice(&settled);
    out
}

/// The median timestamp of points in time order, as [`median`] of the timestamps gives it.
fn sorted_median_ms(points: &[(i64, f64)]) -> f64 {
    let m = points.len();
    if m % 2 == 1 {
        points[m / 2].0 as f64
    } else {
        (points[m / 2 - 1].0 as f64 + points[m / 2].0 as f64) / 2.0
    }
}

/// A robust trend estimate (slope of the line through the medians of the first and last
/// thirds, Tukey's resistant line), kept only when it is clearly larger than what noise
/// would produce: the difference of the two thirds' medians must exceed three standard
/// errors, with the standard error widened for autocorrelation. A noisy or flat baseline
/// thus gets slope zero, and the detector never extrapolates a trend that is not there.
fn significant_trend(points: &[(i64, f64)], spread: f64) -> f64 {
    let (slope, z) = trend_at(points, spread, 3.0);
    if z > 3.0 {
        slope
    } else {
        0.0
    }
}

/// The trend test of [`significant_trend`] at `cutoff` standard errors: the slope (per
/// second) and its size in standard errors (infinite on a baseline without spread), or
/// `(0, 0)` when it is within the cutoff or the line does not describe the points.
fn trend_at(points: &[(i64, f64)], spread: f64, cutoff: f64) -> (f64, f64) {
    if spread.is_nan() {
        return (0.0, 0.0);
    }
    let Some((diff, dt_secs, third)) = thirds_difference(points) else {
        return (0.0, 0.0);
    };
    let n = points.len();
    if spread <= 0.0 {
        return if diff == 0.0 {
            (0.0, 0.0)
        } else {
            (diff / dt_secs, f64::INFINITY)
        };
    }
    // The standard error of a median of m normal values is about 1.2533·σ/√m; the two
    // thirds are independent, hence √2. Neighbouring samples of real metrics are
    // correlated, and a third of m correlated values holds only m·(1−ρ)/(1+ρ) independent
    // ones, so the standard error is widened by √((1+ρ)/(1−ρ)), with ρ the lag-1
    // autocorrelation of the series around the candidate line (after detrending, so the
    // trend itself does not pass for correlation). Without that, the slow wander of a
    // sticky series passes for a trend, and extrapolating it over the watch raises false
    // alarms. With the correlation priced in, three standard errors (a two-sided chance of
    // 0.3 % under no trend) are enough.
    // The widening is at least 1, so a difference within the unwidened bound is never
    // significant: most baselines have no trend and stop here, before the detrending.
    let se_independent = 1.2533 * spread * (2.0 / third as f64).sqrt();
    if diff.abs() <= cutoff * se_independent {
        return (0.0, 0.0);
    }
    let candidate = diff / dt_secs;
    let t_end = points[n - 1].0;
    let detrended: Vec<f64> = points
        .iter()
        .map(|&(t, v)| v - candidate * (t - t_end) as f64 / 1000.0)
        .collect();
    let (center, resid_spread) = robust_location_scale(&detrended);
    let rho = lag1_autocorrelation(
        &detrended,
        center,
        3.0 * resid_spread.max(f64::MIN_POSITIVE),
    )
    .clamp(0.0, 0.95);
    let widen = ((1.0 + rho) / (1.0 - rho)).sqrt();
    let se = se_independent * widen;
    if diff.abs() <= cutoff * se {
        return (0.0, 0.0);
    }
    // A line is extrapolated over the watch only if it describes the baseline: on a
    // curved stretch (a daily cycle turning) the middle third sits off the line through
    // the outer thirds, and the line's continuation predicts a level the series is
    // already leaving. Real series trend like that far more often than they ramp in a
    // straight line for hours, and a false trend makes every later sample look shifted.
    // The same three standard errors decide, for the middle third's median against the
    // outer thirds' on the detrended values.
    let mid = median(&detrended[third..n - third]);
    let ends = 0.5 * (median(&detrended[..third]) + median(&detrended[n - third..]));
    let m_mid = (n - 2 * third).max(1) as f64;
    let se_curve = 1.2533 * resid_spread * (1.0 / m_mid + 0.5 / third as f64).sqrt() * widen;
    if (mid - ends).abs() > 3.0 * se_curve {
        return (0.0, 0.0);
    }
    (candidate, diff.abs() / se)
}

/// Whether a trend found over the whole baseline (`slope`, per second) still holds over
/// its recent half, so that it may be extrapolated over the watch.
///
/// The question is whether the recent half has *left* the line, not whether it shows
/// the trend again on its own: half the samples estimate a slope with almost three times
/// the standard error, so asking them to confirm the trend at two standard errors threw
/// away every trend weaker than about six (a steady climb of a few standard deviations
/// per baseline was then compared with the baseline's median, and its plain continuation
/// became a shift). Here the recent half's slope (the same median-of-thirds estimate as
/// [`significant_trend`]) is compared with the whole window's, with the standard error of
/// that estimate under the hypothesis that the line goes on: the noise is the spread
/// around the line (`line_spread`), widened for the residuals' autocorrelation. A ramp
/// that has levelled off (the shoulder of a daily cycle) comes out flatter by more than
/// two standard errors and is not continued. A recent half that shows the trend again on
/// its own, at two standard errors, keeps it whatever the comparison says: a steep trend
/// whose recent half happens to come out a little flatter has not stopped.
///
/// A line that fits the baseline worse than its median does (`line_spread` above
/// `raw_spread`) describes no trend at all: a burst of a few samples inside one third
/// moves that third's median, and the "trend" through it is the burst. It is not
/// extrapolated either.
fn trend_still_holds(recent: &[(i64, f64)], slope: f64, line_spread: f64, raw_spread: f64) -> bool {
    if line_spread.is_nan() || line_spread > raw_spread {
        return false;
    }
    let Some((diff, dt_secs, third)) = thirds_difference(recent) else {
        // Too few samples to tell: the trend found on the whole window stands.
        return true;
    };
    let recent_slope = diff / dt_secs;
    let t_end = recent[recent.len() - 1].0;
    let along: Vec<f64> = recent
        .iter()
        .map(|&(t, v)| v - slope * (t - t_end) as f64 / 1000.0)
        .collect();
    let (center, spread) = robust_location_scale(&along);
    let rho =
        lag1_autocorrelation(&along, center, 3.0 * spread.max(f64::MIN_POSITIVE)).clamp(0.0, 0.95);
    let widen = ((1.0 + rho) / (1.0 - rho)).sqrt();
    let se = 1.2533 * line_spread * (2.0 / third as f64).sqrt() * widen / dt_secs;
    // Shown again by the recent half on its own, or not significantly flatter there.
    slope.signum() * recent_slope > 2.0 * se || slope.signum() * (slope - recent_slope) <= 2.0 * se
}

/// The median of the last third of `points` minus the median of the first, the time
/// between the thirds' middles in seconds, and the size of a third; `None` with fewer
/// than 12 points or no time between the thirds.
fn thirds_difference(points: &[(i64, f64)]) -> Option<(f64, f64, usize)> {
    let n = points.len();
    if n < 12 {
        return None;
    }
    let third = n / 3;
    let first: Vec<f64> = points[..third].iter().map(|p| p.1).collect();
    let last: Vec<f64> = points[n - third..].iter().map(|p| p.1).collect();
    // The points are in time order, so the median time of a third is its middle point.
    let t_first = sorted_median_ms(&points[..third]);
    let t_last = sorted_median_ms(&points[n - third..]);
    let dt_secs = (t_last - t_first) / 1000.0;
    if dt_secs <= 0.0 {
        return None;
    }
    Some((median(&last) - median(&first), dt_secs, third))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed pseudo-random value in `[0, 1)` for sample `i` (a hash, so that the test
    /// series hold no cycle for the seasonal search to find, as `i % m` patterns do).
    fn wob(i: usize) -> f64 {
        let mut z = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z ^= z >> 29;
        z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^= z >> 32;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pts(values: &[f64]) -> Vec<(i64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 10_000, *v))
            .collect()
    }

    #[test]
    fn flat_baseline_has_no_trend() {
        let v: Vec<f64> = (0..60).map(|i| 100.0 + 10.0 * wob(i) - 5.0).collect();
        let b = Baseline::fit(&pts(&v)).unwrap();
        assert_eq!(b.slope_per_sec, 0.0);
        assert!((b.level - 100.0).abs() < 2.0);
        assert!((b.cadence_ms - 10_000.0).abs() < 1e-9);
    }

    #[test]
    fn a_ramp_that_levelled_off_is_not_extrapolated() {
        // falls by 1 per sample for 30 samples, then stays flat: the recent half does not
        // trend, so nothing is carried over the watch
        let v: Vec<f64> = (0..60)
            .map(|i| 100.0 - (i.min(30) as f64) + 0.8 * wob(i))
            .collect();
        let b = Baseline::fit(&pts(&v)).unwrap();
        assert_eq!(b.slope_per_sec, 0.0);
        // but the series did fall: a test of falls expects where it ended (a drift that
        // stopped is not a fall), a test of rises the whole baseline's median
        assert_eq!(b.drift, -1.0);
        let later = b.anchor_ms + 600_000;
        let falls = b.for_harm(-1.0);
        assert_eq!(falls.expected(later), median(&v[45..]));
        assert!(falls.expected(later) < b.level, "{}", b.level);
        assert_eq!(b.for_harm(1.0).expected(later), b.level);
        // while the same ramp all the way is followed, after the baseline too, unless it
        // runs the harmless way of the test
        let v: Vec<f64> = (0..60).map(|i| 100.0 - i as f64 + 0.8 * wob(i)).collect();
        let b = Baseline::fit(&pts(&v)).unwrap();
        assert!(b.slope_per_sec < 0.0);
        let end = b.expected(b.anchor_ms);
        let hour = b.expected(b.anchor_ms + 3_600_000);
        let line = end + b.slope_per_sec * 3_600.0;
        assert!((hour - line).abs() < 1e-9, "{end} {hour} {line}");
        // a falling trend is harmful to a test of falls, harmless to one of rises
        assert_eq!(b.for_harm(-1.0).expected(b.anchor_ms + 3_600_000), hour);
        let held = b.for_harm(1.0);
        assert_eq!(held.expected(b.anchor_ms + 3_600_000), held.held_level);
        assert!(held.held_level > hour, "{} {hour}", held.held_level);
    }

    #[test]
    fn clear_trend_is_followed() {
        let v: Vec<f64> = (0..60)
            .map(|i| 100.0 + i as f64 + 4.0 * wob(i) - 2.0)
            .collect();
        let b = Baseline::fit(&pts(&v)).unwrap();
        // one unit per sample = 0.1 per second
        assert!((b.slope_per_sec - 0.1).abs() < 0.02, "{}", b.slope_per_sec);
        let next = b.expected(60 * 10_000);
        assert!((next - 160.0).abs() < 4.0, "{next}");
    }

    #[test]
    fn a_trend_is_extrapolated_only_the_harmful_way() {
        let v: Vec<f64> = (0..60).map(|i| 100.0 - i as f64 + 0.8 * wob(i)).collect();
        let b = Baseline::fit(&pts(&v)).unwrap();
        assert!(b.slope_per_sec < 0.0);
        let later = b.anchor_ms + 600_000;
        // a falling series: the test of a fall follows the line down ...
        let down = b.for_harm(-1.0);
        assert_eq!(down.expected(later), b.expected(later));
        assert!(down.expected(later) < b.expected(b.anchor_ms));
        // ... the test of a rise holds where the last values stood, so a fall that
        // merely stops is not a rise
        let up = b.for_harm(1.0);
        let recent = median(&v[45..]);
        assert_eq!(up.expected(later), recent);
        assert!(up.expected(later) > b.expected(later));
        // inside the baseline both are the fitted line
        assert_eq!(
            up.expected(b.anchor_ms - 50_000),
            b.expected(b.anchor_ms - 50_000)
        );
    }

    #[test]
    fn a_weak_trend_serves_only_the_test_it_runs_the_harmful_way() {
        // a climb of growing steepness under the same noise: the first ones found at two
        // to three standard errors are weak, the steeper ones strong
        let mut rng = crate::scenarios::Rng::new(5);
        let noise: Vec<f64> = (0..60).map(|_| rng.normal()).collect();
        let (mut weak, mut strong) = (0, 0);
        for step in 1..60 {
            let per_sample = 0.004 * step as f64;
            let v: Vec<f64> = (0..60)
                .map(|i| 50.0 + per_sample * i as f64 + noise[i])
                .collect();
            let b = Baseline::fit(&pts(&v)).unwrap();
            if b.slope_per_sec == 0.0 {
                continue;
            }
            let later = b.anchor_ms + 600_000;
            let rises = b.for_harm(1.0);
            assert_eq!(rises.expected(later), b.expected(later));
            let falls = b.for_harm(-1.0);
            assert!(falls.untrended.is_none() && rises.untrended.is_none());
            match b.untrended {
                Some((level, spread, _)) => {
                    weak += 1;
                    // the test of falls judges as if no trend was found
                    let (median, raw_spread) = robust_location_scale(&v);
                    assert_eq!((level, spread), (median, raw_spread));
                    assert_eq!(falls.expected(later), median);
                    assert_eq!(falls.expected(b.anchor_ms - 100_000), median);
                    assert_eq!((falls.spread, falls.slope_per_sec), (raw_spread, 0.0));
                }
                None => {
                    strong += 1;
                    assert_eq!(falls.expected(later), falls.held_level);
                }
            }
        }
        assert!(weak > 0 && strong > 0, "{weak} weak, {strong} strong");
    }

    #[test]
    fn a_line_through_a_burst_is_no_trend_to_extrapolate() {
        // flat at 20, with four samples forty to two hundred times that in the second
        // third: the last third's median moves, but the line through it fits worse than
        // the median does
        let mut v: Vec<f64> = (0..20).map(|i| 20.0 + 4.0 * wob(i) - 2.0).collect();
        for (i, x) in [863.0, 977.0, 900.0, 4050.0].into_iter().enumerate() {
            v[13 + i] = x;
        }
        let b = Baseline::fit(&pts(&v)).unwrap();
        assert_eq!(b.slope_per_sec, 0.0);
    }

    #[test]
    fn the_early_answer_of_the_shift_search_matches_the_full_search() {
        let mut rng = crate::scenarios::Rng::new(11);
        let mut shifts = 0;
        for case in 0..600 {
            let n = 20 + case % 7 * 50;
            let rho = [0.0, 0.5, 0.9, 0.99][case % 4];
            let step = [0.0, 1.0, 3.0, 8.0][case / 4 % 4];
            let mut x = 0.0;
            let v: Vec<f64> = (0..n)
                .map(|i| {
                    x = rho * x + rng.normal();
                    let spike = if rng.uniform() < 0.02 { 20.0 } else { 0.0 };
                    100.0 + x + spike + if i > n / 2 { step } else { 0.0 }
                })
                .collect();
            let p = pts(&v);
            for min_effect in [0.0, 0.5, 2.0] {
                let early = level_shift_search(&p, None, min_effect, true);
                assert_eq!(
                    early,
                    level_shift_search(&p, None, min_effect, false),
                    "case {case}"
                );
                shifts += usize::from(early.is_some());
            }
        }
        // both answers occur
        assert!(shifts > 100 && shifts < 1_500, "{shifts}");
    }

    #[test]
    fn a_second_step_after_the_first_is_found_and_the_baseline_sits_at_the_last_level() {
        let mut rng = crate::scenarios::Rng::new(5);
        // 80 for 70 samples, then 31 for 25, then 22 for 25: the largest step is the
        // first, and the level the service sits at before the deploy is the last
        let v: Vec<f64> = (0..120)
            .map(|i| {
                let level = match i {
                    0..70 => 80.0,
                    70..95 => 31.0,
                    _ => 22.0,
                };
                level + rng.normal()
            })
            .collect();
        let p = pts(&v);
        let first = level_shift_with(&p, None, 1.0).unwrap();
        assert!((68..=72).contains(&first), "{first}");
        let cuts = level_shifts_with(&p, None, 1.0);
        assert_eq!(cuts.len(), 2, "{cuts:?}");
        assert_eq!(cuts[0], first);
        assert!((93..=97).contains(&cuts[1]), "{cuts:?}");
        // every stretch moved to the last level, the last one untouched
        let aligned = align_to_last_level(&p, &cuts);
        assert_eq!(aligned[100..], p[100..]);
        let vals: Vec<f64> = aligned.iter().map(|q| q.1).collect();
        for stretch in [&vals[..70], &vals[70..95], &vals[95..]] {
            assert!((median(stretch) - 22.0).abs() < 1.0, "{}", median(stretch));
        }
        // one step: one cut, the same as the single search
        let one: Vec<f64> = v.iter().take(95).copied().collect();
        let q = pts(&one);
        assert_eq!(
            level_shifts_with(&q, None, 1.0),
            vec![level_shift_with(&q, None, 1.0).unwrap()]
        );
        // no step: none
        let flat: Vec<f64> = (0..120).map(|_| 50.0 + rng.normal()).collect();
        assert!(level_shifts_with(&pts(&flat), None, 1.0).is_empty());
    }

    #[test]
    fn one_spike_changes_little() {
        let mut v: Vec<f64> = (0..60).map(|i| 100.0 + 10.0 * wob(i) - 5.0).collect();
        let clean = Baseline::fit(&pts(&v)).unwrap();
        v[30] = 100_000.0;
        let spiked = Baseline::fit(&pts(&v)).unwrap();
        assert!((spiked.level - clean.level).abs() < 1.0);
        assert!(spiked.spread < clean.spread * 1.5);
    }
}
