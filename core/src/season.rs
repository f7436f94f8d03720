//! Short cycles: a pattern that repeats every few samples inside the baseline window.
//!
//! A monthly series with a yearly season, an hourly one with a daily cycle, a batch job
//! that runs every ten minutes: the baseline holds several turns of the cycle, and a
//! deploy that lands on its rising side is compared with the cycle's median unless the
//! baseline knows where in the cycle each sample falls. Without it the cycle is noise:
//! the spread swells to cover it, and a shift the size of the cycle goes unseen.
//!
//! # How a cycle is found
//! For every candidate period `p` (two samples up to a third of the baseline, so that
//! every phase holds at least three samples) the baseline's residuals are grouped by
//! their phase, and a one-way analysis of variance asks whether the phase means differ
//! more than noise makes them: `F = (SSB/(p−1)) / (SSW/(n−p))`. Its tail is read
//! through Paulson's normal approximation to the F distribution, and the largest of the
//! candidates must pass the 0.1 % level after a Bonferroni correction for the number
//! of candidates tried.
//!
//! Why this carries to any series: the test compares the phases with each other, not
//! with a model of the noise. A sticky series (AR(1), a random walk) moves slowly
//! across every phase alike, so its phase means stay close together and its F stays
//! small: neighbouring samples fall in different phases and every phase spans the whole
//! window. Only a pattern locked to the period lifts the phase means apart. The cycle
//! must also carry at least half of the residuals' variance: a faint one is left to the
//! spread, which covers it at the price of a little power, while modelling it would add
//! `p` estimated means to every expectation for little gain.
//!
//! # What it costs
//! Each phase mean is estimated from `n/p` samples, so an expectation read off the
//! profile errs by about `σ/√(n/p)`. The spread the tests use is the spread around the
//! profile, raised for the `p` means fitted (by `√((n−1)/(n−p))`) and for that error
//! (by `√(1 + p/n)`), so the profile cannot make the noise look smaller than it is.

use crate::stats::normal_quantile;

/// Longest period looked for, in samples. The common short cycles are a dozen or two
/// samples long (a year of months, a day of hours, an hour of five-minute samples, a
/// five-minute job at a ten-second scrape); a longer one is a daily pattern for the
/// day-before check. The search costs one addition per sample and period, and it runs
/// at every watch's start, so the cap also bounds what a long baseline costs.
const MAX_PERIOD: usize = 32;

/// A repeating pattern of `profile.len()` samples, one mean per phase (summing to zero),
/// and the clock that tells a timestamp's phase.
#[derive(Clone, Debug, PartialEq)]
pub struct Season {
    /// The offset of each phase from the level, in the metric's unit.
    pub profile: Vec<f64>,
    /// A timestamp of phase zero.
    pub origin_ms: i64,
    /// The interval between samples the phases are counted in.
    pub cadence_ms: f64,
    /// The factor the spread around the profile is raised by (see the module doc).
    pub widen: f64,
}

impl Season {
    /// The number of samples in one turn of the cycle.
    pub fn period(&self) -> usize {
        self.profile.len()
    }

    /// The profile's offset at `t_ms`.
    pub fn at(&self, t_ms: i64) -> f64 {
        let k = ((t_ms - self.origin_ms) as f64 / self.cadence_ms).round() as i64;
        self.profile[k.rem_euclid(self.profile.len() as i64) as usize]
    }
}

