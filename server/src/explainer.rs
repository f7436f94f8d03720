//! Explanations for people, optionally rephrased by a language model.
//!
//! The local explanation ([`watchdog_core::explain::explain`]) is always computed and is
//! the fallback for every failure. In `llm` mode its text is sent to an OpenAI-compatible
//! `POST {base}/v1/chat/completions` endpoint (Ollama, vLLM, llama.cpp's server, OpenAI)
//! with the instruction to rephrase without touching any figure; the answer is used only
//! when [`numbers_consistent`] holds between the two texts.
//!
//! Configuration (environment): `WATCHDOG_EXPLAINER=auto|local|llm|ollama` (default
//! `auto`: llm when `WATCHDOG_LLM_URL` is set, else ollama when an Ollama variable is set,
//! else local), `WATCHDOG_LLM_URL`, `WATCHDOG_LLM_MODEL` (default [`DEFAULT_MODEL`]),
//! `WATCHDOG_LLM_API_KEY` (optional bearer token) and `WATCHDOG_LLM_TIMEOUT_MS` (default
//! 8000).
//!
//! `ollama` is the original WatchDog's mode: Ollama's own `POST {base}/api/chat`, with the
//! base from `WATCHDOG_OLLAMA_URL` or Ollama's `OLLAMA_HOST` (default
//! [`DEFAULT_OLLAMA_URL`]) and the model from `WATCHDOG_OLLAMA_MODEL` (default
//! [`DEFAULT_OLLAMA_MODEL`]). The same number check and fallback apply.
//!
//! Dependencies: reqwest (json, rustls-tls), serde, serde_json, watchdog-core; tests use
//! tokio and axum.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use watchdog_core::explain::{explain, numbers_consistent, numbers_in, Explanation};
use watchdog_core::DeployVerdict;

/// Model asked for when `WATCHDOG_LLM_MODEL` is not set.
pub const DEFAULT_MODEL: &str = "llama3.2";

/// Ollama's address when neither `WATCHDOG_OLLAMA_URL` nor `OLLAMA_HOST` is set.
pub const DEFAULT_OLLAMA_URL: &str = "http://127.0.0.1:11434";

/// Model asked of Ollama when `WATCHDOG_OLLAMA_MODEL` is not set.
pub const DEFAULT_OLLAMA_MODEL: &str = "gemma3";

/// Time limit of one rephrasing when `WATCHDOG_LLM_TIMEOUT_MS` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(8000);

/// What the model is told. The figures rule is checked afterwards anyway.
const SYSTEM_PROMPT: &str = "You rewrite incident explanations for engineers, SREs and \
engineering managers. Rewrite the user's text so it reads clearly and briefly, as plain \
text. Keep every number, unit, timestamp, identifier and quoted log text exactly as \
written; do not round, convert, add or drop any number; do not add facts, causes, list \
numbering or advice that the text does not contain. Answer with the rewritten text only.";

/// How explanations are produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExplainerMode {
    /// `llm` when a model URL is configured, else `local`.
    Auto,
    /// Only the deterministic local text.
    Local,
    /// Rephrase with the model, falling back to the local text.
    Llm,
    /// Rephrase with a model served by Ollama (its native API), falling back to the
    /// local text.
    Ollama,
}

impl std::str::FromStr for ExplainerMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(ExplainerMode::Auto),
            "local" => Ok(ExplainerMode::Local),
            "llm" => Ok(ExplainerMode::Llm),
            "ollama" => Ok(ExplainerMode::Ollama),
            other => Err(format!(
                "WATCHDOG_EXPLAINER must be auto, local, llm or ollama, got {other:?}"
            )),
        }
    }
}

/// Explainer settings.
#[derive(Clone, PartialEq, Eq)]
pub struct ExplainerConfig {
    /// Requested mode.
    pub mode: ExplainerMode,
    /// Base URL of the OpenAI-compatible server (`http://127.0.0.1:11434` for Ollama), or
    /// of Ollama itself in `ollama` mode.
    pub url: Option<String>,
    /// Model name.
    pub model: String,
    /// Bearer token, if the server wants one.
    pub api_key: Option<String>,
    /// Time limit of one rephrasing, request to last byte.
    pub timeout: Duration,
}

