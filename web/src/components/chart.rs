//! Plain SVG charts: a metric with its baseline band, the deploy marker, the estimated
//! change start and the detection point; below it, the detector statistic against its
//! threshold.

use leptos::prelude::*;
use watchdog_core::explain::{format_value, metric_label};
use watchdog_core::MetricTrace;

/// What one chart shows; built from a playground trace or from the server's `/series`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChartData {
    /// Metric name.
    pub metric: String,
    /// `(epoch ms, value)` in time order.
    pub points: Vec<(i64, f64)>,
    /// Baseline level and spread at the deploy.
    pub band: Option<(f64, f64)>,
    /// The baseline's expected value per point, when it varies (trends).
    pub expected: Vec<(i64, f64)>,
    /// Deploy time (ms).
    pub deployed_at: Option<i64>,
    /// Estimated start of the shift (ms).
    pub change_started_at: Option<i64>,
    /// Detection time (ms).
    pub detected_at: Option<i64>,
    /// Detector statistic over time and its threshold.
    pub statistic: Vec<(i64, f64)>,
    /// Threshold of the statistic.
    pub threshold: Option<f64>,
}

impl ChartData {
    /// A chart of a playground trace.
    pub fn from_trace(t: &MetricTrace) -> ChartData {
        ChartData {
            metric: t.metric.clone(),
            points: t.points.iter().map(|p| (p.t.millis(), p.value)).collect(),
            band: Some((t.baseline_level, t.baseline_spread)),
            expected: t
                .points
                .iter()
                .map(|p| (p.t.millis(), p.expected))
                .collect(),
            deployed_at: Some(t.deployed_at.millis()),
            change_started_at: t.change_started_at.map(|x| x.millis()),
            detected_at: t.detected_at.map(|x| x.millis()),
            statistic: t
                .points
                .iter()
                .filter_map(|p| p.statistic.map(|s| (p.t.millis(), s)))
                .collect(),
            threshold: Some(t.threshold),
        }
    }
}

const W: f64 = 640.0;
const H: f64 = 180.0;
const SH: f64 = 90.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;
/// Most points drawn per line; more are reduced to per-pixel minima and maxima.
const MAX_POINTS: usize = 1200;

struct Scale {
    t0: i64,
    t1: i64,
    y0: f64,
    y1: f64,
    height: f64,
}

