//! The engine bench's workload (`benches/engine.rs`) run once, for instruction counts:
//! 100 services × 3 metrics every 10 s, warmed with an hour of history, then 640 steps
//! through `ingest_sample` or `ingest_values`, with a deploy on every service or none.
//!
//! ```sh
//! cargo build --release -p watchdog-core --example engine_watching
//! valgrind --tool=callgrind --toggle-collect='engine_watching::run_*' \
//!     target/release/examples/engine_watching values watching
//! ```
//!
//! Only `run_sample` and `run_values` (the part the bench times) are counted with
//! `--toggle-collect`; the verdict count printed at the end shows the watches ran.

use watchdog_core::scenarios::Rng;
use watchdog_core::{Config, Deploy, Engine, MetricKey, Sample, SeriesKey, Timestamp};

/// One pre-resolved sample: series, time, three metric values.
type Row = (SeriesKey, Timestamp, [(MetricKey, f64); 3]);

const SERVICES: usize = 100;
const STEPS: usize = 1_000;
const WARM_STEPS: usize = 360;
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

#[inline(never)]
fn run_sample(e: &mut Engine, rest: &[Sample]) {
    for s in rest {
        e.ingest_sample(std::hint::black_box(s)).unwrap();
    }
}

#[inline(never)]
fn run_values(e: &mut Engine, rows: &[Row]) {
    for (k, t, v) in rows {
        e.ingest_values(*k, *t, std::hint::black_box(v)).unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (path, mode) = match args.as_slice() {
        [_, p, m] if ["sample", "values"].contains(&p.as_str()) => (p.clone(), m.clone()),
        _ => {
            println!("usage: engine_watching sample|values watching|idle");
            std::process::exit(2);
        }
    };
    let all = samples();
    let rest = &all[SERVICES * WARM_STEPS..];
    let mut e = warmed(&all, mode == "watching");
    if path == "sample" {
        run_sample(&mut e, rest);
    } else {
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
        run_values(&mut e, &rows);
    }
    println!(
        "{path} {mode}: {} samples, {} verdicts",
        rest.len(),
        e.stats().verdicts
    );
}
