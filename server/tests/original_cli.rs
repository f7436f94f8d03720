//! The original WatchDog's commands, files and settings, run as its users run them:
//! through the built binary, on temporary state directories and loopback receivers
//! (docs/migration.md).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use common::cli::{free_port, listening_on, run_to_end, text, Running, CLEARED};
use common::loopback::get_json;
use common::BodyReceiver;

/// `simulate --state-dir DIR --deploy ID [--bad-deploy]`, checked to succeed.
fn simulate(cwd: &Path, dir: &str, deploy: &str, bad: bool) {
    let mut args = vec!["simulate", "--state-dir", dir, "--deploy", deploy];
    if bad {
        args.push("--bad-deploy");
    }
    let out = run_to_end(cwd, &args, &[]);
    assert!(
        out.status.success(),
        "simulate failed: {}",
        text(&out.stderr)
    );
}

/// An Ollama stand-in: `POST /api/chat` answers as Ollama does with `stream: false`,
/// rewording the user's text without touching a figure. Keeps every request body.
async fn ollama_stand_in() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = Router::new()
        .route(
            "/api/chat",
            post(
                |State(seen): State<Arc<Mutex<Vec<Value>>>>, Json(req): Json<Value>| async move {
                    seen.lock().unwrap().push(req.clone());
                    let original = req["messages"][1]["content"].as_str().unwrap_or("");
                    Json(json!({
                        "model": req["model"],
                        "created_at": "2026-03-30T19:30:00Z",
                        "message": {"role": "assistant", "content": format!("In short: {original}")},
                        "done": true,
                        "done_reason": "stop"
                    }))
                },
            ),
        )
        .with_state(seen.clone());
    let addr = common::loopback::serve(app).await;
    (format!("http://{addr}"), seen)
}

/// `watchdog run --state-dir STATE --webhook-url HOOK` with the explainer `mode` and
/// Ollama (model `gemma3`) at `ollama`.
fn run_with_ollama(cwd: &Path, state: &str, hook: &str, mode: &str, ollama: &str) -> Running {
    Running::start(
        cwd,
        &["run", "--state-dir", state, "--webhook-url", hook],
        &[
            ("WATCHDOG_EXPLAINER", mode),
            ("WATCHDOG_OLLAMA_URL", ollama),
            ("WATCHDOG_OLLAMA_MODEL", "gemma3"),
        ],
    )
}

