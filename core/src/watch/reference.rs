//! What the baseline's own values say about a new sample, without assuming a
//! distribution: its rank among them (for the sequential test of sustained shifts) and how
//! far it lies in their extrapolated tail (for the test of a few extreme samples).
//!
//! # Why ranks for the sustained test
//! Real metrics are skewed (latency), heavy-tailed (bursty counts) and often sit on a floor
//! (zeros, a constant p90 on an idle pod). A CUSUM of `(x − median) / σ` drifts upwards on
//! a right-skewed series with no change at all, because the mean of such a series lies
//! above its median, and it explodes on a constant baseline whose σ is zero. Replacing each
//! value by the normal score of its rank among the baseline values,
//! `z = Φ⁻¹((rank + ½) / (n + 1))`, gives increments that are close to standard normal
//! whatever the distribution of the service's values, as long as the values after the deploy
//! are exchangeable with the ones before it (no change). A sample beyond every baseline
//! value scores `Φ⁻¹((n + ½)/(n + 1))` (2.4 for 60 samples), so one sample cannot fire the
//! sustained test; that is the extreme test's job.
//!
//! # Why an extrapolated tail for the extreme test
//! A fault often shows as two or three samples far outside anything the baseline did, and
//! then the service recovers (a crash loop, a burst of timeouts). Ranks cannot see *how
//! far* outside, and a Gaussian tail is far too thin for real series (it would page on every
//! burst of a bursty service). The baseline's own upper tail is modelled instead: above its
//! upper quartile the excesses of the standardized residuals are fitted by an exponential
//! distribution (the peaks-over-threshold view of extreme-value theory; exponential is the
//! shape-zero generalized Pareto, which covers the normal, log-normal, gamma and Weibull
//! families in the limit). The scale estimate is raised to its one-sided 90 % upper
//! confidence bound (the MLE of an exponential scale from `m` excesses is
//! `β·χ²(2m)/(2m)`), so a tail that happened to look thin on a short baseline does not turn
//! an ordinary burst into evidence. The chance that a healthy sample exceeds
//! `u + β·ln(p_u / p)` is then `p`.
//!
//! One sample beyond the tail is not enough: real services have rare huge spikes (a GC
//! pause, a cold cache) that a baseline of an hour may not have seen, and a lone spike is
//! not a regression. Two samples beyond it within [`PAIR_SPAN`] consecutive samples are.
//! If a healthy sample exceeds the threshold with probability `q`, such a pair starts at a
//! given sample with probability about `(PAIR_SPAN − 1)·q²`; the threshold is set so that
//! this equals the budget of that sample.
//!
//! The threshold is never below the largest residual of the baseline itself: what the
//! service already did before the deploy is not extreme, whatever a fitted tail says (a
//! mixture of ordinary noise and rare spikes has a heavier far tail than one exponential
//! fitted to its upper quartile).
//!
//! In an autocorrelated series the second exceedance is likely once the first happened, so
//! the pair is priced between `q²` (independent) and `q` (fully dependent) by the lag-1
//! autocorrelation.
//!
//! One sample alone decides only when it lies far beyond the largest baseline value: the
//! excess of an exponential tail over any level is again exponential with the same scale
//! (memorylessness), and a new value exceeds the largest of `n` exchangeable ones with
//! probability `1/(n+1)`, so a value more than `β·ln(1/((n+1)·p))` above the baseline's
//! maximum has probability `p`. Anchoring on the observed maximum keeps rare spikes that the
//! baseline did contain (a mixture tail) from being extrapolated away. The two rules share
//! the test's budget equally.
//!
//! # Spending the extreme test's budget
//! A deploy's effect shows when traffic reaches the new code, so most of it shows in the
//! first samples. The extreme test's share of the false-alarm budget is spent
//! harmonically, counted from the recorded deploy: the `i`-th sample after it gets
//! `(1/i) / H` of it, and a sample inside the deploy tolerance `j` intervals before it
//! gets `(1/(j+1)) / H`, where `H` sums those weights over every sample the test can
//! decide on. Only a change that begins inside the attribution window after the deploy
//! can be the deploy's (a later one is reported as a late change), so those are the
//! samples of the window and the tolerance, not of the whole watch. The first sample
//! after the deploy decides on a smaller excess than a uniform split would allow, and a
//! lone excursion towards the end of the window has to be larger.

