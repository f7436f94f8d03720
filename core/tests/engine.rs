//! The engine's correlation rules: event time and lateness, series kept apart, a new
//! deploy closing the previous watch, deploys without data, and a robust baseline.

mod common;

use common::*;
use watchdog_core::scenarios::{self, ScenarioParams};
use watchdog_core::{Config, Engine, InconclusiveCause, VerdictKind, WatchEnd};

#[test]
fn out_of_order_samples_within_lateness_give_the_same_verdicts() {
    let data = scenarios::generate(
        "latency_step",
        &ScenarioParams {
            seed: 5,
            ..ScenarioParams::default()
        },
    )
    .unwrap();
    let sorted = run(Config::default(), &data.samples, &data.deploys);
    // Swap neighbours in blocks of six (at most 50 s late, within the 120 s lateness).
    let mut shuffled = data.samples.clone();
    for chunk in shuffled.chunks_mut(6) {
        chunk.reverse();
    }
    let mut engine = Engine::new(Config::default()).unwrap();
    engine.ingest_deploy(&data.deploys[0]).unwrap();
    for s in &shuffled {
        engine.ingest_sample(s).unwrap();
    }
    engine.finish();
    let v = engine.take_verdicts();
    assert_eq!(engine.stats().late_samples, 0);
    assert_eq!(v[0].verdict, sorted[0].verdict);
    assert_eq!(
        v[0].detected_at, sorted[0].detected_at,
        "{} vs {}",
        v[0].reason, sorted[0].reason
    );
}

#[test]
fn samples_later_than_the_lateness_are_counted_and_kept_for_baselines() {
    let mut engine = Engine::new(Config::default()).unwrap();
    engine
        .ingest_sample(&sample(T0, "svc", &[("p95_latency_ms", 100.0)]))
        .unwrap();
    engine
        .ingest_sample(&sample(
            T0.add_secs(-600.0),
            "svc",
            &[("p95_latency_ms", 100.0)],
        ))
        .unwrap();
    assert_eq!(engine.stats().late_samples, 1);
    assert_eq!(engine.stats().samples, 2);
    assert_eq!(engine.stats().dropped_samples, 0);
    // Older than any history reaches back: dropped.
    engine
        .ingest_sample(&sample(
            T0.add_secs(-30.0 * 86_400.0),
            "svc",
            &[("p95_latency_ms", 100.0)],
        ))
        .unwrap();
    assert_eq!(engine.stats().late_samples, 2);
    assert_eq!(engine.stats().dropped_samples, 1);
}

#[test]
fn non_finite_values_are_rejected_with_the_metric_named() {
    let mut engine = Engine::new(Config::default()).unwrap();
    let err = engine
        .ingest_sample(&sample(T0, "svc", &[("p95_latency_ms", f64::NAN)]))
        .unwrap_err();
    assert_eq!(err.field(), Some("p95_latency_ms"));
    assert_eq!(engine.stats().samples, 0);
}

#[test]
fn overlapping_deploys_of_two_services_are_kept_apart() {
    let data = scenarios::generate(
        "overlapping_deploys",
        &ScenarioParams {
            seed: 9,
            ..ScenarioParams::default()
        },
    )
    .unwrap();
    let v = run(Config::default(), &data.samples, &data.deploys);
    let by_id = |id: &str| v.iter().find(|v| v.deploy_id == id).unwrap();
    assert_eq!(by_id("checkout-v2.3.0").verdict, VerdictKind::Regression);
    assert_eq!(
        by_id("search-v8.1.4").verdict,
        VerdictKind::Healthy,
        "{}",
        by_id("search-v8.1.4").reason
    );
}

#[test]
fn a_new_deploy_of_the_same_service_closes_the_previous_watch() {
    let (samples, d1) = step_series(2, "p95_latency_ms", 200.0, 5.0, 0.0, 360, 180, 0);
    let d2 = deploy(T0.add_secs(600.0), "v3", "svc");
    let v = run(Config::default(), &samples, &[d1, d2]);
    assert_eq!(v.len(), 2);
    let first = v.iter().find(|v| v.deploy_id == "v2").unwrap();
    assert_eq!(first.window.ended_by, WatchEnd::NextDeploy);
    assert!(
        (first.window.watched_secs - 600.0).abs() < 1e-9,
        "{}",
        first.window.watched_secs
    );
}

#[test]
fn a_regression_after_the_next_deploy_is_blamed_on_that_deploy() {
    // The shift starts at the second deploy, 15 minutes after the first.
    let (mut samples, d1) = step_series(4, "p95_latency_ms", 200.0, 5.0, 0.0, 360, 180, 0);
    for s in samples.iter_mut() {
        if s.timestamp.secs_since(T0) >= 900.0 {
            s.metrics[0].1 += 100.0;
        }
    }
    let d2 = deploy(T0.add_secs(900.0), "v3", "svc");
    let v = run(Config::default(), &samples, &[d1, d2]);
    let get = |id: &str| v.iter().find(|v| v.deploy_id == id).unwrap();
    assert_ne!(
        get("v2").verdict,
        VerdictKind::Regression,
        "{}",
        get("v2").reason
    );
    // v3's baseline is mostly v2's healthy level.
    assert_eq!(
        get("v3").verdict,
        VerdictKind::Regression,
        "{}",
        get("v3").reason
    );
}

#[test]
fn a_deploy_without_samples_is_inconclusive_for_lack_of_data() {
    let (samples, _) = step_series(1, "p95_latency_ms", 200.0, 5.0, 0.0, 100, 50, 0);
    let v = run(Config::default(), &samples, &[deploy(T0, "v9", "payments")]);
    assert_eq!(v[0].verdict, VerdictKind::Inconclusive);
    assert_eq!(v[0].inconclusive_cause, Some(InconclusiveCause::NoData));
}

