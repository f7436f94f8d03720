//! Sequential change detection: CUSUM on standardized values, and a Bernoulli-likelihood
//! CUSUM on error and request counts.
//!
//! # Why CUSUM
//! After a deploy we want the earliest reliable signal that a metric moved and stayed
//! moved. Page's CUSUM is the optimal sequential test for a persistent shift of a known
//! size (Lorden's minimax sense): it accumulates evidence while the shift lasts, forgets
//! it while it does not, and its last reset marks the estimated change start. Fixed
//! thresholds ("p95 > 300 ms") either page on every noisy service or miss every quiet one;
//! CUSUM in baseline standard deviations behaves the same on every scale.
//!
//! # From a false-alarm budget to a threshold
//! Under no change, standardized values have mean 0 and the one-sided CUSUM
//! `S = max(0, S + z − k)` drifts down. Siegmund's approximation gives its average run
//! length to a false alarm for threshold `h`:
//! `ARL₀ ≈ (e^{2kb} − 2kb − 1) / (2k²)` with `b = h + 1.166`.
//! Run lengths to a false alarm are close to geometric, so the chance of a false alarm
//! within `n` samples is `1 − e^{−n/ARL₀}`. Given the per-deploy budget α split over the
//! `m` tests of a watch (Bonferroni), we solve `n / ARL₀(h) = −ln(1 − α/m)` for `h`.
//!
//! # Robustness
//! The watch feeds this CUSUM rank scores (see `watch/reference.rs`), which are bounded, so
//! a lone spike adds at most one bounded step; few extreme samples are the tail test's to
//! judge. Each increment is also clipped to `k + 0.3·h`. The reference value `k` is raised
//! by the standard error of the baseline level, so the uncertainty of a short baseline
//! does not turn into a slow false drift.
//!
//! # Spending the budget over the watch
//! [`CusumDesign::threshold_at`] turns the threshold for a uniform spend into one that
//! gives the first samples after the deploy most of the budget.

use crate::stats::normal_quantile;

/// A designed one-sided CUSUM: reference value, threshold, clip, all in standardized units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CusumDesign {
    /// Reference value `k` (half the shift the test is tuned for, plus the guard).
    pub k: f64,
    /// Decision threshold `h`.
    pub h: f64,
    /// Largest contribution of one standardized value.
    pub clip: f64,
    /// How the threshold moves with the log of the run length it must keep: `1/(2k)` for
    /// this test (from Siegmund's formula for large `h`), 1 for a likelihood-ratio CUSUM.
    pub log_arl_slope: f64,
    /// Expected samples in the watch, and their harmonic number (for spending the budget).
    pub steps: f64,
    /// Harmonic number of `steps`.
    pub harmonic: f64,
}

/// Siegmund's approximation of the in-control average run length of a one-sided CUSUM
/// with reference value `k` and threshold `h`, for unit-variance normal increments.
pub fn siegmund_arl0(k: f64, h: f64) -> f64 {
    let b = h + 1.166;
    let x = 2.0 * k * b;
    if k < 1e-6 {
        return b * b;
    }
    ((x).exp() - x - 1.0) / (2.0 * k * k)
}

/// The threshold `h` that keeps the chance of a false alarm within `steps` samples at
/// `alpha`, for reference value `k` (bisection on [`siegmund_arl0`]).
pub fn cusum_threshold(k: f64, alpha: f64, steps: f64) -> f64 {
    let steps = steps.max(1.0);
    let target_arl = steps / -(1.0 - alpha).ln();
    let hi = crate::stats::bisect_hi(0.0, 200.0, 100, |h| siegmund_arl0(k, h) < target_arl);
    // Siegmund's formula is an approximation for moderate k; for large k (shift floors far
    // above the noise) it can ask for less than a single-sample normal test would, so the
    // threshold never goes below the one-step bound `P(z > k + h) = alpha / steps`.
    let one_step = normal_quantile(1.0 - alpha / steps) - k;
    hi.max(one_step).max(1.0)
}

impl CusumDesign {
    /// Designs the test. `shift_sigmas` is the shift (in noise units) the test should find
    /// fastest, `guard_sigmas` the uncertainty of the baseline level, `alpha` this test's
    /// share of the false-alarm budget, `steps` the expected samples in the watch.
    pub fn new(shift_sigmas: f64, guard_sigmas: f64, alpha: f64, steps: f64) -> CusumDesign {
        let k = shift_sigmas / 2.0 + guard_sigmas;
        let h = cusum_threshold(k, alpha, steps);
        CusumDesign::spending(k, h, k + 0.3 * h, 1.0 / (2.0 * k.max(1e-3)), steps)
    }

