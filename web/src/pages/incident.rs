//! One incident: evidence charts, verdict, timeline, signatures, explanation, triage,
//! notes, status changes, audit trail and exports.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use watchdog_core::explain::triage;
use watchdog_core::Timestamp;

use crate::api::{self, ApiError, Incident, SeriesMetric};
use crate::components::canary::CanaryView;
use crate::components::chart::{ChartData, MetricChart};
use crate::components::download::download;
use crate::components::error::ErrorBox;
use crate::components::verdict::{
    when, EvidenceTable, ExplanationText, SignatureTable, Tag, TimelineView, TriageView,
    VerdictSummary,
};
use crate::live::{subscribe, LiveIndicator};
use crate::state;

fn ms(text: &Option<String>) -> Option<i64> {
    text.as_deref()
        .and_then(|t| Timestamp::parse(t).ok())
        .map(|t| t.millis())
}

fn chart_of(m: &SeriesMetric) -> ChartData {
    ChartData {
        metric: m.metric.clone(),
        points: m
            .points
            .iter()
            .filter_map(|(t, v)| Timestamp::parse(t).ok().map(|t| (t.millis(), *v)))
            .collect(),
        band: m.baseline_level.zip(m.baseline_spread),
        deployed_at: ms(&m.deployed_at),
        change_started_at: ms(&m.change_started_at),
        detected_at: ms(&m.detected_at),
        ..ChartData::default()
    }
}

fn error_text(e: &ApiError) -> String {
    if e.is_auth() {
        format!("{e}. Set the API token (top right) to make changes.")
    } else {
        e.to_string()
    }
}

const STATUSES: [(&str, &str); 4] = [
    ("open", "Reopen"),
    ("acknowledged", "Acknowledge"),
    ("resolved", "Resolve"),
    ("false_positive", "Mark false positive"),
];

