//! A seeded, deterministic catalogue of deploy scenarios: the benchmark, the tests and the
//! browser playground all run on it.
//!
//! Every scenario is one or two services sampled every 10 s, an hour of history before the
//! deploy and the monitoring window after it, with realistic noise: autocorrelated
//! (AR(1)) Gaussian noise on latency and throughput, binomial error counts where traffic
//! is low. Randomness comes from a SplitMix64 generator seeded by the caller, never from
//! the OS, so a seed reproduces a scenario on every platform.

mod canary;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::engine::Engine;
use crate::error::Error;
use crate::samples::{Deploy, LogEvent, LogLevel, Sample};
use crate::time::Timestamp;
use crate::verdict::DeployVerdict;

/// What a scenario is and whether its deploy is bad.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// Catalogue name (`latency_step`).
    pub name: &'static str,
    /// Short title.
    pub title: &'static str,
    /// One or two sentences on what happens.
    pub description: &'static str,
    /// Whether the (first) deploy should be found to be a regression.
    pub bad: bool,
}

/// Knobs of a generated scenario.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScenarioParams {
    /// Seed of the generator.
    pub seed: u64,
    /// Multiplier of the scenario's built-in effect size (1 = as catalogued, 0 = none).
    pub shift: f64,
    /// Multiplier of the noise level.
    pub noise: f64,
    /// Multiplier of the traffic (request rate and counts).
    pub traffic: f64,
    /// Seconds between samples.
    pub interval_secs: u64,
    /// Minutes of history before the deploy.
    pub baseline_mins: u64,
    /// Minutes of data after the deploy.
    pub after_mins: u64,
}

impl Default for ScenarioParams {
    fn default() -> Self {
        ScenarioParams {
            seed: 1,
            shift: 1.0,
            noise: 1.0,
            traffic: 1.0,
            interval_secs: 10,
            baseline_mins: 60,
            after_mins: 30,
        }
    }
}

/// The expected outcome for one deploy of a scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    /// The deploy.
    pub deploy_id: String,
    /// Whether it is a bad deploy (should be a regression).
    pub bad: bool,
    /// When the bad deploy's effect starts (for detection delays).
    pub effect_starts_at: Option<Timestamp>,
}

/// A generated scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioData {
    /// Metric samples, in time order.
    pub samples: Vec<Sample>,
    /// Deploys, in time order.
    pub deploys: Vec<Deploy>,
    /// Log events, in time order.
    pub logs: Vec<LogEvent>,
    /// What each deploy should be found to be.
    pub expected: Vec<Expected>,
}

const CATALOGUE: &[ScenarioInfo] = &[
    ScenarioInfo { name: "healthy", title: "Healthy deploy", description: "Nothing changes: error rate, latency and throughput keep their usual noise.", bad: false },
    ScenarioInfo { name: "error_spike", title: "Error spike", description: "The error rate jumps from 1% to 6% right after the deploy, with a new error in the logs.", bad: true },
    ScenarioInfo { name: "latency_step", title: "Latency step", description: "p95 latency steps up by 30% a minute after the deploy.", bad: true },
    ScenarioInfo { name: "latency_creep", title: "Slow latency creep", description: "p95 latency climbs steadily after the deploy, +40% after 30 minutes (a leak).", bad: true },
    ScenarioInfo { name: "throughput_drop", title: "Throughput drop", description: "Requests per second fall by 25% after the deploy (clients failing or giving up).", bad: true },
    ScenarioInfo { name: "noisy_baseline", title: "Noisy baseline", description: "A healthy deploy on a service whose metrics are very noisy, strongly autocorrelated and heavy-tailed.", bad: false },
    ScenarioInfo { name: "low_traffic", title: "Low traffic, bad", description: "About 2 requests per second; the error rate goes from 1% to 8%. Counts make the decision honest.", bad: true },
    ScenarioInfo { name: "low_traffic_healthy", title: "Low traffic, healthy", description: "About 2 requests per second and nothing changes: too little traffic may only allow an inconclusive verdict.", bad: false },
    ScenarioInfo { name: "pre_existing", title: "Pre-existing degradation", description: "Latency rose 20 minutes before the deploy; the deploy itself changes nothing.", bad: false },
    ScenarioInfo { name: "daily_trend", title: "Daily trend", description: "Traffic and latency follow the daily cycle (rising morning load); the deploy is healthy.", bad: false },
    ScenarioInfo { name: "overlapping_deploys", title: "Overlapping deploys", description: "checkout and search deploy two minutes apart; only checkout's release raises its error rate.", bad: true },
    ScenarioInfo { name: "healthy_outliers", title: "Healthy with outliers", description: "A healthy deploy on a service with rare, huge latency spikes before and after it.", bad: false },
    ScenarioInfo { name: "canary_bad", title: "Bad canary", description: "The new version takes a fifth of the traffic next to the old one; its error rate goes from 1% to 4% and its p95 latency up 25%. Stable is unchanged.", bad: true },
    ScenarioInfo { name: "canary_daily_peak", title: "Healthy canary at the daily peak", description: "The daily peak arrives with the canary: latency +60% and traffic +40% in both versions alike. Before/after alone would blame the release.", bad: false },
    ScenarioInfo { name: "canary_shared_outage", title: "Shared dependency outage", description: "A dependency fails 5 to 15 minutes into the canary: both versions' error rates reach 20% and latency 2.5x. Not the release's fault.", bad: false },
];

