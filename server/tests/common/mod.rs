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
