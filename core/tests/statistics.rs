//! Property tests of the detector's statistics: scale invariance, the false-alarm budget
//! on stationary noise, detection delay of steps, count-aware decisions at low traffic,
//! and pre-existing shifts.

mod common;

use common::*;
use proptest::prelude::*;
use watchdog_core::scenarios::{self, ScenarioParams};
use watchdog_core::{Config, DeployVerdict, InconclusiveCause, Sample, TestKind, VerdictKind};

fn scaled(samples: &[Sample], factor: f64) -> Vec<Sample> {
    samples
        .iter()
        .map(|s| Sample {
            version: None,
            metrics: s
                .metrics
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        if matches!(k.as_str(), "error_rate" | "errors" | "requests") {
                            *v
                        } else {
                            v * factor
                        },
                    )
                })
                .collect(),
            ..s.clone()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Multiplying every metric whose floor is relative by a constant changes nothing (counts
    /// and the error rate, a fraction, are not units anyone rescales):
    /// same verdict, same detection time.
    #[test]
    fn verdicts_are_scale_free(seed in 0u64..10_000, idx in 0usize..12, factor in prop::sample::select(vec![1e-3, 0.5, 1000.0, 1e6])) {
        let info = &scenarios::catalogue()[idx];
        let data = scenarios::generate(info.name, &ScenarioParams { seed, ..ScenarioParams::default() }).unwrap();
        let plain = run(Config::default(), &data.samples, &data.deploys);
        let big = run(Config::default(), &scaled(&data.samples, factor), &data.deploys);
        prop_assert_eq!(plain.len(), big.len());
        for (a, b) in plain.iter().zip(&big) {
            prop_assert_eq!(a.verdict, b.verdict, "{} seed {}: {} vs {}", info.name, seed, a.reason, b.reason);
            prop_assert_eq!(a.detected_at, b.detected_at);
        }
    }

    /// A step of k standard deviations (k ≥ 3) is detected, within the delay the design
    /// promises for the configured design shift plus slack for the estimation guards.
    #[test]
    fn steps_are_detected_within_bounded_delay(seed in 0u64..10_000, k in 3.0f64..12.0) {
        let (samples, dep) = step_series(seed, "p95_latency_ms", 200.0, 10.0, k * 10.0, 360, 180, 0);
        let v = &run(Config::default(), &samples, &[dep])[0];
        prop_assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
        let delay = v.detected_at.unwrap().secs_since(v.deployed_at);
        // A 3σ step at the 1% budget takes a handful of samples, never more than a dozen;
        // only the tail test may decide on the first sample, when it is far beyond
        // anything in the baseline.
        prop_assert!(delay <= 12.0 * 10.0, "delay {delay} s for a {k:.1}σ step");
        if delay < 10.0 {
            prop_assert_eq!(v.evidence[0].test, watchdog_core::TestKind::TailExceedance);
            prop_assert!(v.evidence[0].statistic > v.evidence[0].threshold);
        }
    }

    /// Doubling the spread of an otherwise identical step-free series never produces a
    /// regression (the false-alarm guard), and a pure level change of less than the
    /// relative floor (10%) is never a regression however significant.
    #[test]
    fn trivial_shifts_are_not_regressions(seed in 0u64..10_000, shift_pct in 0.0f64..0.07) {
        // Tiny noise: a 5% shift is hundreds of standard deviations, but not material.
        let (samples, dep) = step_series(seed, "p95_latency_ms", 200.0, 0.05, 200.0 * shift_pct, 360, 180, 0);
        let v = &run(Config::default(), &samples, &[dep])[0];
        prop_assert_ne!(v.verdict, VerdictKind::Regression, "{}", v.reason);
    }
}