/// The catalogue.
pub fn catalogue() -> &'static [ScenarioInfo] {
    CATALOGUE
}

/// SplitMix64: tiny, fast, well distributed, and fully determined by its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Poisson with mean `lambda` (inversion for small means, normal approximation above 50).
    pub fn poisson(&mut self, lambda: f64) -> f64 {
        if lambda <= 0.0 {
            return 0.0;
        }
        if lambda > 50.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0);
        }
        let l = (-lambda).exp();
        let mut k = 0.0;
        let mut p = 1.0;
        loop {
            p *= self.uniform();
            if p <= l {
                return k;
            }
            k += 1.0;
        }
    }
    /// Binomial(n, p) by summing Bernoulli draws for small n, normal approximation above.
    pub fn binomial(&mut self, n: f64, p: f64) -> f64 {
        if n <= 200.0 {
            (0..n as u64).filter(|_| self.uniform() < p).count() as f64
        } else {
            let m = n * p;
            (m + (m * (1.0 - p)).sqrt() * self.normal())
                .round()
                .clamp(0.0, n)
        }
    }
}

/// An AR(1) noise process with unit marginal variance.
struct Ar1 {
    rho: f64,
    x: f64,
}

impl Ar1 {
    fn new(rho: f64, rng: &mut Rng) -> Ar1 {
        Ar1 {
            rho,
            x: rng.normal(),
        }
    }
    fn next(&mut self, rng: &mut Rng) -> f64 {
        self.x = self.rho * self.x + (1.0 - self.rho * self.rho).sqrt() * rng.normal();
        self.x
    }
}

/// The instant every scenario's deploy happens at: 2026-03-30T12:00:00Z.
pub const DEPLOY_AT: Timestamp = Timestamp(1_774_872_000_000);

struct Service<'a> {
    name: &'a str,
    deploy_id: &'a str,
    deploy_offset_secs: i64,
}

