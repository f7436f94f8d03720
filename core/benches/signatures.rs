//! Throughput of the template miner, side by side with two other Rust miners, on the
//! same lines in one run.
//!
//! `cargo bench -p watchdog-core --bench signatures`. The lines are the messages of the
//! Loghub samples in ../shared/data/loghub-2k when present (16,000 real lines of eight
//! systems, repeated eight times: 128,000 lines per pass), otherwise a synthetic mix.
//!
//! Cases, each one core, each a full pass over the lines:
//! - `watchdog/cold`: a fresh [`TemplateMiner`] with its defaults mines every line;
//! - `watchdog/warm`: the same miner after it has seen the lines (the steady state of
//!   a long-running service);
//! - `logdrain/cold`: `logdrain` 0.3 `Miner` with its defaults (`Miner::builder()`);
//! - `drain3/cold`: `drain3` 0.3 `Matcher` with its defaults, `add_log_message`.
//!
//! After criterion's figures the bench prints the ratios of the cold passes: five
//! rounds that interleave the three miners, each miner's sample in a round being as
//! many consecutive cold passes as fill half a second, the fastest sample of each,
//! timed in CPU time of the bench thread (Linux; wall time elsewhere) so that other work
//! on a shared machine does not skew one miner more than another. That is the
//! comparison `docs/signatures.md` quotes. (`cargo bench … -- ratios`, a filter that
//! matches no criterion case, prints only the ratios.)

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use watchdog_core::signatures::TemplateMiner;

const SYSTEMS: [&str; 8] = [
    "HDFS",
    "OpenSSH",
    "Linux",
    "HealthApp",
    "Android",
    "Apache",
    "Mac",
    "Windows",
];

/// Splits one CSV record (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

fn loghub_lines() -> Vec<String> {
    let root = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/loghub-2k"
    ));
    let mut out = Vec::new();
    for system in SYSTEMS {
        let path = root
            .join(system)
            .join(format!("{system}_2k.log_structured_corrected.csv"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut rows = text.lines();
        let header = csv_fields(rows.next().unwrap_or(""));
        let Some(content) = header.iter().position(|h| h == "Content") else {
            continue;
        };
        for row in rows {
            if let Some(m) = csv_fields(row).get(content) {
                out.push(m.clone());
            }
        }
    }
    out
}

fn synthetic_lines() -> Vec<String> {
    (0..16_000u32)
        .map(|i| match i % 4 {
            0 => format!("Database timeout for user {i} after {} ms", i % 300),
            1 => format!(
                "Connection refused to 10.0.{}.{}:5432 (attempt {})",
                i % 256,
                i % 7,
                i % 5
            ),
            2 => format!("session opened for user u{} by (uid=0)", i % 50),
            _ => format!("GET /api/orders/{i} 200 in {}ms", i % 90),
        })
        .collect()
}

/// The lines of one pass: the real lines, interleaved system by system, eight times.
fn lines() -> Vec<String> {
    let mut base = loghub_lines();
    if base.is_empty() {
        eprintln!("loghub samples not present: using synthetic lines");
        base = synthetic_lines();
    }
    let mut out = Vec::with_capacity(base.len() * 8);
    for _ in 0..8 {
        out.extend(base.iter().cloned());
    }
    out
}

fn watchdog_pass(lines: &[String]) -> usize {
    let mut miner = TemplateMiner::default();
    for l in lines {
        black_box(miner.add_ref(black_box(l)).signature);
    }
    miner.len()
}

fn logdrain_pass(lines: &[String]) -> usize {
    let miner = logdrain::Miner::builder()
        .build()
        .expect("logdrain defaults are valid");
    for l in lines {
        black_box(miner.add(black_box(l)).cluster_id);
    }
    miner.len()
}

fn drain3_pass(lines: &[String]) -> usize {
    let mut matcher = drain3::Matcher::new(drain3::Config::default());
    let mut rejected = 0;
    for l in lines {
        match matcher.add_log_message(black_box(l)) {
            Ok(t) => {
                black_box(t.id());
            }
            // Lines over its default token or byte limit.
            Err(_) => rejected += 1,
        }
    }
    matcher.templates().len() + rejected
}

fn bench(c: &mut Criterion) {
    let lines = lines();
    let mut group = c.benchmark_group("miner");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.sample_size(10);
    group.bench_function("watchdog/cold", |b| b.iter(|| watchdog_pass(&lines)));
    let mut warm = TemplateMiner::default();
    for l in &lines {
        warm.add_ref(l);
    }
    group.bench_function("watchdog/warm", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(warm.add_ref(black_box(l)).signature);
            }
        })
    });
    group.bench_function("logdrain/cold", |b| b.iter(|| logdrain_pass(&lines)));
    group.bench_function("drain3/cold", |b| b.iter(|| drain3_pass(&lines)));
    group.finish();
    print_ratios(&lines);
}