impl fmt::Debug for ExplainerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExplainerConfig")
            .field("mode", &self.mode)
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for ExplainerConfig {
    fn default() -> Self {
        ExplainerConfig {
            mode: ExplainerMode::Auto,
            url: None,
            model: DEFAULT_MODEL.to_string(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl ExplainerConfig {
    /// Settings from the process environment; see [`ExplainerConfig::from_vars`].
    ///
    /// # Errors
    /// As [`ExplainerConfig::from_vars`].
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Settings from `WATCHDOG_EXPLAINER`, `WATCHDOG_LLM_URL`, `WATCHDOG_LLM_MODEL`,
    /// `WATCHDOG_LLM_API_KEY`, `WATCHDOG_LLM_TIMEOUT_MS`, `WATCHDOG_OLLAMA_URL`,
    /// `OLLAMA_HOST` and `WATCHDOG_OLLAMA_MODEL`, read through `var`. `auto` without
    /// `WATCHDOG_LLM_URL` but with an Ollama variable set resolves to `ollama`.
    ///
    /// # Errors
    /// A message naming the variable when the mode is unknown, the timeout is not a
    /// positive whole number of milliseconds, or `llm` mode has no URL.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |k: &str| {
            var(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut mode: ExplainerMode = get("WATCHDOG_EXPLAINER").unwrap_or_default().parse()?;
        let mut url = get("WATCHDOG_LLM_URL");
        let ollama_url = get("WATCHDOG_OLLAMA_URL").or_else(|| get("OLLAMA_HOST"));
        let ollama_model = get("WATCHDOG_OLLAMA_MODEL");
        if mode == ExplainerMode::Auto
            && url.is_none()
            && (ollama_url.is_some() || ollama_model.is_some())
        {
            mode = ExplainerMode::Ollama;
        }
        let mut model = get("WATCHDOG_LLM_MODEL").unwrap_or_else(|| DEFAULT_MODEL.to_string());
        if mode == ExplainerMode::Ollama {
            url = Some(ollama_base(
                ollama_url.as_deref().unwrap_or(DEFAULT_OLLAMA_URL),
            ));
            model = ollama_model.unwrap_or_else(|| DEFAULT_OLLAMA_MODEL.to_string());
        }
        if mode == ExplainerMode::Llm && url.is_none() {
            return Err("WATCHDOG_EXPLAINER=llm needs WATCHDOG_LLM_URL, the base URL of an OpenAI-compatible server such as http://127.0.0.1:11434".into());
        }
        let timeout = match get("WATCHDOG_LLM_TIMEOUT_MS") {
            None => DEFAULT_TIMEOUT,
            Some(t) => match t.parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(format!(
                    "WATCHDOG_LLM_TIMEOUT_MS must be a positive number of milliseconds, got {t:?}"
                ))
                }
            },
        };
        Ok(ExplainerConfig {
            mode,
            url,
            model,
            api_key: get("WATCHDOG_LLM_API_KEY"),
            timeout,
        })
    }
}

/// Where a text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExplanationSource {
    /// The deterministic explainer.
    Local,
    /// A language model's rephrasing of it.
    Llm,
}

/// An explanation ready to show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplanationResult {
    /// The text to show: the model's rephrasing, or the local text.
    pub text: String,
    /// Which of the two it is.
    pub source: ExplanationSource,
    /// The model, when one was asked (also when its answer was not used).
    pub model: Option<String>,
    /// Why the model's answer was not used, when one was asked for.
    pub fallback_reason: Option<String>,
    /// The structured local explanation, always.
    pub local: Explanation,
}

/// Produces explanations; cheap to clone (the HTTP client is shared).
#[derive(Clone, Debug)]
pub struct Explainer {
    config: ExplainerConfig,
    endpoint: Option<String>,
    client: reqwest::Client,
}

