//! The level test: has the metric settled at another level since the deploy?
//!
//! # Why a third test
//! The sustained test ranks each sample among the baseline's values, so a sample beyond
//! everything the baseline did scores the same however far beyond it lies. On a sticky
//! series (lag-1 autocorrelation 0.8 and more: queue lengths, traffic, travel times) its
//! scores are also shrunk by √((1+ρ)/(1−ρ)) to keep its false-alarm guarantee, and then
//! no sample can push it up faster than its reference value: a level that jumped to three
//! times the baseline's largest value is never found, and the watch ends "healthy" or
//! "unsteady" with a shift in plain sight. The extreme test prices pairs of samples for
//! the same stickiness and misses it too.
//!
//! This test asks the direct question, with magnitudes: is the median of the samples since
//! the deploy further from the baseline's level than the two could differ by chance? The
//! median, not the mean, so that one spike among three samples moves nothing; at least
//! three samples, so that a lone spike cannot decide.
//!
//! # Its error
//! The error of the median of `k` consecutive samples is taken as that of their mean times
//! 1.2533 (√(π/2), the median's efficiency on normal data). For AR(1) noise with lag-1
//! correlation ρ and spread σ the mean of `k` consecutive values has variance
//! `σ²/k² · (k + 2·Σ_{j=1..k−1} (k−j)·ρ^j)`, exact for any `k` (the large-`k` form
//! `σ²(1+ρ)/((1−ρ)k)` would overstate it several times for the first few samples of a
//! sticky series). The baseline's own level is uncertain by `σ²(1+ρ)/((1−ρ)n)`, and the
//! two add. σ is the baseline's robust spread, so skew and spikes in the baseline do not
//! shrink it. Both ρ and σ come out low on a short sticky baseline, and both are corrected
//! where the model is built (see `LevelModel::new`).
//!
//! # What the service did before
//! The error above assumes noise that is roughly normal once scaled by the robust spread.
//! A spiky or bursty baseline breaks that for short stretches: two spikes among three
//! samples make a median as high as a spike. So the test also asks the service's own
//! history: the median since the deploy must exceed the median of every three consecutive
//! baseline samples (the shortest stretch it decides on, whose medians run highest). A
//! level the baseline reached in a burst of its own is not the deploy's doing, whatever
//! the normal approximation says.
//!
//! # Where the stretch begins
//! A change that began inside the deploy tolerance shows best in the median of the
//! samples from the start of the tolerance; one that began at the recorded deploy shows
//! best from there, because the tolerance samples before it are still at the old level and
//! pull the median back (with a tolerance of two samples and a watch of six, a third of
//! the samples would be old ones). So the test measures both stretches, both ending at
//! the newest sample.
//!
//! # Its budget
//! It looks once per sample over the samples in which a change can still be the deploy's
//! (the deploy tolerance and the attribution window), on each of the two stretches. The
//! looks of a stretch are nested (each holds the one before), so they are priced together
//! as one correlated family rather than one Bonferroni share each (see
//! `repeated_look_critical`), and the two stretches split the budget.

use crate::baseline::Baseline;
use crate::stats::{median, normal_quantile, normal_sf};

/// One metric's level test, from its baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LevelModel {
    spread: f64,
    rho: f64,
    /// Variance of the baseline's level, in units of σ².
    base_var: f64,
    /// Most samples the test looks at.
    pub(super) max_k: usize,
    /// The standardized shift a look must exceed.
    pub(super) z_crit: f64,
    /// The highest median of three consecutive baseline residuals.
    guard: f64,
}

/// Fewest samples since the deploy the test decides on.
const MIN_K: usize = 3;

