//! WatchDog's web app: the scenario playground (the detection core running in the
//! browser) and the dashboard of a `watchdog serve` server. Built with Trunk.

mod api;
mod app;
mod components;
mod live;
mod pages;
mod replay;
mod state;

fn main() {
    console_error_panic_hook_lite();
    leptos::mount::mount_to_body(app::App);
}

/// Panics reach the console with their message instead of `unreachable`.
fn console_error_panic_hook_lite() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&info.to_string().into());
    }));
}