/// CPU time of this thread in seconds, from `/proc/thread-self/schedstat` (Linux), so
/// that other processes competing for the cores do not count; wall time elsewhere.
fn cpu_secs(start: Instant) -> f64 {
    match std::fs::read_to_string("/proc/thread-self/schedstat") {
        Ok(text) => text
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<f64>().ok())
            .map_or_else(|| start.elapsed().as_secs_f64(), |ns| ns / 1e9),
        Err(_) => start.elapsed().as_secs_f64(),
    }
}

/// One cold pass of a miner over the lines.
type Pass = fn(&[String]) -> usize;

/// Seconds per pass over `reps` consecutive passes (CPU time of this thread where it can
/// be read).
fn pass_secs(lines: &[String], pass: Pass, reps: usize) -> f64 {
    let origin = Instant::now();
    let before = cpu_secs(origin);
    for _ in 0..reps {
        black_box(pass(lines));
    }
    (cpu_secs(origin) - before) / reps as f64
}

/// Least CPU time one timed sample spans. The kernel brings a running thread's
/// `schedstat` up to date only at scheduler ticks (4 ms here), so a single pass of
/// 10–60 ms would be read with an error of up to 40 %; half a second of passes keeps
/// it under 1 %.
const SAMPLE_SECS: f64 = 0.5;

fn print_ratios(lines: &[String]) {
    const ROUNDS: usize = 5;
    let passes: [(&str, Pass); 3] = [
        ("watchdog", watchdog_pass),
        ("logdrain 0.3", logdrain_pass),
        ("drain3 0.3", drain3_pass),
    ];
    // Rounds interleave the miners, so a busy moment slows all of them alike; the
    // fastest pass of each is its figure.
    // How many passes make one sample of each miner, from one pass each (wall time,
    // which is at least the CPU time, so the samples are never shorter than meant).
    let reps = passes.map(|(_, pass)| {
        let start = Instant::now();
        black_box(pass(lines));
        (SAMPLE_SECS / start.elapsed().as_secs_f64().max(1e-6)).ceil() as usize
    });
    let mut best = [f64::INFINITY; 3];
    for _ in 0..ROUNDS {
        for ((b, (_, pass)), &n) in best.iter_mut().zip(passes).zip(&reps) {
            *b = b.min(pass_secs(lines, pass, n));
        }
    }
    let n = lines.len() as f64;
    println!(
        "side by side, {} lines per cold pass, fastest of {ROUNDS} interleaved rounds of at least {SAMPLE_SECS} s per miner, thread CPU time per pass:",
        lines.len()
    );
    for ((name, _), secs) in passes.iter().zip(best) {
        println!(
            "  {name:<13} {:>8.1} ms  {:>6.2} M lines/s",
            secs * 1e3,
            n / secs / 1e6
        );
    }
    println!("  watchdog / logdrain: {:.2}x faster", best[1] / best[0]);
    println!("  watchdog / drain3:   {:.2}x faster", best[2] / best[0]);
}

criterion_group!(benches, bench);
criterion_main!(benches);
