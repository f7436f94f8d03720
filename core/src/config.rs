//! Detector configuration: the false-alarm budget, windows, effect-size floors and metric
//! directions. Every value has a documented default and is range-checked by
//! [`Config::validate`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Which way a metric moving is harmful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Higher is worse (error rate, latency).
    Up,
    /// Lower is worse (throughput).
    Down,
    /// Both directions are watched (unknown metrics).
    Both,
}

impl Direction {
    /// The harmful direction of a metric by its name, before any configuration.
    ///
    /// The name is split into words at every character that is not a letter or a digit
    /// (`http_5xx_rate`, `checkout.latency.p99`, `orders-per-sec`), case aside, and read
    /// in this order:
    /// - errors and failures go up: a word `error(s)`, `err`, `fail(s|ed|ure|ures)`,
    ///   `timeout(s)`, `exception(s)`, `5xx`, `panic(s)`, `crash(es)`, `restarts`, `oom`;
    /// - so do latencies: `latency`, `duration`, `rtt`, except a histogram's count of
    ///   observations (`http_request_duration_seconds_count`), which is traffic;
    /// - success and traffic go down: `success(es)`, `availability`, `apdex`,
    ///   `throughput`, `qps`, `rps`, `tps`, `ops`, and `requests` or `request_rate` at
    ///   the end of the name (`http_requests_total`, `checkout_requests`), not in the
    ///   middle (`request_size_bytes` is no traffic figure);
    /// - anything else is watched both ways.
    ///
    /// Errors come first so that `failed_requests` goes up, latencies before traffic so
    /// that `ops_latency_ms` does. A name these words misread takes a
    /// `metrics.<name>.direction` in the configuration.
    pub fn default_for(metric: &str) -> Direction {
        let lower = metric.to_ascii_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let any = |set: &[&str]| words.iter().any(|w| set.contains(w));
        const ERRORS: &[&str] = &[
            "error",
            "errors",
            "err",
            "fail",
            "fails",
            "failed",
            "failure",
            "failures",
            "timeout",
            "timeouts",
            "exception",
            "exceptions",
            "5xx",
            "panic",
            "panics",
            "crash",
            "crashes",
            "restarts",
            "oom",
        ];
        const LATENCY: &[&str] = &["latency", "duration", "rtt"];
        const TRAFFIC: &[&str] = &[
            "success",
            "successes",
            "availability",
            "apdex",
            "throughput",
            "qps",
            "rps",
            "tps",
            "ops",
        ];
        if any(ERRORS) {
            return Direction::Up;
        }
        let tail: Vec<&str> = words
            .iter()
            .rev()
            .copied()
            .skip_while(|w| matches!(*w, "total" | "per" | "sec" | "second" | "s"))
            .take(2)
            .collect();
        // A histogram's `_count` (`http_request_duration_seconds_count`) counts requests.
        if tail.first() == Some(&"count") && any(LATENCY) {
            return Direction::Down;
        }
        if any(LATENCY) {
            return Direction::Up;
        }
        let requests_at_end = matches!(
            tail.as_slice(),
            ["requests" | "request", ..] | ["rate", "request" | "requests"]
        );
        if any(TRAFFIC) || requests_at_end {
            Direction::Down
        } else {
            Direction::Both
        }
    }
}

/// What a brand-new error-level log signature after a deploy does to its verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum SignaturePolicy {
    /// It makes the deploy a regression (the default).
    Regression,
    /// It is listed in the verdict's warnings only.
    Warning,
}

/// Per-metric overrides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricConfig {
    /// Harmful direction; by default from [`Direction::default_for`].
    pub direction: Option<Direction>,
    /// Smallest absolute change (in the metric's own unit) that can count as a regression.
    pub min_absolute_effect: Option<f64>,
    /// Smallest change relative to the baseline level that can count as a regression.
    pub min_relative_effect: Option<f64>,
    /// Do not watch this metric at all.
    pub ignore: bool,
}