#[test]
fn a_short_baseline_is_inconclusive_and_says_what_is_needed() {
    let (samples, dep) = step_series(1, "p95_latency_ms", 200.0, 5.0, 0.0, 5, 100, 0);
    let v = &run(Config::default(), &samples, &[dep])[0];
    assert_eq!(
        v.inconclusive_cause,
        Some(InconclusiveCause::ShortBaseline),
        "{}",
        v.reason
    );
    assert!(v.needed.is_some());
}

#[test]
fn unlabelled_samples_match_a_labelled_deploy() {
    // The single-service format: samples with no service or environment.
    let (mut samples, _) = step_series(3, "p95_latency_ms", 200.0, 5.0, 80.0, 200, 60, 0);
    for s in samples.iter_mut() {
        s.service.clear();
        s.environment.clear();
    }
    let v = &run(Config::default(), &samples, &[deploy(T0, "v2", "checkout")])[0];
    assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
    assert_eq!(v.service, "checkout");
}

#[test]
fn one_spike_in_the_baseline_neither_blinds_nor_triggers() {
    for seed in 0..10 {
        // A healthy deploy with one enormous spike in the baseline stays healthy ...
        let (mut healthy, dep) = step_series(seed, "p95_latency_ms", 200.0, 5.0, 0.0, 360, 180, 0);
        healthy[200].metrics[0].1 = 1e7;
        let v = &run(Config::default(), &healthy, std::slice::from_ref(&dep))[0];
        assert_eq!(v.verdict, VerdictKind::Healthy, "seed {seed}: {}", v.reason);
        // ... and a 30% step after the same spiked baseline is still caught quickly.
        let (mut bad, dep) = step_series(seed, "p95_latency_ms", 200.0, 5.0, 60.0, 360, 180, 0);
        bad[200].metrics[0].1 = 1e7;
        let v = &run(Config::default(), &bad, &[dep])[0];
        assert_eq!(
            v.verdict,
            VerdictKind::Regression,
            "seed {seed}: {}",
            v.reason
        );
        assert!(v.detected_at.unwrap().secs_since(v.deployed_at) <= 60.0);
    }
}

/// A few samples far outside anything the baseline did, right after the deploy, are a
/// regression even when the service recovers at once (a crash loop, a burst of timeouts).
#[test]
fn a_few_extreme_samples_after_the_deploy_are_a_regression() {
    for seed in 0..10 {
        let (mut s, dep) = step_series(seed, "p95_latency_ms", 200.0, 5.0, 0.0, 360, 180, 0);
        for k in [361, 362] {
            s[k].metrics[0].1 = 5000.0;
        }
        let v = &run(Config::default(), &s, std::slice::from_ref(&dep))[0];
        assert_eq!(
            v.verdict,
            VerdictKind::Regression,
            "seed {seed}: {}",
            v.reason
        );
        let e = &v.evidence[0];
        assert_eq!(e.test, watchdog_core::TestKind::TailExceedance);
        assert!(e.statistic > e.threshold, "{} {}", e.statistic, e.threshold);
    }
}

#[test]
fn a_lone_spike_after_the_deploy_is_not_a_regression() {
    for seed in 0..10 {
        let (mut s, dep) = step_series(seed, "p95_latency_ms", 200.0, 5.0, 0.0, 360, 180, 0);
        for k in [370, 380, 390] {
            s[k].metrics[0].1 = 5000.0;
        }
        let v = &run(Config::default(), &s, &[dep])[0];
        assert_ne!(
            v.verdict,
            VerdictKind::Regression,
            "seed {seed}: {}",
            v.reason
        );
    }
}

#[test]
fn the_regression_evidence_carries_what_an_engineer_needs() {
    let (samples, dep) = step_series(8, "p95_latency_ms", 200.0, 5.0, 60.0, 360, 180, 3);
    let v = &run(Config::default(), &samples, &[dep])[0];
    assert_eq!(v.verdict, VerdictKind::Regression);
    let e = &v.evidence[0];
    assert_eq!(e.metric, "p95_latency_ms");
    assert!((e.baseline.median - 200.0).abs() < 3.0);
    // The observed stretch runs from the estimated start to the detection, which may be
    // a couple of samples: within three standard deviations of the shifted level.
    assert!(
        (e.observed.median - 260.0).abs() < 15.0,
        "{}",
        e.observed.median
    );
    assert!(e.effect_relative.unwrap() > 0.25);
    assert!(e.statistic > e.threshold);
    let start = e.change_started_at.unwrap().secs_since(v.deployed_at);
    assert!(
        (20.0..=40.0).contains(&start),
        "change estimated {start} s after the deploy, true 30 s"
    );
    assert!(v.reason.contains("p95_latency_ms"));
}

#[test]
fn watches_end_on_the_wall_clock_in_live_mode() {
    let (samples, dep) = step_series(1, "p95_latency_ms", 200.0, 5.0, 0.0, 360, 30, 0);
    let mut engine = Engine::new(Config::default()).unwrap();
    engine.ingest_deploy(&dep).unwrap();
    for s in &samples {
        engine.ingest_sample(s).unwrap();
    }
    assert!(engine.take_verdicts().is_empty());
    assert_eq!(engine.active_watches().len(), 1);
    // No more data; the clock moves past the window (30 min) and the lateness.
    engine.advance_to(T0.add_secs(1800.0 + 121.0));
    let v = engine.take_verdicts();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].window.ended_by, WatchEnd::Window);
    assert!(engine.active_watches().is_empty());
}

