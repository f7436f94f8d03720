//! `watchdog simulate --serve-metrics ADDR`: a catalogue scenario replayed as a live
//! Prometheus target. `GET /metrics` answers in the Prometheus text format with what an
//! instrumented HTTP service would expose at this point of the scenario:
//!
//! - `http_requests_total{service, environment, code}`: counters of 200 and 500 answers,
//!   growing by each scenario sample's `request_rate` (per second) and `error_rate`;
//! - `http_request_duration_seconds_bucket{service, environment, le}` (with `_sum` and
//!   `_count`): a histogram whose 95th percentile is the sample's `p95_latency_ms`
//!   (exponentially distributed latencies).
//!
//! Scenario time starts at its first sample when the server starts and runs `speed` times
//! faster than the wall clock, so a one-hour baseline takes six minutes at speed 10.
//! Prometheus stamps what it scrapes with the wall clock; [`Replay::wall_ms`] says when a
//! scenario instant (a deploy) happens on it.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use watchdog_core::scenarios::ScenarioData;
use watchdog_core::Timestamp;

/// Histogram bucket bounds in seconds.
const BUCKETS: &[f64] = &[
    0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.3, 0.35, 0.4, 0.5, 0.75, 1.0,
    2.5, 5.0,
];

/// One series' cumulative counters after each scenario sample.
#[derive(Debug)]
struct Series {
    service: String,
    environment: String,
    /// (scenario ms, ok, errors, bucket counts, sum of seconds).
    points: Vec<(i64, f64, f64, Vec<f64>, f64)>,
}

/// A scenario mapped onto the wall clock.
#[derive(Debug)]
pub struct Replay {
    series: Vec<Series>,
    /// Wall time at which the scenario's first instant is played.
    pub start_wall_ms: i64,
    /// The scenario's first instant.
    pub start_scenario_ms: i64,
    /// Scenario seconds per wall second.
    pub speed: f64,
}

impl Replay {
    /// Precomputes the counters of every series.
    ///
    /// # Errors
    /// A speed that is not a positive finite number.
    pub fn new(data: &ScenarioData, speed: f64, start_wall_ms: i64) -> anyhow::Result<Replay> {
        if !(speed.is_finite() && speed > 0.0) {
            anyhow::bail!("speed must be a positive number, got {speed}");
        }
        let start_scenario_ms = data.samples.first().map_or(0, |s| s.timestamp.millis());
        let mut series: Vec<Series> = Vec::new();
        let mut last_ts: Vec<i64> = Vec::new();
        for s in &data.samples {
            let i = match series
                .iter()
                .position(|x| x.service == s.service && x.environment == s.environment)
            {
                Some(i) => i,
                None => {
                    series.push(Series {
                        service: s.service.clone(),
                        environment: s.environment.clone(),
                        points: Vec::new(),
                    });
                    last_ts.push(s.timestamp.millis() - 10_000);
                    series.len() - 1
                }
            };
            let t = s.timestamp.millis();
            let dt_secs = ((t - last_ts[i]) as f64 / 1000.0).max(0.0);
            last_ts[i] = t;
            let rate = s.metric("request_rate").unwrap_or(0.0).max(0.0);
            let error_rate = s.metric("error_rate").unwrap_or(0.0).clamp(0.0, 1.0);
            let p95_secs = s.metric("p95_latency_ms").unwrap_or(100.0).max(0.001) / 1000.0;
            let requests = rate * dt_secs;
            let errors = requests * error_rate;
            // Exponential latencies: P(X <= x) = 1 - exp(-x / mean), p95 = mean * ln 20.
            let mean = p95_secs / 20f64.ln();
            let ser = &mut series[i];
            let (ok0, err0, buckets0, sum0) = ser
                .points
                .last()
                .map(|p| (p.1, p.2, p.3.clone(), p.4))
                .unwrap_or((0.0, 0.0, vec![0.0; BUCKETS.len()], 0.0));
            let buckets = BUCKETS
                .iter()
                .zip(buckets0)
                .map(|(le, c)| c + requests * (1.0 - (-le / mean).exp()))
                .collect();
            ser.points.push((
                t,
                ok0 + requests - errors,
                err0 + errors,
                buckets,
                sum0 + requests * mean,
            ));
        }
        Ok(Replay {
            series,
            start_wall_ms,
            start_scenario_ms,
            speed,
        })
    }

    /// When a scenario instant is played, on the wall clock.
    pub fn wall_ms(&self, scenario: Timestamp) -> i64 {
        self.start_wall_ms
            + ((scenario.millis() - self.start_scenario_ms) as f64 / self.speed).round() as i64
    }

