//! Turning a finished watch into a verdict: the evidence per metric, whether the watch
//! had the power to see the smallest material change, and the readable reason.

use super::test::CountModel;
use super::{joined, lower_bound, rate_summary, History, Phase, Test, Watch};
use crate::config::{Config, Direction};
use crate::stats::robust_location_scale;
use crate::time::Timestamp;
use crate::verdict::{
    CountEvidence, DeployVerdict, InconclusiveCause, MetricEvidence, MetricStatus, Summary,
    TestKind, VerdictKind, WatchEnd, WatchWindow,
};

impl Watch {
    /// Builds the verdict. `until_ms` is the last instant covered; `ended_by` why.
    pub fn verdict(
        &self,
        histories: &[History],
        cfg: &Config,
        until_ms: i64,
        ended_by: WatchEnd,
    ) -> DeployVerdict {
        let deploy = &self.deploy;
        let until_ms = until_ms.max(self.deploy_ms);
        let mut evidence: Vec<MetricEvidence> = Vec::new();
        let mut warnings = Vec::new();
        let mut underpowered: Vec<(String, Option<String>, InconclusiveCause)> = Vec::new();
        let mut pre_short: Vec<String> = Vec::new();
        let mut late: Vec<String> = Vec::new();
        let mut samples_after = 0usize;
        let mut first_fire: Option<(i64, usize)> = None;

        for (i, t) in self.tests.iter().enumerate() {
            samples_after = samples_after.max(t.n_post);
            if let Some((at, _)) = t.fired() {
                if first_fire.is_none_or(|(a, _)| at < a) {
                    first_fire = Some((at, i));
                }
            }
        }
        // One evidence row per metric: when a metric is tested both ways, the direction
        // that fired or came closest to its threshold speaks for it.
        let mut by_metric: Vec<usize> = Vec::new();
        for (i, t) in self.tests.iter().enumerate() {
            let closeness = |t: &Test| {
                if t.fired().is_some() {
                    f64::INFINITY
                } else {
                    t.cusum.max_s / t.design.h
                }
            };
            match by_metric.iter().position(|&j| {
                self.tests[j].metric == t.metric
                    && self.tests[j].requests_metric == t.requests_metric
            }) {
                Some(p) => {
                    if closeness(t) > closeness(&self.tests[by_metric[p]]) {
                        by_metric[p] = i;
                    }
                }
                None => by_metric.push(i),
            }
        }
        for &i in &by_metric {
            let t = &self.tests[i];
            let ev = self.evidence(t, histories, until_ms);
            match t.phase {
                Phase::PreExistingShort { start_ms } => pre_short.push(format!(
                    "{} shifted at {}, {} before the deploy, leaving too few samples to judge the deploy",
                    t.name,
                    Timestamp(start_ms),
                    human_secs((self.deploy_ms - start_ms) as f64 / 1000.0)
                )),
                Phase::Running => {
                    if let Some(from) = t.seasonal_note {
                        warnings.push(format!(
                            "{} moved from {} on, but it moved as much at the same time the day before (a daily pattern, not counted against the deploy)",
                            t.name,
                            Timestamp(from)
                        ));
                    }
                    if let Some(from) = t.pre_existing_from {
                        warnings.push(format!(
                            "{} was already shifting since {} ({} before the deploy); the deploy was judged against the level after that shift",
                            t.name,
                            Timestamp(from),
                            human_secs((self.deploy_ms - from) as f64 / 1000.0)
                        ));
                    }
                    if let Some(need) = self.power_gap(t, histories, cfg, until_ms) {
                        underpowered.push(need);
                    }
                }
                Phase::Late { start_ms, .. } => late.push(format!(
                    "{} from {}, {} after the deploy",
                    describe_shift(&ev),
                    Timestamp(start_ms),
                    human_secs((start_ms - self.deploy_ms) as f64 / 1000.0)
                )),
                Phase::Fired { .. } => {}
            }
            evidence.push(ev);
        }
        evidence.sort_by_key(|e| match e.status {
            MetricStatus::Regressed => 0,
            MetricStatus::PreExisting => 1,
            MetricStatus::LateChange => 2,
            MetricStatus::Undecided => 3,
            MetricStatus::Insufficient => 4,
            MetricStatus::Ok => 5,
        });
        if !self.short_baseline.is_empty() && !self.tests.is_empty() {
            warnings.push(format!(
                "not tested for lack of baseline: {}",
                self.short_baseline.join(", ")
            ));
        }

        let window = WatchWindow {
            baseline_from: self.baseline_from.map(Timestamp),
            baseline_samples: self.baseline_samples,
            watched_until: Timestamp(until_ms),
            watched_secs: (until_ms - self.deploy_ms) as f64 / 1000.0,
            samples_after,
            ended_by,
        };
        let mut v = DeployVerdict {
            deploy_id: deploy.deploy_id.clone(),
            service: deploy.service.clone(),
            environment: deploy.environment.clone(),
            deployed_at: deploy.timestamp,
            verdict: VerdictKind::Healthy,
            detected_at: None,
            reason: String::new(),
            inconclusive_cause: None,
            needed: None,
            window,
            evidence,
            signatures: Vec::new(),
            warnings,
            false_alarm_rate: cfg.false_alarm_rate,
            canary: None,
        };

        if let Some((at, _)) = first_fire {
            v.verdict = VerdictKind::Regression;
            v.detected_at = Some(Timestamp(at));
            let parts: Vec<String> = v.regressed().map(describe_shift).collect();
            v.reason = format!(
                "{}; detected {} after the deploy",
                parts.join("; "),
                human_secs((at - self.deploy_ms) as f64 / 1000.0)
            );
            return v;
        }
        if self.tests.is_empty() {
            v.verdict = VerdictKind::Inconclusive;
            if self.short_baseline.is_empty() {
                v.inconclusive_cause = Some(InconclusiveCause::NoData);
                v.reason = "no metric samples for this service and environment".into();
                v.needed = Some("send metrics for the deployed service (or check the service and environment names)".into());
            } else {
                v.inconclusive_cause = Some(InconclusiveCause::ShortBaseline);
                v.reason = format!(
                    "baseline too short: fewer than {} samples in the {} before the deploy ({})",
                    cfg.min_baseline_samples,
                    human_secs(cfg.max_baseline_window_secs.max(cfg.baseline_window_secs) as f64),
                    self.short_baseline.join(", ")
                );
                v.needed = Some(format!(
                    "at least {} samples of each metric in the {} before a deploy",
                    cfg.min_baseline_samples,
                    human_secs(cfg.max_baseline_window_secs.max(cfg.baseline_window_secs) as f64)
                ));
            }
            return v;
        }
        if !pre_short.is_empty() {
            v.verdict = VerdictKind::Inconclusive;
            v.inconclusive_cause = Some(InconclusiveCause::PreExistingShift);
            v.reason = format!("pre-existing shift: {}", pre_short.join("; "));
            v.needed = Some(format!(
                "at least {} samples at the shifted level before the deploy, or a deploy once the service is stable",
                cfg.min_baseline_samples
            ));
            return v;
        }
        if !late.is_empty() {
            v.verdict = VerdictKind::Inconclusive;
            v.inconclusive_cause = Some(InconclusiveCause::LateChange);
            v.reason = format!(
                "a change began too long after the deploy to be taken as its doing (more than {}): {}",
                human_secs(cfg.attribution_window_secs as f64),
                late.join("; ")
            );
            v.needed = Some(
                "what else changed when the shift began (traffic, a dependency, another deploy); a longer-lasting effect of this deploy would have shown within the attribution window".into(),
            );
            return v;
        }
        if !underpowered.is_empty() {
            // Missing samples first (the pipeline is to blame), then too little traffic,
            // then a baseline too unsteady for any test to see the smallest change.
            let cause = [
                InconclusiveCause::Gaps,
                InconclusiveCause::LowTraffic,
                InconclusiveCause::UnsteadyBaseline,
            ]
            .into_iter()
            .find(|c| underpowered.iter().any(|u| u.2 == *c))
            .unwrap_or(InconclusiveCause::LowTraffic);
            v.verdict = VerdictKind::Inconclusive;
            v.inconclusive_cause = Some(cause);
            v.reason = underpowered
                .iter()
                .map(|u| u.0.clone())
                .collect::<Vec<_>>()
                .join("; ");
            let needs: Vec<String> = underpowered.iter().filter_map(|u| u.1.clone()).collect();
            v.needed = (!needs.is_empty()).then(|| needs.join("; "));
            return v;
        }
        let tested: Vec<String> = v
            .evidence
            .iter()
            .map(|e| {
                format!(
                    "{} (would have seen a change of {})",
                    e.metric,
                    crate::explain::format_value(
                        &e.metric,
                        e.min_effect
                            .max(e.baseline.spread * cfg.design_shift_sigmas)
                    )
                )
            })
            .collect();
        v.reason = format!(
            "no material change in {} over {} after the deploy",
            tested.join(", "),
            human_secs(v.window.watched_secs)
        );
        v
    }

