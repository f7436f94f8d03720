//! The daily-pattern check: a shift that the same clock time one period earlier also
//! showed is the service's cycle, not the deploy.

use super::test::Test;
use super::{lower_bound, History};
use crate::config::Config;
use crate::stats::median;

/// Whether the day before, over the same clock-time stretch, the metric moved the same way
/// by at least 80 % of today's shift: then the shift is the service's daily pattern (the
/// morning ramp, the evening peak), not the deploy.
///
/// Yesterday's shift is measured like today's: the mean over `[start, until)` moved back
/// by the period, against the median of the hour before the deploy's time the day before.
/// It needs at least `min_baseline_samples` samples in that hour and `min_points` in the
/// stretch; without a day of history (or for the count test) nothing is explained away.
pub(super) fn daily_pattern_explains(
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
    let base: Vec<f64> = h.range(base_lo..base_hi).map(|p| p.1).collect();
    let level = median(&base);
    let then = h.range(lo..hi).map(|p| p.1).sum::<f64>() / (hi - lo) as f64;
    t.sign * (then - level) >= 0.8 * effect
}