/// On stationary noise (independent and AR(1)), regressions stay within the documented
/// per-deploy false-alarm target of 1%. 400 deploys; under a 1% rate the chance of 10 or
/// more false alarms is below 0.1%, so this does not flake, and it fails if the threshold
/// derivation is off by a factor of a few.
#[test]
fn false_alarms_on_stationary_noise_stay_within_budget() {
    let mut false_alarms = 0;
    let trials = 400;
    for seed in 0..trials {
        let mut rng = watchdog_core::scenarios::Rng::new(seed);
        let rho = if seed % 2 == 0 { 0.0 } else { 0.6 };
        let mut x = 0.0;
        let mut samples = Vec::new();
        for i in 0..540 {
            x = rho * x + (1.0f64 - rho * rho).sqrt() * rng.normal();
            let t = T0.add_secs(10.0 * (i as f64 - 360.0));
            samples.push(sample(
                t,
                "svc",
                &[
                    ("p95_latency_ms", 200.0 + 20.0 * x),
                    ("queue_depth", 50.0 + 5.0 * rng.normal()),
                ],
            ));
        }
        let v = &run(Config::default(), &samples, &[deploy(T0, "v", "svc")])[0];
        if v.verdict == VerdictKind::Regression {
            false_alarms += 1;
        }
    }
    assert!(
        false_alarms < 10,
        "{false_alarms} false alarms in {trials} healthy deploys"
    );
}

/// 3 errors in 40 requests is not the same evidence as 300 in 4,000: at low traffic the
/// count test waits (or says it cannot tell), at high traffic it decides fast.
#[test]
fn count_aware_error_rate_at_low_and_high_traffic() {
    let build = |requests: f64, errors_after: f64| {
        let mut rng = watchdog_core::scenarios::Rng::new(7);
        let mut samples = Vec::new();
        for i in 0..540 {
            let t = T0.add_secs(10.0 * (i as f64 - 360.0));
            let after = i >= 360;
            let r = requests;
            let e = if after {
                errors_after
            } else {
                rng.binomial(r, 0.01)
            };
            samples.push(sample(t, "svc", &[("requests", r), ("errors", e)]));
        }
        samples
    };
    // Low traffic, bad: 3 errors in every 40 requests (7.5%) after the deploy.
    let low = &run(
        Config::default(),
        &build(40.0, 3.0),
        &[deploy(T0, "v", "svc")],
    )[0];
    // High traffic, same rate: 300 in 4,000.
    let high = &run(
        Config::default(),
        &build(4000.0, 300.0),
        &[deploy(T0, "v", "svc")],
    )[0];
    assert_eq!(high.verdict, VerdictKind::Regression, "{}", high.reason);
    assert_eq!(low.verdict, VerdictKind::Regression, "{}", low.reason);
    let delay = |v: &watchdog_core::DeployVerdict| v.detected_at.unwrap().secs_since(v.deployed_at);
    assert!(
        delay(low) > delay(high),
        "low traffic decided in {} s, high in {} s",
        delay(low),
        delay(high)
    );
    let counts = high.evidence[0].counts.expect("count evidence");
    assert!(counts.observed_requests > 0.0 && counts.baseline_requests > 100_000.0);

    // Very low traffic, healthy: 5 requests per sample. Not a silent pass: inconclusive,
    // saying how many requests would decide it.
    let mut rng = watchdog_core::scenarios::Rng::new(3);
    let samples: Vec<_> = (0..540)
        .map(|i| {
            let t = T0.add_secs(10.0 * (i as f64 - 360.0));
            sample(
                t,
                "svc",
                &[("requests", 5.0), ("errors", rng.binomial(5.0, 0.01))],
            )
        })
        .collect();
    let quiet = &run(Config::default(), &samples, &[deploy(T0, "v", "svc")])[0];
    assert_eq!(quiet.verdict, VerdictKind::Inconclusive, "{}", quiet.reason);
    assert_eq!(
        quiet.inconclusive_cause,
        Some(InconclusiveCause::LowTraffic)
    );
    assert!(
        quiet.needed.as_deref().unwrap_or("").contains("requests"),
        "{:?}",
        quiet.needed
    );
}

