//! The previous point of every cumulative OTLP series, and how a new point is turned
//! into the interval's value (the rules are in [`super::metrics`]): differencing,
//! restarts, first points, stale repeats, and exponential histograms whose scale went
//! down. Rolled back when the interval's data could not be stored, so that the client's
//! retry is differenced against the same references again.

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets as ExpSide;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint,
};

/// A first cumulative point spanning at most this long (10 minutes) is used whole.
pub const FIRST_SPAN_NS: u64 = 600 * 1_000_000_000;

/// Series not updated for this long (event time) are forgotten when memory is tight.
const FORGET_NS: u64 = 3600 * 1_000_000_000;

/// Most series remembered before old ones are dropped.
const MAX_SERIES: usize = 200_000;

#[derive(Clone, Debug)]
pub(super) enum PrevValue {
    /// An exponential histogram: its scale, zero count, counts by bucket index, count.
    Exp {
        scale: i32,
        zero: u64,
        buckets: BTreeMap<i32, u64>,
        count: u64,
    },
    Hist {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        count: u64,
    },
    Num(f64),
}

#[derive(Clone, Debug)]
pub(super) struct Prev {
    start_ns: u64,
    time_ns: u64,
    value: PrevValue,
}

/// The previous point of every cumulative series, for differencing.
#[derive(Debug, Default)]
pub struct MetricState {
    pub(super) prev: HashMap<u64, Prev>,
    pub(super) newest_ns: u64,
    /// What the current conversion changed: (series, before, the time it set).
    pub(super) journal: Vec<(u64, Option<Prev>, u64)>,
}

/// How to undo one conversion's changes to a [`MetricState`].
#[derive(Debug, Default)]
pub struct Undo(pub(super) Vec<(u64, Option<Prev>, u64)>);

impl MetricState {
    fn set(&mut self, key: u64, p: Prev) {
        let time = p.time_ns;
        let before = self.prev.insert(key, p);
        self.journal.push((key, before, time));
    }

    /// Puts back what a conversion changed, when its data could not be stored, so that
    /// the client's retry is differenced against the same references again. A series that
    /// another request has moved on since is left alone.
    pub fn rollback(&mut self, undo: Undo) {
        for (key, before, time) in undo.0.into_iter().rev() {
            if self.prev.get(&key).is_some_and(|p| p.time_ns == time) {
                match before {
                    Some(b) => self.prev.insert(key, b),
                    None => self.prev.remove(&key),
                };
            }
        }
    }

    pub(super) fn forget_old(&mut self) {
        if self.prev.len() <= MAX_SERIES {
            return;
        }
        let cutoff = self.newest_ns.saturating_sub(FORGET_NS);
        self.prev.retain(|_, p| p.time_ns >= cutoff);
        if self.prev.len() > MAX_SERIES {
            self.prev.clear();
        }
    }
}

/// How one point moves its series forward.
pub(super) enum Step<T> {
    /// The interval's value, over `interval_ns` when known.
    Use { value: T, interval_ns: Option<u64> },
    /// Nothing usable (a reference point, or a stale or repeated one).
    Skip,
}

pub(super) fn interval(start_ns: u64, time_ns: u64) -> Option<u64> {
    (start_ns > 0 && start_ns < time_ns).then(|| time_ns - start_ns)
}

/// An exponential histogram point's positive buckets by index (bucket `i` holds values in
/// `(base^i, base^(i+1)]`, `base = 2^(2^-scale)`), or `None` when its counts do not add
/// up. Negative values (not a duration) only count.
pub(super) fn exp_buckets(
    p: &ExponentialHistogramDataPoint,
) -> Option<(i32, u64, BTreeMap<i32, u64>)> {
    if !(-10..=20).contains(&p.scale) {
        return None;
    }
    let side = |b: &Option<ExpSide>| {
        b.as_ref()
            .map_or(0, |b| b.bucket_counts.iter().sum::<u64>())
    };
    if p.zero_count + side(&p.positive) + side(&p.negative) != p.count {
        return None;
    }
    let mut out = BTreeMap::new();
    if let Some(b) = &p.positive {
        for (k, c) in b.bucket_counts.iter().enumerate() {
            if *c > 0 {
                out.insert(b.offset.saturating_add(k as i32), *c);
            }
        }
    }
    Some((p.scale, p.zero_count, out))
}

