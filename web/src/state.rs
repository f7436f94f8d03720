//! State that outlives a page: the API token (localStorage) and the playground's settings,
//! which live in the URL's query string so that a link reproduces a run.

use watchdog_core::Config;

const TOKEN_KEY: &str = "watchdog.api_token";
const AUTHOR_KEY: &str = "watchdog.author";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// The API token saved in this browser, if any.
pub fn load_token() -> Option<String> {
    storage()?.get_item(TOKEN_KEY).ok()?
}

/// Saves (or, when empty, forgets) the API token.
pub fn save_token(token: &str) {
    if let Some(s) = storage() {
        let _ = if token.trim().is_empty() {
            s.remove_item(TOKEN_KEY)
        } else {
            s.set_item(TOKEN_KEY, token.trim())
        };
    }
}

/// The name notes and status changes are signed with.
pub fn load_author() -> String {
    storage()
        .and_then(|s| s.get_item(AUTHOR_KEY).ok().flatten())
        .unwrap_or_default()
}

/// Remembers the author name for the next note.
pub fn save_author(author: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item(AUTHOR_KEY, author.trim());
    }
}

/// Everything that decides a playground run, as in the URL.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaygroundParams {
    /// Scenario name from the core's catalogue.
    pub scenario: String,
    /// Random seed of the scenario.
    pub seed: u64,
    /// Size of the injected shift, as a multiple of the scenario's own (1 = as designed).
    pub shift: f64,
    /// Noise, as a multiple of the scenario's own.
    pub noise: f64,
    /// Traffic, as a multiple of the scenario's own.
    pub traffic: f64,
    /// Number of samples to generate (0 = the scenario's default).
    pub samples: usize,
    /// Whether the scenario's log events are replayed too (signature evidence).
    pub logs: bool,
    /// Detector: per-deploy false-alarm target.
    pub false_alarm_rate: f64,
    /// Detector: monitoring window after the deploy.
    pub monitoring_window_secs: u64,
    /// Detector: baseline window before the deploy.
    pub baseline_window_secs: u64,
    /// Detector: smallest relative change that counts.
    pub min_relative_effect: f64,
    /// Detector: shift the sequential test is tuned for.
    pub design_shift_sigmas: f64,
}

impl Default for PlaygroundParams {
    fn default() -> Self {
        let c = Config::default();
        PlaygroundParams {
            scenario: "latency_step".into(),
            seed: 42,
            shift: 1.0,
            noise: 1.0,
            traffic: 1.0,
            samples: 0,
            logs: true,
            false_alarm_rate: c.false_alarm_rate,
            monitoring_window_secs: c.monitoring_window_secs,
            baseline_window_secs: c.baseline_window_secs,
            min_relative_effect: c.min_relative_effect,
            design_shift_sigmas: c.design_shift_sigmas,
        }
    }
}

impl PlaygroundParams {
    /// The detector configuration these settings describe.
    pub fn config(&self) -> Config {
        Config {
            false_alarm_rate: self.false_alarm_rate,
            monitoring_window_secs: self.monitoring_window_secs,
            baseline_window_secs: self.baseline_window_secs,
            min_relative_effect: self.min_relative_effect,
            design_shift_sigmas: self.design_shift_sigmas,
            // A replay in the page has all the data: let a regression gather the log
            // evidence of the minutes after its detection, as `watchdog replay` does.
            evidence_grace_secs: Some(300),
            ..Config::default()
        }
    }