/// A shift that began 20 minutes before the deploy is not the deploy's regression.
#[test]
fn pre_existing_shift_is_not_blamed_on_the_deploy() {
    for seed in 0..20 {
        let (mut samples, dep) = step_series(seed, "p95_latency_ms", 200.0, 8.0, 0.0, 360, 180, 0);
        for s in samples.iter_mut() {
            if s.timestamp.secs_since(T0) >= -1200.0 {
                s.metrics[0].1 += 60.0;
            }
        }
        let v = &run(Config::default(), &samples, &[dep])[0];
        assert_ne!(
            v.verdict,
            VerdictKind::Regression,
            "seed {seed}: {}",
            v.reason
        );
        assert!(
            v.warnings.iter().any(|w| w.contains("already shifting"))
                || v.inconclusive_cause == Some(InconclusiveCause::PreExistingShift),
            "seed {seed}: the pre-existing shift is not reported: {:?} {}",
            v.warnings,
            v.reason
        );
    }
    // And a further shift at the deploy, on top of the pre-existing one, is caught.
    let (mut samples, dep) = step_series(1, "p95_latency_ms", 200.0, 8.0, 80.0, 360, 180, 0);
    for s in samples.iter_mut() {
        if s.timestamp.secs_since(T0) >= -1200.0 {
            s.metrics[0].1 += 60.0;
        }
    }
    let v = &run(Config::default(), &samples, &[dep])[0];
    assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
}

/// The verdict on a p95 latency of 200 ± 8 ms (an hour of baseline at 10 s, half an hour
/// watched) with `shape(seconds since the deploy)` added to every sample, and a shift of
/// `at_deploy` from the deploy on.
fn shaped_latency(seed: u64, at_deploy: f64, shape: impl Fn(f64) -> f64) -> DeployVerdict {
    let (mut samples, dep) =
        step_series(seed, "p95_latency_ms", 200.0, 8.0, at_deploy, 360, 180, 0);
    for s in samples.iter_mut() {
        s.metrics[0].1 += shape(s.timestamp.secs_since(T0));
    }
    run(Config::default(), &samples, &[dep]).remove(0)
}

/// Twenty seeds of `shape` with nothing at the deploy are not regressions; `seed` with
/// a shift of 80 ms at the deploy is one.
fn judged_at_the_shape_end(seed: u64, shape: impl Fn(f64) -> f64) {
    for s in 0..20 {
        let v = shaped_latency(s, 0.0, &shape);
        assert_ne!(v.verdict, VerdictKind::Regression, "seed {s}: {}", v.reason);
    }
    let v = shaped_latency(seed, 80.0, &shape);
    assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
}

/// A baseline that stepped up twice (a failover, then a second drain onto the same
/// nodes) is judged at the level it ended on, not at the level after its largest step:
/// the deploy that follows and changes nothing is not a regression, and a real shift
/// after it still is.
#[test]
fn a_baseline_that_stepped_twice_is_judged_at_its_last_level() {
    judged_at_the_shape_end(3, |since| {
        let first = if since >= -2700.0 { 80.0 } else { 0.0 };
        let second = if since >= -720.0 { 40.0 } else { 0.0 };
        first + second
    });
}

/// A baseline that stepped up and then kept climbing for a while (caches refilling after
/// a failover) is re-based onto where the climb ended, not onto the median of the climb:
/// a deploy that changes nothing is not a regression (neither for the level test nor for
/// the sustained one), and a real shift after it still is.
#[test]
fn a_step_that_kept_climbing_is_judged_at_the_level_it_reached() {
    // 12 σ at the step, then 12 σ more over the 27 minutes up to the end of the baseline
    // (the deploy tolerance before the deploy), then level
    judged_at_the_shape_end(2, |since| {
        if since >= -2200.0 {
            96.0 + 96.0 * ((since + 2200.0) / 1600.0).min(1.0)
        } else {
            0.0
        }
    });
}

/// A p90 stuck on one value for the whole of a short baseline (an idle pod's latency
/// bucket), then a burst of samples a hundred times that right after the deploy and back:
/// the burst is a regression, though the baseline has no spread and no tail to measure it
/// by. One sample of it alone, or a burst smaller than the material effect, is not.
#[test]
fn a_burst_over_a_baseline_that_never_moved_is_a_regression() {
    let burst = |values: &[f64]| {
        let (mut samples, dep) = step_series(0, "p95_latency_ms", 4.6, 0.0, 0.0, 75, 60, 0);
        for (s, v) in samples.iter_mut().skip(75).zip(values) {
            s.metrics[0].1 = *v;
        }
        run(Config::default(), &samples, &[dep]).remove(0)
    };
    let v = burst(&[450.0, 400.0, 235.0, 1300.0]);
    assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
    let v = burst(&[450.0]);
    assert_ne!(v.verdict, VerdictKind::Regression, "{}", v.reason);
    // 0.1 ms over a 4.6 ms level, below the 10 % effect floor
    let v = burst(&[4.7, 4.7, 4.7, 4.7, 4.7]);
    assert_ne!(v.verdict, VerdictKind::Regression, "{}", v.reason);
}