use crate::stats::{normal_quantile, robust_location_scale_sorted};

/// Two samples beyond the tail threshold within this many consecutive samples decide.
pub(crate) const PAIR_SPAN: usize = 3;

/// Values per block of the two-level search in [`RankReference::score`].
const BLOCK: usize = 16;

/// The baseline residuals, sorted, against which a new residual is ranked.
///
/// Ranking is the engine's inner loop (every sample of every test), so it is laid out for
/// the cache: the last value of every block of 16 is kept apart (`fences`, 512 bytes for
/// a baseline of 1,024), the block is found there and the rank within the block, instead
/// of a binary search that touches a new cache line at most of its ten steps. The normal
/// scores depend only on the rank and the baseline size, so they come from a table shared
/// by every reference of that size.
#[derive(Clone, Debug)]
pub(crate) struct RankReference {
    sorted: Vec<f64>,
    fences: Vec<f64>,
    /// No NaN among the values (`f64::total_cmp` puts any at the ends), so that every
    /// comparison with them is monotone along `sorted` and a run of ties ends where its
    /// first larger value is.
    ordered: bool,
    /// `scores[below + not_above]`: the score of a value with `below` baseline values
    /// under it and `not_above` not above it.
    scores: std::sync::Arc<[f64]>,
}

impl PartialEq for RankReference {
    fn eq(&self, other: &Self) -> bool {
        self.sorted == other.sorted
    }
}

/// The shared score tables, by baseline size.
fn score_table(n: usize) -> std::sync::Arc<[f64]> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static TABLES: OnceLock<Mutex<HashMap<usize, Arc<[f64]>>>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut tables = tables.lock().unwrap_or_else(|e| e.into_inner());
    // Baseline sizes come from `max_history` and the data, a handful in practice; the
    // cap only keeps a pathological mix from growing the cache without bound.
    if tables.len() > 256 && !tables.contains_key(&n) {
        tables.clear();
    }
    tables
        .entry(n)
        .or_insert_with(|| {
            // rank = (below + not_above) / 2: ties count half.
            (0..=2 * n)
                .map(|k| normal_quantile((k as f64 / 2.0 + 0.5) / (n as f64 + 1.0)))
                .collect()
        })
        .clone()
}

impl RankReference {
    /// From the baseline residuals (any order). `None` when there are none.
    pub fn new(residuals: &[f64]) -> Option<RankReference> {
        if residuals.is_empty() {
            return None;
        }
        let mut sorted = residuals.to_vec();
        crate::stats::sort_total(&mut sorted);
        Some(RankReference::from_sorted(sorted))
    }

    /// From `residuals`, each `residual(x)` of one of the values `sorted` holds ascending
    /// (in `f64::total_cmp` order), without a sort of its own when the mapped values
    /// come out in order.
    ///
    /// Why it is the same reference: `residual` is one function for all values, so the
    /// values mapped through it are the residuals in some order, bit for bit. Subtracting
    /// a constant keeps the order of the values and a negative sign reverses it, so the
    /// mapped values are walked forwards or backwards; whether they are sorted is checked
    /// (the rounding of `x − e`, the two zeros and NaN could break the order), and when
    /// they are, they are the one sorted order of the residuals (values equal in that order
    /// are identical bits). Otherwise the residuals are sorted as [`RankReference::new`]
    /// sorts them.
    pub fn from_mapped(
        residuals: &[f64],
        sorted: &[f64],
        residual: impl Fn(f64) -> f64,
    ) -> Option<RankReference> {
        if residuals.is_empty() {
            return None;
        }
        let mut mapped: Vec<f64> = sorted.iter().map(|&x| residual(x)).collect();
        if mapped.len() > 1 && mapped[0].total_cmp(&mapped[mapped.len() - 1]).is_gt() {
            mapped.reverse();
        }
        if !mapped.windows(2).all(|w| w[0].total_cmp(&w[1]).is_le()) {
            return RankReference::new(residuals);
        }
        Some(RankReference::from_sorted(mapped))
    }

    /// From residuals already sorted ascending.
    pub fn from_sorted(sorted: Vec<f64>) -> RankReference {
        let fences = sorted.chunks(BLOCK).map(|c| c[c.len() - 1]).collect();
        let scores = score_table(sorted.len());
        let ordered = !sorted.first().is_some_and(|v| v.is_nan())
            && !sorted.last().is_some_and(|v| v.is_nan());
        RankReference {
            sorted,
            fences,
            ordered,
            scores,
        }
    }