fn log(
    t: watchdog_core::Timestamp,
    level: watchdog_core::LogLevel,
    message: &str,
) -> watchdog_core::LogEvent {
    watchdog_core::LogEvent {
        timestamp: t,
        service: "svc".into(),
        environment: "production".into(),
        level,
        message: message.into(),
    }
}

/// Healthy metrics, but the release starts logging a brand-new error: by default that is
/// a regression, detected when the count became significant; with the `warning` policy
/// the verdict stays healthy and says why it warns.
#[test]
fn a_burst_of_a_new_error_signature_is_not_passed_silently() {
    use watchdog_core::{LogLevel, SignatureChange, SignaturePolicy};
    let (samples, dep) = step_series(5, "p95_latency_ms", 200.0, 5.0, 0.0, 360, 180, 0);
    let run_with = |policy: SignaturePolicy| {
        let mut engine = Engine::new(Config {
            new_error_signature: policy,
            ..Config::default()
        })
        .unwrap();
        engine.ingest_deploy(&dep).unwrap();
        for (i, s) in samples.iter().enumerate() {
            engine.ingest_sample(s).unwrap();
            let t = s.timestamp.add_secs(1.0);
            if i % 3 == 0 {
                engine
                    .ingest_log(&log(
                        t,
                        LogLevel::Info,
                        &format!("GET /cart/{i} 200 in {} ms", 20 + i % 7),
                    ))
                    .unwrap();
            }
            if i >= 370 && i % 2 == 0 {
                engine
                    .ingest_log(&log(
                        t,
                        LogLevel::Error,
                        &format!(
                            "payment gateway timeout after {} ms for order {i:06x}",
                            2000 + i
                        ),
                    ))
                    .unwrap();
            }
        }
        engine.finish();
        engine.take_verdicts().remove(0)
    };
    let v = run_with(SignaturePolicy::Regression);
    assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
    assert!(v.reason.contains("payment gateway timeout"), "{}", v.reason);
    let s = &v.signatures[0];
    assert_eq!(s.change, SignatureChange::New);
    assert_eq!(v.detected_at, s.significant_at);
    assert!(v.detected_at.unwrap() > v.deployed_at);
    // Found while the watch ran, not at its end.
    assert_eq!(v.window.ended_by, WatchEnd::Detection);

    let w = run_with(SignaturePolicy::Warning);
    assert_eq!(w.verdict, VerdictKind::Healthy, "{}", w.reason);
    assert!(
        w.warnings
            .iter()
            .any(|m| m.contains("payment gateway timeout")),
        "{:?}",
        w.warnings
    );
}

#[test]
fn steady_logs_are_no_evidence() {
    use watchdog_core::LogLevel;
    let (samples, dep) = step_series(6, "p95_latency_ms", 200.0, 5.0, 0.0, 360, 180, 0);
    let mut engine = Engine::new(Config::default()).unwrap();
    engine.ingest_deploy(&dep).unwrap();
    for (i, s) in samples.iter().enumerate() {
        engine.ingest_sample(s).unwrap();
        if i % 4 == 0 {
            engine
                .ingest_log(&log(
                    s.timestamp,
                    LogLevel::Error,
                    &format!("cache miss for key user:{i}"),
                ))
                .unwrap();
        }
    }
    engine.finish();
    let v = engine.take_verdicts().remove(0);
    assert_eq!(v.verdict, VerdictKind::Healthy, "{}", v.reason);
    assert!(v.signatures.is_empty(), "{:?}", v.signatures);
}

/// A rise that happens every day at the same time (a rush hour) is not blamed on a deploy
/// that lands at its start; the same rise with a real regression on top still is.
#[test]
fn a_daily_pattern_is_not_a_regression() {
    // T0 is 12:00 UTC; the deploy lands at 08:00 that day, when the rush hour begins.
    let deploy_t = T0.add_secs(-4.0 * 3600.0);
    let build = |extra: f64| {
        let mut rng = watchdog_core::scenarios::Rng::new(11);
        let mut samples = Vec::new();
        // Two days and a bit at 5-minute intervals; every day from 08:00 to 10:00 the
        // value doubles.
        let start = deploy_t.add_secs(-2.0 * 86_400.0 - 4.0 * 3600.0);
        for i in 0..(2 * 288 + 78) {
            let t = start.add_secs(300.0 * i as f64);
            let clock = (t.millis() / 1000).rem_euclid(86_400) as f64 / 3600.0;
            let rush = (8.0..10.0).contains(&clock);
            let v = 100.0 * if rush { 2.0 } else { 1.0 }
                + 4.0 * rng.normal()
                + if t >= deploy_t && rush { extra } else { 0.0 };
            samples.push(sample(t, "svc", &[("travel_time_ms", v)]));
        }
        samples
    };
    let d = deploy(deploy_t, "v2", "svc");
    let quiet = build(0.0);
    let v = &run(Config::default(), &quiet, std::slice::from_ref(&d))[0];
    assert_ne!(v.verdict, VerdictKind::Regression, "{}", v.reason);
    assert!(
        v.warnings.iter().any(|w| w.contains("daily pattern")),
        "{:?}",
        v.warnings
    );
    let off = &run(
        Config {
            seasonal_period_secs: 0,
            ..Config::default()
        },
        &quiet,
        std::slice::from_ref(&d),
    )[0];
    assert_eq!(
        off.verdict,
        VerdictKind::Regression,
        "without the check the rush hour looks like a regression: {}",
        off.reason
    );
    let bad = build(120.0);
    let v = &run(Config::default(), &bad, &[d])[0];
    assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
}