/// Configuration of the detection engine. `Config::default()` is what `watchdog replay`
/// uses without `--config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Target probability that a healthy deploy is called a regression (per deploy, all
    /// metrics together). Default 0.01. The detector thresholds are derived from it.
    pub false_alarm_rate: f64,
    /// How long after a deploy its effects are watched. Default 1800 s (30 min). A watch
    /// also ends when the next deploy of the same service arrives, or at the end of the data.
    pub monitoring_window_secs: u64,
    /// How far before the deploy the baseline reaches. Default 3600 s.
    pub baseline_window_secs: u64,
    /// Fewest baseline samples for a verdict. Default 12.
    pub min_baseline_samples: usize,
    /// When the baseline window holds fewer samples than this, the baseline reaches
    /// further back (up to `max_baseline_window_secs`) to collect them. Default 60.
    pub target_baseline_samples: usize,
    /// Furthest look back for a sparse metric's baseline. Default 604800 s (a week).
    /// What a baseline needs is samples, not hours: a metric sampled hourly, or one
    /// whose scrapes come in bursts, holds its target samples only days back, and with
    /// a day's cap it would get no verdict at all (`short_baseline`). A week is the
    /// longest cycle most service metrics have (weekdays and weekends), so the cap stops
    /// a sparse metric from reaching more than one such cycle back. A dense metric never
    /// gets near it: its preferred window already holds the target.
    pub max_baseline_window_secs: u64,
    /// A watch lasts at least this many sample intervals, even when that is longer than
    /// the monitoring window (sparse metrics). Default 12.
    pub min_watch_samples: usize,
    /// Samples may arrive this late (event time) and still be used. Default 120 s.
    pub allowed_lateness_secs: u64,
    /// A shift that begins up to this long before the recorded deploy time is the
    /// deploy's: the baseline ends, and the tests begin, this much earlier. Default 600 s.
    /// Delivery systems usually record a deploy when its rollout has finished, minutes
    /// after the first new instances took traffic. It is never less than one sample
    /// interval: a sample stamped by the start of the interval it aggregates can already
    /// hold the new version's traffic. 0 trusts the recorded time to within that interval.
    pub deploy_tolerance_secs: u64,
    /// A change is the deploy's only when it begins within this long after the recorded
    /// deploy (and never sooner than three sample intervals). Default 1800 s. A change
    /// that begins later is reported as `inconclusive: late_change`, with its evidence:
    /// the longer after a deploy, the more other causes (traffic, dependencies, the daily
    /// cycle) could have started it.
    pub attribution_window_secs: u64,
    /// Default smallest relative change that can count as a regression. Default 0.10.
    pub min_relative_effect: f64,
    /// Shift, in baseline standard deviations, that the sequential test is tuned to find
    /// fastest. Smaller shifts are still found, only later. Default 1.5.
    pub design_shift_sigmas: f64,
    /// A watch with a gap longer than this many typical sample intervals is called gappy.
    /// Default 5.
    pub max_gap_intervals: f64,
    /// Most samples kept per metric and series (the baseline uses the latest ones).
    /// Default 1024. Samples closer together than [`Config::sample_bin_ms`] are pooled
    /// into one, so that the history spans a whole watch however dense the series.
    pub max_history: usize,
    /// Most log events kept per series for signature evidence. Default 20000.
    pub max_log_history: usize,
    /// Period of the daily pattern checked before a shift is blamed on a deploy, in
    /// seconds (default 86400; 0 turns the check off). Used only when the history holds
    /// the same clock time one period earlier.
    pub seasonal_period_secs: u64,
    /// How long a detected regression's verdict waits before it is emitted, gathering
    /// the log evidence of the minutes after the detection (`detected_at` is not
    /// changed). Unset means 0 for the engine, so a live server alerts at once;
    /// `watchdog replay` and the scenario runs use 300.
    pub evidence_grace_secs: Option<u64>,
    /// What a significant, brand-new error signature after a deploy does: `regression`
    /// (default) or `warning`.
    pub new_error_signature: SignaturePolicy,
    /// Per-metric overrides, by metric name.
    pub metrics: BTreeMap<String, MetricConfig>,
    /// How samples of two versions are compared (see [`crate::canary`]).
    pub canary: crate::canary::CanaryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            false_alarm_rate: 0.01,
            monitoring_window_secs: 1800,
            baseline_window_secs: 3600,
            min_baseline_samples: 12,
            target_baseline_samples: 60,
            max_baseline_window_secs: 604_800,
            min_watch_samples: 12,
            allowed_lateness_secs: 120,
            deploy_tolerance_secs: 600,
            attribution_window_secs: 1800,
            min_relative_effect: 0.10,
            design_shift_sigmas: 1.5,
            max_gap_intervals: 5.0,
            max_history: 1024,
            max_log_history: 20_000,
            seasonal_period_secs: 86_400,
            evidence_grace_secs: None,
            new_error_signature: SignaturePolicy::Regression,
            metrics: BTreeMap::new(),
            canary: crate::canary::CanaryConfig::default(),
        }
    }
}