/// `OLLAMA_HOST` style values (`0.0.0.0:11434`, `localhost`) as a base URL: a missing
/// scheme is `http://`, a missing port Ollama's 11434.
fn ollama_base(value: &str) -> String {
    let v = value.trim().trim_end_matches('/');
    let with_scheme = if v.contains("://") {
        v.to_string()
    } else {
        format!("http://{v}")
    };
    let authority = with_scheme
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
        .unwrap_or("");
    // `[::1]` has colons but no port: a port is digits after the last colon.
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    match reqwest::Url::parse(&with_scheme) {
        Ok(mut url) if !has_port => {
            let _ = url.set_port(Some(11434));
            url.as_str().trim_end_matches('/').to_string()
        }
        _ => with_scheme,
    }
}

/// `http://h:1` → `http://h:1/v1/chat/completions`; a base already ending in `/v1` is
/// not doubled.
fn endpoint(base: &str) -> String {
    let b = base.trim_end_matches('/');
    if b.ends_with("/chat/completions") {
        b.to_string()
    } else if b.ends_with("/v1") {
        format!("{b}/chat/completions")
    } else {
        format!("{b}/v1/chat/completions")
    }
}

impl Explainer {
    /// An explainer with these settings.
    pub fn new(config: ExplainerConfig) -> Self {
        let endpoint = match config.mode {
            ExplainerMode::Local => None,
            ExplainerMode::Llm | ExplainerMode::Auto => config.url.as_deref().map(endpoint),
            ExplainerMode::Ollama => config
                .url
                .as_deref()
                .map(|b| format!("{}/api/chat", b.trim_end_matches('/'))),
        };
        Explainer {
            config,
            endpoint,
            client: reqwest::Client::new(),
        }
    }

    /// An explainer configured from the environment.
    ///
    /// # Errors
    /// As [`ExplainerConfig::from_vars`].
    pub fn from_env() -> Result<Self, String> {
        ExplainerConfig::from_env().map(Self::new)
    }

    /// The mode in effect: `local`, `llm` or `ollama` (auto resolved).
    pub fn mode(&self) -> &'static str {
        match (&self.endpoint, self.config.mode) {
            (None, _) => "local",
            (Some(_), ExplainerMode::Ollama) => "ollama",
            (Some(_), _) => "llm",
        }
    }

    /// Explains a verdict: the local text, rephrased by the model in `llm` mode when the
    /// model answers in time with a text that keeps every number. Never fails.
    pub async fn explain(&self, v: &DeployVerdict) -> ExplanationResult {
        let local = explain(v);
        let text = local.to_text();
        let Some(endpoint) = &self.endpoint else {
            return ExplanationResult {
                text,
                source: ExplanationSource::Local,
                model: None,
                fallback_reason: None,
                local,
            };
        };
        let model = Some(self.config.model.clone());
        match self.rephrase(endpoint, &text).await {
            Ok(rephrased) => ExplanationResult {
                text: rephrased,
                source: ExplanationSource::Llm,
                model,
                fallback_reason: None,
                local,
            },
            Err(reason) => ExplanationResult {
                text,
                source: ExplanationSource::Local,
                model,
                fallback_reason: Some(reason),
                local,
            },
        }
    }

    /// The model's rephrasing of `text`, or why there is none.
    async fn rephrase(&self, endpoint: &str, text: &str) -> Result<String, String> {
        let ollama = self.config.mode == ExplainerMode::Ollama;
        let messages = json!([
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": text},
        ]);
        let body = if ollama {
            // Ollama's native chat API: sampling options go under `options`.
            json!({
                "model": self.config.model,
                "messages": messages,
                "options": {"temperature": 0},
                "stream": false,
            })
        } else {
            json!({
                "model": self.config.model,
                "messages": messages,
                "temperature": 0,
                "stream": false,
            })
        };
        let mut req = self
            .client
            .post(endpoint)
            .timeout(self.config.timeout)
            .json(&body);
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key);
        }
        let timeout_msg = || format!("timed out after {} ms", self.config.timeout.as_millis());
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                timeout_msg()
            } else {
                format!("request failed: {}", e.without_url())
            }
        })?;
        let status = resp.status();
        let raw = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                timeout_msg()
            } else {
                format!("reading the answer failed: {}", e.without_url())
            }
        })?;
        if !status.is_success() {
            let excerpt: String = String::from_utf8_lossy(&raw).chars().take(200).collect();
            return Err(format!("HTTP {}: {}", status.as_u16(), excerpt.trim()));
        }
        let content = if ollama {
            let parsed: OllamaChat = serde_json::from_slice(&raw)
                .map_err(|e| format!("answer is not an Ollama chat response: {e}"))?;
            parsed.message.and_then(|m| m.content)
        } else {
            let parsed: ChatCompletion = serde_json::from_slice(&raw)
                .map_err(|e| format!("answer is not a chat completion: {e}"))?;
            parsed
                .choices
                .into_iter()
                .next()
                .and_then(|c| c.message.content)
        }
        .map(|c| c.trim().to_string())
        .unwrap_or_default();
        if content.is_empty() {
            return Err("answer has no text".into());
        }
        if !numbers_consistent(text, &content) {
            return Err(number_mismatch(text, &content));
        }
        Ok(content)
    }
}

