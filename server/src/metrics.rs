//! Prometheus counters, written by hand: a few atomics and one latency histogram.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the request latency buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every counter the server exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Samples accepted.
    pub samples: AtomicU64,
    /// Samples accepted later than the engine's watermark.
    pub late_samples: AtomicU64,
    /// Log events accepted.
    pub logs: AtomicU64,
    /// Samples and log events deleted by retention.
    pub pruned: [AtomicU64; 2],
    /// Deploys accepted (new ones).
    pub deploys: AtomicU64,
    /// Items rejected by validation.
    pub rejected: AtomicU64,
    /// Verdicts recorded: regression, healthy, inconclusive.
    pub verdicts: [AtomicU64; 3],
    /// Incidents opened.
    pub incidents: AtomicU64,
    /// Alert deliveries: delivered, retried, failed for good.
    pub alerts: [AtomicU64; 3],
    latency_buckets: [AtomicU64; 13],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    /// Records one request's latency.
    pub fn observe_request(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, &b) in BUCKETS.iter().enumerate() {
            if secs <= b {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts a verdict by its kind.
    pub fn verdict(&self, kind: watchdog_core::VerdictKind) {
        let i = match kind {
            watchdog_core::VerdictKind::Regression => 0,
            watchdog_core::VerdictKind::Healthy => 1,
            watchdog_core::VerdictKind::Inconclusive => 2,
        };
        self.verdicts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with the engine's gauges.
    pub fn render(&self, engine: Option<watchdog_core::EngineStats>) -> String {
        let active_watches = engine.map(|e| e.active_watches);
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, rows: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        counter(
            "watchdog_samples_ingested_total",
            "Metric samples accepted and stored.",
            &[("", g(&self.samples))],
        );
        counter(
            "watchdog_samples_late_total",
            "Samples accepted after the watermark had passed them (allowed_lateness_secs): stored and used for baselines and running watches, too late for verdicts already given.",
            &[("", g(&self.late_samples))],
        );
        counter(
            "watchdog_logs_ingested_total",
            "Log events accepted and stored.",
            &[("", g(&self.logs))],
        );
        counter(
            "watchdog_deploys_ingested_total",
            "New deploys accepted and stored.",
            &[("", g(&self.deploys))],
        );
        counter(
            "watchdog_records_pruned_total",
            "Records deleted by retention (retention_secs), by kind.",
            &[
                ("{kind=\"sample\"}", g(&self.pruned[0])),
                ("{kind=\"log\"}", g(&self.pruned[1])),
            ],
        );
        counter(
            "watchdog_items_rejected_total",
            "Ingested items rejected by validation.",
            &[("", g(&self.rejected))],
        );
        counter(
            "watchdog_verdicts_total",
            "Verdicts recorded, by kind.",
            &[
                ("{verdict=\"regression\"}", g(&self.verdicts[0])),
                ("{verdict=\"healthy\"}", g(&self.verdicts[1])),
                ("{verdict=\"inconclusive\"}", g(&self.verdicts[2])),
            ],
        );
        counter(
            "watchdog_incidents_opened_total",
            "Incidents opened.",
            &[("", g(&self.incidents))],
        );
        counter(
            "watchdog_alert_deliveries_total",
            "Alert delivery attempts, by outcome.",
            &[
                ("{outcome=\"delivered\"}", g(&self.alerts[0])),
                ("{outcome=\"retry\"}", g(&self.alerts[1])),
                ("{outcome=\"failed\"}", g(&self.alerts[2])),
            ],
        );
        if let Some(e) = engine {
            counter(
                "watchdog_samples_late_after_verdict_total",
                "Late samples that fell in the baseline or window of a deploy already judged (too late for that verdict).",
                &[("", e.late_after_verdict)],
            );
            counter(
                "watchdog_series_evicted_total",
                "Idle series forgotten by the engine (limits.series_idle_secs).",
                &[("", e.evicted_series)],
            );
            let _ = writeln!(
                out,
                "# HELP watchdog_series Series the engine holds now.\n# TYPE watchdog_series gauge\nwatchdog_series {}\n# HELP watchdog_engine_points Metric points the engine holds now, over every series.\n# TYPE watchdog_engine_points gauge\nwatchdog_engine_points {}",
                e.series, e.points
            );
        }
        if let Some(n) = active_watches {
            let _ = writeln!(
                out,
                "# HELP watchdog_active_watches Deploys being watched now.\n# TYPE watchdog_active_watches gauge\nwatchdog_active_watches {n}"
            );
        }
        let name = "watchdog_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP request latency (server-sent event streams excluded).\n# TYPE {name} histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                g(&self.latency_buckets[i])
            );
        }
        let count = g(&self.latency_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", g(&self.latency_sum_us) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}