/// A regression found 30 s after the deploy still reports the new error the release logs,
/// because the verdict gathers the log evidence of the grace after the detection.
#[test]
fn a_regression_carries_its_dominant_new_log_signature() {
    let data = scenarios::generate(
        "error_spike",
        &ScenarioParams {
            seed: 42,
            ..ScenarioParams::default()
        },
    )
    .unwrap();
    let (_, v) = scenarios::run(&data, &Config::default()).unwrap().remove(0);
    assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
    assert!(v.detected_at.unwrap().secs_since(v.deployed_at) <= 60.0);
    let s = v.signatures.first().expect("the new error signature");
    assert!(
        s.template.contains("payment gateway timeout"),
        "{}",
        s.template
    );
    assert_eq!(s.change, watchdog_core::SignatureChange::New);
    // The whole grace is counted, not only the lines up to the detection.
    assert!(
        s.count_after >= 10 && !s.example.is_empty(),
        "{}",
        s.count_after
    );
    // Without the grace the verdict is emitted at the detection, before the log burst.
    let cfg = Config {
        evidence_grace_secs: Some(0),
        ..Config::default()
    };
    let (_, quick) = scenarios::run(&data, &cfg).unwrap().remove(0);
    assert_eq!(quick.detected_at, v.detected_at);
}

/// The `i`-th of a known error's lines: one template, varying user and address.
fn login_failure(i: usize) -> String {
    let names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"];
    format!(
        "login failed for user {} from 10.0.0.{}",
        names[i % 7],
        i % 250
    )
}

/// A distinct five-letter word per `k`: each makes a template of its own.
fn flood_word(k: u64) -> String {
    (0..5)
        .map(|d| (b'a' + ((k / 26u64.pow(d)) % 26) as u8) as char)
        .collect()
}

/// Signatures are per service: a service that floods the miner with new templates
/// cannot evict another's, so that one keeps its id and its known error after the
/// deploy is not "new" (a false new-error regression).
#[test]
fn a_flooding_service_cannot_make_another_services_signature_new() {
    use watchdog_core::{LogEvent, LogLevel, SignatureChange};
    let (samples, dep) = step_series(7, "p95_latency_ms", 200.0, 5.0, 0.0, 360, 180, 0);
    let mut engine = Engine::new(Config::default()).unwrap();
    engine.ingest_deploy(&dep).unwrap();
    for (i, s) in samples.iter().enumerate() {
        engine.ingest_sample(s).unwrap();
        let t = s.timestamp.add_secs(1.0);
        if (i < 180 && i % 6 == 0) || (i >= 180 && i % 2 == 0) {
            engine
                .ingest_log(&log(t, LogLevel::Error, &login_failure(i)))
                .unwrap();
        }
        if i == 150 {
            // More new templates than one miner keeps (50,000 by default).
            for k in 0..60_000u64 {
                let word = flood_word(k);
                engine
                    .ingest_log(&LogEvent {
                        timestamp: t,
                        service: "noisy".into(),
                        environment: "production".into(),
                        level: LogLevel::Error,
                        message: format!("{word} exploded"),
                    })
                    .unwrap();
            }
        }
    }
    engine.finish();
    let v = engine.take_verdicts().remove(0);
    assert_ne!(v.verdict, VerdictKind::Regression, "{}", v.reason);
    assert!(
        v.signatures
            .iter()
            .all(|s| s.change != SignatureChange::New),
        "{:?}",
        v.signatures
    );
    let login = v
        .signatures
        .iter()
        .find(|s| s.template == "login failed for user <*> from <*>")
        .expect("the rising login failures are evidence");
    assert_eq!(login.change, SignatureChange::Surging);
    // The id of the template's first line, unchanged by the flood.
    let first = "\u{4}login failed for user alice from <*>";
    let id = first.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    assert_eq!(login.signature, format!("{id:016x}"));
}

/// Within one service too: when that service itself floods its miner, so that a known
/// template is evicted (and the log history no longer holds its lines either), the
/// template comes back after the deploy with its id and its first sighting: it is not
/// "new", and the deploy is not a new-error regression.
#[test]
fn an_evicted_template_is_not_new_when_it_comes_back() {
    use watchdog_core::{LogLevel, SignatureChange};
    let (samples, dep) = step_series(7, "p95_latency_ms", 200.0, 5.0, 0.0, 360, 180, 0);
    let mut engine = Engine::new(Config::default()).unwrap();
    engine.ingest_deploy(&dep).unwrap();
    for (i, s) in samples.iter().enumerate() {
        engine.ingest_sample(s).unwrap();
        let t = s.timestamp.add_secs(1.0);
        // A few login failures early in the baseline, then none until the deploy.
        if (i < 10 && i % 2 == 0) || (i >= 360 && i % 4 == 0) {
            engine
                .ingest_log(&log(t, LogLevel::Error, &login_failure(i)))
                .unwrap();
        }
        if i == 10 {
            // More new templates of the same service than its miner keeps (50,000 by
            // default), and more lines than its log history (20,000): only the miner
            // can still say that the login failures were seen before.
            for k in 0..60_000u64 {
                let word = flood_word(k);
                engine
                    .ingest_log(&log(t, LogLevel::Error, &format!("{word} exploded")))
                    .unwrap();
            }
        }
    }
    engine.finish();
    let v = engine.take_verdicts().remove(0);
    assert_ne!(v.verdict, VerdictKind::Regression, "{}", v.reason);
    assert!(
        v.signatures
            .iter()
            .all(|s| s.change != SignatureChange::New),
        "{:?}",
        v.signatures
    );
    // The id of the template's first line, not of the first line after the flood.
    let first = "\u{4}login failed for user alice from <*>";
    let id = first.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let login = v
        .signatures
        .iter()
        .find(|s| s.template.starts_with("login failed"))
        .expect("the login failures after the deploy are evidence");
    assert_eq!(login.change, SignatureChange::Surging);
    assert_eq!(login.signature, format!("{id:016x}"));
}

