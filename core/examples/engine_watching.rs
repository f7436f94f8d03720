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

use watchdog_core::{Engine, Sample};

#[path = "../benches/workload/mod.rs"]
mod workload;
use workload::{rows, samples, warmed, Row, SERVICES, WARM_STEPS};

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
        let rows = rows(&mut e, rest);
        run_values(&mut e, &rows);
    }
    println!(
        "{path} {mode}: {} samples, {} verdicts",
        rest.len(),
        e.stats().verdicts
    );
}
