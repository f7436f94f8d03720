//! Deploy history: every deploy with its verdict.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::api;
use crate::components::error::ErrorBox;
use crate::components::verdict::{when, VerdictBadge};
use crate::live::{subscribe, LiveIndicator};

/// The deploy history page.
#[component]
pub fn Deploys() -> impl IntoView {
    let live = subscribe();
    let verdict = RwSignal::new(String::new());
    let service = RwSignal::new(String::new());
    let deploys = LocalResource::new(move || {
        live.changes.track();
        let (v, s) = (verdict.get(), service.get());
        async move { api::list_deploys(&v, &s).await }
    });
    let table = move || {
        deploys.get().map(|r| match r {
            Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
            Ok(page) if page.items.is_empty() => view! { <p class="empty">"No deploys yet."</p> }.into_any(),
            Ok(page) => view! {
                <div class="table-wrap">
                <table class="deploys">
                    <caption>{format!("{} of {} deploys", page.items.len(), page.total)}</caption>
                    <thead><tr>
                        <th scope="col">"Deploy"</th><th scope="col">"Service"</th>
                        <th scope="col">"Deployed"</th><th scope="col">"Verdict"</th>
                        <th scope="col">"Why"</th><th scope="col">"Incident"</th>
                    </tr></thead>
                    <tbody>
                    {page.items.into_iter().map(|d| {
                        let badge = match &d.verdict {
                            Some(v) => view! { <VerdictBadge verdict=v.verdict.as_str() /> }.into_any(),
                            None => view! { <span class="badge verdict-watching">{d.status.clone()}</span> }.into_any(),
                        };
                        view! {
                            <tr>
                                <th scope="row"><A href=format!("/deploys/{}", d.id)>{d.deploy_id.clone()}</A></th>
                                <td>{format!("{} ({})", d.service, d.environment)}</td>
                                <td><time datetime=d.deployed_at.clone()>{when(&d.deployed_at)}</time></td>
                                <td>{badge}</td>
                                <td>{d.verdict.as_ref().map(|v| v.reason.clone()).unwrap_or_default()}</td>
                                <td>{d.incident_id.map(|id| view! { <A href=format!("/incidents/{id}")>{format!("#{id}")}</A> })}</td>
                            </tr>
                        }
                    }).collect_view()}
                    </tbody>
                </table>
                </div>
            }.into_any(),
        })
    };
    view! {
        <div class="deploys-page">
            <div class="page-head"><h1>"Deploys"</h1><LiveIndicator live=live /></div>
            <form class="filters" on:submit=|ev| ev.prevent_default()>
                <div class="field">
                    <label for="verdict-filter">"Verdict"</label>
                    <select id="verdict-filter" on:change=move |ev| verdict.set(event_target_value(&ev))>
                        <option value="">"any"</option>
                        <option value="regression">"regression"</option>
                        <option value="healthy">"healthy"</option>
                        <option value="inconclusive">"inconclusive"</option>
                    </select>
                </div>
                <div class="field">
                    <label for="service-filter">"Service"</label>
                    <input id="service-filter" type="search" on:change=move |ev| service.set(event_target_value(&ev)) />
                </div>
            </form>
            <Transition fallback=|| view! { <p>"Loading deploys…"</p> }>{table}</Transition>
        </div>
    }
}
