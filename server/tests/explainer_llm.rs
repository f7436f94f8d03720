//! The explainer against a real OpenAI-compatible HTTP server on loopback: a good
//! rephrasing is used; a changed number, a timeout, an HTTP error or a malformed answer
//! fall back to the local text with the reason; the same against an Ollama stand-in on
//! its own `/api/chat`.

mod common;

#[allow(dead_code)]
#[path = "../src/explainer.rs"]
mod explainer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use explainer::{Explainer, ExplainerConfig, ExplainerMode, ExplanationSource};
use serde_json::{json, Value};
use watchdog_core::explain::explain;
use watchdog_core::DeployVerdict;

type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "test-model",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}]
    })
}

/// Keeps a request the stand-in got in `seen`: the text it was asked to rephrase (the
/// user message).
fn keep(seen: &Seen, headers: HeaderMap, req: &Value) -> String {
    seen.lock().unwrap().push((headers, req.clone()));
    req["messages"][1]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// `/{behaviour}/v1/chat/completions`, where the behaviour is `good`, `changed`, `slow`,
/// `e500`, `garbage` or `empty`.
async fn chat(
    State(seen): State<Seen>,
    Path(behaviour): Path<String>,
    headers: HeaderMap,
    Json(req): Json<Value>,
) -> Response {
    let original = keep(&seen, headers, &req);
    match behaviour.as_str() {
        // Same facts and figures, different wording.
        "good" => Json(completion(&format!(
            "In short: {}",
            original.replace("was followed by a regression", "caused a regression")
        )))
        .into_response(),
        "changed" => Json(completion(&original.replace("6.2%", "6.8%"))).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Json(completion(&original)).into_response()
        }
        "e500" => (StatusCode::INTERNAL_SERVER_ERROR, "model not loaded").into_response(),
        "garbage" => (StatusCode::OK, "<html>not json</html>").into_response(),
        _ => Json(completion("   ")).into_response(),
    }
}

async fn llm_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/{behaviour}/v1/chat/completions", post(chat))
        .with_state(seen.clone());
    let addr = common::loopback::serve(app).await;
    (format!("http://{addr}"), seen)
}

fn verdict() -> DeployVerdict {
    serde_json::from_value(common::regression_verdict_json()).unwrap()
}

fn llm(base: &str, behaviour: &str, timeout_ms: u64) -> Explainer {
    Explainer::new(ExplainerConfig {
        mode: ExplainerMode::Llm,
        url: Some(format!("{base}/{behaviour}")),
        model: "test-model".into(),
        api_key: Some("sk-test".into()),
        timeout: Duration::from_millis(timeout_ms),
    })
}

#[tokio::test]
async fn a_rephrasing_that_keeps_every_number_is_used() {
    let (base, seen) = llm_server().await;
    let v = verdict();
    let out = llm(&base, "good", 5000).explain(&v).await;
    assert_eq!(
        out.source,
        ExplanationSource::Llm,
        "{:?}",
        out.fallback_reason
    );
    assert_eq!(out.fallback_reason, None);
    assert_eq!(out.model.as_deref(), Some("test-model"));
    assert!(
        out.text.starts_with("In short: checkout v1.4.2"),
        "{}",
        out.text
    );
    assert!(out.text.contains("caused a regression"), "{}", out.text);
    assert_eq!(out.local, explain(&v));

    let (headers, req) = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["authorization"], "Bearer sk-test");
    assert_eq!(req["model"], "test-model");
    assert_eq!(req["stream"], false);
    assert_eq!(req["messages"][0]["role"], "system");
    assert_eq!(req["messages"][1]["content"], explain(&v).to_text());
}

#[tokio::test]
async fn failures_fall_back_to_the_local_text_with_the_reason() {
    let (base, _seen) = llm_server().await;
    let v = verdict();
    let local = explain(&v).to_text();
    for (behaviour, timeout_ms, reason) in [
        (
            "changed",
            5000,
            "rephrasing changed the numbers (dropped: [6.2]; added: [6.8])",
        ),
        ("slow", 300, "timed out after 300 ms"),
        ("e500", 5000, "HTTP 500: model not loaded"),
        ("garbage", 5000, "answer is not a chat completion"),
        ("empty", 5000, "answer has no text"),
    ] {
        let out = llm(&base, behaviour, timeout_ms).explain(&v).await;
        assert_eq!(out.source, ExplanationSource::Local, "{behaviour}");
        assert_eq!(out.text, local, "{behaviour}");
        assert_eq!(out.model.as_deref(), Some("test-model"));
        let got = out.fallback_reason.unwrap_or_default();
        assert!(got.starts_with(reason), "{behaviour}: {got}");
        assert!(!got.contains("sk-test"));
    }
}

#[tokio::test]
async fn an_unreachable_server_falls_back() {
    let base = format!("http://127.0.0.1:{}", common::cli::free_port());
    let out = llm(&base, "good", 2000).explain(&verdict()).await;
    assert_eq!(out.source, ExplanationSource::Local);
    assert!(out.fallback_reason.unwrap().starts_with("request failed"));
}