    /// The reference values, ascending.
    pub fn sorted(&self) -> &[f64] {
        &self.sorted
    }

    /// Number of reference values below `r`.
    fn below(&self, r: f64) -> usize {
        // Every block whose last value is below `r` lies below it entirely; the first
        // other block holds the boundary.
        let block = self.fences.partition_point(|&f| f < r);
        if block == self.fences.len() {
            return self.sorted.len();
        }
        let start = block * BLOCK;
        let end = (start + BLOCK).min(self.sorted.len());
        start + self.sorted[start..end].partition_point(|&v| v < r)
    }

    /// Normal score of `r` among the reference values: ties count half, and the
    /// `+½ / (n+1)` continuity keeps the score finite beyond the extremes.
    pub fn score(&self, r: f64) -> f64 {
        let below = self.below(r);
        // Ties are rare on continuous metrics and common on coarse ones; only then is
        // the end of the run searched for. A tie of one value is the usual one (a
        // baseline residual fed again, when a watch starts on the second half of its
        // baseline), so the value after it is looked at before any search: when it lies
        // above `r`, the run ends there, which is where the search would end too.
        let not_above = match self.sorted.get(below..) {
            Some([v, rest @ ..]) if *v <= r => match rest.first() {
                Some(&next) if next > r && self.ordered => below + 1,
                None => below + 1,
                _ => below + self.sorted[below..].partition_point(|&v| v <= r),
            },
            _ => below,
        };
        self.scores[below + not_above]
    }

    /// Largest score a single value can reach.
    pub fn max_score(&self) -> f64 {
        self.scores[2 * self.sorted.len()]
    }
}

/// Exponential model of the upper tail of the baseline's standardized residuals (in the
/// harmful direction).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct TailModel {
    /// Scale the residuals are standardized by (the baseline's robust spread).
    pub scale: f64,
    /// Tail threshold: the upper quartile of the standardized residuals.
    u: f64,
    /// Upper confidence bound of the exponential scale of the excesses over `u`.
    beta: f64,
    /// Share of baseline residuals above `u`.
    p_u: f64,
    /// The extreme test's share of the false-alarm budget.
    alpha: f64,
    /// Sum of the harmonic weights of the samples the test can decide on.
    harmonic: f64,
    /// Lag-1 autocorrelation of the baseline, for the chance of a pair.
    rho: f64,
    /// Largest standardized baseline residual.
    max_z: f64,
    /// Number of baseline residuals.
    n: usize,
}

impl TailModel {
    /// Fits the tail of `residuals` (signed so that harmful is positive). `None` when the
    /// baseline has no spread (a constant series: the rank test and the level test's run rule speak, see `LevelModel::constant`) or fewer
    /// than three values above its upper quartile.
    #[cfg(test)]
    pub fn fit(
        residuals: &[f64],
        rho: f64,
        alpha: f64,
        expected_samples: f64,
        tolerance_samples: f64,
    ) -> Option<TailModel> {
        let mut sorted = residuals.to_vec();
        crate::stats::sort_total(&mut sorted);
        TailModel::fit_sorted(
            residuals,
            &sorted,
            rho,
            alpha,
            expected_samples,
            tolerance_samples,
        )
    }