impl LevelModel {
    /// `alpha`: the test's budget; `window`: samples after the recorded deploy it may
    /// look at, `tolerance`: samples before it, inside the deploy tolerance. `None` for a
    /// baseline without spread (any change there is beyond every baseline value, which
    /// the other two tests see).
    pub fn new(
        base: &Baseline,
        residuals: &[f64],
        alpha: f64,
        window: f64,
        tolerance: f64,
    ) -> Option<LevelModel> {
        let spread = base.spread;
        let looks = window + tolerance;
        if !(spread.is_finite() && spread > 0.0 && looks.is_finite() && base.n >= 2) {
            return None;
        }
        let guard = residuals
            .windows(MIN_K)
            .map(|w| {
                let (a, b, c) = (w[0], w[1], w[2]);
                a.min(b).max(a.max(b).min(c))
            })
            .fold(f64::NEG_INFINITY, f64::max);
        // The lag-1 autocorrelation of a short baseline comes out low: for AR(1) noise
        // with its mean estimated, E[ρ̂] ≈ ρ − (1 + 4ρ)/n (Kendall's bias), and on a sticky
        // series that is what lets a wander pass for a level. The correction adds it back.
        let n = base.n as f64;
        // Even corrected, a 60-sample estimate of ρ = 0.9 ranges over 0.6–0.95, and the
        // error grows fast in ρ; the test uses the estimate plus one standard error,
        // √((1−ρ²)/n), so a baseline that happened to look less sticky than it is does not
        // make the test too sure. (On the synthetic check of `engine` tests, ρ = 0.9, the
        // level test's false alarms fell from 15 to 5 in 200 with both corrections.)
        let rho_c = base.rho + (1.0 + 4.0 * base.rho) / n;
        let rho = (rho_c + ((1.0 - rho_c * rho_c).max(0.0) / n).sqrt()).clamp(0.0, 0.95);
        // The spread seen inside the baseline misses the part of the wander slower than
        // the baseline: the variance of n AR(1) values around their own mean is short of
        // the process variance by about (1+ρ)/((1−ρ)·n) of it.
        let short = ((1.0 + rho) / ((1.0 - rho) * n)).min(0.5);
        let spread = spread / (1.0 - short).sqrt();
        let max_k = (looks.ceil() as usize).clamp(MIN_K, 10_000);
        // Looks from the start of the tolerance, and from the recorded deploy when the
        // tolerance holds samples.
        let from_deploy = if tolerance >= 1.0 {
            ((window.ceil() as usize).min(max_k) + 1).saturating_sub(MIN_K)
        } else {
            0
        };
        // The longest stretch of each family of looks: from the tolerance start, and from
        // the recorded deploy when the tolerance holds samples.
        let longest = [max_k, from_deploy + MIN_K - 1];
        let families = &longest[..if from_deploy > 0 { 2 } else { 1 }];
        Some(LevelModel {
            spread,
            rho,
            base_var: (1.0 + rho) / ((1.0 - rho) * base.n as f64),
            max_k,
            z_crit: repeated_look_critical(alpha, families),
            guard,
        })
    }

    /// Variance of the mean of `k` consecutive AR(1) values, in units of σ²:
    /// `(k + 2·Σ_{j=1..k−1} (k−j)·ρ^j) / k²`, the sum in closed form,
    /// `ρ·(k·(1−ρ) − (1−ρ^k)) / (1−ρ)²`.
    fn mean_var(&self, k: usize) -> f64 {
        let kf = k as f64;
        let r = self.rho;
        let sum = if r == 0.0 {
            0.0
        } else {
            r * (kf * (1.0 - r) - (1.0 - r.powi(k.min(i32::MAX as usize) as i32)))
                / ((1.0 - r) * (1.0 - r))
        };
        (kf + 2.0 * sum) / (kf * kf)
    }

    /// The least the median must reach to decide: positive, material and above the
    /// baseline's own bursts. A median reaches it only when half the residuals do.
    pub fn floor(&self, min_effect: f64) -> f64 {
        self.guard.max(min_effect).max(0.0)
    }

    /// The median residual of the samples since the deploy and its standardized size,
    /// when it is a material harmful shift beyond the critical value.
    pub fn check(&self, resid: &[f64], min_effect: f64) -> Option<(f64, f64)> {
        let k = resid.len();
        if k < MIN_K {
            return None;
        }
        let median = median(resid);
        if !(median > 0.0 && median >= min_effect && median > self.guard) {
            return None;
        }
        let se = 1.2533 * self.spread * (self.mean_var(k) + self.base_var).sqrt();
        let z = median / se;
        (z > self.z_crit).then_some((median, z))
    }
}

