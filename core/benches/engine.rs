//! Engine throughput on one core: samples per second through `ingest_sample` (named
//! metrics, the replay and HTTP path) and through `ingest_values` (pre-resolved keys),
//! for 100 services reporting three metrics every 10 s, with and without active watches.
//!
//! `cargo bench -p watchdog-core --bench engine`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

mod workload;
use workload::{rows, samples, warmed, SERVICES, WARM_STEPS};

fn bench(c: &mut Criterion) {
    let all = samples();
    let rest = &all[SERVICES * WARM_STEPS..];
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
                    let rows = rows(&mut e, rest);
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
