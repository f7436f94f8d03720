//! With per-series watermarks, verdicts do not depend on how series interleave on
//! arrival (issue 12, finding 6): one client sending its whole day before another sends
//! anything gets the verdicts a replay of the sorted records gives.

mod common;

use common::*;
use watchdog_core::{Config, Deploy, DeployVerdict, Engine, Sample, VerdictKind};

const LAG_SECS: u64 = 3600 + 600 + 120;

fn config() -> Config {
    Config {
        monitoring_window_secs: 600,
        ..Config::default()
    }
}

/// Two hours every 10 s of one service; the deploy after the first hour; from then on
/// the error rate is `after`.
fn service(name: &str, seed: u64, after: f64) -> (Vec<Sample>, Deploy) {
    let deploy_at = T0.add_secs(3600.0);
    let mut x = 0x2545_F491_4F6C_DD1D ^ seed;
    let samples = (0..720)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x % 1000) as f64 / 1000.0 - 0.5;
            let t = T0.add_secs(i as f64 * 10.0);
            let e = if t >= deploy_at { after } else { 0.01 };
            sample(
                t,
                name,
                &[
                    ("error_rate", e + u * 0.004),
                    ("p95_latency_ms", 120.0 + u * 10.0),
                    ("request_rate", 400.0 + u * 20.0),
                ],
            )
        })
        .collect();
    (samples, deploy(deploy_at, &format!("{name}-v2"), name))
}

/// Feeds each service's records in its own time order, the services one after the other
/// (`a` entirely, then `b`): the deploy goes in when its service's data reaches it.
fn one_after_the_other(engine: &mut Engine, services: &[&(Vec<Sample>, Deploy)]) {
    for (samples, d) in services {
        let mut deployed = false;
        for s in samples {
            if !deployed && s.timestamp >= d.timestamp {
                engine.ingest_deploy(d).unwrap();
                deployed = true;
            }
            engine.ingest_sample(s).unwrap();
        }
    }
}

fn by_id(mut v: Vec<DeployVerdict>) -> Vec<DeployVerdict> {
    v.sort_by(|a, b| a.deploy_id.cmp(&b.deploy_id));
    v
}

#[test]
fn a_service_sent_after_another_gets_the_verdict_a_replay_gives() {
    let a = service("a", 1, 0.01);
    let b = service("b", 2, 0.20);
    let mut all: Vec<Sample> = a.0.iter().chain(&b.0).cloned().collect();
    all.sort_by_key(|s| s.timestamp);
    let sorted = by_id(run(config(), &all, &[a.1.clone(), b.1.clone()]));
    assert_eq!(
        sorted[0].verdict,
        VerdictKind::Healthy,
        "{}",
        sorted[0].reason
    );
    assert_eq!(
        sorted[1].verdict,
        VerdictKind::Regression,
        "{}",
        sorted[1].reason
    );

    for order in [[&a, &b], [&b, &a]] {
        let mut engine = Engine::new(config()).unwrap();
        engine.set_series_watermarks(Some(LAG_SECS));
        one_after_the_other(&mut engine, &order);
        // Both verdicts are out before the end of the data: each series' own time ended
        // its watch.
        let live = by_id(engine.take_verdicts());
        assert_eq!(live.len(), 2, "{live:?}");
        for (l, r) in live.iter().zip(&sorted) {
            assert_eq!(
                l.verdict, r.verdict,
                "{}: {} vs {}",
                l.deploy_id, l.reason, r.reason
            );
            assert_eq!(l.detected_at, r.detected_at, "{}", l.deploy_id);
            assert_eq!(l.reason, r.reason, "{}", l.deploy_id);
        }
        assert_eq!(engine.stats().late_samples, 0);
    }
}

#[test]
fn without_them_the_second_service_is_judged_before_its_data_arrives() {
    // What per-series watermarks fix: with the common watermark, b's window has ended by
    // the time b's first sample arrives.
    let a = service("a", 1, 0.01);
    let b = service("b", 2, 0.20);
    let mut engine = Engine::new(config()).unwrap();
    one_after_the_other(&mut engine, &[&a, &b]);
    engine.finish();
    let v = by_id(engine.take_verdicts());
    assert_ne!(v[1].verdict, VerdictKind::Regression, "{}", v[1].reason);
}

#[test]
fn a_series_that_goes_silent_is_judged_by_the_common_time_after_the_lag() {
    let a = service("a", 1, 0.01);
    let (b_samples, b_deploy) = service("b", 2, 0.01);
    let mut engine = Engine::new(config()).unwrap();
    engine.set_series_watermarks(Some(LAG_SECS));
    // b stops ten seconds after its deploy; a goes on.
    let b_until = b_deploy.timestamp.add_secs(10.0);
    let b_part: Vec<Sample> = b_samples
        .into_iter()
        .filter(|s| s.timestamp <= b_until)
        .collect();
    one_after_the_other(&mut engine, &[&(b_part, b_deploy.clone())]);
    assert!(engine.take_verdicts().is_empty());
    // a's data runs 1 h past b's window end, less than the lag: b still waits.
    one_after_the_other(&mut engine, &[&a]);
    let v = engine.take_verdicts();
    assert!(v.iter().all(|v| v.deploy_id != "b-v2"), "{v:?}");
    // Later common event time, past b's window end by the lag: b is judged.
    let later = b_deploy.timestamp.add_secs((600 + LAG_SECS + 120) as f64);
    engine
        .ingest_sample(&sample(later, "a", &[("error_rate", 0.01)]))
        .unwrap();
    let v = engine.take_verdicts();
    assert!(v.iter().any(|v| v.deploy_id == "b-v2"), "{v:?}");
}

#[test]
fn late_samples_after_a_verdict_are_reported_per_verdict() {
    let (samples, d) = service("a", 1, 0.01);
    let mut engine = Engine::new(config()).unwrap();
    engine.set_series_watermarks(Some(LAG_SECS));
    // Every sample but one of the window, then that one, after the verdict.
    let missing = d.timestamp.add_secs(300.0);
    let rest: Vec<Sample> = samples
        .iter()
        .filter(|s| s.timestamp != missing)
        .cloned()
        .collect();
    one_after_the_other(&mut engine, &[&(rest, d.clone())]);
    assert_eq!(engine.take_verdicts().len(), 1);
    assert!(engine.take_late_after_verdict().is_empty());
    let late = samples.iter().find(|s| s.timestamp == missing).unwrap();
    engine.ingest_sample(late).unwrap();
    let l = engine.take_late_after_verdict();
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!((l[0].deploy.deploy_id.as_str(), l[0].samples), ("a-v2", 1));
    assert_eq!(engine.stats().late_after_verdict, 1);
}
