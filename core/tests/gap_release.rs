//! A hole in the data after a deploy holds a detection back only until every sample
//! missing from it would be late anyway, not until the watermark passes the detection
//! (issue 12, finding 11: a few seconds missing after the deploy held the alert back by
//! the whole allowed lateness).

mod common;

use common::*;
use watchdog_core::{Config, Engine, VerdictKind};

#[test]
fn a_few_seconds_missing_after_the_deploy_do_not_hold_the_alert_back_by_the_lateness() {
    let config = Config::default();
    let lateness_ms = config.allowed_lateness_secs as i64 * 1000;
    let mut engine = Engine::new(config).unwrap();
    let deploy_at = T0.add_secs(3600.0);
    engine
        .ingest_deploy(&deploy(deploy_at, "v2", "svc"))
        .unwrap();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut released = None;
    // An hour of baseline every 10 s, then the new release: the samples at +10 s and
    // +20 s never come (a scrape failed), and from +3 min the error rate is 1 % → 20 %.
    for i in 0..(360 + 60) {
        let t = T0.add_secs(i as f64 * 10.0);
        let after = t.secs_since(deploy_at);
        if after == 10.0 || after == 20.0 {
            continue;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let u = (x % 1000) as f64 / 1000.0 - 0.5;
        let error_rate = if after >= 180.0 { 0.20 } else { 0.01 } + u * 0.004;
        engine
            .ingest_sample(&sample(
                t,
                "svc",
                &[
                    ("error_rate", error_rate),
                    ("p95_latency_ms", 120.0 + u * 10.0),
                    ("request_rate", 400.0 + u * 20.0),
                ],
            ))
            .unwrap();
        if let Some(v) = engine.take_verdicts().pop() {
            released = Some((t, v));
            break;
        }
    }
    let (released_at, v) = released.expect("a verdict before the window ends");
    assert_eq!(v.verdict, VerdictKind::Regression, "{}", v.reason);
    let detected = v.detected_at.expect("a regression has a detection time");
    assert!(detected.secs_since(deploy_at) >= 170.0, "{}", v.reason);
    // The hole ended at +30 s; 120 s of lateness later every sample missing from it is
    // late. The detection, well after that, is final when it happens.
    assert!(
        released_at.millis() - detected.millis() < lateness_ms,
        "detected at {detected}, released only when event time reached {released_at} \
         (the allowed lateness is {} s)",
        lateness_ms / 1000
    );
}
