//! Latency quantiles from bucketed histograms, shared by the OTLP and remote-write
//! receivers.
//!
//! Both protocols send histograms as counts per bucket with upper bounds, not the raw
//! latencies, so a quantile can only be estimated. We use the estimate Prometheus'
//! `histogram_quantile` uses, so that a WatchDog p95 matches what the team's dashboards
//! show: find the bucket holding the q-th observation and interpolate linearly between
//! its lower and upper bound, i.e. assume the observations are spread evenly inside the
//! bucket. The error is at most the bucket's width. The lowest bucket's lower bound is 0
//! (latencies are not negative); a quantile falling into the open `+Inf` bucket is
//! reported as the highest finite bound, which understates it, as Prometheus does.
//!
//! Histograms of several attribute sets (routes, status codes, replicas) are merged by
//! adding the counts of equal upper bounds. Sets with different bounds merge into the
//! union of the bounds; a bucket then spreads over a wider interpolation interval than it
//! really had, which only matters when clients disagree on the buckets.

use std::collections::BTreeMap;

/// A histogram as counts per upper bound (`f64::INFINITY` for the open bucket).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets {
    /// Upper bound (as ordered bits of a non-negative f64) to count.
    counts: BTreeMap<u64, f64>,
}

/// Orders non-negative floats: their IEEE bit patterns sort like the numbers.
fn key(bound: f64) -> u64 {
    bound.max(0.0).to_bits()
}

impl Buckets {
    /// Adds `count` observations at or below `upper` (and above the next lower bound).
    pub fn add(&mut self, upper: f64, count: f64) {
        if count > 0.0 && !upper.is_nan() {
            *self.counts.entry(key(upper)).or_insert(0.0) += count;
        }
    }

    /// Adds explicit-bounds buckets: `counts[i]` is the number of observations in
    /// `(bounds[i-1], bounds[i]]`, the last one above the last bound.
    pub fn add_explicit(&mut self, bounds: &[f64], counts: &[f64]) {
        for (i, c) in counts.iter().enumerate() {
            self.add(bounds.get(i).copied().unwrap_or(f64::INFINITY), *c);
        }
    }

    /// Adds another histogram.
    pub fn merge(&mut self, other: &Buckets) {
        for (k, c) in &other.counts {
            *self.counts.entry(*k).or_insert(0.0) += c;
        }
    }

    /// Number of observations.
    pub fn total(&self) -> f64 {
        self.counts.values().sum()
    }

    /// The `q`-quantile (0 < q < 1) by linear interpolation inside its bucket, or `None`
    /// when the histogram is empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total <= 0.0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total;
        let mut below = 0.0;
        let mut lower = 0.0;
        let mut highest_finite = 0.0f64;
        for (k, count) in &self.counts {
            let upper = f64::from_bits(*k);
            if upper.is_finite() {
                highest_finite = upper;
            }
            if below + count >= rank {
                if !upper.is_finite() {
                    return Some(highest_finite);
                }
                let within = (rank - below) / count;
                return Some(lower + (upper - lower) * within);
            }
            below += count;
            lower = upper;
        }
        Some(highest_finite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_inside_the_bucket() {
        let mut b = Buckets::default();
        // 100 observations: 50 in (0, 0.1], 40 in (0.1, 0.2], 10 in (0.2, 0.5].
        b.add_explicit(&[0.1, 0.2, 0.5], &[50.0, 40.0, 10.0, 0.0]);
        assert_eq!(b.total(), 100.0);
        assert!((b.quantile(0.5).unwrap() - 0.1).abs() < 1e-12);
        // The 95th observation is half-way through the third bucket.
        assert!((b.quantile(0.95).unwrap() - 0.35).abs() < 1e-12);
        assert!((b.quantile(0.25).unwrap() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn the_open_bucket_reports_the_highest_finite_bound() {
        let mut b = Buckets::default();
        b.add_explicit(&[0.1, 0.2], &[1.0, 1.0, 98.0]);
        assert_eq!(b.quantile(0.99), Some(0.2));
    }

    #[test]
    fn merging_adds_equal_bounds_and_unions_others() {
        let mut a = Buckets::default();
        a.add_explicit(&[0.1, 0.2], &[10.0, 0.0, 0.0]);
        let mut b = Buckets::default();
        b.add_explicit(&[0.1, 0.2], &[0.0, 10.0, 0.0]);
        a.merge(&b);
        assert_eq!(a.total(), 20.0);
        assert!((a.quantile(0.75).unwrap() - 0.15).abs() < 1e-12);
        let mut c = Buckets::default();
        c.add_explicit(&[0.15], &[20.0, 0.0]);
        a.merge(&c);
        assert_eq!(a.total(), 40.0);
    }

    #[test]
    fn empty_has_no_quantile() {
        assert_eq!(Buckets::default().quantile(0.5), None);
        let mut b = Buckets::default();
        b.add_explicit(&[1.0], &[0.0, 0.0]);
        assert_eq!(b.quantile(0.5), None);
    }
}