impl Scale {
    fn x(&self, t: i64) -> f64 {
        let span = (self.t1 - self.t0).max(1) as f64;
        LEFT + (t - self.t0) as f64 / span * (W - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        let span = if self.y1 > self.y0 {
            self.y1 - self.y0
        } else {
            1.0
        };
        TOP + (1.0 - (v - self.y0) / span) * (self.height - TOP - BOTTOM)
    }
}

/// Keeps the first, min, max and last point of each bucket so spikes stay visible.
fn reduce(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let per = points.len().div_ceil(MAX_POINTS / 2);
    let mut out = Vec::with_capacity(MAX_POINTS + 2);
    for chunk in points.chunks(per) {
        let (mut lo, mut hi) = (chunk[0], chunk[0]);
        for p in chunk {
            if p.1 < lo.1 {
                lo = *p;
            }
            if p.1 > hi.1 {
                hi = *p;
            }
        }
        if lo.0 <= hi.0 {
            out.extend([lo, hi]);
        } else {
            out.extend([hi, lo]);
        }
    }
    out
}

fn path(points: &[(i64, f64)], s: &Scale) -> String {
    let mut d = String::with_capacity(points.len() * 14);
    for (i, (t, v)) in reduce(points).iter().enumerate() {
        if !v.is_finite() {
            continue;
        }
        let cmd = if i == 0 { 'M' } else { 'L' };
        d.push_str(&format!("{cmd}{:.1},{:.1}", s.x(*t), s.y(*v)));
    }
    d
}

fn rel_label(t: i64, deployed: Option<i64>) -> String {
    match deployed {
        Some(d) => {
            let mins = (t - d) as f64 / 60_000.0;
            if mins.abs() < 0.5 {
                "deploy".into()
            } else {
                format!("{mins:+.0} min")
            }
        }
        None => watchdog_core::Timestamp(t).to_rfc3339()[11..16].to_string(),
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-9);
    (lo - pad, hi + pad)
}

fn vline(x: f64, height: f64, class: &'static str) -> impl IntoView {
    view! {
        <line class=class x1=format!("{x:.1}") x2=format!("{x:.1}") y1=TOP.to_string()
            y2=(height - BOTTOM).to_string() />
    }
}

/// A metric chart, with the statistic panel under it when there is a statistic.
#[component]
pub fn MetricChart(data: ChartData) -> impl IntoView {
    let t1 = data.points.last().map(|p| p.0).unwrap_or(1);
    // Show the watch and a stretch of baseline three times as long (at least 8 min), so a
    // short watch is not squeezed against an hour of history; the band still comes from
    // the whole baseline.
    let t0 = match (data.points.first(), data.deployed_at) {
        (Some(first), Some(d)) => first.0.max(d - (3 * (t1 - d)).max(8 * 60_000)),
        (Some(first), None) => first.0,
        _ => 0,
    };
    let data = ChartData {
        points: data.points.iter().copied().filter(|p| p.0 >= t0).collect(),
        expected: data
            .expected
            .iter()
            .copied()
            .filter(|p| p.0 >= t0)
            .collect(),
        statistic: data
            .statistic
            .iter()
            .copied()
            .filter(|p| p.0 >= t0)
            .collect(),
        ..data
    };
    let band = data.band.filter(|(l, s)| l.is_finite() && s.is_finite());
    let (y0, y1) = bounds(
        data.points
            .iter()
            .map(|p| p.1)
            .chain(band.iter().flat_map(|(l, s)| [l - 2.0 * s, l + 2.0 * s])),
    );
    let s = Scale {
        t0,
        t1,
        y0,
        y1,
        height: H,
    };
    let line = path(&data.points, &s);
    // The band follows the expected value when the baseline has a trend.
    let band_path = band.map(|(level, spread)| {
        let centre: Vec<(i64, f64)> = if data.expected.len() >= 2 {
            reduce(&data.expected)
        } else {
            vec![(t0, level), (t1, level)]
        };
        let mut d = String::new();
        for (i, (t, c)) in centre.iter().enumerate() {
            let cmd = if i == 0 { 'M' } else { 'L' };
            d.push_str(&format!("{cmd}{:.1},{:.1}", s.x(*t), s.y(c + 2.0 * spread)));
        }
        for (t, c) in centre.iter().rev() {
            d.push_str(&format!("L{:.1},{:.1}", s.x(*t), s.y(c - 2.0 * spread)));
        }
        d.push('Z');
        (d, path(&centre, &s))
    });
    let label = metric_label(&data.metric);
    let metric = data.metric.clone();
    let deployed = data.deployed_at;
    let detect_point = data.detected_at.and_then(|d| {
        data.points
            .iter()
            .find(|p| p.0 >= d)
            .map(|p| (s.x(p.0), s.y(p.1)))
    });
    let summary = format!(
        "{label}: {} samples{}{}",
        data.points.len(),
        band.map(|(l, _)| format!(", baseline {}", format_value(&metric, l)))
            .unwrap_or_default(),
        if data.detected_at.is_some() {
            ", regression detected"
        } else {
            ""
        }
    );
    let stat = (!data.statistic.is_empty()).then(|| {
        let thr = data.threshold.unwrap_or(0.0);
        let (_, hi) = bounds(data.statistic.iter().map(|p| p.1).chain([thr, 0.0]));
        let ss = Scale {
            t0,
            t1,
            y0: 0.0,
            y1: hi,
            height: SH,
        };
        let d = path(&data.statistic, &ss);
        let ty = ss.y(thr);
        let det = data.detected_at.map(|t| ss.x(t));
        view! {
            <svg class="chart stat" viewBox=format!("0 0 {W} {SH}") role="img"
                aria-label=format!("detector statistic of {label} against its threshold {thr:.2}")>
                <text class="axis" x="4" y="14">"statistic"</text>
                <line class="threshold" x1=LEFT.to_string() x2=(W - RIGHT).to_string()
                    y1=format!("{ty:.1}") y2=format!("{ty:.1}") />
                <text class="axis" x=(W - RIGHT - 4.0).to_string() y=format!("{:.1}", ty - 3.0)
                    text-anchor="end">{format!("threshold {thr:.2}")}</text>
                {deployed.map(|d| vline(ss.x(d), SH, "deploy"))}
                {det.map(|x| vline(x, SH, "detect"))}
                <path class="statline" d=d />
            </svg>
        }
    });
    view! {
        <figure class="chart-figure" data-metric=metric.clone()>
            <figcaption>{label.clone()}</figcaption>
            <svg class="chart" viewBox=format!("0 0 {W} {H}") role="img" aria-label=summary>
                {band_path.map(|(area, centre)| view! {
                    <path class="band" d=area />
                    <path class="expected" d=centre />
                })}
                <text class="axis" x=(LEFT - 4.0).to_string() y=(TOP + 8.0).to_string()
                    text-anchor="end">{format_value(&metric, y1)}</text>
                <text class="axis" x=(LEFT - 4.0).to_string() y=(H - BOTTOM).to_string()
                    text-anchor="end">{format_value(&metric, y0)}</text>
                <text class="axis" x=LEFT.to_string() y=(H - 6.0).to_string()>{rel_label(t0, deployed)}</text>
                <text class="axis" x=(W - RIGHT).to_string() y=(H - 6.0).to_string()
                    text-anchor="end">{rel_label(t1, deployed)}</text>
                {data.change_started_at.map(|c| vline(s.x(c), H, "change"))}
                {deployed.map(|d| {
                    let x = s.x(d);
                    view! {
                        {vline(x, H, "deploy")}
                        <text class="marker-label" x=format!("{:.1}", x + 3.0) y=(TOP + 10.0).to_string()>"deploy"</text>
                    }
                })}
                <path class="line" d=line />
                {detect_point.map(|(x, y)| view! {
                    <circle class="detect-dot" cx=format!("{x:.1}") cy=format!("{y:.1}") r="5">
                        <title>"detected"</title>
                    </circle>
                    <text class="detect-label" x=format!("{:.1}", x - 7.0) y=format!("{:.1}", (y - 8.0).max(TOP + 24.0))
                        text-anchor="end">"detected"</text>
                })}
            </svg>
            {stat}
        </figure>
    }
}