    /// As [`TailModel::fit`], with the residuals also given sorted ascending (the rank
    /// reference has them: one sort per test, not two).
    pub fn fit_sorted(
        residuals: &[f64],
        residuals_sorted: &[f64],
        rho: f64,
        alpha: f64,
        expected_samples: f64,
        tolerance_samples: f64,
    ) -> Option<TailModel> {
        let (_, scale) = robust_location_scale_sorted(residuals, residuals_sorted);
        if !(scale.is_finite() && scale > 0.0) {
            return None;
        }
        let in_time: Vec<f64> = residuals.iter().map(|r| r / scale).collect();
        // Dividing by a positive scale keeps the order.
        let sorted: Vec<f64> = residuals_sorted.iter().map(|r| r / scale).collect();
        let z = match without_incidents(&in_time, &sorted) {
            Some(mut kept) => {
                crate::stats::sort_total(&mut kept);
                kept
            }
            None => sorted,
        };
        let n = z.len();
        let u = tail_threshold(&z);
        let excess: Vec<f64> = z.iter().filter(|&&v| v > u).map(|v| v - u).collect();
        let m = excess.len();
        if m < 3 {
            return None;
        }
        let mean_excess = excess.iter().sum::<f64>() / m as f64;
        let dof = 2.0 * m as f64;
        let beta = mean_excess * dof / chi_square_quantile(0.10, dof);
        let harmonic_number = |n: f64| -> f64 {
            (1..=n.max(0.0).ceil() as usize)
                .map(|i| 1.0 / i as f64)
                .sum()
        };
        // Samples after the recorded deploy get weights 1, 1/2, 1/3, …; the ones inside
        // the deploy tolerance before it 1/2, 1/3, … by their distance from it.
        let harmonic = harmonic_number(expected_samples.max(1.0))
            + (harmonic_number(tolerance_samples + 1.0) - 1.0);
        Some(TailModel {
            scale,
            u,
            beta,
            p_u: m as f64 / n as f64,
            alpha,
            harmonic,
            rho: rho.clamp(0.0, 0.95),
            max_z: z[n - 1],
            n,
        })
    }

    /// The budget of the `i`-th sample (1-based) of each of the two rules.
    fn budget(&self, i: usize) -> f64 {
        self.alpha / 2.0 / (i.max(1) as f64 * self.harmonic)
    }

    /// The standardized residual that one sample alone, the `i`-th of the watch, must
    /// exceed (see the module docs: the excess over the baseline's largest value).
    pub fn single_threshold(&self, i: usize) -> f64 {
        let p = self.budget(i);
        self.max_z + self.beta * (1.0 / ((self.n + 1) as f64 * p)).ln().max(0.0)
    }

    /// Whether residual `r` of the `i`-th sample decides on its own.
    pub fn exceeds_alone(&self, r: f64, i: usize) -> bool {
        r / self.scale > self.single_threshold(i)
    }

    /// The standardized residual each of two samples close together must exceed, the
    /// second being the `i`-th of the watch (1-based).
    pub fn threshold(&self, i: usize) -> f64 {
        let budget = self.budget(i);
        // Independent samples: a pair has probability (span−1)·q², so q is the square
        // root of the budget; in a sticky series a second exceedance follows the first
        // almost surely and a pair is nearly as likely as one exceedance. The exponent
        // moves from ½ to 1 with the lag-1 autocorrelation between those two cases.
        let p = (budget / (PAIR_SPAN - 1) as f64).powf(1.0 / (2.0 - self.rho));
        (self.u + self.beta * (self.p_u / p).ln().max(0.0)).max(self.max_z)
    }

    /// Whether residual `r` of the `i`-th sample is beyond the tail threshold.
    pub fn exceeds(&self, r: f64, i: usize) -> bool {
        r / self.scale > self.threshold(i)
    }
}

/// The tail threshold of sorted values: the upper quartile. On a coarse series (a p90
/// that takes a handful of values) many values tie there and few lie strictly above it,
/// so it moves down to the next distinct value until three do, but not below the median.
fn tail_threshold(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    let mut u = sorted[(3 * n) / 4];
    let median = sorted[n / 2];
    while sorted.iter().filter(|&&v| v > u).count() < 3 {
        match sorted.iter().rev().find(|&&v| v < u) {
            Some(&lower) if lower >= median => u = lower,
            _ => break,
        }
    }
    u
}