    /// When a test has not seen enough after the deploy to find the smallest material
    /// shift: (what is missing, what would decide it, whether samples are missing).
    fn power_gap(
        &self,
        t: &Test,
        histories: &[History],
        cfg: &Config,
        until_ms: i64,
    ) -> Option<(String, Option<String>, InconclusiveCause)> {
        let elapsed_ms = (until_ms - self.deploy_ms).max(0) as f64;
        let expected = elapsed_ms / t.base.cadence_ms;
        // Missing samples, rather than a short watch, are to blame when half of the
        // expected samples are missing or one hole spans more than `max_gap_intervals`
        // typical intervals.
        let h = &histories[t.metric];
        let (lo, hi) = (lower_bound(h, self.deploy_ms), lower_bound(h, until_ms + 1));
        let mut last = self.deploy_ms;
        let mut longest = 0i64;
        for &(ts, _) in h.range(lo..hi) {
            longest = longest.max(ts - last);
            last = ts;
        }
        longest = longest.max(until_ms - last);
        let gappy = (t.n_post as f64) < 0.5 * expected.floor()
            || longest as f64 > cfg.max_gap_intervals * t.base.cadence_ms;
        if let Some(d) = t.counts().map(|c| c.design) {
            let need = d.requests_needed();
            if t.requests_post < need {
                return Some((
                    format!(
                        "too little traffic to judge the error rate: {} requests after the deploy, about {} needed to detect a rise from {} to {}",
                        fmt_count(t.requests_post),
                        fmt_count(need),
                        fmt_pct(d.p0),
                        fmt_pct(d.p1)
                    ),
                    Some(format!("about {} more requests after the deploy", fmt_count(need - t.requests_post))),
                    if gappy {
                        InconclusiveCause::Gaps
                    } else {
                        InconclusiveCause::LowTraffic
                    },
                ));
            }
            return None;
        }
        let (shift, need) = t.samples_needed();
        if need.is_some_and(|n| t.n_post as f64 >= n) {
            return None;
        }
        let what = if gappy {
            format!(
                "gaps in {}: {} samples after the deploy where about {} were expected",
                t.name,
                t.n_post,
                expected.floor()
            )
        } else {
            match need {
                Some(need) => format!(
                    "too few samples of {} after the deploy: {} of the {} needed to detect a shift of {}",
                    t.name,
                    t.n_post,
                    need,
                    fmt_num(shift)
                ),
                None => format!(
                    "{} wanders too much before the deploy (lag-1 autocorrelation {:.2}) to tell a shift of {} from its own drift",
                    t.name,
                    t.base.rho,
                    fmt_num(shift)
                ),
            }
        };
        let decide = match need {
            Some(need) => {
                let more = need - t.n_post as f64;
                format!(
                    "{} more samples of {} (about {} at the usual rate)",
                    more,
                    t.name,
                    human_secs(more * t.base.cadence_ms / 1000.0)
                )
            }
            None => match t.baseline_needed() {
                // The figure that would decide: how long a baseline, at this
                // stickiness, lets the sustained test see the shift through the wander;
                // beyond what a metric's history keeps, only a steadier signal will.
                Some(n) if n > cfg.max_history => format!(
                    "a steadier signal than {}: at this stickiness the sustained test would need a baseline of more than the {} samples a metric's history keeps (`max_history`)",
                    t.name, cfg.max_history
                ),
                Some(n) => {
                    let secs = n as f64 * t.base.cadence_ms / 1000.0;
                    let reach = if secs > cfg.max_baseline_window_secs as f64 {
                        format!(
                            ", beyond the {} a baseline may reach back: `max_baseline_window_secs`",
                            human_secs(cfg.max_baseline_window_secs as f64)
                        )
                    } else {
                        ": `baseline_window_secs` and `target_baseline_samples`".to_string()
                    };
                    format!(
                        "a baseline of at least {n} samples of {} before the deploy ({} now; about {} at the usual rate{reach}), or a steadier one",
                        t.name,
                        t.base.n,
                        human_secs(secs)
                    )
                }
                None => format!(
                    "a longer or steadier baseline of {} before the deploy",
                    t.name
                ),
            },
        };
        let cause = if gappy {
            InconclusiveCause::Gaps
        } else if need.is_none() {
            InconclusiveCause::UnsteadyBaseline
        } else {
            InconclusiveCause::LowTraffic
        };
        Some((what, Some(decide), cause))
    }