    /// The scenario instant being played at a wall time.
    pub fn scenario_ms(&self, wall_ms: i64) -> i64 {
        self.start_scenario_ms + ((wall_ms - self.start_wall_ms) as f64 * self.speed) as i64
    }

    /// The exposition at a wall time.
    pub fn render(&self, wall_ms: i64) -> String {
        let now = self.scenario_ms(wall_ms);
        let mut out = String::new();
        out.push_str("# HELP http_requests_total Requests answered, by status code.\n# TYPE http_requests_total counter\n");
        let current: Vec<_> = self
            .series
            .iter()
            .filter_map(|s| {
                let n = s.points.partition_point(|p| p.0 <= now);
                (n > 0).then(|| (s, &s.points[n - 1]))
            })
            .collect();
        for (s, p) in &current {
            let labels = format!(
                "service=\"{}\",environment=\"{}\"",
                s.service, s.environment
            );
            let _ = writeln!(
                out,
                "http_requests_total{{{labels},code=\"200\"}} {:.3}",
                p.1
            );
            let _ = writeln!(
                out,
                "http_requests_total{{{labels},code=\"500\"}} {:.3}",
                p.2
            );
        }
        out.push_str("# HELP http_request_duration_seconds Request latency.\n# TYPE http_request_duration_seconds histogram\n");
        for (s, p) in &current {
            let labels = format!(
                "service=\"{}\",environment=\"{}\"",
                s.service, s.environment
            );
            for (le, c) in BUCKETS.iter().zip(&p.3) {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {c:.3}"
                );
            }
            let total = p.1 + p.2;
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {total:.3}"
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{labels}}} {:.4}",
                p.4
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {total:.3}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP watchdog_scenario_time_seconds The scenario instant being played.\n# TYPE watchdog_scenario_time_seconds gauge\nwatchdog_scenario_time_seconds {:.3}",
            now as f64 / 1000.0
        );
        out
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn metrics(State(replay): State<Arc<Replay>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        replay.render(now_ms()),
    )
}

/// The exporter's routes: `GET /metrics`.
pub fn router(replay: Arc<Replay>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(replay)
}

/// Serves a scenario's metrics on `addr` from now on, `speed` times faster than real time,
/// until the process ends. Prints where and when each deploy happens on the wall clock.
///
/// # Errors
/// An invalid speed, or the address cannot be bound.
pub async fn serve_metrics(addr: SocketAddr, data: ScenarioData, speed: f64) -> anyhow::Result<()> {
    let replay = Arc::new(Replay::new(&data, speed, now_ms())?);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    println!("serving scenario metrics on http://{bound}/metrics");
    for d in &data.deploys {
        println!(
            "deploy {} of {} in {} plays at {}",
            d.deploy_id,
            d.service,
            d.environment,
            Timestamp(replay.wall_ms(d.timestamp)).to_rfc3339()
        );
    }
    axum::serve(listener, router(replay))
        .await
        .context("serving /metrics")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchdog_core::scenarios::{generate, ScenarioParams};

    fn value(text: &str, line_start: &str) -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn counters_follow_the_scenario_and_the_error_spike_shows() {
        let data = generate("error_spike", &ScenarioParams::default()).unwrap();
        let replay = Replay::new(&data, 10.0, 0).unwrap();
        let deploy_wall = replay.wall_ms(data.deploys[0].timestamp);
        assert_eq!(deploy_wall, 3_600_000 / 10);
        let key_ok =
            "http_requests_total{service=\"checkout\",environment=\"production\",code=\"200\"}";
        let key_err =
            "http_requests_total{service=\"checkout\",environment=\"production\",code=\"500\"}";
        let before = replay.render(deploy_wall - 60_000);
        let at = replay.render(deploy_wall);
        let after = replay.render(deploy_wall + 60_000);
        // Counters never go down.
        assert!(value(&at, key_ok) >= value(&before, key_ok));
        let ratio = |a: &str, b: &str| {
            let e = value(b, key_err) - value(a, key_err);
            let o = value(b, key_ok) - value(a, key_ok);
            e / (e + o)
        };
        let base = ratio(&before, &at);
        let spike = ratio(&at, &after);
        assert!((0.005..0.02).contains(&base), "baseline error ratio {base}");
        assert!(spike > 3.0 * base, "error ratio {base} -> {spike}");
        // The +Inf bucket equals the count.
        let inf = value(&at, "http_request_duration_seconds_bucket{service=\"checkout\",environment=\"production\",le=\"+Inf\"}");
        let count = value(&at, "http_request_duration_seconds_count");
        assert_eq!(inf, count);
        assert!(Replay::new(&data, 0.0, 0).is_err());
    }
}