/// Finds a short cycle in `residuals` (the baseline's values around its level or line,
/// at the timestamps of `points`), or `None`. `center` and `spread` are the residuals'
/// robust location and scale: residuals are clipped at `center ± 4·spread` first, so a
/// spike cannot make a phase.
///
/// A cycle with no noise around it at all (every turn the same to the last bit) is
/// left alone: with no spread around the profile there would be nothing to measure a
/// deviation by, and the spread of the values themselves stays the honest yardstick.
///
/// The samples must come at a steady pace (nine in ten intervals within a quarter of
/// `cadence_ms`), or a phase would not mean the same point of the cycle throughout.
pub fn find_season(
    points: &[(i64, f64)],
    residuals: &[f64],
    center: f64,
    spread: f64,
    cadence_ms: f64,
) -> Option<Season> {
    let n = residuals.len();
    if n < 12 || n != points.len() || !(spread.is_finite() && spread > 0.0) {
        return None;
    }
    let steady = points
        .windows(2)
        .filter(|w| ((w[1].0 - w[0].0) as f64 - cadence_ms).abs() <= 0.25 * cadence_ms)
        .count();
    if 10 * steady < 9 * (n - 1) {
        return None;
    }
    let origin_ms = points[0].0;
    let slot = |t: i64| ((t - origin_ms) as f64 / cadence_ms).round() as i64;
    // A steady scrape with nothing missing (every interval exactly the cadence, the
    // common case) puts sample `i` in slot `i`, with no division per sample; otherwise
    // each sample's slot is worked out.
    let whole = cadence_ms.fract() == 0.0 && cadence_ms >= 1.0;
    let exact = whole && {
        let c = cadence_ms as i64;
        points.windows(2).all(|w| w[1].0 - w[0].0 == c)
    };
    let index: Vec<i64> = if exact {
        Vec::new()
    } else {
        points.iter().map(|&(t, _)| slot(t)).collect()
    };
    let contiguous = exact || index.iter().enumerate().all(|(i, &k)| k == i as i64);
    let clip = 4.0 * spread;
    let r: Vec<f64> = residuals
        .iter()
        .map(|v| v.clamp(center - clip, center + clip))
        .collect();
    let mean = r.iter().sum::<f64>() / n as f64;
    let total: f64 = r.iter().map(|v| (v - mean) * (v - mean)).sum();
    if total <= 0.0 {
        return None;
    }
    let max_p = (n / 3).min(MAX_PERIOD);
    if max_p < 2 {
        return None;
    }
    let candidates = (max_p - 1) as f64;
    let z_crit = normal_quantile(1.0 - 0.001 / candidates);
    let mut best: Option<(f64, usize, Vec<f64>)> = None;
    let (mut sums, mut counts) = (Vec::new(), Vec::new());
    for p in 2..=max_p {
        sums.clear();
        sums.resize(p, 0.0);
        counts.clear();
        counts.resize(p, 0usize);
        if contiguous {
            // No sample missing: phase `j` holds the samples `j, j + p, j + 2p, …`, so
            // the sums run over whole turns of the cycle at a time and the counts follow
            // from `n` alone.
            turn_sums(&r, &mut sums);
            for (j, c) in counts.iter_mut().enumerate() {
                *c = n / p + usize::from(j < n % p);
            }
        } else {
            for (&k, &v) in index.iter().zip(&r) {
                let phase = k.rem_euclid(p as i64) as usize;
                sums[phase] += v;
                counts[phase] += 1;
            }
        }
        if counts.iter().any(|&c| c < 3) {
            continue;
        }
        let between: f64 = sums
            .iter()
            .zip(&counts)
            .map(|(s, &c)| {
                let m = s / c as f64 - mean;
                c as f64 * m * m
            })
            .sum();
        let within = total - between;
        if within <= 0.0 || between < 0.5 * total {
            continue;
        }
        let (d1, d2) = ((p - 1) as f64, (n - p) as f64);
        let z = paulson_z(between / d1 / (within / d2), d1, d2);
        if z > z_crit && best.as_ref().is_none_or(|b| z > b.0) {
            let profile = sums
                .iter()
                .zip(&counts)
                .map(|(s, &c)| s / c as f64)
                .collect();
            best = Some((z, p, profile));
        }
    }
    let (_, p, mut profile) = best?;
    // Offsets from the level: the phase means minus their own mean, so the profile moves
    // no level, only where inside the cycle a sample is expected.
    let avg = profile.iter().sum::<f64>() / p as f64;
    for m in profile.iter_mut() {
        *m -= avg;
    }
    let widen = (((n - 1) as f64 / (n - p) as f64) * (1.0 + p as f64 / n as f64)).sqrt();
    Some(Season {
        profile,
        origin_ms,
        cadence_ms,
        widen,
    })
}