    fn evidence(&self, t: &Test, histories: &[History], until_ms: i64) -> MetricEvidence {
        let fired = t.fired();
        let (obs_from, obs_until) = match (fired, t.phase) {
            (Some((at, start)), _) => (start, at + 1),
            (None, Phase::Late { at_ms, start_ms }) => (start_ms, at_ms + 1),
            (None, _) => (self.deploy_ms, until_ms + 1),
        };
        // A local-level decision measured the change from the level just before the
        // deploy, so that is the "before" of its evidence.
        // With a short cycle in the baseline, both sides are read off the cycle: the level
        // without its offset at the deploy, the samples with theirs removed (the note
        // says so), so that "from" and "to" compare like with like.
        let cycle = |ts: i64| t.base.season.as_ref().map_or(0.0, |s| s.at(ts));
        let level = t.base.level_at(self.deploy_ms) + t.level_local.map_or(0.0, |r| t.sign * r);
        let (observed, counts) = match t.counts() {
            Some(&CountModel {
                design: d,
                base: (be, br),
            }) => {
                let pairs = joined(
                    &histories[t.metric],
                    &histories[t.requests_metric.unwrap_or(t.metric)],
                    obs_from,
                    obs_until,
                );
                let (oe, or): (f64, f64) =
                    pairs.iter().fold((0.0, 0.0), |a, p| (a.0 + p.1, a.1 + p.2));
                let mut s = rate_summary(&pairs);
                if or > 0.0 {
                    s.mean = oe / or;
                }
                (
                    s,
                    Some(CountEvidence {
                        baseline_errors: be,
                        baseline_requests: br,
                        observed_errors: oe,
                        observed_requests: or,
                        requests_needed: d.requests_needed(),
                        overdispersion: d.phi,
                    }),
                )
            }
            _ => {
                let h = &histories[t.metric];
                let vals: Vec<f64> = h
                    .range(lower_bound(h, obs_from)..lower_bound(h, obs_until))
                    .map(|p| p.1 - cycle(p.0))
                    .collect();
                (summarize(&vals), None)
            }
        };
        // As documented on `MetricEvidence`: the observed mean against the baseline's
        // expected level at the deploy (trend-adjusted), so that every reader computes
        // "before" the same way (`observed.mean - effect_absolute`).
        let effect = observed.mean - level;
        let status = match t.phase {
            Phase::Fired { .. } => MetricStatus::Regressed,
            Phase::PreExistingShort { .. } => MetricStatus::PreExisting,
            Phase::Late { .. } => MetricStatus::LateChange,
            Phase::Running if observed.n == 0 => MetricStatus::Insufficient,
            // The watch stops at the first regression; a test still running then has
            // not found its metric unchanged, so it must not read as "ok".
            Phase::Running if self.fired() => MetricStatus::Undecided,
            Phase::Running => MetricStatus::Ok,
        };
        let noise = match t.values() {
            Some(v) => v.noise,
            None => t.base.summary.spread.max(1e-12),
        };
        MetricEvidence {
            metric: t.name.clone(),
            direction: if t.direction == Direction::Both {
                Direction::Both
            } else if t.sign > 0.0 {
                Direction::Up
            } else {
                Direction::Down
            },
            status,
            test: if t.counts().is_some() {
                TestKind::BinomialCusum
            } else if t.tail_hit.is_some() {
                TestKind::TailExceedance
            } else if t.level_local.is_some() {
                TestKind::LocalLevel
            } else if t.level_hit.is_some() {
                TestKind::LevelShift
            } else {
                TestKind::Cusum
            },
            baseline: Summary {
                median: if t.counts().is_some() {
                    t.base.level
                } else {
                    t.base.summary.median
                },
                ..t.base.summary
            },
            observed,
            effect_absolute: effect,
            effect_relative: (level.abs() > 1e-12).then(|| effect / level.abs()),
            effect_sigmas: effect / noise,
            min_effect: t.min_effect,
            change_started_at: match t.phase {
                Phase::Fired { start_ms, .. } => Some(Timestamp(start_ms)),
                Phase::PreExistingShort { start_ms } | Phase::Late { start_ms, .. } => {
                    Some(Timestamp(start_ms))
                }
                Phase::Running => t.pre_existing_from.map(Timestamp),
            },
            detected_at: fired.map(|f| Timestamp(f.0)),
            statistic: t.tail_hit.or(t.level_hit).map_or(t.cusum.max_s, |h| h.0),
            threshold: t.tail_hit.or(t.level_hit).map_or_else(
                || {
                    if fired.is_some() {
                        t.design.threshold_at(t.n_post)
                    } else {
                        t.design.h
                    }
                },
                |h| h.1,
            ),
            autocorrelation: t.base.rho,
            counts,
            note: join_notes(
                t.base.season.as_ref().map(|s| {
                    let (lo, hi) = s
                        .profile
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                            (lo.min(v), hi.max(v))
                        });
                    format!(
                        "the baseline repeats every {} samples (a swing of {}); each sample is judged against the same point of that cycle, and the figures are taken off it",
                        s.period(),
                        fmt_num(hi - lo)
                    )
                }),
                match (t.level_local, t.pre_existing_from) {
                (Some(_), Some(f)) => Some(format!(
                    "a shift began at {} before the deploy; judged against the level just before the deploy",
                    Timestamp(f)
                )),
                (Some(_), None) => Some(
                    "the series wanders; judged against the level just before the deploy, not the baseline's median"
                        .into(),
                ),
                (None, f) => f.map(|f| format!("re-based after a shift that began at {}", Timestamp(f))),
            }),
        }
    }
}

