//! Builders shared by the engine and statistics tests.
#![allow(dead_code)]

use watchdog_core::scenarios::Rng;
use watchdog_core::{Config, Deploy, DeployVerdict, Engine, Sample, Timestamp};

pub const T0: Timestamp = Timestamp(1_774_872_000_000);

pub fn sample(t: Timestamp, service: &str, metrics: &[(&str, f64)]) -> Sample {
    Sample {
        version: None,
        timestamp: t,
        service: service.to_string(),
        environment: "production".to_string(),
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

pub fn deploy(t: Timestamp, id: &str, service: &str) -> Deploy {
    Deploy {
        timestamp: t,
        deploy_id: id.to_string(),
        service: service.to_string(),
        environment: "production".to_string(),
    }
}

/// One metric every 10 s: `before` samples of N(level, sd), a deploy, then `after`
/// samples of N(level + shift, sd) starting `shift_delay` samples after the deploy.
#[allow(clippy::too_many_arguments)]
pub fn step_series(
    seed: u64,
    metric: &str,
    level: f64,
    sd: f64,
    shift: f64,
    before: usize,
    after: usize,
    shift_delay: usize,
) -> (Vec<Sample>, Deploy) {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for i in 0..before + after {
        let t = T0.add_secs(10.0 * (i as f64 - before as f64));
        let shifted = i >= before + shift_delay;
        let v = level + sd * rng.normal() + if shifted { shift } else { 0.0 };
        out.push(sample(t, "svc", &[(metric, v)]));
    }
    (out, deploy(T0, "v2", "svc"))
}

/// Feeds samples and deploys in event-time order (deploys first at equal times).
pub fn run(config: Config, samples: &[Sample], deploys: &[Deploy]) -> Vec<DeployVerdict> {
    let mut engine = Engine::new(config).expect("valid config");
    let mut d = 0;
    for s in samples {
        while d < deploys.len() && deploys[d].timestamp <= s.timestamp {
            engine.ingest_deploy(&deploys[d]).expect("deploy");
            d += 1;
        }
        engine.ingest_sample(s).expect("sample");
    }
    for dep in &deploys[d..] {
        engine.ingest_deploy(dep).expect("deploy");
    }
    engine.finish();
    engine.take_verdicts()
}
