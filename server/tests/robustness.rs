//! The server keeps judging correctly under bad clocks, late data, dropped requests and
//! restarts (issue 12). Real SQLite files in temp directories, the HTTP application driven
//! with `oneshot`, the wall clock as a live server uses it.

mod common;

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use watchdog::config::{Clock, ServerConfig};
use watchdog::server::Server;
use watchdog::store::{NewDeploy, NewRecord, Store};
use watchdog_core::{Deploy, Sample, Timestamp};

use common::app::{call_text, TOKEN};
use common::{metrics_ndjson, T0};

fn config(dir: &Path, clock: Clock) -> ServerConfig {
    common::app::config(dir, clock)
}

async fn start_on(config: ServerConfig, store: Option<std::sync::Arc<dyn Store>>) -> Server {
    match store {
        Some(store) => Server::start_with_store(config, store, Vec::new(), common::app::no_llm())
            .await
            .unwrap(),
        None => common::app::start(config, Vec::new()).await,
    }
}

async fn call(
    server: &Server,
    method: &str,
    uri: &str,
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let (s, v, _) = call_text(server, method, uri, body).await;
    (s, v)
}

async fn start(dir: &Path, clock: Clock) -> Server {
    start_on(config(dir, clock), None).await
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn deploy_json(ts_secs: i64, id: &str, service: &str) -> String {
    json!([{
        "timestamp": Timestamp::from_secs(ts_secs).to_string(),
        "deploy_id": id,
        "service": service,
        "environment": "production",
    }])
    .to_string()
}

/// An hour of 1 % errors before `deploy_secs`, then 20 % from it until `until_secs`.
fn late_deploy_data(service: &str, deploy_secs: i64, until_secs: i64) -> (String, String) {
    let before = metrics_ndjson(service, "production", deploy_secs - 3600, 360, 10, 0.01);
    let n_after = ((until_secs - deploy_secs) / 10) as usize;
    let after = metrics_ndjson(service, "production", deploy_secs, n_after, 10, 0.20);
    (before, after)
}

/// The store rows of these sample lines, as the ingest path would write them.
fn records<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<NewRecord> {
    lines
        .into_iter()
        .map(|l| {
            let s = Sample::from_json_line(l).unwrap();
            NewRecord {
                ts_ms: s.timestamp.millis(),
                service: s.service,
                environment: s.environment,
                body: l.to_string(),
            }
        })
        .collect()
}

/// Stores a deploy as if the API had received it at `now_ms`, with no engine watching.
async fn insert_deploy(store: &dyn Store, deploy: Deploy, now_ms: i64) {
    store
        .insert_deploys(
            &[NewDeploy {
                deploy,
                source: "api".into(),
            }],
            now_ms,
        )
        .await
        .unwrap();
}

/// The one deploy's row from `GET /api/v1/deploys`.
async fn deploy_row(server: &Server, service: &str) -> Value {
    server.state.engine.barrier().await.unwrap();
    let (s, v) = call(
        server,
        "GET",
        &format!("/api/v1/deploys?service={service}"),
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 1, "{v}");
    v["items"][0].clone()
}

/// Finding 1: a sample stamped an hour ahead (or in year 9999) is refused on its own with
/// a message; one within the skew is kept but does not move event time, so a deploy of
/// another service is still judged. A future sample stored before the fix does not
/// switch detection off after a restart either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_with_a_fast_clock_does_not_switch_detection_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Clock::Wall).await;
    let now = now_secs();
    let future = format!(
        "{{\"timestamp\":\"{}\",\"service\":\"other\",\"error_rate\":0.01}}\n{{\"timestamp\":\"{}\",\"service\":\"other\",\"error_rate\":0.01}}\n{{\"timestamp\":\"9999-12-31T23:59:59Z\",\"service\":\"other\",\"error_rate\":0.01}}\n",
        Timestamp::from_secs(now + 60),
        Timestamp::from_secs(now + 3600),
    );
    let (s, v) = call(&server, "POST", "/api/v1/metrics", future).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(v["rejected_total"], 2, "{v}");
    assert_eq!(v["rejected"][0]["index"], 1);
    assert_eq!(v["rejected"][0]["field"], "timestamp");
    let msg = v["rejected"][0]["error"].as_str().unwrap();
    assert!(
        msg.contains("ahead of the server's clock") && msg.contains("max_future_skew_secs"),
        "{msg}"
    );
    assert_eq!(v["rejected"][1]["line"], 3);

    // A deploy five minutes ago with its baseline and what followed: judged.
    let deployed = now - 300;
    let (before, after) = late_deploy_data("checkout", deployed, now);
    call(&server, "POST", "/api/v1/metrics", before).await;
    let (s, v) = call(
        &server,
        "POST",
        "/api/v1/deploys",
        deploy_json(deployed, "v2", "checkout"),
    )
    .await;
    assert_eq!(
        (s, v["accepted"].clone()),
        (StatusCode::OK, json!(1)),
        "{v}"
    );
    call(&server, "POST", "/api/v1/metrics", after).await;
    let row = deploy_row(&server, "checkout").await;
    assert_eq!(row["verdict"]["verdict"], "regression", "{row}");
    server.shutdown().await;

    // A far-future sample stored before future times were refused, then a restart.
    {
        let store = watchdog::server::open_store(&config(dir.path(), Clock::Wall))
            .await
            .unwrap();
        let body =
            "{\"timestamp\":\"9999-12-31T23:59:59Z\",\"service\":\"other\",\"error_rate\":0.01}";
        let row = NewRecord {
            ts_ms: Timestamp::parse("9999-12-31T23:59:59Z").unwrap().millis(),
            service: "other".into(),
            environment: String::new(),
            body: body.into(),
        };
        store.insert_samples(&[row], now * 1000).await.unwrap();
    }
    let server = start(dir.path(), Clock::Wall).await;
    let now = now_secs();
    let deployed = now - 300;
    let (before, after) = late_deploy_data("billing", deployed, now);
    call(&server, "POST", "/api/v1/metrics", before).await;
    call(
        &server,
        "POST",
        "/api/v1/deploys",
        deploy_json(deployed, "b7", "billing"),
    )
    .await;
    call(&server, "POST", "/api/v1/metrics", after).await;
    let row = deploy_row(&server, "billing").await;
    assert_eq!(row["verdict"]["verdict"], "regression", "{row}");
    server.shutdown().await;
}

