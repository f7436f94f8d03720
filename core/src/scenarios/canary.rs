//! Canary scenarios: the old version (`v1.4.1`) keeps serving while the new one (`v1.4.2`)
//! takes a fifth of the traffic from the deploy on, each reporting its own samples.
//!
//! Both versions share part of their noise (load, the network, dependencies) and have their
//! own (their own pods, fewer requests behind the canary's percentiles). What happens:
//! - `canary_bad`: the canary's error rate goes from 1 % to 4 % and its p95 latency up 25 %,
//!   a minute after the deploy; stable is unchanged.
//! - `canary_daily_peak`: the daily peak arrives with the deploy: latency climbs 60 % and
//!   traffic 40 % over the window, in both versions alike.
//! - `canary_shared_outage`: a shared dependency fails from 5 to 15 minutes after the
//!   deploy: both versions' error rates reach 20 % and their latency 2.5 times normal.

use super::{round3, Ar1, Rng, ScenarioData, ScenarioParams, DEPLOY_AT};
use crate::samples::Sample;

/// The canary's share of requests after the deploy.
pub const CANARY_SHARE: f64 = 0.2;
/// The old version's label.
pub const STABLE_VERSION: &str = "v1.4.1";
/// The new version's label (and the deploy's id).
pub const CANARY_VERSION: &str = "v1.4.2";

/// Adds the samples of both versions of `checkout` to `data`.
pub(super) fn series(name: &str, p: &ScenarioParams, rng: &mut Rng, data: &mut ScenarioData) {
    let step = p.interval_secs as f64;
    let start = DEPLOY_AT.add_secs(-(p.baseline_mins as f64) * 60.0);
    let n = ((p.baseline_mins + p.after_mins) as f64 * 60.0 / step) as usize;
    let (base_rps, base_lat, base_err) = (1200.0 * p.traffic, 200.0, 0.01);
    let lat_sd = base_lat * 0.04 * p.noise;
    let mut shared = Ar1::new(0.6, rng);
    let mut own = [Ar1::new(0.3, rng), Ar1::new(0.3, rng)];
    let mut rps_noise = Ar1::new(0.5, rng);
    for i in 0..n {
        let t = start.add_secs(i as f64 * step);
        let since = t.secs_since(DEPLOY_AT);
        let after = since >= 0.0;
        let common = shared.next(rng);
        let load = rps_noise.next(rng);
        // What hits both versions.
        let (mut lat_mult, mut rps_mult, mut err_add) = (1.0, 1.0, 0.0);
        match name {
            "canary_daily_peak" if after => {
                let f = (since / (p.after_mins as f64 * 60.0)).min(1.0);
                lat_mult += 0.6 * f;
                rps_mult += 0.4 * f;
            }
            "canary_shared_outage" if (300.0..900.0).contains(&since) => {
                lat_mult = 2.5;
                err_add = 0.19;
            }
            _ => {}
        }
        for (g, version) in [STABLE_VERSION, CANARY_VERSION].into_iter().enumerate() {
            let share = match (g, after) {
                (0, false) => 1.0,
                (0, true) => 1.0 - CANARY_SHARE,
                (_, false) => continue,
                (_, true) => CANARY_SHARE,
            };
            // A percentile over fewer requests is noisier: the own noise grows as
            // 1/√share; the shared part does not.
            let own_sd = lat_sd * (0.5 / share).sqrt();
            let mut lat = base_lat * lat_mult + 0.8 * lat_sd * common + own_sd * own[g].next(rng);
            let mut err_p = base_err + err_add;
            if g == 1 && name == "canary_bad" && since >= 60.0 {
                lat += base_lat * 0.25 * p.shift;
                err_p += 0.03 * p.shift;
            }
            let rps = (base_rps * rps_mult * (1.0 + 0.03 * p.noise * load) * share).max(0.0);
            let requests = rng.poisson(rps * step);
            let errors = rng.binomial(requests, err_p.clamp(0.0, 1.0));
            data.samples.push(Sample {
                timestamp: t,
                service: "checkout".into(),
                environment: "production".into(),
                metrics: vec![
                    ("p95_latency_ms".into(), round3(lat.max(1.0))),
                    ("request_rate".into(), round3(requests / step)),
                    ("requests".into(), requests),
                    ("errors".into(), errors),
                ],
                version: Some(version.into()),
            });
        }
    }
}
