//! The playground: a scenario from the core's catalogue (or the user's own files) replayed
//! through the core in the browser, with charts, verdicts, explanations and exports.
//! Its settings live in the URL, so a link reproduces a run.

use leptos::prelude::*;
use wasm_bindgen_futures::JsFuture;
use watchdog_core::explain::{explain, severity, triage};
use watchdog_core::export::verdict_markdown;
use watchdog_core::scenarios::{self, ScenarioParams};

use crate::components::canary::CanaryView;
use crate::components::chart::{ChartData, MetricChart};
use crate::components::download::download;
use crate::components::error::ErrorBox;
use crate::components::verdict::{
    EvidenceTable, ExplanationView, SignatureTable, TimelineView, TriageView, VerdictSummary,
};
use crate::replay::{self, Dataset, Run};
use crate::state::{self, PlaygroundParams};

/// Where the playground's records come from.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    Scenario,
    Files { names: String, data: Dataset },
}

fn scenario_data(p: &PlaygroundParams) -> Result<Dataset, String> {
    let mut sp = ScenarioParams {
        seed: p.seed,
        shift: p.shift,
        noise: p.noise,
        traffic: p.traffic,
        ..ScenarioParams::default()
    };
    if p.samples > 0 {
        // Reach the requested number of samples by lengthening the history before the
        // deploy; the watch after it stays as catalogued.
        let services = if p.scenario == "overlapping_deploys" {
            2
        } else {
            1
        };
        let per_service = p.samples.div_ceil(services) as u64;
        let total_mins = (per_service * sp.interval_secs).div_ceil(60);
        sp.baseline_mins = total_mins.saturating_sub(sp.after_mins).max(1);
    }
    let data = scenarios::generate(&p.scenario, &sp).map_err(|e| e.to_string())?;
    Ok(Dataset {
        samples: data.samples,
        deploys: data.deploys,
        logs: if p.logs { data.logs } else { Vec::new() },
    })
}

fn compute(p: &PlaygroundParams, source: &Source) -> Result<Run, String> {
    match source {
        Source::Scenario => replay::run(&scenario_data(p)?, p.config()),
        Source::Files { data, .. } => {
            if data.deploys.is_empty() {
                return Err("the loaded files hold no deploy; add a deploys file (JSONL with deploy_id) so there is something to judge".into());
            }
            replay::run(data, p.config())
        }
    }
}

fn export_json(run: &Run) -> String {
    let docs: Vec<serde_json::Value> = run
        .verdicts
        .iter()
        .map(|v| {
            serde_json::json!({
                "verdict": v,
                "severity": severity(v),
                "explanation": explain(v),
                "triage": triage(v),
            })
        })
        .collect();
    serde_json::to_string_pretty(&docs).unwrap_or_default()
}

fn export_markdown(run: &Run) -> String {
    run.verdicts
        .iter()
        .map(verdict_markdown)
        .collect::<Vec<_>>()
        .join("\n---\n\n")
}

async fn read_files(input: web_sys::HtmlInputElement) -> Result<(String, Dataset), String> {
    let files = input.files().ok_or("no files chosen")?;
    let mut data = Dataset::default();
    let mut names = Vec::new();
    for i in 0..files.length() {
        let Some(file) = files.item(i) else { continue };
        let name = file.name();
        let text = JsFuture::from(file.text())
            .await
            .map_err(|e| format!("{name}: could not read the file: {e:?}"))?
            .as_string()
            .unwrap_or_default();
        data.extend(replay::parse_file(&name, &text)?);
        names.push(name);
    }
    if names.is_empty() {
        return Err("no files chosen".into());
    }
    Ok((names.join(", "), data))
}

/// A labelled number input bound to one field of the parameters.
/// `(id, label, hint, step)` of a number input.
type FieldSpec = (&'static str, &'static str, &'static str, &'static str);