/// Samples every 5 minutes: 33 at 20, a step to 67 that then climbs by 15 over the 27
/// samples up to the deploy (too gently, against a spread of 4, to pass as a trend), and
/// the samples after it at the level the climb reached. The level test judges a re-based
/// baseline's first samples against where the service was just before the deploy, not
/// against the median of the stretch after the step, so the deploy, which changed
/// nothing, is not called a level shift. (The sustained test still ranks them against
/// the re-based baseline and fires on a few of these seeds: a known limit.)
#[test]
fn a_re_based_baseline_is_not_a_level_for_the_level_test() {
    for seed in 0..20 {
        let mut rng = watchdog_core::scenarios::Rng::new(seed);
        let samples: Vec<Sample> = (0..90)
            .map(|i| {
                let level = match i {
                    0..33 => 20.0,
                    33..60 => 67.0 + 15.0 * (i - 33) as f64 / 26.0,
                    _ => 82.0,
                };
                let noise = if i < 33 { 1.2 } else { 4.0 };
                let t = T0.add_secs(300.0 * (i as f64 - 60.0));
                sample(t, "svc", &[("value", level + noise * rng.normal())])
            })
            .collect();
        let v = run(Config::default(), &samples, &[deploy(T0, "v2", "svc")]).remove(0);
        let by_level = v.evidence.iter().any(|e| {
            e.test == watchdog_core::TestKind::LevelShift
                && e.status == watchdog_core::MetricStatus::Regressed
        });
        assert!(!by_level, "seed {seed}: {}", v.reason);
    }
}

/// A latency that climbs steadily through the baseline and goes on climbing at the same
/// rate through the watch (a heap or a queue growing with the morning's traffic) has not
/// changed at the deploy: the trend, extrapolated because it runs the harmful way, is
/// what the watch is judged against, all the way along. A shift of 80 ms on top of it is
/// still a regression.
#[test]
fn a_trend_that_goes_on_through_the_watch_is_not_a_regression() {
    // 8 σ an hour: past the baseline's trend test, and 4 σ more over the watch
    judged_at_the_shape_end(1, |since| 64.0 * (since + 3600.0) / 3600.0);
}

/// A latency that wanders like a random walk (a queue's wait, one step of 1 ms every
/// 10 s) and jumps by 24 ms at the deploy, to stay there. From the end of the baseline,
/// across the ten minutes of deploy tolerance, the walk alone could move that far; from
/// the samples just before the deploy it could not, and those are what the jump is
/// measured against.
#[test]
fn a_jump_in_a_wandering_series_is_measured_from_just_before_the_deploy() {
    let series = |seed: u64, jump: f64| {
        let mut rng = watchdog_core::scenarios::Rng::new(seed);
        let mut x = 200.0;
        judged(10.0, 360, 180, "p95_latency_ms", Config::default(), |i| {
            x += rng.normal();
            x + if i >= 360 { jump } else { 0.0 }
        })
    };
    let caught = (0..10)
        .filter(|&s| series(s, 24.0).verdict == VerdictKind::Regression)
        .count();
    assert!(caught >= 9, "{caught} of 10 jumps caught");
    // The walk going on without a jump: the reference right before the deploy adds no
    // false alarms. One of these twenty (seed 102) is one with either reference: half an
    // hour of walk after the deploy wanders further than the hour before it did.
    let alarms = (0..20)
        .filter(|&s| series(100 + s, 0.0).verdict == VerdictKind::Regression)
        .count();
    assert!(
        alarms <= 1,
        "{alarms} of 20 walks without a jump called regressions"
    );
}

/// A metric sampled every minute, 20 ± 1 plus `shape(sample index)`, for the hour before
/// the deploy and the half hour after it, with `at_deploy` added from the deploy on.
fn per_minute(seed: u64, at_deploy: f64, shape: impl Fn(f64) -> f64) -> DeployVerdict {
    let mut rng = watchdog_core::scenarios::Rng::new(seed);
    judged(60.0, 60, 30, "value", Config::default(), |i| {
        let shift = if i >= 60 { at_deploy } else { 0.0 };
        20.0 + shape(i as f64) + rng.normal() + shift
    })
}

