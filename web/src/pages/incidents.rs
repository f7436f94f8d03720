//! The incident list: search, filters, sort, live updates.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::{self, IncidentQuery};
use crate::components::error::ErrorBox;
use crate::components::verdict::{when, Tag};
use crate::live::{subscribe, LiveIndicator};
use crate::state;

fn select(
    id: &'static str,
    label: &'static str,
    options: &'static [(&'static str, &'static str)],
    value: RwSignal<String>,
) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <select id=id name=id prop:value=move || value.get()
                on:change=move |ev| value.set(event_target_value(&ev))>
                {options.iter().map(|(v, l)| view! { <option value=*v>{*l}</option> }).collect_view()}
            </select>
        </div>
    }
}

fn text_filter(id: &'static str, label: &'static str, value: RwSignal<String>) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <input id=id name=id type="search" prop:value=move || value.get()
                on:change=move |ev| value.set(event_target_value(&ev)) />
        </div>
    }
}

/// The incident list page.
#[component]
pub fn Incidents() -> impl IntoView {
    let live = subscribe();
    // Filters start from the URL and are written back to it, so a filtered list is a link.
    let initial = IncidentQuery::from_query(&state::current_query());
    let q = RwSignal::new(initial.q);
    let status = RwSignal::new(initial.status);
    let severity = RwSignal::new(initial.severity);
    let service = RwSignal::new(initial.service);
    let environment = RwSignal::new(initial.environment);
    let sort = RwSignal::new(if initial.sort.is_empty() {
        "-opened_at".to_string()
    } else {
        initial.sort
    });
    Effect::new(move |_| {
        let query = IncidentQuery {
            q: q.get(),
            status: status.get(),
            severity: severity.get(),
            service: service.get(),
            environment: environment.get(),
            sort: sort.get(),
        };
        state::replace_query(&query.to_query());
    });

    let incidents = LocalResource::new(move || {
        live.changes.track();
        let query = IncidentQuery {
            q: q.get(),
            status: status.get(),
            severity: severity.get(),
            service: service.get(),
            environment: environment.get(),
            sort: sort.get(),
        };
        async move { api::list_incidents(&query).await }
    });

    let list = move || {
        incidents.get().map(|result| match result {
            Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
            Ok(page) if page.items.is_empty() => {
                view! { <p class="empty">"No incidents match."</p> }.into_any()
            }
            Ok(page) => view! {
                <p class="muted">{format!("{} of {} incidents", page.items.len(), page.total)}</p>
                <ul class="incident-list">
                    {page.items.into_iter().map(|i| view! {
                        <li class="incident-item">
                            <A href=format!("/incidents/{}", i.id)>
                                <span class="title">{i.title.clone()}</span>
                            </A>
                            <div class="meta">
                                <Tag kind="severity" value=i.severity.clone() />
                                <Tag kind="status" value=i.status.clone() />
                                <span>{format!("{} · {} · {}", i.service, i.environment, i.deploy_id)}</span>
                                <time datetime=i.opened_at.clone()>{when(&i.opened_at)}</time>
                            </div>
                            <p class="headline">{i.headline.clone()}</p>
                        </li>
                    }).collect_view()}
                </ul>
            }
            .into_any(),
        })
    };

    view! {
        <div class="incidents">
            <div class="page-head">
                <h1>"Incidents"</h1>
                <LiveIndicator live=live />
            </div>
            <form class="filters" role="search" on:submit=|ev| ev.prevent_default()>
                {text_filter("q", "Search", q)}
                {select("status", "Status", &[("", "any"), ("open", "open"), ("acknowledged", "acknowledged"),
                    ("resolved", "resolved"), ("false_positive", "false positive")], status)}
                {select("severity", "Severity", &[("", "any"), ("critical", "critical"), ("high", "high"),
                    ("medium", "medium"), ("low", "low")], severity)}
                {text_filter("service", "Service", service)}
                {text_filter("environment", "Environment", environment)}
                {select("sort", "Sort", &[("-opened_at", "newest first"), ("opened_at", "oldest first"),
                    ("-severity", "most severe first"), ("severity", "least severe first"),
                    ("-updated_at", "recently updated")], sort)}
            </form>
            <Transition fallback=|| view! { <p>"Loading incidents…"</p> }>{list}</Transition>
        </div>
    }
}