/// The baseline without its incidents: runs of two or more samples (within
/// [`PAIR_SPAN`]) so far beyond the rest of the tail that the rest cannot account for
/// them. A baseline often holds the last incident (a fault an hour ago, the previous
/// bad release), and anchoring the extreme test on that incident's peak would pass any
/// new fault smaller than it. The rule mirrors the extreme test itself: two close
/// exceedances are a regression after a deploy, so before it they are an incident, not
/// normal behaviour, while a lone spike stays part of what the service does.
///
/// "Beyond the rest" is judged by an exponential tail over the median whose scale comes
/// from the median excess (`median / ln 2`): half the baseline lies above its median, so
/// an incident would have to fill a quarter of the baseline to inflate it. The cut is the
/// level that one of the `m` excesses would pass by chance with probability 1 %. This is
/// a coarse screen for gross incidents, not the tail model itself. `values` are in time
/// order.
fn without_incidents(values: &[f64], sorted: &[f64]) -> Option<Vec<f64>> {
    if sorted.len() < 12 {
        return None;
    }
    let u = sorted[sorted.len() / 2];
    // `sorted` is ascending, so the excesses over the median are too: their median is
    // the middle one, no sort needed.
    let first_above = sorted.partition_point(|&v| v <= u);
    let excess = &sorted[first_above..];
    if excess.len() < 6 {
        return None;
    }
    let mid = excess.len() / 2;
    let median_excess = if excess.len() % 2 == 0 {
        0.5 * (excess[mid - 1] + excess[mid]) - u
    } else {
        excess[mid] - u
    };
    let beta = median_excess / std::f64::consts::LN_2;
    if !(beta.is_finite() && beta > 0.0) {
        return None;
    }
    let cut = u + beta * (excess.len() as f64 / 0.01).ln();
    if sorted.last().is_none_or(|&top| top <= cut) {
        return None;
    }
    // Far samples grouped into runs (neighbours less than PAIR_SPAN apart). A run that
    // reaches the last samples of the baseline is not over: it may be the level the
    // service now sits at (a step up just before the deploy), which is the level-shift
    // search's business, not an incident to forget.
    let n = values.len();
    let mut drop = vec![false; n];
    let far: Vec<usize> = (0..n).filter(|&i| values[i] > cut).collect();
    let mut start = 0;
    while start < far.len() {
        let mut end = start;
        while end + 1 < far.len() && far[end + 1] - far[end] < PAIR_SPAN {
            end += 1;
        }
        if end > start && far[end] + PAIR_SPAN < n {
            for &i in &far[start..=end] {
                drop[i] = true;
            }
        }
        start = end + 1;
    }
    if !drop.contains(&true) {
        return None;
    }
    let kept: Vec<f64> = (0..n).filter(|&i| !drop[i]).map(|i| values[i]).collect();
    (kept.len() >= 12).then_some(kept)
}