    /// A design with threshold `h` for a uniform spend over `steps`, spent harmonically
    /// instead (see [`CusumDesign::threshold_at`]).
    pub fn spending(k: f64, h: f64, clip: f64, log_arl_slope: f64, steps: f64) -> CusumDesign {
        let steps = steps.max(1.0);
        let harmonic = (1..=steps.ceil() as usize).map(|i| 1.0 / i as f64).sum();
        CusumDesign {
            k,
            h,
            clip,
            log_arl_slope,
            steps,
            harmonic,
        }
    }

    /// The threshold at the `i`-th sample after the deploy (1-based).
    ///
    /// The budget is spent harmonically, like the tail test's: sample `i` may raise a false
    /// alarm with probability `α / (i·H_N)` rather than `α / N`. A deploy's effect shows
    /// when traffic reaches the new code, so the first samples get the most of the budget
    /// and a drift that only builds up late in the watch, which is less likely to be the
    /// deploy's doing, must be stronger. A per-sample false-alarm hazard `p` is a run
    /// length of `1/p`, and the threshold grows with the log of the run length by
    /// `log_arl_slope`, so `h_i = h + slope · ln(i·H_N / N)`.
    pub fn threshold_at(&self, i: usize) -> f64 {
        let shift = (i.max(1) as f64 * self.harmonic / self.steps).ln();
        (self.h + self.log_arl_slope * shift).max(1.0)
    }

    /// Samples a shift of exactly the design size needs, on average, to cross `h`
    /// (drift per sample is `shift − k`).
    pub fn samples_to_detect(&self, shift_sigmas: f64) -> f64 {
        let drift = (shift_sigmas.min(self.clip) - self.k).max(1e-9);
        (self.h / drift).ceil() + 1.0
    }
}

/// The running state of a one-sided CUSUM.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Cusum {
    /// Current statistic.
    pub s: f64,
    /// Largest statistic seen.
    pub max_s: f64,
    /// Event time of the first sample of the current excursion above zero.
    pub run_start_ms: Option<i64>,
    /// Samples in the current excursion.
    pub run_len: usize,
}

impl Cusum {
    /// Adds one increment (already standardized, clipped and reduced by `k`, or a
    /// log-likelihood ratio) observed at `t_ms`. Returns the new statistic.
    pub fn push(&mut self, t_ms: i64, increment: f64) -> f64 {
        let next = self.s + increment;
        if next <= 0.0 {
            self.s = 0.0;
            self.run_start_ms = None;
            self.run_len = 0;
        } else {
            if self.s == 0.0 {
                self.run_start_ms = Some(t_ms);
                self.run_len = 0;
            }
            self.s = next;
            self.run_len += 1;
        }
        if self.s > self.max_s {
            self.max_s = self.s;
        }
        self.s
    }
}

/// Design of the count-aware error-rate test: Bernoulli log-likelihood ratio of the
/// smallest material error rate `p1` against the baseline rate `p0`, scaled down by the
/// overdispersion `phi` (a quasi-likelihood: real error counts vary more than binomial
/// between intervals, and ignoring that would make every busy service flap).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CountDesign {
    /// Baseline error rate (guarded upwards by one standard error).
    pub p0: f64,
    /// Smallest material error rate.
    pub p1: f64,
    /// Overdispersion factor, at least 1.
    pub phi: f64,
    /// Threshold on the log-likelihood-ratio CUSUM.
    pub h: f64,
    /// Largest contribution of one sample (a fraction of `h`, so one burst cannot alarm).
    pub clip: f64,
}

