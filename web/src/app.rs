//! The app shell: header with navigation and the API token, and the routes.

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::path;

use crate::pages::deploy::DeployPage;
use crate::pages::deploys::Deploys;
use crate::pages::incident::IncidentPage;
use crate::pages::incidents::Incidents;
use crate::pages::playground::Playground;
use crate::state;

/// The token field: writes (notes, status changes, refreshes) need the server's API token.
#[component]
fn TokenField() -> impl IntoView {
    let token = RwSignal::new(state::load_token().unwrap_or_default());
    let saved = RwSignal::new(false);
    view! {
        <details class="token">
            <summary>{move || if token.get().is_empty() { "API token: not set" } else { "API token: set" }}</summary>
            <form on:submit=move |ev| {
                ev.prevent_default();
                state::save_token(&token.get());
                saved.set(true);
            }>
                <label for="api-token">"API token (kept in this browser)"</label>
                <input id="api-token" type="password" autocomplete="off"
                    prop:value=move || token.get()
                    on:input=move |ev| { saved.set(false); token.set(event_target_value(&ev)); } />
                <button type="submit">"Save token"</button>
                {move || saved.get().then(|| view! { <span role="status" class="muted">" saved"</span> })}
            </form>
        </details>
    }
}

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <Router>
            <a class="skip" href="#main">"Skip to content"</a>
            <header class="top">
                <a class="brand" href="/">"WatchDog"</a>
                <nav aria-label="main">
                    <A href="/" exact=true>"Playground"</A>
                    <A href="/incidents">"Incidents"</A>
                    <A href="/deploys">"Deploys"</A>
                </nav>
                <TokenField />
            </header>
            <main id="main">
                <Routes fallback=|| view! { <h1>"Not found"</h1><p><a href="/">"Back to the playground"</a></p> }>
                    <Route path=path!("/") view=Playground />
                    <Route path=path!("/playground") view=Playground />
                    <Route path=path!("/incidents") view=Incidents />
                    <Route path=path!("/incidents/:id") view=IncidentPage />
                    <Route path=path!("/deploys") view=Deploys />
                    <Route path=path!("/deploys/:id") view=DeployPage />
                </Routes>
            </main>
        </Router>
    }
}