    /// The settings as a query string (without `?`), defaults left out.
    pub fn to_query(&self) -> String {
        let d = PlaygroundParams::default();
        let mut parts = vec![format!("scenario={}", encode(&self.scenario))];
        let mut put = |key: &str, value: String, default: String| {
            if value != default {
                parts.push(format!("{key}={}", encode(&value)));
            }
        };
        put("seed", self.seed.to_string(), d.seed.to_string());
        put("shift", self.shift.to_string(), d.shift.to_string());
        put("noise", self.noise.to_string(), d.noise.to_string());
        put("traffic", self.traffic.to_string(), d.traffic.to_string());
        put("samples", self.samples.to_string(), d.samples.to_string());
        put(
            "logs",
            u8::from(self.logs).to_string(),
            u8::from(d.logs).to_string(),
        );
        put(
            "far",
            self.false_alarm_rate.to_string(),
            d.false_alarm_rate.to_string(),
        );
        put(
            "window",
            self.monitoring_window_secs.to_string(),
            d.monitoring_window_secs.to_string(),
        );
        put(
            "baseline",
            self.baseline_window_secs.to_string(),
            d.baseline_window_secs.to_string(),
        );
        put(
            "effect",
            self.min_relative_effect.to_string(),
            d.min_relative_effect.to_string(),
        );
        put(
            "sigmas",
            self.design_shift_sigmas.to_string(),
            d.design_shift_sigmas.to_string(),
        );
        parts.join("&")
    }

    /// Reads settings from a query string (with or without `?`); unknown keys and values
    /// that do not parse keep their defaults.
    pub fn from_query(query: &str) -> PlaygroundParams {
        let mut p = PlaygroundParams::default();
        for (key, value) in query_pairs(query) {
            match key.as_str() {
                "scenario" if !value.is_empty() => p.scenario = value,
                "seed" => set(&mut p.seed, &value),
                "shift" => set(&mut p.shift, &value),
                "noise" => set(&mut p.noise, &value),
                "traffic" => set(&mut p.traffic, &value),
                "samples" => set(&mut p.samples, &value),
                "logs" => p.logs = value != "0",
                "far" => set(&mut p.false_alarm_rate, &value),
                "window" => set(&mut p.monitoring_window_secs, &value),
                "baseline" => set(&mut p.baseline_window_secs, &value),
                "effect" => set(&mut p.min_relative_effect, &value),
                "sigmas" => set(&mut p.design_shift_sigmas, &value),
                _ => {}
            }
        }
        p
    }
}

/// The decoded `key=value` pairs of a query string (with or without `?`).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn set<T: std::str::FromStr>(slot: &mut T, value: &str) {
    if let Ok(v) = value.parse() {
        *slot = v;
    }
}

/// Percent-encodes a query string value.
pub fn encode(s: &str) -> String {
    String::from(js_sys::encode_uri_component(s))
}

fn decode(s: &str) -> String {
    js_sys::decode_uri_component(&s.replace('+', " "))
        .map(String::from)
        .unwrap_or_else(|_| s.to_string())
}

/// The current URL's query string.
pub fn current_query() -> String {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default()
}

/// Replaces the URL's query string without a navigation, so the address bar is always a
/// link to what is on screen.
pub fn replace_query(query: &str) {
    if let Some(w) = web_sys::window() {
        let path = w.location().pathname().unwrap_or_default();
        let url = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        if let Ok(h) = w.history() {
            let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn query_round_trips_and_leaves_defaults_out() {
        let p = PlaygroundParams {
            scenario: "error_spike".into(),
            seed: 9,
            shift: 2.5,
            false_alarm_rate: 0.02,
            ..PlaygroundParams::default()
        };
        let q = p.to_query();
        assert_eq!(q, "scenario=error_spike&seed=9&shift=2.5&far=0.02");
        assert_eq!(PlaygroundParams::from_query(&format!("?{q}")), p);
    }

    #[wasm_bindgen_test]
    fn bad_values_keep_their_defaults() {
        let p =
            PlaygroundParams::from_query("scenario=healthy&seed=x&noise=&window=-5&zzz=1&logs=0");
        assert!(!p.logs);
        assert_eq!(p.scenario, "healthy");
        assert_eq!(p.seed, PlaygroundParams::default().seed);
        assert_eq!(p.monitoring_window_secs, 1800);
    }
}