/// Which numbers a rephrasing dropped and which it added.
fn number_mismatch(original: &str, rephrased: &str) -> String {
    let a = numbers_in(original);
    let b = numbers_in(rephrased);
    let fmt = |xs: Vec<f64>| {
        let mut v: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
        v.dedup();
        v.join(", ")
    };
    let dropped: Vec<f64> = a.iter().copied().filter(|x| !b.contains(x)).collect();
    let added: Vec<f64> = b.iter().copied().filter(|y| !a.contains(y)).collect();
    format!(
        "rephrasing changed the numbers (dropped: [{}]; added: [{}])",
        fmt(dropped),
        fmt(added)
    )
}

#[derive(Deserialize)]
struct ChatCompletion {
    choices: Vec<Choice>,
}

/// Ollama's `/api/chat` answer with `stream: false`: `{"message":{"content":…},"done":true}`.
#[derive(Deserialize)]
struct OllamaChat {
    message: Option<ChatMessage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChatMessage,
}

#[derive(Deserialize)]
struct ChatMessage {
    content: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_host_values_become_base_urls() {
        assert_eq!(ollama_base("0.0.0.0:11434"), "http://0.0.0.0:11434");
        assert_eq!(ollama_base("localhost"), "http://localhost:11434");
        assert_eq!(ollama_base("http://10.0.0.5/"), "http://10.0.0.5:11434");
        assert_eq!(
            ollama_base("https://llm.example:8443"),
            "https://llm.example:8443"
        );
        assert_eq!(ollama_base("[::1]"), "http://[::1]:11434");
        assert_eq!(ollama_base("[::1]:9000"), "http://[::1]:9000");
    }

    #[test]
    fn ollama_mode_and_auto_with_an_ollama_model() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = ExplainerConfig::from_vars(vars(&[("WATCHDOG_EXPLAINER", "ollama")])).unwrap();
        assert_eq!(c.url.as_deref(), Some(DEFAULT_OLLAMA_URL));
        assert_eq!(c.model, DEFAULT_OLLAMA_MODEL);
        let e = Explainer::new(c);
        assert_eq!(e.mode(), "ollama");
        assert_eq!(
            e.endpoint.as_deref(),
            Some("http://127.0.0.1:11434/api/chat")
        );

        let c = ExplainerConfig::from_vars(vars(&[
            ("WATCHDOG_OLLAMA_MODEL", "qwen3"),
            ("OLLAMA_HOST", "127.0.0.1:9999"),
        ]))
        .unwrap();
        assert_eq!(c.mode, ExplainerMode::Ollama);
        assert_eq!(c.model, "qwen3");
        assert_eq!(c.url.as_deref(), Some("http://127.0.0.1:9999"));

        // An OpenAI-compatible URL keeps precedence in auto mode.
        let c = ExplainerConfig::from_vars(vars(&[
            ("WATCHDOG_OLLAMA_MODEL", "qwen3"),
            ("WATCHDOG_LLM_URL", "http://127.0.0.1:8000"),
        ]))
        .unwrap();
        assert_eq!(Explainer::new(c).mode(), "llm");

        let c = ExplainerConfig::from_vars(vars(&[("WATCHDOG_EXPLAINER", "local")])).unwrap();
        assert_eq!(Explainer::new(c).mode(), "local");
    }
}
