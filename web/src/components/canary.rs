//! Canary versus stable, side by side: per metric the two versions' levels, the difference
//! and the test, and a small chart of both series over the same minutes.

use leptos::prelude::*;
use watchdog_core::explain::{format_value, metric_label};
use watchdog_core::{CanaryEvidence, CanaryMetric, CanaryOutcome, CanaryTest, DeployVerdict};

fn outcome_word(o: CanaryOutcome) -> &'static str {
    match o {
        CanaryOutcome::Worse => "canary worse",
        CanaryOutcome::NoDifference => "no difference",
        CanaryOutcome::SharedShift => "shared shift",
        CanaryOutcome::Insufficient => "too little overlap",
    }
}

fn test_word(t: CanaryTest) -> &'static str {
    match t {
        CanaryTest::SignedRank => "signed-rank",
        CanaryTest::ConditionalBinomial => "conditional binomial",
    }
}

const W: f64 = 320.0;
const H: f64 = 110.0;

/// Both versions' values of one metric as two polylines on shared axes.
#[component]
fn PairChart(metric: CanaryMetric) -> impl IntoView {
    let pts = &metric.points;
    if pts.len() < 2 {
        return view! { <p class="muted small">"Too few pairs to draw."</p> }.into_any();
    }
    let (t0, t1) = (
        pts[0].t.millis() as f64,
        pts[pts.len() - 1].t.millis() as f64,
    );
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (
                lo.min(p.canary).min(p.stable),
                hi.max(p.canary).max(p.stable),
            )
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x = |t: f64| 4.0 + (t - t0) / (t1 - t0).max(1.0) * (W - 8.0);
    let y = |v: f64| H - 4.0 - (v - lo) / span * (H - 8.0);
    let line = |f: &dyn Fn(&watchdog_core::CanaryPoint) -> f64| {
        pts.iter()
            .map(|p| format!("{:.1},{:.1}", x(p.t.millis() as f64), y(f(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let stable = line(&|p| p.stable);
    let canary = line(&|p| p.canary);
    let label = format!(
        "{}: canary (solid) and stable (dashed) over {} pairs",
        metric_label(&metric.metric),
        metric.pairs
    );
    let title = label.clone();
    view! {
        <svg class="pair-chart" viewBox=format!("0 0 {W} {H}") role="img" aria-label=label>
            <title>{title}</title>
            <polyline class="stable" points=stable fill="none" stroke-dasharray="4 3" />
            <polyline class="canary" points=canary fill="none" />
        </svg>
    }
    .into_any()
}

/// The canary comparison of a verdict, or nothing when only one version ran.
#[component]
pub fn CanaryView(verdict: DeployVerdict) -> impl IntoView {
    let Some(c): Option<CanaryEvidence> = verdict.canary else {
        return ().into_any();
    };
    let rows = c
        .metrics
        .iter()
        .map(|m| {
            let name = m.metric.clone();
            let rel = m
                .effect_relative
                .map(|r| format!("{:+.1}%", r * 100.0))
                .unwrap_or_else(|| format!("{:+.4}", m.effect_absolute));
            view! {
                <tr class=if m.worse { "status-regressed" } else { "status-ok" }>
                    <th scope="row">{metric_label(&name)}</th>
                    <td data-label="Stable">{format_value(&name, m.stable)}</td>
                    <td data-label="Canary">{format_value(&name, m.canary)}</td>
                    <td data-label="Difference">{rel}</td>
                    <td data-label="Test">{format!("{} z = {:.1} / {:.1}", test_word(m.test), m.z, m.threshold)}</td>
                    <td data-label="Pairs">{m.pairs}</td>
                    <td data-label="Chart"><PairChart metric=m.clone() /></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="card canary" aria-labelledby="canary-h" data-canary-outcome=format!("{:?}", c.outcome).to_lowercase()>
            <h2 id="canary-h">"Canary versus stable"</h2>
            <p>
                <span class=format!("badge canary-{:?}", c.outcome).to_lowercase()>{outcome_word(c.outcome)}</span>
                {format!(" canary {} against stable {} running at the same time (before/after alone: {}).", c.canary_version, c.stable_version, c.before_after.as_str())}
            </p>
            <p class="muted">{c.summary.clone()}</p>
            <div class="table-wrap">
                <table class="canary-table">
                    <caption>"Side by side over the same minutes"</caption>
                    <thead><tr>
                        <th scope="col">"Metric"</th><th scope="col">"Stable"</th><th scope="col">"Canary"</th>
                        <th scope="col">"Difference"</th><th scope="col">"Test"</th>
                        <th scope="col">"Pairs"</th><th scope="col">"Both over time"</th>
                    </tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        </section>
    }
    .into_any()
}
