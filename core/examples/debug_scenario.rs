//! Prints the detector's view of one scenario: `cargo run -p watchdog-core --example
//! debug_scenario -- NAME SEED`.
use watchdog_core::{scenarios, Config, Engine};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or("latency_step");
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let data = scenarios::generate(
        name,
        &scenarios::ScenarioParams {
            seed,
            ..Default::default()
        },
    )
    .expect("scenario");
    for (e, v) in scenarios::run(&data, &Config::default()).expect("run") {
        println!(
            "run(): {} bad={} {:?}: {}",
            e.deploy_id, e.bad, v.verdict, v.reason
        );
    }
    let mut engine = Engine::new(Config::default()).expect("config");
    engine.set_tracing(true);
    let mut d = 0;
    for s in &data.samples {
        while d < data.deploys.len() && data.deploys[d].timestamp <= s.timestamp {
            engine.ingest_deploy(&data.deploys[d]).expect("deploy");
            d += 1;
        }
        engine.ingest_sample(s).expect("sample");
    }
    engine.finish();
    for v in engine.take_verdicts() {
        println!("{} {:?}: {}", v.deploy_id, v.verdict, v.reason);
    }
    for tr in engine.take_traces() {
        println!(
            "== {} {} h={:.2} level={:.3} spread={:.3}",
            tr.deploy_id, tr.metric, tr.threshold, tr.baseline_level, tr.baseline_spread
        );
        for p in tr
            .points
            .iter()
            .filter(|p| p.statistic.is_some_and(|s| s > 0.0))
        {
            println!(
                "  {} {:>10.3} S={:.2}",
                p.t,
                p.value,
                p.statistic.unwrap_or(0.0)
            );
        }
    }
}