/// The incident detail page.
#[component]
pub fn IncidentPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let live = subscribe();
    let reload = RwSignal::new(0u64);
    let incident = LocalResource::new(move || {
        live.changes.track();
        reload.track();
        let id = id();
        async move { api::incident(id).await }
    });
    let series = LocalResource::new(move || {
        let id = id();
        async move { api::series(id).await }
    });
    let explanation_refresh = RwSignal::new(0u64);
    let explanation = LocalResource::new(move || {
        let id = id();
        let n = explanation_refresh.get();
        async move {
            if n == 0 {
                api::explanation(id).await
            } else {
                api::refresh_explanation(id).await
            }
        }
    });

    let author = RwSignal::new(state::load_author());
    let note_text = RwSignal::new(String::new());
    let action_error = RwSignal::new(None::<String>);

    let add_note = Action::new_local(move |(text, who): &(String, String)| {
        let (text, who, id) = (text.clone(), who.clone(), id());
        async move { api::add_note(id, &text, &who).await.map(|_| ()) }
    });
    let set_status = Action::new_local(move |(status, who): &(String, String)| {
        let (status, who, id) = (status.clone(), who.clone(), id());
        async move { api::set_status(id, &status, &who).await.map(|_| ()) }
    });
    Effect::new(move |_| {
        for result in [add_note.value().get(), set_status.value().get()]
            .into_iter()
            .flatten()
        {
            match result {
                Ok(()) => reload.update(|n| *n += 1),
                Err(e) => action_error.set(Some(error_text(&e))),
            }
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = add_note.value().get() {
            note_text.set(String::new());
        }
    });

    let who = move || {
        let a = author.get();
        if a.trim().is_empty() {
            "web".to_string()
        } else {
            a.trim().to_string()
        }
    };

    let export = move |format: &'static str| {
        let id = id();
        leptos::task::spawn_local(async move {
            let outcome = match api::export(id, format).await {
                Ok(text) => {
                    let (name, mime) = if format == "markdown" {
                        (format!("incident-{id}.md"), "text/markdown")
                    } else {
                        (format!("incident-{id}.json"), "application/json")
                    };
                    download(&name, mime, &text)
                }
                Err(e) => Err(error_text(&e)),
            };
            if let Err(e) = outcome {
                action_error.set(Some(e));
            }
        });
    };

    let charts = move || {
        series.get().map(|r| match r {
            Err(e) => view! { <ErrorBox message=format!("evidence charts: {e}") /> }.into_any(),
            Ok(s) if s.metrics.is_empty() => {
                view! { <p class="muted">"No samples stored around this deploy."</p> }.into_any()
            }
            Ok(s) => s
                .metrics
                .iter()
                .map(|m| view! { <MetricChart data=chart_of(m) /> })
                .collect_view()
                .into_any(),
        })
    };

    let explanation_view = move || {
        explanation.get().map(|r| match r {
            Err(e) => {
                view! { <ErrorBox message=format!("explanation: {}", error_text(&e)) /> }.into_any()
            }
            Ok(x) => view! {
                <div class="explanation">
                    <ExplanationText text=x.text.clone() />
                    <p class="muted small">{format!("source: {}{}{}", x.source,
                        x.model.map(|m| format!(" ({m})")).unwrap_or_default(),
                        x.generated_at.map(|t| format!(", generated {}", when(&t))).unwrap_or_default())}
                        {x.fallback_reason.map(|r| format!(" — fallback: {r}"))}</p>
                </div>
            }
            .into_any(),
        })
    };

    let body = move |inc: Incident| {
        let s = inc.summary.clone();
        let report = inc.triage.clone().unwrap_or_else(|| triage(&inc.verdict));
        let current = s.status.clone();
        view! {
            <div class="page-head">
                <h1 id="incident-title">{s.title.clone()}</h1>
                <LiveIndicator live=live />
            </div>
            <p class="meta">
                <Tag kind="severity" value=s.severity.clone() />
                <Tag kind="status" value=s.status.clone() />
                <span>{format!(" {} · {} · deploy {} · opened {}", s.service, s.environment, s.deploy_id, when(&s.opened_at))}</span>
            </p>
            <section class="card" aria-labelledby="status-h">
                <h2 id="status-h">"Status"</h2>
                <div class="actions">
                    {STATUSES.iter().filter(|(st, _)| *st != current).map(|(st, label)| {
                        let st = st.to_string();
                        view! {
                            <button type="button" data-status=st.clone()
                                disabled=move || set_status.pending().get()
                                on:click=move |_| {
                                    action_error.set(None);
                                    set_status.dispatch((st.clone(), who()));
                                }>{*label}</button>
                        }
                    }).collect_view()}
                    <button type="button" on:click=move |_| export("markdown")>"Export Markdown"</button>
                    <button type="button" on:click=move |_| export("json")>"Export JSON"</button>
                </div>
            </section>
            <section class="card" aria-labelledby="verdict-h">
                <h2 id="verdict-h">"Verdict"</h2>
                <VerdictSummary verdict=inc.verdict.clone() />
            </section>
            <CanaryView verdict=inc.verdict.clone() />
            <section class="card charts" aria-labelledby="charts-h">
                <h2 id="charts-h">"Evidence charts"</h2>
                <div class="chart-grid">
                    <Transition fallback=|| view! { <p>"Loading samples…"</p> }>{charts}</Transition>
                </div>
            </section>
            <section class="card" aria-labelledby="evidence-h">
                <h2 id="evidence-h">"Evidence"</h2>
                <EvidenceTable verdict=inc.verdict.clone() />
                <SignatureTable verdict=inc.verdict.clone() />
            </section>
            <div class="two-col">
                <section class="card" aria-labelledby="explanation-h">
                    <h2 id="explanation-h">"Explanation"</h2>
                    <Transition fallback=|| view! { <p>"Loading explanation…"</p> }>{explanation_view}</Transition>
                    <button type="button" on:click=move |_| explanation_refresh.update(|n| *n += 1)>"Refresh explanation"</button>
                </section>
                <section class="card" aria-labelledby="triage-h">
                    <h2 id="triage-h">"Triage report"</h2>
                    <TriageView report=report />
                </section>
            </div>
            <section class="card" aria-labelledby="timeline-h">
                <h2 id="timeline-h">"Timeline"</h2>
                <TimelineView verdict=inc.verdict.clone() />
            </section>
            <div class="two-col">
                <section class="card" aria-labelledby="notes-h">
                    <h2 id="notes-h">"Notes"</h2>
                    <ul class="notes">
                        {inc.notes.iter().map(|n| view! {
                            <li class="note"><p>{n.text.clone()}</p>
                                <p class="muted small">{format!("{} · {}", n.author, when(&n.created_at))}</p></li>
                        }).collect_view()}
                    </ul>
                    {inc.notes.is_empty().then(|| view! { <p class="muted">"No notes yet."</p> })}
                    <form class="note-form" on:submit=move |ev| {
                        ev.prevent_default();
                        let text = note_text.get();
                        if text.trim().is_empty() {
                            action_error.set(Some("write a note before saving it".into()));
                            return;
                        }
                        state::save_author(&author.get());
                        action_error.set(None);
                        add_note.dispatch((text, who()));
                    }>
                        <div class="field">
                            <label for="note-author">"Your name"</label>
                            <input id="note-author" type="text" autocomplete="name"
                                prop:value=move || author.get()
                                on:input=move |ev| author.set(event_target_value(&ev)) />
                        </div>
                        <div class="field">
                            <label for="note-text">"Note"</label>
                            <textarea id="note-text" rows="3" prop:value=move || note_text.get()
                                on:input=move |ev| note_text.set(event_target_value(&ev))></textarea>
                        </div>
                        <button type="submit" disabled=move || add_note.pending().get()>"Save note"</button>
                    </form>
                </section>
                <section class="card" aria-labelledby="audit-h">
                    <h2 id="audit-h">"Audit trail"</h2>
                    <ol class="audit">
                        {inc.audit.iter().map(|a| view! {
                            <li><time datetime=a.at.clone()>{when(&a.at)}</time>
                                {format!(" {} — {}", a.actor, if a.detail.is_empty() { a.action.clone() } else { a.detail.clone() })}</li>
                        }).collect_view()}
                    </ol>
                    {inc.audit.is_empty().then(|| view! { <p class="muted">"No changes yet."</p> })}
                </section>
            </div>
        }
    };

    view! {
        <div class="incident">
            <p><A href="/incidents">"← All incidents"</A></p>
            {move || action_error.get().map(|e| view! { <ErrorBox message=e /> })}
            <Transition fallback=|| view! { <p>"Loading incident…"</p> }>
                {move || incident.get().map(|r| match r {
                    Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                    Ok(inc) => body(inc).into_any(),
                })}
            </Transition>
        </div>
    }
}
