//! Showing errors: every failure reaches the user as a visible, announced message.

use leptos::prelude::*;

/// An error message, announced to screen readers.
#[component]
pub fn ErrorBox(#[prop(into)] message: String) -> impl IntoView {
    view! { <div class="error" role="alert">{message}</div> }
}