fn number_field(
    (id, label, hint, step): FieldSpec,
    params: RwSignal<PlaygroundParams>,
    get: fn(&PlaygroundParams) -> String,
    set: fn(&mut PlaygroundParams, &str) -> bool,
    bad: RwSignal<Option<String>>,
) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <input id=id name=id type="number" step=step inputmode="decimal"
                prop:value=move || params.with(get)
                on:change=move |ev| {
                    let text = event_target_value(&ev);
                    let mut ok = true;
                    params.update(|p| ok = set(p, &text));
                    bad.set((!ok).then(|| format!("{label}: {text:?} is not a valid number")));
                } />
            <small class="hint">{hint}</small>
        </div>
    }
}

/// A labelled slider with its value shown.
fn slider(
    id: &'static str,
    label: &'static str,
    min: &'static str,
    max: &'static str,
    params: RwSignal<PlaygroundParams>,
    get: fn(&PlaygroundParams) -> f64,
    set: fn(&mut PlaygroundParams, f64),
) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label} " " <output for=id>{move || format!("×{:.2}", params.with(get))}</output></label>
            <input id=id name=id type="range" min=min max=max step="0.05"
                prop:value=move || params.with(get).to_string()
                on:change=move |ev| {
                    if let Ok(v) = event_target_value(&ev).parse::<f64>() {
                        params.update(|p| set(p, v));
                    }
                } />
        </div>
    }
}

fn parse_into<T: std::str::FromStr>(slot: &mut T, text: &str) -> bool {
    match text.trim().parse() {
        Ok(v) => {
            *slot = v;
            true
        }
        Err(_) => false,
    }
}