/// A monotonic counter (`*_total`) is tested as its rate: its ever-growing level is not a
/// regression, a process restart (the counter begins again at zero) is not one either, and
/// a drop in the rate after the deploy is.
#[test]
fn counters_are_judged_by_their_rate() {
    let build = |rate_after: f64, reset_at: Option<usize>| {
        let mut rng = watchdog_core::scenarios::Rng::new(3);
        let mut total = 5_000_000.0;
        let mut samples = Vec::new();
        for i in 0..540 {
            let t = T0.add_secs(10.0 * (i as f64 - 360.0));
            let rate = if i >= 360 { rate_after } else { 100.0 };
            total += (rate + 5.0 * rng.normal()).max(0.0) * 10.0;
            if reset_at == Some(i) {
                total = 40.0;
            }
            samples.push(sample(t, "svc", &[("http_requests_total", total)]));
        }
        samples
    };
    let d = deploy(T0, "v2", "svc");
    let steady = run(
        Config::default(),
        &build(100.0, Some(420)),
        std::slice::from_ref(&d),
    );
    assert_eq!(
        steady[0].verdict,
        VerdictKind::Healthy,
        "{}",
        steady[0].reason
    );
    let e = &steady[0].evidence[0];
    assert_eq!(e.metric, "http_requests_total");
    assert!(
        (e.baseline.median - 100.0).abs() < 5.0,
        "{}",
        e.baseline.median
    );
    let dropped = run(Config::default(), &build(40.0, None), &[d]);
    assert_eq!(
        dropped[0].verdict,
        VerdictKind::Regression,
        "{}",
        dropped[0].reason
    );
    assert!(
        dropped[0].reason.contains("http_requests_total"),
        "{}",
        dropped[0].reason
    );
}

/// A shift that begins long after the deploy (here 50 min, past the 30 min attribution
/// window) is reported, with its evidence, but not blamed on the deploy: inconclusive,
/// late change. The same shift right after the deploy is a regression.
#[test]
fn a_change_long_after_the_deploy_is_reported_but_not_blamed() {
    let cfg = || Config {
        monitoring_window_secs: 5400,
        ..Config::default()
    };
    for seed in 0..5 {
        // 10 s samples: the shift begins 300 samples (50 min) after the deploy
        let (late, dep) = step_series(seed, "p95_latency_ms", 200.0, 5.0, 60.0, 360, 540, 300);
        let v = &run(cfg(), &late, std::slice::from_ref(&dep))[0];
        assert_eq!(
            v.verdict,
            VerdictKind::Inconclusive,
            "seed {seed}: {}",
            v.reason
        );
        assert_eq!(
            v.inconclusive_cause,
            Some(InconclusiveCause::LateChange),
            "{}",
            v.reason
        );
        let e = &v.evidence[0];
        assert_eq!(e.status, watchdog_core::MetricStatus::LateChange);
        let began = e
            .change_started_at
            .expect("start of the change")
            .secs_since(v.deployed_at);
        assert!(began > 1800.0, "change began {began} s after the deploy");
        assert!(v.reason.contains("after the deploy"), "{}", v.reason);

        let (early, dep) = step_series(seed, "p95_latency_ms", 200.0, 5.0, 60.0, 360, 540, 3);
        let v = &run(cfg(), &early, &[dep])[0];
        assert_eq!(
            v.verdict,
            VerdictKind::Regression,
            "seed {seed}: {}",
            v.reason
        );
    }
}

/// A series that went quiet around the deploy: its first samples after the gap are the
/// earliest evidence there is, so a shift they show is the deploy's, however long the
/// gap; the same shift after as many normal samples as the attribution window holds is a
/// late change.
#[test]
fn a_shift_seen_first_after_a_gap_in_the_data_is_the_deploys() {
    let cfg = || Config {
        monitoring_window_secs: 4 * 3600,
        ..Config::default()
    };
    for seed in 0..5 {
        let mut rng = watchdog_core::scenarios::Rng::new(seed);
        // One sample a minute for an hour, the deploy, nothing for two hours, then the
        // service at a level 10 σ higher.
        let mut gap = Vec::new();
        for i in 0..60 {
            let t = T0.add_secs(60.0 * (i as f64 - 60.0));
            gap.push(sample(
                t,
                "svc",
                &[("p95_latency_ms", 200.0 + 5.0 * rng.normal())],
            ));
        }
        for i in 0..20 {
            let t = T0.add_secs(7200.0 + 60.0 * i as f64);
            gap.push(sample(
                t,
                "svc",
                &[("p95_latency_ms", 250.0 + 5.0 * rng.normal())],
            ));
        }
        let v = &run(cfg(), &gap, &[deploy(T0, "v2", "svc")])[0];
        assert_eq!(
            v.verdict,
            VerdictKind::Regression,
            "seed {seed}: {}",
            v.reason
        );
        // With the samples there, the same shift two hours on is late.
        let mut steady = gap[..60].to_vec();
        for i in 0..140 {
            let t = T0.add_secs(60.0 * i as f64);
            let level = if i >= 120 { 250.0 } else { 200.0 };
            steady.push(sample(
                t,
                "svc",
                &[("p95_latency_ms", level + 5.0 * rng.normal())],
            ));
        }
        let v = &run(cfg(), &steady, &[deploy(T0, "v2", "svc")])[0];
        assert_eq!(
            v.inconclusive_cause,
            Some(InconclusiveCause::LateChange),
            "seed {seed}: {}",
            v.reason
        );
    }
}