/// Counts by index at `from` scale, re-indexed to the coarser scale `to`: each step down
/// in scale merges pairs of neighbouring buckets (index `i` becomes `i >> 1`, a floor).
fn downscale(buckets: &BTreeMap<i32, u64>, from: i32, to: i32) -> BTreeMap<i32, u64> {
    let shift = (from - to).clamp(0, 31);
    let mut out = BTreeMap::new();
    for (i, c) in buckets {
        *out.entry(i >> shift).or_insert(0) += c;
    }
    out
}

/// Zero count, counts by index, count.
pub(super) type ExpValue = (u64, BTreeMap<i32, u64>, u64);

/// As [`hist_step`] for exponential histograms. An SDK may lower a cumulative series'
/// scale as its range grows; the previous counts are then merged down to the new scale
/// before differencing.
pub(super) fn exp_step(
    state: &mut MetricState,
    key: u64,
    p: &ExponentialHistogramDataPoint,
    now: (i32, u64, BTreeMap<i32, u64>),
    cumulative: bool,
) -> Step<ExpValue> {
    let (scale, zero, buckets) = now;
    let prev = state.prev.get(&key).cloned();
    if cumulative && prev.as_ref().is_some_and(|q| p.time_unix_nano <= q.time_ns) {
        return Step::Skip;
    }
    state.set(
        key,
        Prev {
            start_ns: p.start_time_unix_nano,
            time_ns: p.time_unix_nano,
            value: PrevValue::Exp {
                scale,
                zero,
                buckets: buckets.clone(),
                count: p.count,
            },
        },
    );
    let whole = (zero, buckets.clone(), p.count);
    if !cumulative {
        let interval_ns = interval(p.start_time_unix_nano, p.time_unix_nano).or_else(|| {
            prev.as_ref()
                .filter(|q| q.time_ns < p.time_unix_nano)
                .map(|q| p.time_unix_nano - q.time_ns)
        });
        return Step::Use {
            value: whole,
            interval_ns,
        };
    }
    let Some(q) = prev else {
        return match interval(p.start_time_unix_nano, p.time_unix_nano) {
            Some(ns) if ns <= FIRST_SPAN_NS => Step::Use {
                value: whole,
                interval_ns: Some(ns),
            },
            _ => Step::Skip,
        };
    };
    let PrevValue::Exp {
        scale: s0,
        zero: z0,
        buckets: b0,
        count: c0,
    } = q.value
    else {
        return Step::Skip;
    };
    let restart_ns = interval(p.start_time_unix_nano, p.time_unix_nano)
        .filter(|_| p.start_time_unix_nano >= q.time_ns)
        .unwrap_or(p.time_unix_nano - q.time_ns);
    let restart = Step::Use {
        value: whole,
        interval_ns: Some(restart_ns),
    };
    if (p.start_time_unix_nano != 0 && p.start_time_unix_nano != q.start_ns)
        || p.count < c0
        || zero < z0
    {
        return restart;
    }
    if scale > s0 {
        // A finer scale than before only happens with a restart we could not see.
        return Step::Skip;
    }
    let before = downscale(&b0, s0, scale);
    let mut delta = BTreeMap::new();
    for (i, b) in &before {
        let c = buckets.get(i).copied().unwrap_or(0);
        if c < *b {
            return restart;
        }
    }
    for (i, c) in &buckets {
        let b = before.get(i).copied().unwrap_or(0);
        if *c > b {
            delta.insert(*i, c - b);
        }
    }
    Step::Use {
        value: (zero - z0, delta, p.count - c0),
        interval_ns: Some(p.time_unix_nano - q.time_ns),
    }
}

