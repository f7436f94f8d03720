//! Throughput of the template miner, in lines per second on one core.
//!
//! `cargo bench -p watchdog-core --bench signatures`. Uses the messages of the Loghub
//! samples in ../shared/data/loghub-2k when present (8,000 real lines of four systems),
//! otherwise a synthetic mix. Two cases: a warm miner (templates already learned, the
//! steady state of a long-running service) and a cold one (every run starts empty).

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use watchdog_core::signatures::TemplateMiner;

fn lines() -> Vec<String> {
    let root = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/loghub-2k"
    ));
    let mut out = Vec::new();
    for system in ["HDFS", "OpenSSH", "Linux", "HealthApp"] {
        let path = root
            .join(system)
            .join(format!("{system}_2k.log_structured_corrected.csv"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut rows = text.lines();
        let header: Vec<&str> = rows.next().unwrap_or("").split(',').collect();
        let Some(content) = header.iter().position(|h| *h == "Content") else {
            continue;
        };
        // The Content column is followed by EventId and EventTemplate: take what lies
        // between the header fields before it and the last two fields.
        for row in rows {
            let head: Vec<&str> = row.splitn(content + 1, ',').collect();
            let Some(rest) = head.get(content) else {
                continue;
            };
            let mut tail = rest.rsplitn(3, ',');
            let (_template, _event, message) = (tail.next(), tail.next(), tail.next());
            if let Some(m) = message {
                out.push(m.trim_matches('"').to_string());
            }
        }
    }
    if out.is_empty() {
        eprintln!("loghub samples not present: using synthetic lines");
        for i in 0..8000u32 {
            out.push(match i % 4 {
                0 => format!("Database timeout for user {i} after {} ms", i % 300),
                1 => format!(
                    "Connection refused to 10.0.{}.{}:5432 (attempt {})",
                    i % 256,
                    i % 7,
                    i % 5
                ),
                2 => format!("session opened for user u{} by (uid=0)", i % 50),
                _ => format!("GET /api/orders/{i} 200 in {}ms", i % 90),
            });
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let lines = lines();
    let mut group = c.benchmark_group("miner");
    group.throughput(Throughput::Elements(lines.len() as u64));
    let mut warm = TemplateMiner::default();
    for l in &lines {
        warm.add_ref(l);
    }
    group.bench_function("warm", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(warm.add_ref(black_box(l)).signature);
            }
        })
    });
    group.bench_function("cold", |b| {
        b.iter(|| {
            let mut miner = TemplateMiner::default();
            for l in &lines {
                black_box(miner.add_ref(black_box(l)).signature);
            }
            miner.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