/// Finding 2: samples older than the watermark are reported (`late` in the response, a
/// counter in `/metrics`, a warning on the verdict), a deploy stamped in the past is
/// judged from its stored baseline, and a server rebuilt from the same stored records
/// decides the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_data_is_reported_and_judged_as_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Clock::Wall).await;
    let now = now_secs();
    let deployed = now - 300;
    let (before, after) = late_deploy_data("checkout", deployed, now);
    let (s, v) = call(&server, "POST", "/api/v1/metrics", before.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // All of the baseline is more than the lateness (120 s) behind the wall clock.
    assert_eq!(v["late"], 360, "{v}");
    let deploy = deploy_json(deployed, "v2", "checkout");
    call(&server, "POST", "/api/v1/deploys", deploy.clone()).await;
    let (_, v) = call(&server, "POST", "/api/v1/metrics", after.clone()).await;
    let late_after = v["late"].as_u64().unwrap();
    assert!((15..=19).contains(&late_after), "{v}");
    let live = deploy_row(&server, "checkout").await;
    let verdict = &live["verdict"];
    assert_eq!(verdict["verdict"], "regression", "{live}");
    let warnings = verdict["warnings"].to_string();
    assert!(warnings.contains("allowed_lateness_secs"), "{warnings}");
    // One more sample of the judged stretch (its baseline: the regression is decided at
    // the deploy itself, so the stretch ends there): too late for its verdict, counted so.
    let straggler = metrics_ndjson("checkout", "production", deployed - 60, 1, 10, 0.5);
    let (_, v) = call(&server, "POST", "/api/v1/metrics", straggler).await;
    assert_eq!(v["late"], 1, "{v}");
    let (_, _, metrics) = call_text(&server, "GET", "/metrics", Body::empty()).await;
    assert!(
        metrics.contains(&format!(
            "watchdog_samples_late_total {}",
            360 + late_after + 1
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("watchdog_samples_late_after_verdict_total 1"),
        "{metrics}"
    );
    server.shutdown().await;

    // The same records, stored without a live engine, judged by a server's start.
    let dir_b = tempfile::tempdir().unwrap();
    let config_b = config(dir_b.path(), Clock::Wall);
    let store = watchdog::server::open_store(&config_b).await.unwrap();
    let rows = records(before.lines().chain(after.lines()));
    store.insert_samples(&rows, now * 1000).await.unwrap();
    let d: Vec<Value> = serde_json::from_str(&deploy).unwrap();
    let d = Deploy::from_json_line(&d[0].to_string()).unwrap();
    insert_deploy(store.as_ref(), d, now * 1000).await;
    let restarted = start_on(config_b, Some(store)).await;
    let rebuilt = deploy_row(&restarted, "checkout").await;
    let r = &rebuilt["verdict"];
    assert_eq!(r["verdict"], verdict["verdict"], "{rebuilt}");
    assert_eq!(r["detected_at"], verdict["detected_at"], "{rebuilt}");
    assert_eq!(r["evidence"], verdict["evidence"]);
    restarted.shutdown().await;
}

/// Finding 3: a client that disconnects after its records are stored (the handler is
/// cancelled then) does not leave them unwatched: they still reach the engine, and a
/// retried deploy is a duplicate that is being watched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_request_still_feeds_what_it_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Clock::Data).await;
    let baseline = metrics_ndjson("checkout", "production", T0, 200, 10, 0.01);
    let (s, _) = call(&server, "POST", "/api/v1/metrics", baseline).await;
    assert_eq!(s, StatusCode::OK);
    server.state.engine.barrier().await.unwrap();
    let (fed_before, _) = server.state.engine.status().await.unwrap();

    // Keep the engine busy so that feeding waits on its full queue.
    let pressure_batches = 80usize;
    let per_batch = 8_000usize;
    let mut pressure = Vec::new();
    for b in 0..pressure_batches {
        let engine = server.state.engine.clone();
        let batch: Vec<Sample> = (0..per_batch)
            .map(|i| Sample {
                version: None,
                timestamp: Timestamp::from_secs(T0 + 2000 + i as i64),
                service: format!("pressure-{b}"),
                environment: "production".into(),
                metrics: vec![("p95_latency_ms".into(), 100.0 + (i % 7) as f64)],
            })
            .collect();
        pressure.push(tokio::spawn(async move { engine.samples(batch).await }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    // A metrics request and a deploy request, each dropped as soon as it is stored.
    let more = metrics_ndjson("checkout", "production", T0 + 2000, 100, 10, 0.01);
    let deploy = deploy_json(T0 + 2000, "v9", "checkout");
    for (uri, body) in [
        ("/api/v1/metrics", more),
        ("/api/v1/deploys", deploy.clone()),
    ] {
        let app = watchdog::app::app(server.state.clone());
        let req = Request::builder()
            .method("POST")
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::from(body))
            .unwrap();
        let request = tokio::spawn(async move { app.oneshot(req).await });
        let store = server.state.store.clone();
        let stored = |store: std::sync::Arc<dyn Store>| async move {
            let samples = store.samples_since(0, 0, 1_000_000).await.unwrap().len();
            let deploys = store.deploys_since(0).await.unwrap().len();
            (samples, deploys)
        };
        let want = if uri.ends_with("metrics") {
            (300, 0)
        } else {
            (300, 1)
        };
        let mut seen = false;
        for _ in 0..20_000 {
            if stored(store.clone()).await == want {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(seen, "{uri}: the rows were never stored");
        request.abort();
    }
    for p in pressure {
        p.await.unwrap().unwrap();
    }

    // Everything stored reaches the engine.
    let expected = fed_before.samples + (pressure_batches * per_batch) as u64 + 100;
    let mut stats = server.state.engine.status().await.unwrap().0;
    for _ in 0..600 {
        if stats.samples >= expected && stats.deploys >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        stats = server.state.engine.status().await.unwrap().0;
    }
    assert_eq!(stats.samples, expected, "{stats:?}");
    assert_eq!(stats.deploys, 1, "{stats:?}");
    let (s, v) = call(&server, "POST", "/api/v1/deploys", deploy).await;
    assert_eq!(
        (s, v["duplicates"].clone()),
        (StatusCode::OK, json!(1)),
        "{v}"
    );
    server.shutdown().await;
}

/// Finding 9: a deploy older than baseline + window + lateness that has no verdict (the
/// server was down through its whole watch) is judged at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_left_undecided_by_a_long_outage_is_judged_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), Clock::Wall);
    let now = now_secs();
    let deployed = now - 3 * 3600;
    let (before, after) = late_deploy_data("checkout", deployed, deployed + 1200);
    let store = watchdog::server::open_store(&config).await.unwrap();
    let rows = records(before.lines().chain(after.lines()));
    store.insert_samples(&rows, now * 1000).await.unwrap();
    let d = Deploy {
        timestamp: Timestamp::from_secs(deployed),
        deploy_id: "v1".into(),
        service: "checkout".into(),
        environment: "production".into(),
    };
    insert_deploy(store.as_ref(), d, now * 1000).await;
    let server = start_on(config, Some(store)).await;
    let row = deploy_row(&server, "checkout").await;
    assert_eq!(row["status"], "decided", "{row}");
    assert_eq!(row["verdict"]["verdict"], "regression", "{row}");
    server.shutdown().await;
}

fn pods_ndjson(prefix: &str, n: usize, ts_secs: i64) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"timestamp\":\"{}\",\"service\":\"{prefix}-{i}\",\"environment\":\"production\",\"error_rate\":0.01}}\n",
                Timestamp::from_secs(ts_secs)
            )
        })
        .collect()
}

