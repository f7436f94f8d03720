//! Limits on what one client can make the server hold: name lengths, metrics per record,
//! and how many series (service and environment) and metric names exist at once. Every
//! record over a limit is refused on its own, naming the limit and its value; the rest of
//! its batch is kept.
//!
//! Series and metric names are admitted by a registry that remembers when each was last
//! seen (wall clock); one idle for `series_idle_secs` is forgotten, here and in the engine
//! ([`watchdog_core::Engine::evict_idle_series`]), so names that come and go (pod names
//! used as services) cannot grow memory without bound, while a steady set of series keeps
//! working at the cap.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;
use watchdog_core::{Deploy, LogEvent, Sample};

use crate::ingest::body::{Item, Rejection};

/// The limits, under `[limits]` in the config file (docs/config.md).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest `service`, `environment` and `deploy_id`, in bytes.
    pub max_label_bytes: usize,
    /// Longest metric name, in bytes.
    pub max_metric_name_bytes: usize,
    /// Most metrics in one record.
    pub max_metrics_per_record: usize,
    /// Most series (service and environment pairs) held at once.
    pub max_series: usize,
    /// Most environments of one service.
    pub max_series_per_service: usize,
    /// Most distinct metric names held at once.
    pub max_metric_names: usize,
    /// A series or metric name with no record for this long is forgotten.
    pub series_idle_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_label_bytes: 256,
            max_metric_name_bytes: 200,
            max_metrics_per_record: 100,
            max_series: 20_000,
            max_series_per_service: 100,
            max_metric_names: 2_000,
            // Two days: longer than the longest baseline the detector reaches back for
            // (a day by default) plus a watch.
            series_idle_secs: 2 * 86_400,
        }
    }
}

fn too_long(field: &str, value: &str, max: usize, key: &str) -> Option<(String, String)> {
    (value.len() > max).then(|| {
        (
            field.to_string(),
            format!(
                "is {} bytes long, more than {key} ({max}) allows",
                value.len()
            ),
        )
    })
}

impl Limits {
    fn labels(&self, service: &str, environment: &str) -> Option<(String, String)> {
        let max = self.max_label_bytes;
        too_long("service", service, max, "limits.max_label_bytes")
            .or_else(|| too_long("environment", environment, max, "limits.max_label_bytes"))
    }

    fn sample(&self, s: &Sample) -> Option<(String, String)> {
        if let Some(e) = self.labels(&s.service, &s.environment) {
            return Some(e);
        }
        if s.metrics.len() > self.max_metrics_per_record {
            return Some((
                "(record)".into(),
                format!(
                    "has {} metrics, more than limits.max_metrics_per_record ({}) allows",
                    s.metrics.len(),
                    self.max_metrics_per_record
                ),
            ));
        }
        s.metrics.iter().find_map(|(name, _)| {
            (name.len() > self.max_metric_name_bytes).then(|| {
                (
                    truncated(name),
                    format!(
                        "metric name is {} bytes long, more than limits.max_metric_name_bytes ({}) allows",
                        name.len(),
                        self.max_metric_name_bytes
                    ),
                )
            })
        })
    }

    fn deploy(&self, d: &Deploy) -> Option<(String, String)> {
        too_long(
            "deploy_id",
            &d.deploy_id,
            self.max_label_bytes,
            "limits.max_label_bytes",
        )
        .or_else(|| self.labels(&d.service, &d.environment))
    }
}

/// A field name fit to quote: the first 40 characters of a long one.
fn truncated(name: &str) -> String {
    if name.chars().count() <= 40 {
        name.to_string()
    } else {
        format!("{}…", name.chars().take(40).collect::<String>())
    }
}

fn split<T>(
    items: Vec<Item<T>>,
    mut check: impl FnMut(&T) -> Option<(String, String)>,
) -> (Vec<Item<T>>, Vec<Rejection>) {
    let mut rejected = Vec::new();
    let kept = items
        .into_iter()
        .filter(|item| match check(&item.record) {
            None => true,
            Some((field, error)) => {
                rejected.push(Rejection {
                    index: item.index,
                    line: item.line,
                    field,
                    error,
                });
                false
            }
        })
        .collect();
    (kept, rejected)
}

#[derive(Debug, Default)]
struct Registry {
    /// Service → environment → last seen (wall clock, ms). Nested so that a known series
    /// is found by `&str` without allocating.
    series: HashMap<String, HashMap<String, i64>>,
    /// Series held (pairs in `series`).
    count: usize,
    /// Metric name → last seen.
    metric_names: HashMap<String, i64>,
    /// When idle entries were last looked for.
    swept_ms: i64,
}