/// An hourly metric has its 60 baseline samples only two and a half days back: it is
/// judged (not `short_baseline`), and a level twice its usual one after the deploy is a
/// regression.
#[test]
fn an_hourly_metric_gets_a_baseline_of_days() {
    let mut rng = watchdog_core::scenarios::Rng::new(3);
    let mut s = Vec::new();
    for i in 0..72 {
        let t = T0.add_secs(3600.0 * (i as f64 - 60.0));
        let level = if i >= 60 { 2.0 } else { 1.0 };
        s.push(sample(
            t,
            "svc",
            &[("queue_depth", level + 0.05 * rng.normal())],
        ));
    }
    let cfg = Config {
        monitoring_window_secs: 12 * 3600,
        ..Config::default()
    };
    let v = &run(cfg, &s, &[deploy(T0, "v2", "svc")])[0];
    assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
    assert!(
        v.evidence[0].baseline.n > 24,
        "{:?}",
        v.evidence[0].baseline
    );
}

/// A coarse metric (a p90 that takes a few values, as small services report it) ties at
/// its upper quartile; two huge samples right after the deploy still decide, even when
/// the baseline had one spike of its own.
#[test]
fn extreme_samples_on_a_coarse_metric_are_a_regression() {
    let mut rng = watchdog_core::scenarios::Rng::new(7);
    let mut s = Vec::new();
    for i in 0..90 {
        let t = T0.add_secs(60.0 * (i as f64 - 60.0));
        let v = match i {
            20 => 400.0,
            61 => 460.0,
            62 => 900.0,
            _ => [22.0, 22.75, 22.75, 23.5][(rng.uniform() * 4.0) as usize % 4],
        };
        s.push(sample(t, "svc", &[("p90_latency_ms", v)]));
    }
    let dep = deploy(T0, "v2", "svc");
    let v = &run(Config::default(), &s, &[dep])[0];
    assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
    assert_eq!(v.evidence[0].test, watchdog_core::TestKind::TailExceedance);
}

/// A shift that began a few samples before the deploy leaves too little of it to re-base
/// on; samples far beyond everything before, the shift included, are still the deploy's.
#[test]
fn extreme_samples_after_a_short_pre_existing_shift_are_a_regression() {
    for seed in 0..5 {
        let (mut s, dep) = step_series(seed, "p95_latency_ms", 200.0, 5.0, 0.0, 360, 180, 0);
        // from 11 min before the deploy (one minute before the 10 min tolerance) the
        // latency sits 40 ms higher …
        for x in s.iter_mut().take(360).skip(294) {
            x.metrics[0].1 += 40.0;
        }
        // … and right after it two samples are far beyond anything before
        for k in [360, 361] {
            s[k].metrics[0].1 = 2000.0;
        }
        for x in s.iter_mut().skip(362) {
            x.metrics[0].1 += 40.0;
        }
        let v = &run(Config::default(), &s, std::slice::from_ref(&dep))[0];
        assert_eq!(
            v.verdict,
            VerdictKind::Regression,
            "seed {seed}: {}",
            v.reason
        );
        assert_eq!(v.evidence[0].test, watchdog_core::TestKind::TailExceedance);
    }
}

/// A baseline that wanders like a random walk cannot tell the smallest material change
/// from its own drift: inconclusive, saying so (not "low traffic"), with what would help.
#[test]
fn a_wandering_baseline_is_inconclusive_as_unsteady() {
    let mut rng = watchdog_core::scenarios::Rng::new(11);
    let mut x = 0.0;
    let samples: Vec<_> = (0..540)
        .map(|i| {
            x = 0.995 * x + rng.normal();
            let t = T0.add_secs(10.0 * (i as f64 - 360.0));
            sample(t, "svc", &[("queue_depth", 1000.0 + 20.0 * x)])
        })
        .collect();
    let v = &run(Config::default(), &samples, &[deploy(T0, "v2", "svc")])[0];
    assert_eq!(v.verdict, VerdictKind::Inconclusive, "{}", v.reason);
    assert_eq!(
        v.inconclusive_cause,
        Some(InconclusiveCause::UnsteadyBaseline),
        "{}",
        v.reason
    );
    assert!(v.reason.contains("wanders"), "{}", v.reason);
    assert!(
        v.needed.as_deref().unwrap_or("").contains("steadier"),
        "{:?}",
        v.needed
    );
}