/// The verdict on one deploy at `T0` of a metric sampled every `every_secs`, `pre`
/// samples before the deploy and `post` from it on, sample `i` (from 0) taking
/// `value(i)`, judged with `cfg`.
fn judged(
    every_secs: f64,
    pre: usize,
    post: usize,
    metric: &str,
    cfg: Config,
    mut value: impl FnMut(usize) -> f64,
) -> DeployVerdict {
    let samples: Vec<Sample> = (0..pre + post)
        .map(|i| {
            let v = value(i);
            sample(
                T0.add_secs(every_secs * (i as f64 - pre as f64)),
                "svc",
                &[(metric, v)],
            )
        })
        .collect();
    run(cfg, &samples, &[deploy(T0, "v2", "svc")]).remove(0)
}

/// [`per_minute`] climbing `per_min` a minute.
fn climb(seed: u64, per_min: f64, at_deploy: f64) -> DeployVerdict {
    per_minute(seed, at_deploy, |i| per_min * i)
}

/// A climb of 2.5 σ over the fifty samples of the baseline (0.05 a minute against a
/// spread of 1) that simply goes on: about three and a half standard errors of the
/// baseline's trend test, so the three-standard-error bar misses it as often as not,
/// and half the samples of its recent half cannot show it again on their own. Judged
/// against the baseline's median, the climb's continuation was a shift on 29 of 40
/// seeds; the weak trend, extrapolated for the test it runs the harmful way, leaves a
/// few. A step of 4 σ at the deploy on top of the climb is still caught.
#[test]
fn a_weak_climb_that_goes_on_is_not_a_regression() {
    for per_min in [0.05, 0.08] {
        let alarms = (0..40)
            .filter(|&s| climb(s, per_min, 0.0).verdict == VerdictKind::Regression)
            .count();
        assert!(
            alarms <= 6,
            "{per_min} a minute: {alarms} of 40 called regressions"
        );
        let caught = (0..20)
            .filter(|&s| climb(s, per_min, 4.0).verdict == VerdictKind::Regression)
            .count();
        assert!(
            caught >= 19,
            "{per_min} a minute: {caught} of 20 steps caught"
        );
    }
}

/// [`per_minute`] running through a cycle of twelve samples (amplitude 3 over noise of
/// 1: a monthly series' year, a job every twelve minutes).
fn cycling(seed: u64, step: f64) -> DeployVerdict {
    per_minute(seed, step, |i| {
        3.0 * (std::f64::consts::TAU * i / 12.0).sin()
    })
}

/// A step as large as the cycle's amplitude is a regression once the baseline knows
/// where in the cycle every sample falls; without the cycle in the expectation, its
/// swing was noise and no step was found (0 of 8 on the shaped probe). The cycle going
/// on alone is no regression, and a step the other way is one too.
#[test]
fn a_step_in_a_series_with_a_short_cycle_is_found() {
    let caught = (0..20)
        .filter(|&s| cycling(s, 3.0).verdict == VerdictKind::Regression)
        .count();
    assert!(caught >= 18, "{caught} of 20 steps caught");
    let falls = (0..20)
        .filter(|&s| cycling(100 + s, -3.0).verdict == VerdictKind::Regression)
        .count();
    assert!(falls >= 18, "{falls} of 20 falls caught");
    let alarms = (0..20)
        .filter(|&s| cycling(200 + s, 0.0).verdict == VerdictKind::Regression)
        .count();
    assert!(
        alarms <= 1,
        "{alarms} of 20 cycles alone called regressions"
    );
}

/// A random walk sampled every minute (one step of 1 a minute: a backlog, a price),
/// with `jump` added from the deploy on.
fn walking(seed: u64, jump: f64) -> DeployVerdict {
    let mut rng = watchdog_core::scenarios::Rng::new(seed);
    let mut x = 50.0;
    judged(60.0, 60, 30, "value", Config::default(), |i| {
        x += rng.normal();
        x + if i >= 60 { jump } else { 0.0 }
    })
}