#[tokio::test]
async fn local_mode_never_calls_out() {
    let ex = Explainer::new(ExplainerConfig::default());
    assert_eq!(ex.mode(), "local");
    let out = ex.explain(&verdict()).await;
    assert_eq!(out.source, ExplanationSource::Local);
    assert_eq!((out.model, out.fallback_reason), (None, None));
}

#[test]
fn configuration_from_the_environment_variables() {
    let cfg = |pairs: &[(&str, &str)]| {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ExplainerConfig::from_vars(move |k| {
            owned.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    };
    let auto_local = cfg(&[]).unwrap();
    assert_eq!(Explainer::new(auto_local.clone()).mode(), "local");
    assert_eq!(auto_local.timeout, Duration::from_millis(8000));
    assert_eq!(auto_local.model, "llama3.2");

    let auto_llm = cfg(&[
        ("WATCHDOG_LLM_URL", "http://127.0.0.1:11434"),
        ("WATCHDOG_LLM_MODEL", "qwen2.5"),
        ("WATCHDOG_LLM_TIMEOUT_MS", "2500"),
        ("WATCHDOG_LLM_API_KEY", "sk-secret"),
    ])
    .unwrap();
    assert_eq!(Explainer::new(auto_llm.clone()).mode(), "llm");
    assert_eq!(auto_llm.timeout, Duration::from_millis(2500));
    assert!(!format!("{auto_llm:?}").contains("sk-secret"));

    let forced_local = cfg(&[
        ("WATCHDOG_EXPLAINER", "local"),
        ("WATCHDOG_LLM_URL", "http://x"),
    ])
    .unwrap();
    assert_eq!(Explainer::new(forced_local).mode(), "local");

    let err = cfg(&[("WATCHDOG_EXPLAINER", "llm")]).unwrap_err();
    assert!(err.contains("WATCHDOG_LLM_URL"), "{err}");
    let err = cfg(&[("WATCHDOG_EXPLAINER", "gpt")]).unwrap_err();
    assert!(err.contains("\"gpt\""), "{err}");
    let err = cfg(&[("WATCHDOG_LLM_TIMEOUT_MS", "soon")]).unwrap_err();
    assert!(err.contains("\"soon\""), "{err}");
}

/// Ollama's own `/api/chat` with `stream: false`, under `/{behaviour}`.
async fn ollama_chat(
    State(seen): State<Seen>,
    Path(behaviour): Path<String>,
    headers: HeaderMap,
    Json(req): Json<Value>,
) -> Response {
    let original = keep(&seen, headers, &req);
    let answer = |content: String| {
        Json(json!({
            "model": req["model"], "created_at": "2026-03-30T19:30:00Z",
            "message": {"role": "assistant", "content": content},
            "done": true, "done_reason": "stop"
        }))
        .into_response()
    };
    match behaviour.as_str() {
        "good" => answer(format!("Briefly: {original}")),
        "changed" => answer(original.replace("6.2%", "6.8%")),
        "garbage" => (StatusCode::OK, "<html>not json</html>").into_response(),
        _ => answer(String::new()),
    }
}

#[tokio::test]
async fn ollama_mode_speaks_ollamas_chat_api() {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/{behaviour}/api/chat", post(ollama_chat))
        .with_state(seen.clone());
    let base = common::loopback::serve_url(app).await;
    let ollama = |behaviour: &str| {
        Explainer::new(ExplainerConfig {
            mode: ExplainerMode::Ollama,
            url: Some(format!("{base}/{behaviour}")),
            model: "gemma3".into(),
            api_key: None,
            timeout: Duration::from_millis(5000),
        })
    };
    let v = verdict();
    let ex = ollama("good");
    assert_eq!(ex.mode(), "ollama");
    let out = ex.explain(&v).await;
    assert_eq!(
        out.source,
        ExplanationSource::Llm,
        "{:?}",
        out.fallback_reason
    );
    assert!(
        out.text.starts_with("Briefly: checkout v1.4.2"),
        "{}",
        out.text
    );
    let (_, req) = seen.lock().unwrap()[0].clone();
    assert_eq!(req["model"], "gemma3");
    assert_eq!(req["stream"], false);
    assert_eq!(req["options"]["temperature"], 0);
    assert_eq!(req["messages"][1]["content"], explain(&v).to_text());

    for (behaviour, reason) in [
        (
            "changed",
            "rephrasing changed the numbers (dropped: [6.2]; added: [6.8])",
        ),
        ("garbage", "answer is not an Ollama chat response"),
        ("empty", "answer has no text"),
    ] {
        let out = ollama(behaviour).explain(&v).await;
        assert_eq!(out.source, ExplanationSource::Local, "{behaviour}");
        assert_eq!(out.text, explain(&v).to_text(), "{behaviour}");
        let got = out.fallback_reason.unwrap_or_default();
        assert!(got.starts_with(reason), "{behaviour}: {got}");
    }
}