/// Ten samples a second, an hour of baseline and a deploy after which the error rate goes
/// from 1 % to 5 % and p95 latency rises by 30 %. Kept raw, the bounded history would
/// hold the last few minutes only: the baseline shrank to under two minutes and the
/// evidence came from three samples. Pooled into bins, the baseline spans the hour, the
/// rise is found at once, and it is named as a rise.
#[test]
fn a_dense_series_is_judged_on_its_whole_baseline() {
    let build = |with_errors: bool| {
        let mut rng = watchdog_core::scenarios::Rng::new(11);
        let mut samples = Vec::new();
        for i in 0..(10 * 4_200) {
            let secs = i as f64 / 10.0 - 3_600.0;
            let after = secs >= 0.0;
            let p95 = 100.0 * if after { 1.3 } else { 1.0 } + 10.0 * rng.normal();
            let rate = (if after { 0.05 } else { 0.01 } + 0.01 * rng.normal()).max(0.0);
            let mut m = vec![("p95_latency_ms", p95)];
            if with_errors {
                m.push(("error_rate", rate));
            }
            samples.push(sample(T0.add_secs(secs), "svc", &m));
        }
        samples
    };
    let d = deploy(T0, "v2", "svc");
    for with_errors in [false, true] {
        let v = run(
            Config::default(),
            &build(with_errors),
            std::slice::from_ref(&d),
        );
        assert_eq!(v[0].verdict, VerdictKind::Regression, "{}", v[0].reason);
        assert!(v[0].reason.contains("rose"), "{}", v[0].reason);
        let w = &v[0].window;
        let from = w.baseline_from.expect("a baseline");
        // The baseline reaches back most of the hour (its newest 1,024 bins of 2.9 s).
        let reach = (d.timestamp.millis() - from.millis()) as f64 / 1000.0;
        assert!(reach > 2_400.0, "baseline reaches back {reach} s");
        let delay = (v[0].detected_at.expect("detected").millis() - d.timestamp.millis()) as f64;
        assert!(delay <= 10_000.0, "detected {delay} ms after the deploy");
        let e = v[0]
            .evidence
            .iter()
            .find(|e| e.status == watchdog_core::MetricStatus::Regressed)
            .expect("regressed evidence");
        assert!(e.baseline.n >= 1000, "{}", e.baseline.n);
        // Both metrics moved: the one the watch stopped before judging is "not judged",
        // not "ok", in the evidence and in the explanation.
        assert!(
            v[0].evidence
                .iter()
                .all(|e| e.status != watchdog_core::MetricStatus::Ok),
            "{:?}",
            v[0].evidence.iter().map(|e| e.status).collect::<Vec<_>>()
        );
        if with_errors {
            let text = watchdog_core::explain::explain(&v[0]).details.join("\n");
            assert!(text.contains("not judged"), "{text}");
        }
    }
}

/// Counts pooled into a bin are summed, so the count test weighs every request: twenty
/// samples a second of 50 requests each, 1 % failing before the deploy and 3 % after.
#[test]
fn pooled_error_counts_keep_every_request() {
    let mut rng = watchdog_core::scenarios::Rng::new(5);
    let mut samples = Vec::new();
    for i in 0..(20 * 4_000) {
        let secs = i as f64 / 20.0 - 3_600.0;
        let p = if secs >= 0.0 { 0.03 } else { 0.01 };
        let errors = (0..50).filter(|_| rng.uniform() < p).count() as f64;
        samples.push(sample(
            T0.add_secs(secs),
            "svc",
            &[("requests", 50.0), ("errors", errors)],
        ));
    }
    let d = deploy(T0, "v2", "svc");
    let v = run(Config::default(), &samples, std::slice::from_ref(&d));
    assert_eq!(v[0].verdict, VerdictKind::Regression, "{}", v[0].reason);
    let e = &v[0].evidence[0];
    let counts = e.counts.as_ref().expect("count evidence");
    // One hour of baseline at 1,000 requests a second, less what the bins leave out.
    assert!(
        counts.baseline_requests > 0.8 * 1024.0 * 2.9 * 1000.0,
        "{:?}",
        counts
    );
}

/// A sticky series (lag-1 autocorrelation 0.9, as queue lengths and travel times are):
/// one that jumps far above anything its baseline did is a regression, found by the
/// level test; the same series without the jump stays unaccused over many seeds.
#[test]
fn a_sticky_series_that_jumps_far_is_a_regression_and_one_that_wanders_is_not() {
    let build = |seed: u64, jump: f64| {
        let mut rng = watchdog_core::scenarios::Rng::new(seed);
        let mut x = 0.0;
        let mut samples = Vec::new();
        for i in 0..150 {
            // AR(1) with marginal spread 10
            x = 0.9 * x + 10.0 * (1.0f64 - 0.81).sqrt() * rng.normal();
            let t = T0.add_secs(60.0 * (i as f64 - 120.0));
            let v = 100.0 + x + if i >= 120 { jump } else { 0.0 };
            samples.push(sample(t, "svc", &[("queue_depth", v)]));
        }
        samples
    };
    let d = deploy(T0, "v2", "svc");
    let cfg = Config::default();
    let jumped = run(cfg.clone(), &build(7, 40.0), std::slice::from_ref(&d));
    assert_eq!(
        jumped[0].verdict,
        VerdictKind::Regression,
        "{}",
        jumped[0].reason
    );
    // Four marginal spreads: the extreme test or the level test, whichever sees it first.
    assert!(matches!(
        jumped[0].evidence[0].test,
        watchdog_core::TestKind::LevelShift | watchdog_core::TestKind::TailExceedance
    ));
    let accused = (0..40)
        .filter(|&seed| {
            run(
                cfg.clone(),
                &build(100 + seed, 0.0),
                std::slice::from_ref(&d),
            )[0]
            .verdict
                == VerdictKind::Regression
        })
        .count();
    assert!(
        accused <= 1,
        "{accused} of 40 healthy sticky deploys accused"
    );
}