/// A walk leaves the range of its own baseline without any change: two samples beyond
/// the baseline's tail are then where the walk had carried itself, not a burst. The
/// extreme-sample test's pair rule measures them from the level the series carried
/// into them. Measured against the baseline's expectation alone, 6 of 200 walks without
/// a jump were called regressions by the pair rule and 11 by any test; from the carried
/// level, 1 and 7. A jump of 8 steps at the deploy is caught as often as before (14 of
/// 20: a walk's own half hour after the deploy hides some of them).
#[test]
fn a_walk_past_its_baseline_is_not_a_burst() {
    let verdicts: Vec<DeployVerdict> = (0..200).map(|s| walking(s, 0.0)).collect();
    let regressions: Vec<&DeployVerdict> = verdicts
        .iter()
        .filter(|v| v.verdict == VerdictKind::Regression)
        .collect();
    let bursts = regressions
        .iter()
        .filter(|v| v.evidence.first().map(|e| e.test) == Some(TestKind::TailExceedance))
        .count();
    assert!(bursts <= 2, "{bursts} of 200 walks called bursts");
    assert!(
        regressions.len() <= 9,
        "{} of 200 walks called regressions",
        regressions.len()
    );
    let caught = (0..20)
        .filter(|&s| walking(500 + s, 8.0).verdict == VerdictKind::Regression)
        .count();
    assert!(caught >= 13, "{caught} of 20 jumps caught");
}

/// A sticky metric (AR(1) at ρ = 0.9, one sample a minute) with a day of history
/// before the deploy and half an hour after it, and no change, judged with a baseline
/// of `baseline_min` minutes.
fn sticky(seed: u64, baseline_min: u64) -> DeployVerdict {
    let mut rng = watchdog_core::scenarios::Rng::new(seed);
    let mut x = 0.0;
    let cfg = Config {
        baseline_window_secs: baseline_min * 60,
        target_baseline_samples: baseline_min as usize,
        max_history: 4096,
        ..Config::default()
    };
    judged(60.0, 1440, 30, "value", cfg, |_| {
        x = 0.9 * x + (1.0f64 - 0.81).sqrt() * rng.normal();
        50.0 + x
    })
}

/// The baseline size it asks for, from the verdict's `needed`.
fn baseline_asked(v: &DeployVerdict) -> Option<u64> {
    let needed = v.needed.as_deref()?;
    let rest = needed.strip_prefix("a baseline of at least ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A baseline too sticky for the sustained test to see a shift through its wander says
/// how long a baseline would let it. With a fifth more samples than that of the same
/// series, the watch is judged (healthy here, or short of samples after the deploy,
/// with a figure), not "wanders too much" again, on most seeds: the longer stretch
/// measures the stickiness anew, and where it comes out higher still than the figure
/// expected, the test asks for more again (14 of the 17 seeds that can be checked in a
/// day of history are judged). With half as many, it still wanders on about half of
/// them (9 of 17): the figure is about the size that decides, not merely a large one.
#[test]
fn a_wandering_baseline_says_how_long_a_baseline_would_decide() {
    let (mut asked, mut judged, mut short_wanders) = (0, 0, 0);
    for seed in 0..30 {
        let v = sticky(seed, 60);
        if v.inconclusive_cause != Some(InconclusiveCause::UnsteadyBaseline) {
            continue;
        }
        let n = baseline_asked(&v).unwrap_or_else(|| panic!("seed {seed}: {:?}", v.needed));
        assert!(n > 50, "seed {seed}: {n}");
        // the day of history holds only so much
        if n + n / 5 > 1440 {
            continue;
        }
        asked += 1;
        let longer = sticky(seed, n + n / 5);
        assert_ne!(longer.verdict, VerdictKind::Regression, "seed {seed}");
        if longer.inconclusive_cause != Some(InconclusiveCause::UnsteadyBaseline) {
            judged += 1;
        }
        if sticky(seed, (n / 2).max(60)).inconclusive_cause
            == Some(InconclusiveCause::UnsteadyBaseline)
        {
            short_wanders += 1;
        }
    }
    assert!(asked >= 6, "{asked} of 30 baselines wandered");
    assert!(
        judged * 10 >= asked * 8,
        "{judged} of {asked} judged with the baseline asked for"
    );
    assert!(
        short_wanders * 10 >= asked * 4,
        "{short_wanders} of {asked} still wander with half of it"
    );
    eprintln!("{asked} asked, {judged} judged, {short_wanders} wander with half");
}
