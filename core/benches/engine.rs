//! Engine throughput on one core: samples per second through `ingest_sample` (named
//! metrics, the replay and HTTP path) and through `ingest_values` (pre-resolved keys),
//! for 100 services reporting three metrics every 10 s, with and without active watches.
//!
//! `cargo bench -p watchdog-core --bench engine`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use watchdog_core::scenarios::Rng;
use watchdog_core::{Config, Deploy, Engine, MetricKey, Sample, SeriesKey, Timestamp};

/// One pre-resolved sample: series, time, three metric values.
type Row = (SeriesKey, Timestamp, [(MetricKey, f64); 3]);

const SERVICES: usize = 100;
const STEPS: usize = 1_000;
const T0: Timestamp = Timestamp(1_774_872_000_000);

fn samples() -> Vec<Sample> {
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
fn warmed(samples: &[Sample], deploys: bool) -> Engine {
    let mut e = Engine::new(Config::default()).unwrap();
    for s in &samples[..SERVICES * 360] {
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

fn bench(c: &mut Criterion) {
    let all = samples();
    let rest = &all[SERVICES * 360..];
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.throughput(Throughput::Elements(rest.len() as u64));
    for deploys in [false, true] {
        let label = if deploys { "watching" } else { "idle" };
        g.bench_function(format!("ingest_sample/{label}"), |b| {
            b.iter_batched(
                || warmed(&all, deploys),
                |mut e| {
                    for s in rest {
                        e.ingest_sample(black_box(s)).unwrap();
                    }
                    e
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("ingest_values/{label}"), |b| {
            b.iter_batched(
                || {
                    let mut e = warmed(&all, deploys);
                    let keys: Vec<SeriesKey> = (0..SERVICES)
                        .map(|s| e.series_key(&format!("svc-{s}"), "production"))
                        .collect();
                    let metrics: Vec<MetricKey> = ["error_rate", "p95_latency_ms", "request_rate"]
                        .iter()
                        .map(|m| e.metric_key(m))
                        .collect();
                    let rows: Vec<Row> = rest
                        .iter()
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
                        .collect();
                    (e, rows)
                },
                |(mut e, rows)| {
                    for (k, t, v) in &rows {
                        e.ingest_values(*k, *t, black_box(v)).unwrap();
                    }
                    e
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