impl Registry {
    fn sweep(&mut self, now_ms: i64, idle_ms: i64) {
        let cutoff = now_ms - idle_ms;
        let mut count = 0;
        self.series.retain(|_, envs| {
            envs.retain(|_, seen| *seen >= cutoff);
            count += envs.len();
            !envs.is_empty()
        });
        self.count = count;
        self.metric_names.retain(|_, seen| *seen >= cutoff);
        self.swept_ms = now_ms;
    }
}

/// The registry of series and metric names admitted (see the module docs).
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    registry: Mutex<Registry>,
}

impl Admission {
    /// An empty registry enforcing `limits`.
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            registry: Mutex::new(Registry::default()),
        }
    }

    /// The limits enforced.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Series held now.
    pub fn series(&self) -> usize {
        self.lock().count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the series and metric names idle since before `now_ms - series_idle_secs`.
    pub fn sweep(&self, now_ms: i64) {
        self.lock()
            .sweep(now_ms, self.limits.series_idle_secs as i64 * 1000);
    }

    /// Refuses the samples over a limit, one rejection each, and admits the series and
    /// metric names of the rest.
    pub fn samples(
        &self,
        items: Vec<Item<Sample>>,
        now_ms: i64,
    ) -> (Vec<Item<Sample>>, Vec<Rejection>) {
        let (items, mut rejected) = split(items, |s| self.limits.sample(s));
        let mut reg = self.lock();
        let (kept, more) = split(items, |s| {
            self.admit(&mut reg, &s.service, &s.environment, now_ms)
                .or_else(|| self.admit_names(&mut reg, s, now_ms))
        });
        rejected.extend(more);
        (kept, rejected)
    }

    /// As [`Admission::samples`], for log events (their labels make series too).
    pub fn logs(
        &self,
        items: Vec<Item<LogEvent>>,
        now_ms: i64,
    ) -> (Vec<Item<LogEvent>>, Vec<Rejection>) {
        let mut reg = self.lock();
        split(items, |l| {
            self.limits
                .labels(&l.service, &l.environment)
                .or_else(|| self.admit(&mut reg, &l.service, &l.environment, now_ms))
        })
    }

    /// Refuses the deploys whose id or labels are too long.
    pub fn deploys(&self, items: Vec<Item<Deploy>>) -> (Vec<Item<Deploy>>, Vec<Rejection>) {
        split(items, |d| self.limits.deploy(d))
    }

    fn admit(
        &self,
        reg: &mut Registry,
        service: &str,
        environment: &str,
        now_ms: i64,
    ) -> Option<(String, String)> {
        // The common case, a known series, allocates nothing.
        if let Some(seen) = reg
            .series
            .get_mut(service)
            .and_then(|envs| envs.get_mut(environment))
        {
            *seen = now_ms;
            return None;
        }
        let idle_ms = self.limits.series_idle_secs as i64 * 1000;
        if reg.count >= self.limits.max_series && now_ms - reg.swept_ms >= 1000 {
            reg.sweep(now_ms, idle_ms);
        }
        if reg.count >= self.limits.max_series {
            return Some((
                "service".into(),
                format!(
                    "series {service:?}/{environment:?} is new and {} series are held, the most limits.max_series allows; labels should have few values (not pod or request ids), or raise the limit (idle series are forgotten after limits.series_idle_secs = {} s)",
                    reg.count,
                    self.limits.series_idle_secs
                ),
            ));
        }
        let n = reg.series.get(service).map_or(0, HashMap::len);
        if n >= self.limits.max_series_per_service {
            return Some((
                "environment".into(),
                format!(
                    "service {service:?} already has {n} environments, the most limits.max_series_per_service allows"
                ),
            ));
        }
        reg.series
            .entry(service.to_string())
            .or_default()
            .insert(environment.to_string(), now_ms);
        reg.count += 1;
        None
    }

    fn admit_names(&self, reg: &mut Registry, s: &Sample, now_ms: i64) -> Option<(String, String)> {
        let new = s
            .metrics
            .iter()
            .filter(|(n, _)| !reg.metric_names.contains_key(n))
            .count();
        if new > 0 && reg.metric_names.len() + new > self.limits.max_metric_names {
            let name = s
                .metrics
                .iter()
                .find(|(n, _)| !reg.metric_names.contains_key(n))
                .map(|(n, _)| truncated(n))
                .unwrap_or_default();
            return Some((
                name,
                format!(
                    "a new metric name, and {} are held, the most limits.max_metric_names allows",
                    reg.metric_names.len()
                ),
            ));
        }
        for (n, _) in &s.metrics {
            match reg.metric_names.get_mut(n) {
                Some(seen) => *seen = now_ms,
                None => {
                    reg.metric_names.insert(n.clone(), now_ms);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchdog_core::Timestamp;

    fn item(service: &str, metrics: &[&str], index: usize) -> Item<Sample> {
        Item {
            record: Sample {
                version: None,
                timestamp: Timestamp(0),
                service: service.into(),
                environment: "production".into(),
                metrics: metrics.iter().map(|m| (m.to_string(), 1.0)).collect(),
            },
            raw: String::new(),
            index,
            line: index + 1,
        }
    }

    #[test]
    fn long_names_and_wide_records_are_refused_with_the_limit_named() {
        let a = Admission::new(Limits::default());
        let long = "x".repeat(1 << 20);
        let wide: Vec<String> = (0..101).map(|i| format!("m{i}")).collect();
        let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
        let items = vec![
            item("checkout", &["error_rate"], 0),
            item(&long, &["error_rate"], 1),
            item("checkout", &[&long], 2),
            item("checkout", &wide, 3),
        ];
        let (kept, rejected) = a.samples(items, 0);
        assert_eq!(kept.len(), 1);
        let fields: Vec<&str> = rejected.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(fields[0], "service");
        assert!(
            rejected[0].error.contains("limits.max_label_bytes (256)"),
            "{}",
            rejected[0].error
        );
        assert!(
            fields[1].starts_with("xxxx") && fields[1].len() < 50,
            "{}",
            fields[1]
        );
        assert!(
            rejected[2].error.contains("max_metrics_per_record (100)"),
            "{}",
            rejected[2].error
        );
    }

    #[test]
    fn series_beyond_the_cap_are_refused_until_idle_ones_are_forgotten() {
        let limits = Limits {
            max_series: 100,
            series_idle_secs: 60,
            ..Limits::default()
        };
        let a = Admission::new(limits);
        let items: Vec<_> = (0..150)
            .map(|i| item(&format!("pod-{i}"), &["error_rate"], i))
            .collect();
        let (kept, rejected) = a.samples(items, 0);
        assert_eq!((kept.len(), rejected.len()), (100, 50));
        assert!(
            rejected[0].error.contains("limits.max_series"),
            "{}",
            rejected[0].error
        );
        // A known series keeps working at the cap.
        let (kept, _) = a.samples(vec![item("pod-3", &["error_rate"], 0)], 30_000);
        assert_eq!(kept.len(), 1);
        // A minute later the others are idle and new ones fit again.
        let items: Vec<_> = (0..150)
            .map(|i| item(&format!("job-{i}"), &["error_rate"], i))
            .collect();
        let (kept, _) = a.samples(items, 61_000);
        assert_eq!(kept.len(), 99, "pod-3 was seen 31 s ago and stays");
        assert_eq!(a.series(), 100);
    }

    #[test]
    fn environments_per_service_are_capped() {
        let a = Admission::new(Limits {
            max_series_per_service: 2,
            ..Limits::default()
        });
        let mut items: Vec<_> = (0..3)
            .map(|i| item("checkout", &["error_rate"], i))
            .collect();
        for (i, it) in items.iter_mut().enumerate() {
            it.record.environment = format!("env-{i}");
        }
        let (kept, rejected) = a.samples(items, 0);
        assert_eq!(kept.len(), 2);
        assert_eq!(rejected[0].field, "environment");
        assert!(
            rejected[0].error.contains("max_series_per_service"),
            "{}",
            rejected[0].error
        );
    }

    #[test]
    fn metric_names_are_capped_too() {
        let a = Admission::new(Limits {
            max_metric_names: 3,
            ..Limits::default()
        });
        let (kept, rejected) = a.samples(
            vec![
                item("a", &["m1", "m2"], 0),
                item("a", &["m1", "m3"], 1),
                item("a", &["m4"], 2),
                item("a", &["m2"], 3),
            ],
            0,
        );
        assert_eq!(kept.len(), 3);
        assert_eq!(rejected[0].field, "m4");
        assert!(
            rejected[0].error.contains("limits.max_metric_names"),
            "{}",
            rejected[0].error
        );
    }
}