/// Absolute effect floors of the known metrics, in their own units. Only `error_rate` has
/// one by default (half a percentage point): it is a fraction, so the floor does not depend
/// on anyone's choice of unit, and a rise from 0.1 % to 0.3 % is not worth a page.
fn default_min_absolute_effect(metric: &str) -> f64 {
    match metric {
        "error_rate" => 0.005,
        _ => 0.0,
    }
}

impl Config {
    /// Checks every value's range.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first field out of range and its value.
    pub fn validate(&self) -> Result<(), Error> {
        let in_open = |field: &str, v: f64, lo: f64, hi: f64| -> Result<(), Error> {
            if v.is_finite() && v > lo && v < hi {
                Ok(())
            } else {
                Err(Error::config(
                    field,
                    format!("must be between {lo} and {hi} (exclusive), got {v}"),
                ))
            }
        };
        in_open("false_alarm_rate", self.false_alarm_rate, 0.0, 0.5)?;
        in_open(
            "min_relative_effect",
            self.min_relative_effect,
            -1e-12,
            100.0,
        )?;
        in_open("design_shift_sigmas", self.design_shift_sigmas, 0.0, 20.0)?;
        in_open("max_gap_intervals", self.max_gap_intervals, 1.0, 1e6)?;
        // Durations become milliseconds in an i64 and are added to timestamps; ten years
        // is far beyond any watch or baseline and keeps that arithmetic exact.
        const MAX_SECS: u64 = 10 * 365 * 86_400;
        for (field, v) in [
            ("monitoring_window_secs", self.monitoring_window_secs),
            ("baseline_window_secs", self.baseline_window_secs),
            ("max_baseline_window_secs", self.max_baseline_window_secs),
            ("allowed_lateness_secs", self.allowed_lateness_secs),
            ("deploy_tolerance_secs", self.deploy_tolerance_secs),
            ("attribution_window_secs", self.attribution_window_secs),
            ("seasonal_period_secs", self.seasonal_period_secs),
            ("evidence_grace_secs", self.evidence_grace_secs.unwrap_or(0)),
        ] {
            if v > MAX_SECS {
                return Err(Error::config(
                    field,
                    format!("must be at most {MAX_SECS} (ten years), got {v}"),
                ));
            }
        }
        if self.monitoring_window_secs == 0 {
            return Err(Error::config(
                "monitoring_window_secs",
                "must be at least 1, got 0",
            ));
        }
        if self.baseline_window_secs == 0 {
            return Err(Error::config(
                "baseline_window_secs",
                "must be at least 1, got 0",
            ));
        }
        if self.min_baseline_samples < 3 {
            return Err(Error::config(
                "min_baseline_samples",
                format!("must be at least 3, got {}", self.min_baseline_samples),
            ));
        }
        if self.max_history < 16 {
            return Err(Error::config(
                "max_history",
                format!("must be at least 16, got {}", self.max_history),
            ));
        }
        if self.canary.min_pairs < 3 {
            return Err(Error::config(
                "canary.min_pairs",
                format!("must be at least 3, got {}", self.canary.min_pairs),
            ));
        }
        for (name, m) in &self.metrics {
            if let Some(v) = m.min_absolute_effect {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(Error::config(
                        format!("metrics.{name}.min_absolute_effect"),
                        format!("must be a finite number >= 0, got {v}"),
                    ));
                }
            }
            if let Some(v) = m.min_relative_effect {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(Error::config(
                        format!("metrics.{name}.min_relative_effect"),
                        format!("must be a finite number >= 0, got {v}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The harmful direction of `metric` after configuration.
    pub fn direction(&self, metric: &str) -> Direction {
        self.metrics
            .get(metric)
            .and_then(|m| m.direction)
            .unwrap_or_else(|| Direction::default_for(metric))
    }

    /// Width of the bins that samples of one series are pooled into (see
    /// `watch::History`), in milliseconds: the history's `2 × max_history` points then span
    /// the baseline window, the deploy tolerance and the monitoring window together (2.9 s
    /// with the defaults). A series sampled less often keeps every sample as it came.
    pub fn sample_bin_ms(&self) -> i64 {
        let span_ms = self
            .baseline_window_secs
            .saturating_add(self.deploy_tolerance_secs)
            .saturating_add(self.monitoring_window_secs)
            .saturating_mul(1000);
        let points = (self.max_history.max(16) as u64).saturating_mul(2);
        (span_ms / points).min(i64::MAX as u64) as i64
    }

    /// Whether `metric` is watched at all.
    pub fn watched(&self, metric: &str) -> bool {
        !self.metrics.get(metric).is_some_and(|m| m.ignore)
    }

    /// Absolute effect floor of `metric`, in its own unit.
    pub fn min_absolute_effect(&self, metric: &str) -> f64 {
        self.metrics
            .get(metric)
            .and_then(|m| m.min_absolute_effect)
            .unwrap_or_else(|| default_min_absolute_effect(metric))
    }

    /// Relative effect floor of `metric`.
    pub fn min_relative_effect(&self, metric: &str) -> f64 {
        self.metrics
            .get(metric)
            .and_then(|m| m.min_relative_effect)
            .unwrap_or(self.min_relative_effect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn out_of_range_names_field_and_value() {
        let c = Config {
            false_alarm_rate: 1.7,
            ..Config::default()
        };
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.contains("false_alarm_rate") && msg.contains("1.7"),
            "{msg}"
        );
    }

    #[test]
    fn durations_beyond_ten_years_are_refused_by_name() {
        let c = Config {
            monitoring_window_secs: 9_223_372_036_854_775,
            ..Config::default()
        };
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.contains("monitoring_window_secs") && msg.contains("9223372036854775"),
            "{msg}"
        );
    }

    #[test]
    fn directions_follow_names_and_overrides() {
        let mut c = Config::default();
        assert_eq!(c.direction("p99_latency_ms"), Direction::Up);
        assert_eq!(c.direction("request_rate"), Direction::Down);
        assert_eq!(c.direction("queue_depth"), Direction::Both);
        for (name, d) in [
            ("error_rate", Direction::Up),
            ("errors", Direction::Up),
            ("http_5xx_rate", Direction::Up),
            ("failed_requests", Direction::Up),
            ("Checkout.Latency.P99", Direction::Up),
            ("http_request_duration_seconds", Direction::Up),
            ("ops_latency_ms", Direction::Up),
            (
                "http_request_duration_seconds_count_per_sec",
                Direction::Down,
            ),
            ("requests", Direction::Down),
            ("http_requests_total", Direction::Down),
            ("requests_per_sec", Direction::Down),
            ("workload_ops", Direction::Down),
            ("success_rate", Direction::Down),
            ("request_size_bytes", Direction::Both),
            ("cpu_usage", Direction::Both),
            ("value", Direction::Both),
        ] {
            assert_eq!(c.direction(name), d, "{name}");
        }
        c.metrics.insert(
            "queue_depth".into(),
            MetricConfig {
                direction: Some(Direction::Up),
                ..MetricConfig::default()
            },
        );
        assert_eq!(c.direction("queue_depth"), Direction::Up);
    }
}