/// Quantile `p` of the chi-square distribution with `dof` degrees of freedom
/// (Wilson–Hilferty cube-root approximation, within 1 % for `dof` ≥ 6).
fn chi_square_quantile(p: f64, dof: f64) -> f64 {
    let a = 2.0 / (9.0 * dof);
    let c = 1.0 - a + normal_quantile(p) * a.sqrt();
    (dof * c * c * c).max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_reference_is_the_sorted_residuals_bit_for_bit() {
        let mut rng = crate::scenarios::Rng::new(11);
        let zeros = [0.0, -0.0, 0.0, -0.0, 1.0, -1.0];
        let odd = [f64::NAN, -f64::NAN, 1.0, f64::INFINITY, -0.0, 0.0];
        for case in 0..40 {
            let values: Vec<f64> = match case {
                0 => zeros.to_vec(),
                1 => odd.to_vec(),
                _ => (0..60 + case)
                    .map(|_| (rng.normal() * 10f64.powi(case % 7 - 3)).round() / 8.0)
                    .collect(),
            };
            let mut sorted = values.clone();
            crate::stats::sort_total(&mut sorted);
            for e in [0.0, -0.0, 0.1, -3.0, 1e17, f64::INFINITY] {
                for sign in [1.0, -1.0] {
                    let f = |x: f64| sign * (x - e);
                    let residuals: Vec<f64> = values.iter().map(|&x| f(x)).collect();
                    let want = RankReference::new(&residuals).unwrap();
                    let got = RankReference::from_mapped(&residuals, &sorted, f).unwrap();
                    let bits = |r: &RankReference| -> Vec<u64> {
                        r.sorted().iter().map(|v| v.to_bits()).collect()
                    };
                    assert_eq!(bits(&got), bits(&want), "case {case} e {e} sign {sign}");
                }
            }
        }
    }

    #[test]
    fn scores_are_ranks_not_distances() {
        let base: Vec<f64> = (0..59).map(|i| i as f64).collect();
        let r = RankReference::new(&base).unwrap();
        // beyond every value: the largest score, however far
        assert_eq!(r.score(100.0), r.score(1e9));
        assert!((r.score(100.0) - r.max_score()).abs() < 1e-12);
        // the middle value scores zero
        assert!(r.score(29.0).abs() < 1e-9);
        assert!(r.score(-5.0) < -2.0);
    }

    #[test]
    fn the_blocked_search_ranks_as_a_plain_count_does() {
        // coarse values (many ties) and continuous ones, sizes around the block width
        for n in [1, 15, 16, 17, 60, 1024] {
            for coarse in [false, true] {
                let vals: Vec<f64> = (0..n)
                    .map(|i| {
                        let x = ((i * 7919) % 997) as f64 / 10.0;
                        if coarse {
                            (x / 20.0).floor()
                        } else {
                            x
                        }
                    })
                    .collect();
                let r = RankReference::new(&vals).unwrap();
                for probe in [-1.0, 0.0, 2.0, 3.0, 4.5, 50.0, 99.6, 1e9] {
                    let below = vals.iter().filter(|&&v| v < probe).count() as f64;
                    let ties = vals.iter().filter(|&&v| v == probe).count() as f64;
                    let want = normal_quantile((below + 0.5 * ties + 0.5) / (n as f64 + 1.0));
                    assert!((r.score(probe) - want).abs() < 1e-12, "n {n} probe {probe}");
                }
            }
        }
    }

    #[test]
    fn skewed_baseline_scores_average_near_zero() {
        // exponential-like values: the mean residual against the median is positive, the
        // mean score of values drawn the same way is not
        let vals: Vec<f64> = (1..=200)
            .map(|i| -((i as f64 - 0.5) / 200.0).ln())
            .collect();
        let even: Vec<f64> = vals.iter().step_by(2).copied().collect();
        let r = RankReference::new(&even).unwrap();
        let mean: f64 = vals.iter().map(|&v| r.score(v)).sum::<f64>() / vals.len() as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        // while the residuals against the median of the same values average well above 0
        let med = crate::stats::median(&even);
        let raw: f64 = vals.iter().map(|v| v - med).sum::<f64>() / vals.len() as f64;
        assert!(raw > 0.25, "{raw}");
    }

    #[test]
    fn tail_threshold_follows_the_tail_and_the_sample_index() {
        let thin: Vec<f64> = (0..60).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
        let mut heavy = thin.clone();
        for v in heavy.iter_mut().step_by(6) {
            *v *= 4.0;
        }
        let t_thin = TailModel::fit(&thin, 0.0, 0.005, 30.0, 0.0).unwrap();
        let t_heavy = TailModel::fit(&heavy, 0.0, 0.005, 30.0, 0.0).unwrap();
        assert!(t_heavy.threshold(1) > t_thin.threshold(1));
        // later samples need more
        assert!(t_thin.threshold(20) > t_thin.threshold(1));
        // a constant baseline has no tail to extrapolate
        assert!(TailModel::fit(&[3.0; 40], 0.0, 0.005, 30.0, 0.0).is_none());
    }

    fn screened(values: &[f64]) -> usize {
        let mut sorted = values.to_vec();
        crate::stats::sort_total(&mut sorted);
        without_incidents(values, &sorted).map_or(values.len(), |k| k.len())
    }

    #[test]
    fn a_past_incident_is_not_normal_but_a_lone_spike_is() {
        let calm: Vec<f64> = (0..50).map(|i| ((i * 37) % 11) as f64 * 0.3).collect();
        // four samples of a past fault, well before the end of the baseline
        let mut past = calm.clone();
        for v in past.iter_mut().skip(20).take(4) {
            *v = 300.0;
        }
        assert_eq!(screened(&past), 46);
        // one lone spike stays: the service does spike
        let mut lone = calm.clone();
        lone[20] = 300.0;
        assert_eq!(screened(&lone), 50);
        // a run that reaches the end of the baseline is the current level, not an incident
        let mut step = calm.clone();
        for v in step.iter_mut().skip(46) {
            *v = 300.0;
        }
        assert_eq!(screened(&step), 50);
        // and the extreme test anchored on the baseline without the incident sees a new
        // fault that is smaller than the old one
        let with = TailModel::fit(&past, 0.0, 0.005, 30.0, 0.0).unwrap();
        assert!(with.exceeds(100.0, 1), "{}", with.threshold(1));
    }

    #[test]
    fn chi_square_quantile_matches_tables() {
        // chi2(0.10, 20) = 12.443, chi2(0.10, 60) = 46.459
        assert!((chi_square_quantile(0.10, 20.0) - 12.443).abs() < 0.1);
        assert!((chi_square_quantile(0.10, 60.0) - 46.459).abs() < 0.2);
    }
}