#[test]
fn demo_and_benchmark_work_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_to_end(dir.path(), &["demo"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("verdict: REGRESSION"), "{stdout}");
    assert!(
        stdout.contains("error rate") && stdout.contains("REGRESSED"),
        "{stdout}"
    );

    let out = run_to_end(dir.path(), &["benchmark", "--trials", "3"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("3 trials per scenario"), "{stdout}");
    assert!(stdout.contains("Bad deploys caught: "), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_simulated_deploy_is_caught_by_run_and_posted_to_slack_with_an_ollama_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    simulate(cwd, ".WatchDog", "v1.4.2", true);
    // The original layout: three files, the samples in its single-service format.
    let metrics = std::fs::read_to_string(cwd.join(".WatchDog/metrics.jsonl")).unwrap();
    let first: Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    for k in ["timestamp", "error_rate", "p95_latency_ms", "request_rate"] {
        assert!(first.get(k).is_some(), "{k} missing from {first}");
    }
    assert!(first.get("service").is_none(), "{first}");
    let deploys = std::fs::read_to_string(cwd.join(".WatchDog/deploy-events.jsonl")).unwrap();
    assert!(deploys.contains("\"deploy_id\":\"v1.4.2\""), "{deploys}");
    assert!(cwd.join(".WatchDog/app.log").exists());

    let slack = BodyReceiver::start().await;
    let (ollama, asked) = ollama_stand_in().await;
    let hook = slack.url("/services/T000/B000/XXXX");
    let mut run = run_with_ollama(cwd, ".WatchDog", &hook, "ollama", &ollama);
    let out = run
        .wait_stdout(
            &["watching deploy v1.4.2", "verdict: REGRESSION", "triage:"],
            120,
        )
        .await;
    assert!(out.contains("app v1.4.2 (production)"), "{out}");
    assert!(
        out.contains("error rate") && out.contains("REGRESSED"),
        "{out}"
    );
    // The dominant error signature, as the original's verdict carried it.
    assert!(out.contains("payment gateway timeout"), "{out}");
    // The explanation went through Ollama's chat API and was used.
    assert!(
        out.contains("In short: app v1.4.2 (production): regression"),
        "{out}"
    );
    assert!(out.contains("(rephrased by ollama model gemma3)"), "{out}");
    let req = asked.lock().unwrap()[0].clone();
    assert_eq!(req["model"], "gemma3");
    assert_eq!(req["stream"], false);

    let got = slack.first(60).await;
    assert_eq!(got.path, "/services/T000/B000/XXXX");
    assert!(got.content_type.starts_with("application/json"), "{got:?}");
    let body: Value = serde_json::from_str(&got.body).unwrap();
    let blocks = body["blocks"].as_array().expect("Block Kit blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        got.body.contains("v1.4.2") && got.body.contains("Timeline"),
        "{}",
        got.body
    );
    assert!(got.body.contains("payment gateway timeout"), "{}", got.body);
    // The state went to the store in the state directory: once run stops, serve shows
    // the incident and exports it as Markdown and JSON.
    assert!(cwd.join(".WatchDog/watchdog.db").exists());
    assert!(run.terminate(30).success(), "{}", run.stderr());
    let port = free_port().to_string();
    let mut serve = Running::start(
        cwd,
        &["serve", "--state-dir", ".WatchDog", "--port", &port],
        &[],
    );
    serve.wait_stdout(&["watchdog listening on "], 60).await;
    let base = format!("http://127.0.0.1:{port}");
    let list = get_json(&reqwest::Client::new(), format!("{base}/api/v1/incidents")).await;
    assert!(
        list.to_string().contains("regression after deploy v1.4.2"),
        "{list}"
    );
    let md = reqwest::get(format!("{base}/api/v1/incidents/1/export?format=markdown"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        md.starts_with("# Incident 1: app in production: regression after deploy v1.4.2"),
        "{md}"
    );
    let doc = get_json(
        &reqwest::Client::new(),
        format!("{base}/api/v1/incidents/1/export?format=json"),
    )
    .await;
    assert!(
        doc.to_string().contains("\"deploy_id\":\"v1.4.2\""),
        "{doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_webhook_gets_the_text_body_and_auto_falls_back_to_local() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    simulate(cwd, "state", "v2.0.0", true);
    let plain = BodyReceiver::start().await;
    let hook = plain.url("/watchdog");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut run = run_with_ollama(cwd, "state", &hook, "auto", &dead);
    let out = run
        .wait_stdout(&["verdict: REGRESSION", "triage:"], 120)
        .await;
    // Ollama could not be reached: the local text, and why.
    assert!(out.contains("app v2.0.0 (production): regression"), "{out}");
    assert!(
        out.contains("(the ollama explainer was not used: "),
        "{out}"
    );
    let got = plain.first(60).await;
    assert_eq!(got.path, "/watchdog");
    assert!(got.content_type.starts_with("text/plain"), "{got:?}");
    assert!(
        got.body.starts_with("[WatchDog] ") && got.body.contains("regression: app v2.0.0"),
        "{}",
        got.body
    );
    assert!(got.body.contains("error rate (regressed)"), "{}", got.body);
    assert!(got.body.contains("Timeline:"), "{}", got.body);
    assert!(
        serde_json::from_str::<Value>(&got.body).is_err(),
        "not JSON"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_simulated_deploy_is_healthy_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    simulate(cwd, ".WatchDog", "v1.4.1", false);
    let hook = BodyReceiver::start().await;
    let url = hook.url("/watchdog");
    // local: the Ollama settings are there, and never used.
    let (ollama, asked) = ollama_stand_in().await;
    let mut run = run_with_ollama(cwd, ".WatchDog", &url, "local", &ollama);
    let out = run.wait_stdout(&["verdict: HEALTHY", "triage:"], 120).await;
    assert!(asked.lock().unwrap().is_empty());
    assert!(
        !out.contains("rephrased") && !out.contains("In short"),
        "{out}"
    );
    assert!(out.contains("app v1.4.1 (production)"), "{out}");
    assert!(!out.contains("REGRESSION"), "{out}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(hook.received().is_empty(), "{:?}", hook.received());
}

/// Appends `n` samples every 10 s from `from_secs` (epoch) to the metrics file.
fn append_samples(path: &Path, from_secs: i64, n: i64, error_rate: f64) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let mut body = String::new();
    for i in 0..n {
        let ts = watchdog_core::Timestamp::from_secs(from_secs + i * 10);
        let wiggle = if i % 2 == 0 { 1.05 } else { 0.95 };
        body.push_str(&format!(
            "{{\"timestamp\":\"{ts}\",\"error_rate\":{:.4},\"p95_latency_ms\":{:.1},\"request_rate\":{:.1}}}\n",
            error_rate * wiggle,
            200.0 * wiggle,
            1200.0 * wiggle
        ));
    }
    f.write_all(body.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_is_picked_up_by_a_running_run_with_the_original_config() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    simulate(cwd, ".WatchDog", "v1.4.1", false);
    let hook = BodyReceiver::start().await;
    // The original's config file, as its README shows it, with a loopback webhook.
    let config = json!({
        "baseline_capacity": 120,
        "monitoring_window_secs": 300,
        "log_file": ".WatchDog/app.log",
        "webhook_url": hook.url("/watchdog"),
        "detector": {"error_threshold": 0.08, "error_drift": 0.002, "latency_threshold": 120.0, "latency_drift": 5.0}
    });
    std::fs::write(cwd.join("watchdog.json"), config.to_string()).unwrap();
    // auto with an Ollama model set: Ollama is tried, and answers.
    let (ollama, asked) = ollama_stand_in().await;
    let mut run = Running::start(
        cwd,
        &[
            "run",
            "--state-dir",
            ".WatchDog",
            "--config",
            "watchdog.json",
        ],
        &[
            ("WATCHDOG_EXPLAINER", "auto"),
            ("OLLAMA_HOST", ollama.trim_start_matches("http://")),
            ("WATCHDOG_OLLAMA_MODEL", "gemma3"),
        ],
    );
    // The simulated deploy is judged first (healthy, with the config's 5-minute window).
    run.wait_stdout(
        &[
            "watching deploy v1.4.1",
            "for up to 300 s",
            "verdict: HEALTHY",
        ],
        120,
    )
    .await;
    let err = run.stderr();
    assert_eq!(
        err.matches("warning: config file watchdog.json").count(),
        1,
        "{err}"
    );
    for key in [
        "`baseline_capacity`",
        "`detector.error_threshold`",
        "`detector.latency_drift`",
        "false_alarm_rate",
    ] {
        assert!(err.contains(key), "{key} not in {err}");
    }

    // The deploy hook, as the original's README runs it (the deploy time is now).
    let out = run_to_end(
        cwd,
        &[
            "notify",
            "--state-dir",
            ".WatchDog",
            "--deploy",
            "v1.4.2",
            "--environment",
            "production",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deployed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    run.wait_stdout(&["watching deploy v1.4.2 of app (production)"], 30)
        .await;

    // The application's metrics keep coming: after the deploy the error rate is 8 %.
    append_samples(
        &cwd.join(".WatchDog/metrics.jsonl"),
        deployed_at + 10,
        60,
        0.08,
    );
    let out = run
        .wait_stdout(
            &["app v1.4.2 (production) deployed", "verdict: REGRESSION"],
            120,
        )
        .await;
    assert!(
        out.contains("error rate") && out.contains("REGRESSED"),
        "{out}"
    );
    assert!(
        out.contains("In short: app v1.4.2 (production): regression"),
        "{out}"
    );
    assert_eq!(asked.lock().unwrap()[0]["model"], "gemma3");
    // The config's webhook_url got the plain-text alert.
    let got = hook.first(60).await;
    assert!(got.content_type.starts_with("text/plain"), "{got:?}");
    assert!(got.body.contains("app v1.4.2 (production)"), "{}", got.body);
    // A deploy pipeline's supervisor stops it with SIGTERM: a clean exit.
    let status = run.terminate(30);
    assert!(status.success(), "{status}\n{}", run.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_override_the_config_file_and_log_file_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    simulate(cwd, "s", "v3.0.0", true);
    // The log somewhere else, named by --log-file; the config names a file that is not
    // there, so the error signature can only come from the flag's file.
    std::fs::rename(cwd.join("s/app.log"), cwd.join("elsewhere.log")).unwrap();
    std::fs::write(
        cwd.join("old.json"),
        r#"{"monitoring_window_secs":300,"log_file":"missing.log"}"#,
    )
    .unwrap();
    let mut run = Running::start(
        cwd,
        &[
            "run",
            "--state-dir",
            "s",
            "--config",
            "old.json",
            "--log-file",
            "elsewhere.log",
            "--monitoring-window-secs",
            "240",
        ],
        &[("WATCHDOG_EXPLAINER", "local")],
    );
    let out = run
        .wait_stdout(&["for up to 240 s", "verdict: REGRESSION", "triage:"], 120)
        .await;
    assert!(out.contains("payment gateway timeout"), "{out}");
    // No replaced key, no warning.
    assert!(
        !run.stderr().contains("warning: config file"),
        "{}",
        run.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_state_dir_and_port_answers_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    std::fs::write(
        dir.path().join("watchdog.json"),
        r#"{"monitoring_window_secs":300,"log_file":".watchdog-demo/app.log","detector":{"error_threshold":0.08}}"#,
    )
    .unwrap();
    let mut serve = Running::start(
        dir.path(),
        &[
            "serve",
            "--state-dir",
            ".watchdog-demo",
            "--port",
            &port,
            "--config",
            "watchdog.json",
        ],
        &[],
    );
    let out = serve
        .wait_stdout(&[&format!("listening on http://127.0.0.1:{port}")], 60)
        .await;
    assert!(!out.is_empty());
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");
    assert!(dir.path().join(".watchdog-demo/watchdog.db").exists());
    // The original config: its replaced key warned about, its log_file not silently
    // dropped.
    let err = serve.stderr();
    assert!(err.contains("`detector.error_threshold`"), "{err}");
    assert!(
        err.contains("log_file (.watchdog-demo/app.log) is followed by `watchdog run"),
        "{err}"
    );
    // No token was given: read-only, and said so.
    assert!(serve.stderr().contains("read-only"), "{}", serve.stderr());
    let write = client
        .post(format!("http://127.0.0.1:{port}/api/v1/deploys"))
        .json(&json!([{"timestamp": "2026-03-30T19:30:00Z", "deploy_id": "v1", "service": "app"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 401);
    let why: Value = write.json().await.unwrap();
    assert!(
        why["error"].as_str().unwrap().contains("read-only"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_sh_works_in_file_mode_and_against_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deploy.sh");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_watchdog")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let deploy_sh = |env: &[(&str, &str)]| {
        let mut c = Command::new("bash");
        c.arg(&script)
            .args(["checkout", "production", "v1.4.2"])
            .current_dir(cwd)
            .env("PATH", &path);
        for k in CLEARED {
            c.env_remove(k);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };

    // File mode: the deploy lands in the state directory for `run`.
    let out = deploy_sh(&[("WATCHDOG_STATE_DIR", ".WatchDog")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = std::fs::read_to_string(cwd.join(".WatchDog/deploy-events.jsonl")).unwrap();
    let line: Value = serde_json::from_str(events.trim()).unwrap();
    assert_eq!(line["deploy_id"], "v1.4.2");
    assert_eq!(line["service"], "checkout");
    assert_eq!(line["environment"], "production");
    let parsed = watchdog_core::Deploy::from_json_line(events.trim()).unwrap();
    assert_eq!(parsed.deploy_id, "v1.4.2");

    // Server mode: the deploy is posted to a running server.
    let token = "deploy-sh-token";
    let mut serve = Running::start(
        cwd,
        &[
            "serve",
            "--state-dir",
            "server-state",
            "--listen",
            "127.0.0.1:0",
        ],
        &[("WATCHDOG_API_TOKEN", token)],
    );
    let out = serve.wait_stdout(&["watchdog listening on "], 60).await;
    let base = listening_on(&out);
    let out = deploy_sh(&[("WATCHDOG_SERVER", &base), ("WATCHDOG_API_TOKEN", token)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = get_json(&reqwest::Client::new(), format!("{base}/api/v1/deploys")).await;
    let s = list.to_string();
    assert!(
        s.contains("\"deploy_id\":\"v1.4.2\"") && s.contains("\"checkout\""),
        "{s}"
    );
}

#[test]
fn storage_variables_work_or_say_what_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    simulate(cwd, ".WatchDog", "v1.4.2", true);

    // sqlite with a file path, as in the original's examples.
    let out = run_to_end(
        cwd,
        &["run", "--state-dir", ".WatchDog", "--once"],
        &[
            ("WATCHDOG_STORAGE", "sqlite"),
            ("WATCHDOG_DATABASE_URL", "db/watchdog-new.sqlite"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"verdict\":\"regression\""),
        "{}",
        text(&out.stdout)
    );
    assert!(cwd.join("db/watchdog-new.sqlite").metadata().unwrap().len() > 0);
    assert!(!cwd.join(".WatchDog/watchdog.db").exists());

    // sqlite alone: watchdog.db in the state directory; the original's watchdog.sqlite
    // there is named and left as it is.
    std::fs::write(
        cwd.join(".WatchDog/watchdog.sqlite"),
        b"the original's bytes",
    )
    .unwrap();
    std::fs::remove_file(cwd.join(".WatchDog/run-offsets.json")).unwrap();
    let out = run_to_end(
        cwd,
        &["run", "--state-dir", ".WatchDog", "--once"],
        &[("WATCHDOG_STORAGE", "sqlite")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"verdict\":\"regression\""));
    assert!(cwd.join(".WatchDog/watchdog.db").exists());
    let err = text(&out.stderr);
    assert!(
        err.contains("watchdog.sqlite is the original WatchDog's database"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(cwd.join(".WatchDog/watchdog.sqlite")).unwrap(),
        b"the original's bytes"
    );

    // The original's own database file: refused, never changed, with what to do.
    let foreign = cwd.join("old.sqlite");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::sqlite::SqliteConnectOptions;
        use sqlx::{ConnectOptions, Connection};
        let mut c = SqliteConnectOptions::new()
            .filename(&foreign)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE incidents (id TEXT PRIMARY KEY, body TEXT)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let before = std::fs::read(&foreign).unwrap();
    let out = run_to_end(
        cwd,
        &["serve", "--state-dir", "x", "--listen", "127.0.0.1:0"],
        &[("WATCHDOG_DATABASE_URL", "old.sqlite")],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("old.sqlite") && err.contains("incidents"),
        "{err}"
    );
    assert!(err.contains("watchdog.db"), "{err}");
    assert_eq!(std::fs::read(&foreign).unwrap(), before);

    // json: not available, and what to use instead.
    let out = run_to_end(
        cwd,
        &["serve", "--state-dir", "x", "--listen", "127.0.0.1:0"],
        &[("WATCHDOG_STORAGE", "json")],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("WATCHDOG_STORAGE=json") && err.contains("SQLite"),
        "{err}"
    );

    // supabase over REST: fails at start with the Postgres connection strings to use.
    let out = run_to_end(
        cwd,
        &["run", "--state-dir", ".WatchDog"],
        &[
            ("WATCHDOG_STORAGE", "supabase"),
            ("SUPABASE_URL", "https://abcdefghijkl.supabase.co"),
            ("SUPABASE_SERVICE_ROLE_KEY", "service-role-secret"),
        ],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("WATCHDOG_DATABASE_URL"), "{err}");
    assert!(err.contains("db.abcdefghijkl.supabase.co:5432"), "{err}");
    assert!(
        err.contains("postgres.abcdefghijkl:<password>@aws-0-<region>.pooler.supabase.com:6543"),
        "{err}"
    );
    assert!(err.contains("pgbouncer=true"), "{err}");
    assert!(!err.contains("service-role-secret"), "{err}");
}

#[test]
fn the_original_flags_outside_their_layout_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_to_end(
        dir.path(),
        &[
            "simulate",
            "--scenario",
            "healthy",
            "--out",
            "x",
            "--deploy",
            "v1",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("add --state-dir DIR"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("x").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_reached_while_run_restarts_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    simulate(cwd, ".WatchDog", "v1.4.1", false);
    // Keep ten minutes of data after the deploy: too little for a 30-minute watch.
    let deploys = std::fs::read_to_string(cwd.join(".WatchDog/deploy-events.jsonl")).unwrap();
    let deployed_at = watchdog_core::Deploy::from_json_line(deploys.trim())
        .unwrap()
        .timestamp;
    let metrics_path = cwd.join(".WatchDog/metrics.jsonl");
    let kept: String = std::fs::read_to_string(&metrics_path)
        .unwrap()
        .lines()
        .filter(|l| {
            watchdog_core::Sample::from_json_line(l)
                .unwrap()
                .timestamp
                .secs_since(deployed_at)
                <= 600.0
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&metrics_path, kept).unwrap();

    let mut first = Running::start(
        cwd,
        &["run", "--state-dir", ".WatchDog"],
        &[("WATCHDOG_EXPLAINER", "local")],
    );
    first
        .wait_stdout(&["watching deploy v1.4.1", "for up to 1800 s"], 60)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!first.stdout().contains("verdict:"), "{}", first.stdout());
    assert!(first.terminate(30).success());

    // Restarted with a 5-minute watch, the stored data decides it while the engine is
    // rebuilt, before any new line is read.
    let mut second = Running::start(
        cwd,
        &[
            "run",
            "--state-dir",
            ".WatchDog",
            "--monitoring-window-secs",
            "300",
        ],
        &[("WATCHDOG_EXPLAINER", "local")],
    );
    let out = second
        .wait_stdout(&["verdict: HEALTHY", "triage:"], 60)
        .await;
    assert!(out.contains("app v1.4.1 (production)"), "{out}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        second.stdout().matches("verdict:").count(),
        1,
        "{}",
        second.stdout()
    );
}