/// Two optional sentences as one note.
fn join_notes(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{b}; {a}")),
        (a, b) => a.or(b),
    }
}

pub(super) fn summarize(vals: &[f64]) -> Summary {
    if vals.is_empty() {
        return Summary::default();
    }
    let (median, spread) = robust_location_scale(vals);
    Summary {
        n: vals.len(),
        median,
        mean: vals.iter().sum::<f64>() / vals.len() as f64,
        spread: if spread.is_nan() { 0.0 } else { spread },
    }
}

fn describe_shift(e: &MetricEvidence) -> String {
    let to = e.observed.mean;
    let from = to - e.effect_absolute;
    let verb = if e.effect_absolute >= 0.0 {
        "rose"
    } else {
        "fell"
    };
    let rel = e
        .effect_relative
        .map(|r| format!(" ({:+.0}%)", r * 100.0))
        .unwrap_or_default();
    // Units as a reader expects them (`1.2%`, `250 ms`), from the explanation module,
    // so the reason and the explanation print the same figures.
    format!(
        "{} {verb} from {} to {}{rel}",
        e.metric,
        crate::explain::format_value(&e.metric, from),
        crate::explain::format_value(&e.metric, to)
    )
}

/// A number with about four significant digits, no exponent for everyday magnitudes.
pub(crate) fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-4..1e6).contains(&a) {
        format!("{x:.3e}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

fn fmt_pct(p: f64) -> String {
    if p < 0.001 {
        format!("{:.3}%", p * 100.0)
    } else {
        format!("{:.2}%", p * 100.0)
    }
}

fn fmt_count(x: f64) -> String {
    let n = x.max(0.0).round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as `45 s`, `12 min`, `2.5 h`.
pub(crate) fn human_secs(secs: f64) -> String {
    let s = secs.abs();
    if s < 120.0 {
        format!("{:.0} s", secs)
    } else if s < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}