/// The critical value that keeps the chance of any look firing under `alpha`, for
/// families of looks at stretches of `MIN_K..=k_max` samples (one `k_max` per family).
///
/// Bonferroni prices every look as if it were independent, but the looks of one family
/// are nested: the stretch of `k` samples is part of that of `k + 1`, and the standardized
/// shifts of two stretches of `k` and `m` samples correlate by about `√(k/m)` (exactly so
/// for the means of independent noise). In the log of the stretch length that is the
/// correlation `exp(−|Δ|/2)` of an Ornstein–Uhlenbeck process, whose chance of passing
/// `z` anywhere in a stretch of length `L = ln(k_max / MIN_K)` is, for large `z`, about
/// `P(Z > z) + (L/2)·z·φ(z)` (Pickands' approximation, with the crossing rate of that
/// correlation). Looks taken at whole samples rather than continuously cross less often,
/// and a baseline level shared by every look correlates them further, so the figure errs
/// on the safe side. Both it and Bonferroni bound the chance; the smaller is used (for a
/// few looks Bonferroni is the tighter), and the families add.
///
/// Why it carries to any series: it depends only on how many looks are taken and how
/// they nest, not on the data; the noise model of each look is `LevelModel::check`'s.
fn repeated_look_critical(alpha: f64, families: &[usize]) -> f64 {
    let phi = |z: f64| (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let chance = |z: f64| -> f64 {
        families
            .iter()
            .map(|&k_max| {
                let looks = (k_max + 1).saturating_sub(MIN_K).max(1) as f64;
                let span = (k_max.max(MIN_K) as f64 / MIN_K as f64).ln();
                let nested = normal_sf(z) + 0.5 * span * z * phi(z);
                (looks * normal_sf(z)).min(nested)
            })
            .sum()
    };
    if !(alpha > 0.0 && alpha < 1.0) {
        return normal_quantile(1.0 - alpha);
    }
    // The chance falls as z rises (for z above 1, where any useful threshold lies).
    let (mut lo, mut hi) = (1.0_f64, 40.0_f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if chance(mid) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(rho: f64) -> LevelModel {
        LevelModel {
            spread: 1.0,
            rho,
            base_var: 0.0,
            max_k: 30,
            z_crit: 3.0,
            guard: f64::NEG_INFINITY,
        }
    }

    #[test]
    fn the_mean_of_correlated_values_varies_more() {
        // independent values: σ²/k
        assert!((model(0.0).mean_var(4) - 0.25).abs() < 1e-12);
        // ρ = 0.5, k = 2: (2 + 2·0.5)/4
        assert!((model(0.5).mean_var(2) - 0.75).abs() < 1e-12);
        // the closed form is the sum
        let m = model(0.7);
        let k = 9;
        let direct: f64 = (1..k).map(|j| (k - j) as f64 * 0.7f64.powi(j as i32)).sum();
        assert!((m.mean_var(k) - (k as f64 + 2.0 * direct) / (k * k) as f64).abs() < 1e-12);
        // long stretches approach (1+ρ)/((1−ρ)k)
        let m = model(0.8);
        let k = 2_000;
        assert!((m.mean_var(k) * k as f64 - 9.0).abs() < 0.1);
    }

    #[test]
    fn a_lone_spike_decides_nothing_and_a_level_does() {
        let m = model(0.0);
        assert!(m.check(&[50.0, 0.1, -0.2], 0.5).is_none());
        assert!(m.check(&[50.0, 0.1], 0.5).is_none());
        let (median, z) = m.check(&[4.0, 5.0, 4.5, 6.0], 0.5).unwrap();
        assert!((median - 4.75).abs() < 1e-12 && z > 3.0);
        // below the material floor: nothing
        assert!(m.check(&[4.0, 4.5, 5.0, 6.0], 10.0).is_none());
    }

    #[test]
    fn a_level_the_baseline_reached_in_a_burst_is_not_enough() {
        let base = Baseline::fit(
            &(0..60)
                .map(|i| {
                    (
                        i * 60_000,
                        if (20..23).contains(&i) {
                            6.0
                        } else {
                            0.1 * (i % 3) as f64
                        },
                    )
                })
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let residuals: Vec<f64> = (0..60)
            .map(|i| {
                if (20..23).contains(&i) {
                    6.0
                } else {
                    0.1 * (i % 3) as f64
                }
            })
            .map(|x| x - base.level)
            .collect();
        let m = LevelModel::new(&base, &residuals, 0.003, 30.0, 0.0).unwrap();
        // the burst had three samples at 6: a new stretch at 5 is no news
        assert!(m.check(&[5.0, 5.0, 5.0, 5.0], 0.01).is_none());
        // beyond it, it is
        assert!(m.check(&[9.0, 9.0, 9.0, 9.0], 0.01).is_some());
    }

    #[test]
    fn nested_looks_cost_less_than_bonferroni_and_still_hold_the_rate() {
        // one look: the plain quantile
        let one = repeated_look_critical(0.01, &[MIN_K]);
        assert!((one - normal_quantile(0.99)).abs() < 1e-6);
        // 31 nested looks: below Bonferroni's, above a single look's
        let z = repeated_look_critical(0.01, &[33]);
        let bonferroni = normal_quantile(1.0 - 0.01 / 31.0);
        assert!(z < bonferroni - 0.2 && z > one + 0.2, "{z} vs {bonferroni}");
        // Monte Carlo on independent normal noise: the largest standardized mean of the
        // stretches of 3..=33 samples passes z in at most about 1 % of runs.
        let mut rng = crate::scenarios::Rng::new(7);
        let runs = 40_000;
        let mut fired = 0;
        for _ in 0..runs {
            let mut sum = 0.0;
            let mut max = f64::NEG_INFINITY;
            for k in 1..=33 {
                sum += rng.normal();
                if k >= MIN_K {
                    max = max.max(sum / (k as f64).sqrt());
                }
            }
            fired += usize::from(max > z);
        }
        let rate = fired as f64 / runs as f64;
        assert!(rate < 0.012 && rate > 0.003, "rate {rate}");
    }
}