impl CountDesign {
    /// Designs the test from baseline totals and the effect floors.
    ///
    /// The threshold: for a CUSUM of log-likelihood ratios the in-control run length is at
    /// least `e^h` samples (Wald's inequality applied to each excursion), so
    /// `h = ln(steps / alpha)` keeps the false-alarm chance within `steps` samples at
    /// `alpha` or below.
    pub fn new(
        base_errors: f64,
        base_requests: f64,
        phi: f64,
        min_abs: f64,
        min_rel: f64,
        alpha: f64,
        steps: f64,
    ) -> CountDesign {
        // Jeffreys-style estimate: never exactly zero, so a first error after a spotless
        // baseline is evidence of a size that depends on how much traffic was spotless.
        let p0_hat = (base_errors + 0.5) / (base_requests + 1.0);
        let se = (phi * p0_hat * (1.0 - p0_hat) / base_requests.max(1.0)).sqrt();
        let p0 = (p0_hat + se).min(0.999);
        let p1 = (p0 + min_abs).max(p0 * (1.0 + min_rel)).min(0.9999);
        let p1 = if p1 <= p0 { (p0 * 1.1).min(0.9999) } else { p1 };
        let h = (steps.max(1.0) / alpha).ln();
        CountDesign {
            p0,
            p1,
            phi,
            h,
            clip: h / 2.0,
        }
    }

    /// Log-likelihood ratio of `errors` in `requests`, scaled by `1/phi` (not clipped).
    pub fn log_likelihood_ratio(&self, errors: f64, requests: f64) -> f64 {
        let up = (self.p1 / self.p0).ln();
        let down = ((1.0 - self.p1) / (1.0 - self.p0)).ln();
        (errors * up + (requests - errors) * down) / self.phi
    }

    /// The CUSUM increment of `errors` in `requests`: the scaled log-likelihood ratio,
    /// clipped so that one burst cannot raise an alarm alone.
    pub fn increment(&self, errors: f64, requests: f64) -> f64 {
        self.log_likelihood_ratio(errors, requests).min(self.clip)
    }

    /// Kullback–Leibler divergence per request between `p1` and `p0`: the average
    /// evidence one request brings when the error rate really is `p1`.
    pub fn kl_per_request(&self) -> f64 {
        let (p0, p1) = (self.p0, self.p1);
        p1 * (p1 / p0).ln() + (1.0 - p1) * ((1.0 - p1) / (1.0 - p0)).ln()
    }

    /// Requests needed after the deploy to detect a rise to `p1`, on average.
    pub fn requests_needed(&self) -> f64 {
        (self.h * self.phi / self.kl_per_request().max(1e-12)).ceil()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_grows_with_window_and_shrinks_with_budget() {
        let k = 0.75;
        let h_short = cusum_threshold(k, 0.01, 50.0);
        let h_long = cusum_threshold(k, 0.01, 500.0);
        let h_loose = cusum_threshold(k, 0.1, 50.0);
        assert!(
            h_long > h_short && h_short > h_loose,
            "{h_short} {h_long} {h_loose}"
        );
        // the derived threshold really has the asked-for run length
        let arl = siegmund_arl0(k, h_short);
        let p_alarm = 1.0 - (-50.0 / arl).exp();
        assert!((p_alarm - 0.01).abs() < 1e-3 || h_short == 1.0, "{p_alarm}");
    }

    #[test]
    fn cusum_tracks_run_start() {
        let mut c = Cusum::default();
        c.push(0, -1.0);
        c.push(1, 2.0);
        c.push(2, 2.0);
        assert_eq!(c.run_start_ms, Some(1));
        assert_eq!(c.s, 4.0);
        c.push(3, -10.0);
        assert_eq!((c.s, c.run_start_ms), (0.0, None));
        assert_eq!(c.max_s, 4.0);
    }

    #[test]
    fn count_evidence_scales_with_traffic() {
        let d = CountDesign::new(40.0, 4000.0, 1.0, 0.005, 0.1, 0.01, 100.0);
        // 3 errors in 40 requests vs 300 in 4000: same rate, a hundred times the evidence
        // (the log-likelihood ratio is linear in the counts at a fixed rate) ...
        let small = d.log_likelihood_ratio(3.0, 40.0);
        let big = d.log_likelihood_ratio(300.0, 4000.0);
        assert!(small > 0.0, "{small}");
        assert!((big / small - 100.0).abs() < 1e-6, "{small} {big}");
        // ... overdispersion divides it, and one interval's contribution is clipped.
        let dispersed = CountDesign::new(40.0, 4000.0, 4.0, 0.005, 0.1, 0.01, 100.0);
        assert!(dispersed.log_likelihood_ratio(300.0, 4000.0) < big / 3.9);
        assert_eq!(d.increment(300.0, 4000.0), d.clip);
        assert!(d.requests_needed() > 100.0);
    }
}
