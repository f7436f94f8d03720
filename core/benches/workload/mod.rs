//! The engine bench's workload, shared by `benches/engine.rs` (timed by criterion) and
//! `examples/engine_watching.rs` (run once under callgrind): 100 services reporting three
//! metrics every 10 s, an hour of warm-up history, then 640 more steps.

use watchdog_core::scenarios::Rng;
use watchdog_core::{Config, Deploy, Engine, MetricKey, Sample, SeriesKey, Timestamp};

/// One pre-resolved sample: series, time, three metric values.
pub type Row = (SeriesKey, Timestamp, [(MetricKey, f64); 3]);

pub const SERVICES: usize = 100;
const STEPS: usize = 1_000;
/// Steps of warm-up history (an hour) before the deploys.
pub const WARM_STEPS: usize = 360;
const T0: Timestamp = Timestamp(1_774_872_000_000);

/// Every sample of the workload, in time order.
pub fn samples() -> Vec<Sample> {
    let mut rng = Rng::new(1);
    let mut out = Vec::with_capacity(SERVICES * STEPS);
    for step in 0..STEPS {
        for s in 0..SERVICES {
            out.push(Sample {
                version: None,
                timestamp: T0.add_secs(10.0 * step as f64),
                service: format!("svc-{s}"),
                environment: "production".into(),
                metrics: vec![
                    ("error_rate".into(), 0.01 + 0.002 * rng.normal()),
                    ("p95_latency_ms".into(), 200.0 + 8.0 * rng.normal()),
                    ("request_rate".into(), 1000.0 + 30.0 * rng.normal()),
                ],
            });
        }
    }
    out
}

/// An engine warmed with an hour of history, optionally with a deploy on every service.
pub fn warmed(samples: &[Sample], deploys: bool) -> Engine {
    let mut e = Engine::new(Config::default()).unwrap();
    for s in &samples[..SERVICES * WARM_STEPS] {
        e.ingest_sample(s).unwrap();
    }
    if deploys {
        for s in 0..SERVICES {
            e.ingest_deploy(&Deploy {
                timestamp: T0.add_secs(3600.0),
                deploy_id: format!("v{s}"),
                service: format!("svc-{s}"),
                environment: "production".into(),
            })
            .unwrap();
        }
    }
    e
}

/// `rest` as pre-resolved rows of `e`'s keys, for `ingest_values`.
pub fn rows(e: &mut Engine, rest: &[Sample]) -> Vec<Row> {
    let keys: Vec<SeriesKey> = (0..SERVICES)
        .map(|s| e.series_key(&format!("svc-{s}"), "production"))
        .collect();
    let metrics: Vec<MetricKey> = ["error_rate", "p95_latency_ms", "request_rate"]
        .iter()
        .map(|m| e.metric_key(m))
        .collect();
    rest.iter()
        .enumerate()
        .map(|(i, s)| {
            (
                keys[i % SERVICES],
                s.timestamp,
                [
                    (metrics[0], s.metrics[0].1),
                    (metrics[1], s.metrics[1].1),
                    (metrics[2], s.metrics[2].1),
                ],
            )
        })
        .collect()
}
