//! The count-aware error-rate test's inputs: errors and requests joined per sample, and
//! the design of its Bernoulli-likelihood CUSUM from the baseline counts.

use super::lower_bound;
use super::report::summarize;
use super::History;
use crate::config::Config;
use crate::detector::CountDesign;
use crate::stats::median;
use crate::verdict::Summary;

/// Baseline design of the count test from `(t, errors, requests)` points.
pub(super) fn count_design(
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
    let gaps: Vec<f64> = pairs.windows(2).map(|w| (w[1].0 - w[0].0) as f64).collect();
    let cadence = median(&gaps).max(1.0);
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
pub(super) fn rate_summary(pairs: &[(i64, f64, f64)]) -> Summary {
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