/// Finding 4: names too long and records too wide are refused one by one naming the
/// limit; series beyond the cap are refused with a message until idle ones are forgotten,
/// in the registry and in the engine alike, so a stream of new names keeps memory flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cardinality_attack_is_refused_and_idle_series_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), Clock::Wall);
    c.limits.max_series = 100;
    c.limits.series_idle_secs = 2;
    let server = start_on(c, None).await;
    let now = now_secs();

    let long = "x".repeat(1 << 20);
    let wide: String = (0..101).map(|i| format!(",\"m{i}\":1")).collect();
    let body = format!(
        "{{\"timestamp\":\"{t}\",\"service\":\"{long}\",\"error_rate\":0.01}}\n{{\"timestamp\":\"{t}\",\"service\":\"ok\",\"{long}\":1}}\n{{\"timestamp\":\"{t}\",\"service\":\"ok\"{wide}}}\n",
        t = Timestamp::from_secs(now)
    );
    let (s, v) = call(&server, "POST", "/api/v1/metrics", body).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        &v.to_string()[..300]
    );
    assert_eq!(v["rejected_total"], 3);
    assert!(v["rejected"][0]["error"]
        .as_str()
        .unwrap()
        .contains("limits.max_label_bytes"));
    let deploy = json!([{"timestamp": Timestamp::from_secs(now).to_string(), "deploy_id": long, "service": "ok"}]);
    let (s, v) = call(&server, "POST", "/api/v1/deploys", deploy.to_string()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["rejected"][0]["field"], "deploy_id");

    // 100 series fit; the next 100 are refused, each with the limit named.
    let (_, v) = call(
        &server,
        "POST",
        "/api/v1/metrics",
        pods_ndjson("pod", 100, now),
    )
    .await;
    assert_eq!(v["accepted"], 100, "{v}");
    let (s, v) = call(
        &server,
        "POST",
        "/api/v1/metrics",
        pods_ndjson("pod-b", 100, now),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["rejected_total"], 100);
    assert!(
        v["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("limits.max_series"),
        "{v}"
    );

    // Round after round of new names, each after the previous went idle: accepted, and
    // the engine holds one round's series, not all of them.
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(3200)).await;
        let now = now_secs();
        let (_, v) = call(
            &server,
            "POST",
            "/api/v1/metrics",
            pods_ndjson(&format!("r{round}"), 100, now),
        )
        .await;
        assert_eq!(v["accepted"], 100, "round {round}: {v}");
    }
    server.state.engine.barrier().await.unwrap();
    let (stats, _) = server.state.engine.status().await.unwrap();
    assert!(stats.series <= 200, "{stats:?}");
    assert!(stats.evicted_series >= 200, "{stats:?}");
    // One point per pod name: the points of the forgotten names went with them.
    assert!(
        stats.points >= 100 && stats.points <= stats.series,
        "{stats:?}"
    );
    assert!(server.state.admission.series() <= 100);
    server.shutdown().await;
}