/// Generates scenario `name` with `params`.
///
/// # Errors
/// [`Error::UnknownScenario`] for a name not in the catalogue, [`Error::Config`] for
/// parameters out of range.
pub fn generate(name: &str, params: &ScenarioParams) -> Result<ScenarioData, Error> {
    let info = CATALOGUE
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| Error::UnknownScenario {
            name: name.to_string(),
            known: CATALOGUE
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    for (field, v) in [
        ("shift", params.shift),
        ("noise", params.noise),
        ("traffic", params.traffic),
    ] {
        if !(v.is_finite() && (0.0..=1000.0).contains(&v)) {
            return Err(Error::config(
                field,
                format!("must be between 0 and 1000, got {v}"),
            ));
        }
    }
    if params.traffic <= 0.0 {
        return Err(Error::config("traffic", "must be above 0, got 0"));
    }
    if params.interval_secs == 0 || params.interval_secs > 3600 {
        return Err(Error::config(
            "interval_secs",
            format!("must be between 1 and 3600, got {}", params.interval_secs),
        ));
    }
    if params.baseline_mins == 0
        || params.after_mins == 0
        || params.baseline_mins + params.after_mins > 60 * 24 * 14
    {
        return Err(Error::config(
            "baseline_mins",
            "baseline_mins and after_mins must be at least 1 and together at most 14 days",
        ));
    }
    let services: Vec<Service> = if name == "overlapping_deploys" {
        vec![
            Service {
                name: "checkout",
                deploy_id: "checkout-v2.3.0",
                deploy_offset_secs: 0,
            },
            Service {
                name: "search",
                deploy_id: "search-v8.1.4",
                deploy_offset_secs: 120,
            },
        ]
    } else {
        vec![Service {
            name: "checkout",
            deploy_id: "v1.4.2",
            deploy_offset_secs: 0,
        }]
    };
    let mut rng = Rng::new(params.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ fnv(name));
    let mut data = ScenarioData {
        samples: Vec::new(),
        deploys: Vec::new(),
        logs: Vec::new(),
        expected: Vec::new(),
    };
    for (si, svc) in services.iter().enumerate() {
        let deploy_at = DEPLOY_AT.add_secs(svc.deploy_offset_secs as f64);
        let bad_here = info.bad && (name != "overlapping_deploys" || si == 0) && params.shift > 0.0;
        let effect_delay = match name {
            "latency_step" => 60.0,
            _ => 0.0,
        };
        data.deploys.push(Deploy {
            timestamp: deploy_at,
            deploy_id: svc.deploy_id.to_string(),
            service: svc.name.to_string(),
            environment: "production".to_string(),
        });
        data.expected.push(Expected {
            deploy_id: svc.deploy_id.to_string(),
            bad: bad_here,
            effect_starts_at: bad_here.then(|| deploy_at.add_secs(effect_delay)),
        });
        if name.starts_with("canary_") {
            canary::series(name, params, &mut rng, &mut data);
        } else {
            series(name, svc, deploy_at, params, &mut rng, &mut data, si);
        }
    }
    data.samples.sort_by_key(|s| s.timestamp);
    data.logs.sort_by_key(|l| l.timestamp);
    Ok(data)
}

/// Runs a generated scenario through a fresh engine (logs included) and pairs each
/// deploy's expectation with its verdict.
///
/// # Errors
/// [`Error::Config`] when `config` is invalid.
pub fn run(data: &ScenarioData, config: &Config) -> Result<Vec<(Expected, DeployVerdict)>, Error> {
    let mut config = config.clone();
    config.evidence_grace_secs.get_or_insert(300);
    let mut engine = Engine::new(config)?;
    let (mut si, mut di, mut li) = (0, 0, 0);
    // Merge the three time-ordered streams; a deploy goes before samples of its instant.
    loop {
        let ts = data.samples.get(si).map(|s| s.timestamp);
        let td = data.deploys.get(di).map(|d| d.timestamp);
        let tl = data.logs.get(li).map(|l| l.timestamp);
        let next = [td, ts, tl].into_iter().flatten().min();
        let Some(next) = next else { break };
        if td == Some(next) {
            engine.ingest_deploy(&data.deploys[di])?;
            di += 1;
        } else if ts == Some(next) {
            engine.ingest_sample(&data.samples[si])?;
            si += 1;
        } else {
            engine.ingest_log(&data.logs[li])?;
            li += 1;
        }
    }
    engine.finish();
    let verdicts = engine.take_verdicts();
    Ok(data
        .expected
        .iter()
        .filter_map(|e| {
            verdicts
                .iter()
                .find(|v| v.deploy_id == e.deploy_id)
                .map(|v| (e.clone(), v.clone()))
        })
        .collect())
}

fn fnv(s: &str) -> u64 {
    crate::hash::fnv1a(s.as_bytes())
}

#[allow(clippy::too_many_lines)]
fn series(
    name: &str,
    svc: &Service,
    deploy_at: Timestamp,
    p: &ScenarioParams,
    rng: &mut Rng,
    data: &mut ScenarioData,
    si: usize,
) {
    let step = p.interval_secs as f64;
    let start = DEPLOY_AT.add_secs(-(p.baseline_mins as f64) * 60.0);
    let n = ((p.baseline_mins + p.after_mins) as f64 * 60.0 / step) as usize;
    let noisy = name == "noisy_baseline";
    let (rho_lat, rho_rps) = if noisy { (0.7, 0.7) } else { (0.3, 0.5) };
    let mut lat_noise = Ar1::new(rho_lat, rng);
    let mut rps_noise = Ar1::new(rho_rps, rng);
    let low = name.starts_with("low_traffic");
    let base_rps = if low {
        2.0
    } else if si == 1 {
        300.0
    } else {
        1200.0
    } * p.traffic;
    let base_lat = if si == 1 { 90.0 } else { 200.0 };
    let base_err = if si == 1 { 0.004 } else { 0.01 };
    let lat_sd = base_lat * if noisy { 0.15 } else { 0.04 } * p.noise;
    let rps_sd = base_rps * if noisy { 0.12 } else { 0.03 } * p.noise;
    let shift = p.shift;
    let bad = CATALOGUE.iter().any(|c| c.name == name && c.bad)
        && (name != "overlapping_deploys" || si == 0);
    for i in 0..n {
        let t = start.add_secs(i as f64 * step);
        let after = t.millis() >= deploy_at.millis();
        let since = t.secs_since(deploy_at);
        let mut lat = base_lat + lat_sd * lat_noise.next(rng);
        let mut rps = base_rps + rps_sd * rps_noise.next(rng);
        let mut err_p = base_err;
        match name {
            "error_spike" if after => err_p += 0.05 * shift,
            "latency_step" if since >= 60.0 => lat += base_lat * 0.30 * shift,
            "latency_creep" if after => lat += base_lat * 0.40 * shift * (since / 1800.0),
            "throughput_drop" if after => rps -= base_rps * 0.25 * shift,
            "low_traffic" if after => err_p += 0.07 * shift,
            "overlapping_deploys" if after && bad => err_p += 0.04 * shift,
            "pre_existing" if t.secs_since(DEPLOY_AT) >= -1200.0 => {
                lat += base_lat * 0.30 * shift.max(1.0)
            }
            "daily_trend" => {
                // A day's cycle, in its steepest stretch around the deploy (morning ramp).
                let phase = 2.0 * std::f64::consts::PI * t.secs_since(DEPLOY_AT) / 86_400.0;
                lat += base_lat * 0.35 * phase.sin();
                rps += base_rps * 0.35 * phase.sin();
            }
            "healthy_outliers" if rng.uniform() < 0.02 => lat *= 4.0 + 4.0 * rng.uniform(),
            "noisy_baseline" if rng.uniform() < 0.03 => lat += lat_sd * 4.0 * rng.normal().abs(),
            _ => {}
        }
        let rps = rps.max(0.0);
        let lat = lat.max(1.0);
        let requests = rng.poisson(rps * step);
        let errors = rng.binomial(requests, err_p.clamp(0.0, 1.0));
        let mut metrics = vec![
            ("p95_latency_ms".to_string(), round3(lat)),
            ("request_rate".to_string(), round3(requests / step)),
        ];
        if low {
            metrics.push(("requests".to_string(), requests));
            metrics.push(("errors".to_string(), errors));
        } else {
            let rate = if requests > 0.0 {
                errors / requests
            } else {
                0.0
            };
            metrics.push(("error_rate".to_string(), (rate * 1e6).round() / 1e6));
        }
        data.samples.push(Sample {
            version: None,
            timestamp: t,
            service: svc.name.to_string(),
            environment: "production".to_string(),
            metrics,
        });
        // Logs: a little steady background, and for a bad error deploy a new error.
        if rng.uniform() < 0.3 {
            data.logs.push(LogEvent {
                timestamp: t.add_secs(rng.uniform() * step),
                service: svc.name.to_string(),
                environment: "production".to_string(),
                level: LogLevel::Info,
                message: format!(
                    "GET /api/cart/{} 200 in {} ms",
                    1000 + (rng.next_u64() % 9000),
                    (lat * 0.6) as u64
                ),
            });
        }
        if rng.uniform() < 0.05 {
            data.logs.push(LogEvent {
                timestamp: t.add_secs(rng.uniform() * step),
                service: svc.name.to_string(),
                environment: "production".to_string(),
                level: LogLevel::Warn,
                message: format!(
                    "retrying inventory lookup for sku {} (attempt 2)",
                    rng.next_u64() % 100_000
                ),
            });
        }
        if after
            && bad
            && (name == "error_spike" || name == "overlapping_deploys")
            && rng.uniform() < 0.6 * shift.min(1.0)
        {
            data.logs.push(LogEvent {
                timestamp: t.add_secs(rng.uniform() * step),
                service: svc.name.to_string(),
                environment: "production".to_string(),
                level: LogLevel::Error,
                message: format!(
                    "payment gateway timeout after {} ms for order {:08x}",
                    2000 + rng.next_u64() % 3000,
                    rng.next_u64() as u32
                ),
            });
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data() {
        let p = ScenarioParams {
            seed: 42,
            ..ScenarioParams::default()
        };
        assert_eq!(
            generate("latency_step", &p).unwrap(),
            generate("latency_step", &p).unwrap()
        );
        let q = ScenarioParams { seed: 43, ..p };
        assert_ne!(
            generate("latency_step", &p).unwrap().samples,
            generate("latency_step", &q).unwrap().samples
        );
    }

    #[test]
    fn every_catalogued_scenario_generates() {
        for s in catalogue() {
            let d = generate(s.name, &ScenarioParams::default()).unwrap();
            assert!(!d.samples.is_empty() && !d.deploys.is_empty(), "{}", s.name);
            assert_eq!(d.expected.iter().any(|e| e.bad), s.bad, "{}", s.name);
        }
    }

    #[test]
    fn unknown_names_list_the_catalogue() {
        let e = generate("nope", &ScenarioParams::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("latency_step"), "{e}");
    }
}
