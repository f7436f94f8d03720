//! One deploy: its verdict, the canary against stable when both ran, and the evidence.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::api;
use crate::components::canary::CanaryView;
use crate::components::error::ErrorBox;
use crate::components::verdict::{when, EvidenceTable, SignatureTable, VerdictSummary};
use crate::live::subscribe;

/// `/deploys/:id`.
#[component]
pub fn DeployPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let live = subscribe();
    let deploy = LocalResource::new(move || {
        live.changes.track();
        let id = id();
        async move { api::deploy(id).await }
    });
    let body = move || {
        deploy.get().map(|r| match r {
            Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
            Ok(d) => {
                let head = view! {
                    <h1>{format!("Deploy {} of {}", d.deploy_id, d.service)}</h1>
                    <p class="muted">{format!("{} · deployed {}", d.environment, when(&d.deployed_at))}
                        {d.incident_id.map(|i| view! { " · " <A href=format!("/incidents/{i}")>{format!("incident #{i}")}</A> })}
                    </p>
                };
                match d.verdict {
                    None => view! { {head}<p class="badge verdict-watching">"watching: no verdict yet"</p> }.into_any(),
                    Some(v) => view! {
                        {head}
                        <section class="card" aria-labelledby="verdict-h">
                            <h2 id="verdict-h">"Verdict"</h2>
                            <VerdictSummary verdict=v.clone() />
                        </section>
                        <CanaryView verdict=v.clone() />
                        <section class="card" aria-labelledby="evidence-h">
                            <h2 id="evidence-h">"Evidence"</h2>
                            <EvidenceTable verdict=v.clone() />
                            <SignatureTable verdict=v />
                        </section>
                    }
                    .into_any(),
                }
            }
        })
    };
    view! {
        <div class="deploy-page">
            <Transition fallback=|| view! { <p>"Loading deploy…"</p> }>{body}</Transition>
        </div>
    }
}