/// Finding 10: the server deletes samples and logs older than `retention_secs` (at start,
/// then hourly), and keeps deploys and verdicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_samples_and_logs_and_keeps_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), Clock::Wall);
    let now = now_secs();
    let store = watchdog::server::open_store(&c).await.unwrap();
    let rows = |from_secs: i64| -> Vec<NewRecord> {
        records(metrics_ndjson("checkout", "production", from_secs, 100, 10, 0.01).lines())
    };
    let old_secs = now - 30 * 86_400;
    store
        .insert_samples(&rows(old_secs), now * 1000)
        .await
        .unwrap();
    store
        .insert_samples(&rows(now - 3600), now * 1000)
        .await
        .unwrap();
    store.insert_logs(&rows(old_secs)).await.unwrap();
    let server = start_on(c, Some(store)).await;
    let store = server.state.store.clone();
    // The pruner deletes samples and logs in separate statements, so wait for both (a
    // loaded machine may take a while to get to them).
    let mut left = store.samples_since(0, 0, 10_000).await.unwrap().len();
    let mut logs = store.logs_since(0, 0, 10_000).await.unwrap().len();
    for _ in 0..600 {
        if left == 100 && logs == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = store.samples_since(0, 0, 10_000).await.unwrap().len();
        logs = store.logs_since(0, 0, 10_000).await.unwrap().len();
    }
    assert_eq!(left, 100, "only the last hour is left");
    assert_eq!(logs, 0, "old logs are pruned");
    // the counter is raised once the prune call has returned
    let want = "watchdog_records_pruned_total{kind=\"sample\"} 100";
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = call_text(&server, "GET", "/metrics", Body::empty()).await.2;
        if metrics.contains(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metrics.contains(want), "{metrics}");
    server.shutdown().await;
}

/// With `--clock data` idle series are forgotten by event time: a replay of old data is
/// not forgotten for being old, but a series its event time has left behind is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_data_clock_series_idle_in_event_time_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), Clock::Data);
    c.limits.series_idle_secs = 1;
    let server = start_on(c, None).await;
    call(
        &server,
        "POST",
        "/api/v1/metrics",
        pods_ndjson("old", 50, T0),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (stats, _) = server.state.engine.status().await.unwrap();
    assert_eq!(stats.series, 50, "the newest data is never idle: {stats:?}");
    call(
        &server,
        "POST",
        "/api/v1/metrics",
        pods_ndjson("new", 10, T0 + 3600),
    )
    .await;
    let mut stats = stats;
    for _ in 0..50 {
        stats = server.state.engine.status().await.unwrap().0;
        if stats.series == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats.series, 10, "{stats:?}");
    server.shutdown().await;
}