/// The playground page.
#[component]
pub fn Playground() -> impl IntoView {
    let params = RwSignal::new(PlaygroundParams::from_query(&state::current_query()));
    let source = RwSignal::new(Source::Scenario);
    let input_error = RwSignal::new(None::<String>);
    let file_error = RwSignal::new(None::<String>);
    let selected = RwSignal::new(0usize);
    let run = RwSignal::new(None::<Result<Run, String>>);
    // Counts runs, so a test can tell a new run from an equally fast one.
    let runs = RwSignal::new(0u64);

    Effect::new(move |_| {
        let p = params.get();
        state::replace_query(&p.to_query());
        let result = source.with(|s| compute(&p, s));
        // Keep the deploy tab across re-runs, unless that deploy is gone.
        if let Ok(r) = &result {
            if selected.get_untracked() >= r.verdicts.len() {
                selected.set(0);
            }
        }
        runs.update(|n| *n += 1);
        run.set(Some(result));
    });

    let catalogue = scenarios::catalogue();
    let description = move || {
        let name = params.with(|p| p.scenario.clone());
        catalogue
            .iter()
            .find(|s| s.name == name)
            .map(|s| {
                format!(
                    "{} {}",
                    s.description,
                    if s.bad {
                        "(a bad deploy)"
                    } else {
                        "(a good deploy)"
                    }
                )
            })
            .unwrap_or_default()
    };

    let on_files = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        leptos::task::spawn_local(async move {
            match read_files(input).await {
                Ok((names, data)) => {
                    file_error.set(None);
                    source.set(Source::Files { names, data });
                }
                Err(e) => file_error.set(Some(e)),
            }
        });
    };

    let export = move |format: &'static str| {
        let result = run.with(|r| match r {
            Some(Ok(run)) if format == "md" => Ok(export_markdown(run)),
            Some(Ok(run)) => Ok(export_json(run)),
            _ => Err("nothing to export yet".to_string()),
        });
        let outcome = result.and_then(|text| {
            if format == "md" {
                download("watchdog-verdicts.md", "text/markdown", &text)
            } else {
                download("watchdog-verdicts.json", "application/json", &text)
            }
        });
        if let Err(e) = outcome {
            file_error.set(Some(e));
        }
    };

    let controls = view! {
        <form class="controls" on:submit=|ev| ev.prevent_default() aria-label="playground settings">
            <fieldset>
                <legend>"Scenario"</legend>
                <div class="field">
                    <label for="scenario">"Scenario"</label>
                    <select id="scenario" name="scenario"
                        prop:value=move || params.with(|p| p.scenario.clone())
                        on:change=move |ev| {
                            let name = event_target_value(&ev);
                            source.set(Source::Scenario);
                            params.update(|p| p.scenario = name);
                        }>
                        {catalogue.iter().map(|s| view! {
                            <option value=s.name selected=move || params.with(|p| p.scenario == s.name)>{s.title}</option>
                        }).collect_view()}
                    </select>
                    <small class="hint">{description}</small>
                </div>
                {number_field(("seed", "Seed", "same seed, same data", "1"), params,
                    |p| p.seed.to_string(), |p, t| parse_into(&mut p.seed, t), input_error)}
                {slider("shift", "Shift size", "0", "5", params, |p| p.shift, |p, v| p.shift = v)}
                {slider("noise", "Noise", "0", "5", params, |p| p.noise, |p, v| p.noise = v)}
                {slider("traffic", "Traffic", "0.05", "5", params, |p| p.traffic, |p, v| p.traffic = v)}
                {number_field(("samples", "Samples", "0 = as catalogued (about 540); more lengthens the history", "1000"), params,
                    |p| p.samples.to_string(), |p, t| parse_into(&mut p.samples, t), input_error)}
                <div class="field checkbox">
                    <input id="logs" name="logs" type="checkbox"
                        prop:checked=move || params.with(|p| p.logs)
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            params.update(|p| p.logs = on);
                        } />
                    <label for="logs">"Replay the scenario's log events"</label>
                </div>
            </fieldset>
            <fieldset>
                <legend>"Detector"</legend>
                {number_field(("far", "False-alarm rate", "per deploy, e.g. 0.01", "0.001"), params,
                    |p| p.false_alarm_rate.to_string(), |p, t| parse_into(&mut p.false_alarm_rate, t), input_error)}
                {number_field(("window", "Monitoring window (s)", "watched after the deploy", "60"), params,
                    |p| p.monitoring_window_secs.to_string(), |p, t| parse_into(&mut p.monitoring_window_secs, t), input_error)}
                {number_field(("baseline", "Baseline window (s)", "history used as normal", "60"), params,
                    |p| p.baseline_window_secs.to_string(), |p, t| parse_into(&mut p.baseline_window_secs, t), input_error)}
                {number_field(("effect", "Minimum relative effect", "0.10 = a 10 % change", "0.01"), params,
                    |p| p.min_relative_effect.to_string(), |p, t| parse_into(&mut p.min_relative_effect, t), input_error)}
                {number_field(("sigmas", "Design shift (σ)", "the shift found fastest", "0.1"), params,
                    |p| p.design_shift_sigmas.to_string(), |p, t| parse_into(&mut p.design_shift_sigmas, t), input_error)}
            </fieldset>
            <fieldset>
                <legend>"Your own data"</legend>
                <div class="field">
                    <label for="files">"Metrics and deploys (CSV, JSONL)"</label>
                    <input id="files" name="files" type="file" multiple
                        accept=".csv,.jsonl,.ndjson,.json,.txt" on:change=on_files />
                    <small class="hint">"CSV: a header with timestamp and metric columns. JSONL: the replay formats; deploys have deploy_id."</small>
                </div>
                {move || match source.get() {
                    Source::Files { names, data } => view! {
                        <p class="loaded" id="loaded-files">{format!("Replaying {names}: {} samples, {} deploys, {} log events.",
                            data.samples.len(), data.deploys.len(), data.logs.len())}</p>
                        <button type="button" on:click=move |_| source.set(Source::Scenario)>"Back to the scenario"</button>
                    }.into_any(),
                    Source::Scenario => ().into_any(),
                }}
            </fieldset>
            <div class="actions">
                <button type="button" on:click=move |_| params.update(|p| p.seed += 1)>"New seed"</button>
                <button type="button" on:click=move |_| params.set(PlaygroundParams { scenario: params.with(|p| p.scenario.clone()), ..PlaygroundParams::default() })>"Reset settings"</button>
                <button type="button" id="export-md" on:click=move |_| export("md")>"Export Markdown"</button>
                <button type="button" id="export-json" on:click=move |_| export("json")>"Export JSON"</button>
            </div>
            {move || input_error.get().map(|e| view! { <ErrorBox message=e /> })}
            {move || file_error.get().map(|e| view! { <ErrorBox message=e /> })}
        </form>
    };

    let results = move || {
        let Some(result) = run.get() else {
            return view! { <p>"Running…"</p> }.into_any();
        };
        let run = match result {
            Ok(run) => run,
            Err(e) => return view! { <ErrorBox message=e /> }.into_any(),
        };
        let timing = view! {
            <p class="timing" role="status">"Replayed " <span id="replay-samples">{run.samples}</span> " samples in "
                <output id="replay-ms" data-ms=format!("{:.3}", run.replay_ms) data-run=runs.get_untracked()>{format!("{:.1}", run.replay_ms)}</output>
                " ms in this browser."</p>
        };
        if run.verdicts.is_empty() {
            return view! { {timing} <p>"No deploy was judged."</p> }.into_any();
        }
        let tabs = (run.verdicts.len() > 1).then(|| {
            view! {
                <div class="tabs" role="tablist" aria-label="deploys">
                    {run.verdicts.iter().enumerate().map(|(i, v)| view! {
                        <button type="button" role="tab" aria-selected=move || (selected.get() == i).to_string()
                            on:click=move |_| selected.set(i)>
                            {format!("{} {} · {}", v.service, v.deploy_id, v.verdict.as_str())}
                        </button>
                    }).collect_view()}
                </div>
            }
        });
        let verdicts = run.verdicts.clone();
        let traces = run.traces.clone();
        let detail = move || {
            let i = selected.get().min(verdicts.len() - 1);
            let v = verdicts[i].clone();
            let charts = traces
                .iter()
                .filter(|t| {
                    t.deploy_id == v.deploy_id
                        && t.service == v.service
                        && t.environment == v.environment
                })
                .map(|t| view! { <MetricChart data=ChartData::from_trace(t) /> })
                .collect_view();
            view! {
                <section class="card" aria-labelledby="verdict-h">
                    <h2 id="verdict-h">"Verdict"</h2>
                    <VerdictSummary verdict=v.clone() />
                </section>
                <section class="card charts" aria-labelledby="charts-h">
                    <h2 id="charts-h">"Metrics around the deploy"</h2>
                    <p class="legend"><span class="key key-band"></span>"baseline ±2σ "
                        <span class="key key-deploy"></span>"deploy "
                        <span class="key key-change"></span>"change start "
                        <span class="key key-detect"></span>"detection "
                        <span class="key key-threshold"></span>"threshold"</p>
                    <div class="chart-grid">{charts}</div>
                </section>
                <CanaryView verdict=v.clone() />
                <section class="card" aria-labelledby="evidence-h">
                    <h2 id="evidence-h">"Evidence"</h2>
                    <EvidenceTable verdict=v.clone() />
                    <SignatureTable verdict=v.clone() />
                </section>
                <div class="two-col">
                    <section class="card" aria-labelledby="explanation-h">
                        <h2 id="explanation-h">"Explanation"</h2>
                        <ExplanationView explanation=explain(&v) />
                    </section>
                    <section class="card" aria-labelledby="triage-h">
                        <h2 id="triage-h">"Triage report"</h2>
                        <TriageView report=triage(&v) />
                    </section>
                </div>
                <section class="card" aria-labelledby="timeline-h">
                    <h2 id="timeline-h">"Timeline"</h2>
                    <TimelineView verdict=v />
                </section>
            }
        };
        view! { {timing} {tabs} {detail} }.into_any()
    };

    view! {
        <div class="playground">
            <h1>"Playground"</h1>
            <p class="lede">"Pick a scenario, change it and the detector, and see what WatchDog concludes. Everything runs in your browser; the address bar is a link to this exact run."</p>
            <a class="to-results" href="#results">"Skip to the results"</a>
            <div class="layout">
                <aside>{controls}</aside>
                <div class="results" id="results">{results}</div>
            </div>
        </div>
    }
}