/// Adds `r`, turn by turn, into one sum per phase (`sums.len()` phases), in the order of
/// the samples.
fn turn_sums(r: &[f64], sums: &mut [f64]) {
    /// The sums over whole turns, then the part turn at the end.
    #[inline(always)]
    fn add_turns(r: &[f64], s: &mut [f64]) {
        let turns = r.chunks_exact(s.len());
        let rest = turns.remainder();
        for turn in turns {
            for (a, v) in s.iter_mut().zip(turn) {
                *a += v;
            }
        }
        for (a, v) in s.iter_mut().zip(rest) {
            *a += v;
        }
    }
    /// A period known when compiled keeps its sums in registers through the turns: the
    /// short periods, where a turn is a few additions, are most of the search's work.
    fn fixed<const P: usize>(r: &[f64], sums: &mut [f64]) {
        let mut s = [0.0f64; P];
        add_turns(r, &mut s);
        sums.copy_from_slice(&s);
    }
    macro_rules! by_period {
        ($($p:literal)*) => {
            match sums.len() {
                $($p => fixed::<$p>(r, sums),)*
                _ => add_turns(r, sums),
            }
        };
    }
    by_period!(2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
}

/// Paulson's normal approximation to the upper tail of an F(d1, d2) statistic: the
/// standard normal value with the same upper tail as `f`, accurate to a few hundredths
/// in z for the degrees of freedom seen here.
fn paulson_z(f: f64, d1: f64, d2: f64) -> f64 {
    let (a, b) = (2.0 / (9.0 * d1), 2.0 / (9.0 * d2));
    let c = f.cbrt();
    ((1.0 - b) * c - (1.0 - a)) / (a + c * c * b).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::Rng;
    use crate::stats::robust_location_scale;

    fn found(values: &[f64]) -> Option<Season> {
        let points: Vec<(i64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64 * 60_000, v))
            .collect();
        let (c, s) = robust_location_scale(values);
        find_season(&points, values, c, s, 60_000.0)
    }

    #[test]
    fn a_cycle_of_twelve_samples_is_found_with_its_shape() {
        let mut rng = Rng::new(3);
        let v: Vec<f64> = (0..50)
            .map(|i| 3.0 * (std::f64::consts::TAU * i as f64 / 12.0).sin() + rng.normal())
            .collect();
        let s = found(&v).expect("a cycle of amplitude 3 over noise of 1");
        assert_eq!(s.period(), 12);
        // the peak a quarter of the way in, the trough three quarters
        assert!(s.at(3 * 60_000) > 2.0 && s.at(9 * 60_000) < -2.0, "{s:?}");
        // the phase carries on past the baseline
        assert_eq!(s.at(63 * 60_000), s.at(3 * 60_000));
        assert!(s.widen > 1.0);
    }

    #[test]
    fn noise_walks_and_sticky_series_have_no_cycle() {
        let mut found_in = 0;
        for seed in 0..200 {
            let mut rng = Rng::new(seed);
            let white: Vec<f64> = (0..60).map(|_| rng.normal()).collect();
            let mut x = 0.0;
            let walk: Vec<f64> = (0..60)
                .map(|_| {
                    x += rng.normal();
                    x
                })
                .collect();
            let mut y = 0.0;
            let sticky: Vec<f64> = (0..60)
                .map(|_| {
                    y = 0.9 * y + rng.normal();
                    y
                })
                .collect();
            found_in += [white, walk, sticky]
                .iter()
                .filter(|v| found(v).is_some())
                .count();
        }
        assert!(
            found_in <= 2,
            "a cycle in {found_in} of 600 series without one"
        );
    }

    #[test]
    fn phase_sums_are_the_same_bits_for_every_period() {
        let mut rng = Rng::new(9);
        let r: Vec<f64> = (0..203).map(|_| rng.normal() * 1e3).collect();
        for p in 2..=40 {
            let mut sums = vec![0.0; p];
            turn_sums(&r, &mut sums);
            let mut plain = vec![0.0; p];
            for (i, v) in r.iter().enumerate() {
                plain[i % p] += v;
            }
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&sums), bits(&plain), "period {p}");
        }
    }

    #[test]
    fn an_uneven_pace_has_no_phases() {
        let points: Vec<(i64, f64)> = (0..50)
            .map(|i| {
                let t = i as i64 * 60_000 + if i % 3 == 0 { 25_000 } else { 0 };
                (t, 3.0 * (std::f64::consts::TAU * i as f64 / 12.0).sin())
            })
            .collect();
        let v: Vec<f64> = points.iter().map(|p| p.1).collect();
        let (c, s) = robust_location_scale(&v);
        assert!(find_season(&points, &v, c, s, 60_000.0).is_none());
    }
}
