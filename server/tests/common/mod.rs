//! Helpers shared by the server tests: data generators, loopback receivers, servers
//! in process and as processes, a real Prometheus.
#![allow(dead_code)]

pub mod app;
pub mod cli;
pub mod deploys;
pub mod loopback;
pub mod prometheus;
pub mod scenario;

use std::fmt::Write;

#[allow(unused_imports)]
pub use loopback::{BodyReceiver, Received, Receiver};

/// 2026-03-30T18:00:00Z in seconds.
pub const T0: i64 = 1_774_893_600;

/// `n` samples every `step_secs` from `start_secs`, error rate around `error_rate`
/// (deterministic noise), latency and traffic steady.
pub fn metrics_ndjson(
    service: &str,
    env: &str,
    start_secs: i64,
    n: usize,
    step_secs: i64,
    error_rate: f64,
) -> String {
    let mut out = String::new();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ start_secs as u64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let u = (x % 1000) as f64 / 1000.0 - 0.5;
        let ts = watchdog_core::Timestamp::from_secs(start_secs + i as i64 * step_secs);
        let _ = writeln!(
            out,
            "{{\"timestamp\":\"{ts}\",\"service\":\"{service}\",\"environment\":\"{env}\",\"error_rate\":{:.5},\"p95_latency_ms\":{:.1},\"request_rate\":{:.0}}}",
            (error_rate * (1.0 + 0.2 * u)).max(0.0),
            190.0 + 10.0 * u,
            1200.0 + 40.0 * u
        );
    }
    out
}

/// A regression verdict as the API writes it: checkout v1.4.2 in production, the error
/// rate up from 0.5 % to 6.2 % (CUSUM), no log signatures. Tests add what they need
/// before reading it as a `DeployVerdict`.
pub fn regression_verdict_json() -> serde_json::Value {
    serde_json::json!({
        "deploy_id": "v1.4.2", "service": "checkout", "environment": "production",
        "deployed_at": "2026-03-30T19:30:00Z", "verdict": "regression",
        "detected_at": "2026-03-30T19:33:00Z", "reason": "error_rate rose",
        "inconclusive_cause": null, "needed": null,
        "window": {"baseline_from": "2026-03-30T18:30:00Z", "baseline_samples": 60,
                   "watched_until": "2026-03-30T19:33:00Z", "watched_secs": 180.0,
                   "samples_after": 6, "ended_by": "detection"},
        "evidence": [{
            "metric": "error_rate", "direction": "up", "status": "regressed", "test": "cusum",
            "baseline": {"n": 60, "median": 0.005, "mean": 0.005, "spread": 0.002},
            "observed": {"n": 6, "median": 0.062, "mean": 0.062, "spread": 0.004},
            "effect_absolute": 0.057, "effect_relative": 11.4, "effect_sigmas": 28.5,
            "min_effect": 0.005, "change_started_at": "2026-03-30T19:31:00Z",
            "detected_at": "2026-03-30T19:33:00Z", "statistic": 48.2, "threshold": 5.3,
            "autocorrelation": 0.1, "counts": null, "note": null
        }],
        "signatures": [], "warnings": [], "false_alarm_rate": 0.01
    })
}