pub(super) fn hist_step(
    state: &mut MetricState,
    key: u64,
    p: &HistogramDataPoint,
    cumulative: bool,
) -> Step<(Vec<u64>, u64)> {
    let whole = (p.bucket_counts.clone(), p.count);
    let prev = state.prev.get(&key).cloned();
    let remember = |state: &mut MetricState| {
        state.set(
            key,
            Prev {
                start_ns: p.start_time_unix_nano,
                time_ns: p.time_unix_nano,
                value: PrevValue::Hist {
                    bounds: p.explicit_bounds.clone(),
                    counts: p.bucket_counts.clone(),
                    count: p.count,
                },
            },
        );
    };
    if !cumulative {
        let interval_ns = interval(p.start_time_unix_nano, p.time_unix_nano).or_else(|| {
            prev.as_ref()
                .filter(|q| q.time_ns < p.time_unix_nano)
                .map(|q| p.time_unix_nano - q.time_ns)
        });
        remember(state);
        return Step::Use {
            value: whole,
            interval_ns,
        };
    }
    let step = match &prev {
        None => match interval(p.start_time_unix_nano, p.time_unix_nano) {
            Some(ns) if ns <= FIRST_SPAN_NS => Step::Use {
                value: whole,
                interval_ns: Some(ns),
            },
            _ => Step::Skip,
        },
        Some(q) if p.time_unix_nano <= q.time_ns => return Step::Skip,
        Some(q) => {
            let PrevValue::Hist {
                bounds,
                counts,
                count,
            } = &q.value
            else {
                remember(state);
                return Step::Skip;
            };
            let restarted = (p.start_time_unix_nano != 0 && p.start_time_unix_nano != q.start_ns)
                || p.count < *count
                || (bounds == &p.explicit_bounds
                    && counts.len() == p.bucket_counts.len()
                    && counts.iter().zip(&p.bucket_counts).any(|(a, b)| b < a));
            if restarted {
                let ns = interval(p.start_time_unix_nano, p.time_unix_nano)
                    .filter(|_| p.start_time_unix_nano >= q.time_ns)
                    .unwrap_or(p.time_unix_nano - q.time_ns);
                Step::Use {
                    value: whole,
                    interval_ns: Some(ns),
                }
            } else if bounds != &p.explicit_bounds || counts.len() != p.bucket_counts.len() {
                // New buckets without a restart cannot be differenced: start again.
                Step::Skip
            } else {
                let delta = p
                    .bucket_counts
                    .iter()
                    .zip(counts)
                    .map(|(b, a)| b - a)
                    .collect();
                Step::Use {
                    value: (delta, p.count - count),
                    interval_ns: Some(p.time_unix_nano - q.time_ns),
                }
            }
        }
    };
    remember(state);
    step
}

pub(super) fn counter_step(
    state: &mut MetricState,
    key: u64,
    p: &NumberDataPoint,
    v: f64,
    cumulative: bool,
) -> Step<f64> {
    let prev = state.prev.get(&key).cloned();
    if prev
        .as_ref()
        .is_some_and(|q| cumulative && p.time_unix_nano <= q.time_ns)
    {
        return Step::Skip;
    }
    state.set(
        key,
        Prev {
            start_ns: p.start_time_unix_nano,
            time_ns: p.time_unix_nano,
            value: PrevValue::Num(v),
        },
    );
    if !cumulative {
        let interval_ns = interval(p.start_time_unix_nano, p.time_unix_nano).or_else(|| {
            prev.as_ref()
                .filter(|q| q.time_ns < p.time_unix_nano)
                .map(|q| p.time_unix_nano - q.time_ns)
        });
        return Step::Use {
            value: v,
            interval_ns,
        };
    }
    match prev {
        None => match interval(p.start_time_unix_nano, p.time_unix_nano) {
            Some(ns) if ns <= FIRST_SPAN_NS => Step::Use {
                value: v,
                interval_ns: Some(ns),
            },
            _ => Step::Skip,
        },
        Some(q) => {
            let PrevValue::Num(before) = q.value else {
                return Step::Skip;
            };
            let restarted =
                (p.start_time_unix_nano != 0 && p.start_time_unix_nano != q.start_ns) || v < before;
            if restarted {
                let ns = interval(p.start_time_unix_nano, p.time_unix_nano)
                    .filter(|_| p.start_time_unix_nano >= q.time_ns)
                    .unwrap_or(p.time_unix_nano - q.time_ns);
                Step::Use {
                    value: v,
                    interval_ns: Some(ns),
                }
            } else {
                Step::Use {
                    value: v - before,
                    interval_ns: Some(p.time_unix_nano - q.time_ns),
                }
            }
        }
    }
}