/// Hourly samples stamped at the start of their hour, a deploy half-way through one: the
/// sample stamped before the deploy already holds the new version's first half hour. It is
/// the deploy's (the tolerance is never less than one sample interval), not a baseline
/// value that would make the deploy's own effect look normal.
#[test]
fn the_sample_whose_interval_holds_the_deploy_is_not_baseline() {
    for seed in 0..10 {
        let mut rng = watchdog_core::scenarios::Rng::new(seed);
        let mut s = Vec::new();
        for i in 0..90i32 {
            // The last baseline sample is 30 minutes before the deploy.
            let t = T0.add_secs(3600.0 * f64::from(i - 60) + 1800.0);
            // It is the highest: the samples after the deploy, though far above the
            // baseline, stay below it.
            let v = match i {
                59 => 400.0,
                60..=62 => 250.0 + 10.0 * rng.normal(),
                _ => 100.0 + 5.0 * rng.normal(),
            };
            s.push(sample(t, "svc", &[("p95_latency_ms", v)]));
        }
        let v = &run(Config::default(), &s, &[deploy(T0, "v2", "svc")])[0];
        assert_eq!(
            v.verdict,
            VerdictKind::Regression,
            "seed {seed}: {}",
            v.reason
        );
        let e = &v.evidence[0];
        assert!(
            (e.baseline.mean - 100.0).abs() < 5.0,
            "seed {seed}: the baseline holds the deploy's sample: {:?}",
            e.baseline
        );
        assert!(
            e.change_started_at.unwrap() < T0,
            "seed {seed}: the change began with the sample before the deploy: {:?}",
            v.evidence[0]
        );
    }
}

/// A level reached at the recorded deploy is measured from there, not only from the start
/// of the deploy tolerance, whose samples are still at the old level and hold its median
/// back: the change is found by the third sample after the deploy.
#[test]
fn a_level_reached_at_the_deploy_is_not_diluted_by_the_tolerance() {
    for seed in 0..10 {
        let mut rng = watchdog_core::scenarios::Rng::new(seed);
        let mut s = Vec::new();
        // Five-minute samples, the deploy half-way between two of them; the default
        // tolerance of 600 s holds two. After the deploy: 114, 101, 114, 114, 114. From the
        // start of the tolerance the median of the first five is 101; from the deploy, the
        // median of the first three is 114.
        let at = |i: i32| T0.add_secs(300.0 * f64::from(i - 60) + 150.0);
        for i in 0..80i32 {
            let v = match i {
                61 => 101.0,
                60..=64 => 114.0,
                _ => 100.0 + 3.0 * rng.normal(),
            };
            s.push(sample(at(i), "svc", &[("p95_latency_ms", v)]));
        }
        let v = &run(Config::default(), &s, &[deploy(T0, "v2", "svc")])[0];
        assert_eq!(
            v.verdict,
            VerdictKind::Regression,
            "seed {seed}: {}",
            v.reason
        );
        let e = &v.evidence[0];
        assert!(
            e.detected_at.unwrap() <= at(62),
            "seed {seed}: {:?} {:?}",
            e.test,
            e.detected_at
        );
    }
}

/// The level test keeps its false-alarm rate on sticky noise: the lag-1 autocorrelation of
/// a 60-sample baseline comes out low (ρ = 0.9 is often read as 0.6–0.8) and its spread
/// short of the process's. With the plain estimates the level test alone accused 15 of
/// these 200 healthy deploys; corrected, 5. That is still above its share of the budget
/// (a sixth of 1 % for a metric watched both ways): what is left to calibrate.
#[test]
fn the_level_test_holds_its_false_alarm_rate_on_sticky_noise() {
    let d = deploy(T0, "v2", "svc");
    let mut by_level = 0;
    for seed in 0..200u64 {
        let mut rng = watchdog_core::scenarios::Rng::new(5000 + seed);
        let mut x = 0.0;
        let samples: Vec<_> = (0..150)
            .map(|i| {
                x = 0.9 * x + 10.0 * (1.0f64 - 0.81).sqrt() * rng.normal();
                let t = T0.add_secs(60.0 * (f64::from(i) - 120.0));
                sample(t, "svc", &[("queue_depth", 100.0 + x)])
            })
            .collect();
        let v = &run(Config::default(), &samples, std::slice::from_ref(&d))[0];
        if v.verdict == VerdictKind::Regression
            && v.evidence
                .iter()
                .any(|e| e.detected_at.is_some() && e.test == watchdog_core::TestKind::LevelShift)
        {
            by_level += 1;
        }
    }
    assert!(by_level <= 7, "the level test accused {by_level} of 200");
}

#[test]
fn a_fall_that_stops_before_the_deploy_is_not_a_rise_and_a_real_rise_is() {
    // A queue drains by two units a minute through the hour before the deploy and stops
    // draining ten minutes before it (at the start of the default deploy tolerance).
    // Against the extrapolated line the flat queue looks like a rise; against where it
    // stood it is nothing. A real rise after the deploy is still one.
    let d = deploy(T0, "v2", "svc");
    let noise = |i: i32| f64::from((i * 37).rem_euclid(11) - 5) * 0.3;
    let series = |after: f64| -> Vec<watchdog_core::Sample> {
        (0..90)
            .map(|i| {
                let t = T0.add_secs(60.0 * (f64::from(i) - 60.0));
                let v = if i < 60 {
                    220.0 - 2.0 * f64::from(i.min(50))
                } else {
                    after
                };
                sample(t, "svc", &[("queue_depth", v + noise(i))])
            })
            .collect()
    };
    let stopped = &run(Config::default(), &series(120.0), std::slice::from_ref(&d))[0];
    assert_ne!(
        stopped.verdict,
        VerdictKind::Regression,
        "{}",
        stopped.reason
    );
    let rose = &run(Config::default(), &series(160.0), std::slice::from_ref(&d))[0];
    assert_eq!(rose.verdict, VerdictKind::Regression, "{}", rose.reason);
}
