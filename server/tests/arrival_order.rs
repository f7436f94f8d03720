//! Under `--clock data` verdicts do not depend on the order records arrive in (issue 12,
//! finding 6): the same records posted in several arrival orders (one service's whole
//! day before the other's, and batches of the two interleaved at random, each service's
//! own records in order) give the verdicts `replay` gives. And late samples for a
//! verdict already stored are noted on it as a warning. Real SQLite, the HTTP app.

mod common;

use std::path::Path;

use axum::body::Body;
use serde_json::{json, Value};
use watchdog::config::{Clock, ServerConfig};
use watchdog::server::Server;
use watchdog_core::{Deploy, Sample, Timestamp};

use common::app::call;
use common::{metrics_ndjson, T0};

fn config(dir: &Path) -> ServerConfig {
    common::app::config(dir, Clock::Data)
}

async fn start(dir: &Path) -> Server {
    common::app::start(config(dir), Vec::new()).await
}

/// What one service sends, in its own order: batches of NDJSON samples, with its deploy
/// (after the first hour) placed where its data reaches it.
enum Post {
    Metrics(String),
    Deploy(String),
}

fn service(name: &str, after_error_rate: f64) -> Vec<Post> {
    let deploy_secs = T0 + 3600;
    let before = metrics_ndjson(name, "production", T0, 360, 10, 0.01);
    let after = metrics_ndjson(name, "production", deploy_secs, 360, 10, after_error_rate);
    let mut posts: Vec<Post> = chunks(&before);
    posts.push(Post::Deploy(
        json!([{
            "timestamp": Timestamp::from_secs(deploy_secs).to_string(),
            "deploy_id": format!("{name}-v2"),
            "service": name,
            "environment": "production",
        }])
        .to_string(),
    ));
    posts.extend(chunks(&after));
    posts
}

fn chunks(ndjson: &str) -> Vec<Post> {
    let lines: Vec<&str> = ndjson.lines().collect();
    lines
        .chunks(30)
        .map(|c| Post::Metrics(c.join("\n")))
        .collect()
}

/// The verdicts `replay` gives on the same records, by deploy id.
fn replayed(services: &[&[Post]]) -> Vec<(String, String, Option<String>)> {
    let mut samples = Vec::new();
    let mut deploys = Vec::new();
    for posts in services {
        for p in *posts {
            match p {
                Post::Metrics(text) => samples.extend(
                    text.lines()
                        .map(|l| (0, Sample::from_json_line(l).unwrap())),
                ),
                Post::Deploy(text) => {
                    let v: Value = serde_json::from_str(text).unwrap();
                    deploys.push((0, Deploy::from_json(&v[0]).unwrap()));
                }
            }
        }
    }
    let c = config(Path::new("/nonexistent"));
    let verdicts = watchdog::commands::replay::replay(c.detector, &samples, &deploys, &[]).unwrap();
    let mut out: Vec<_> = verdicts
        .into_iter()
        .map(|v| {
            (
                v.deploy_id,
                v.verdict.as_str().to_string(),
                v.detected_at.map(|t| t.to_string()),
            )
        })
        .collect();
    out.sort();
    out
}

async fn post(server: &Server, p: &Post) {
    match p {
        Post::Metrics(body) => call(server, "POST", "/api/v1/metrics", body.clone()).await,
        Post::Deploy(body) => call(server, "POST", "/api/v1/deploys", body.clone()).await,
    };
}

async fn stored(server: &Server) -> (Vec<(String, String, Option<String>)>, Value) {
    server.state.engine.barrier().await.unwrap();
    let v = call(server, "GET", "/api/v1/deploys", Body::empty()).await;
    let mut out: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let verdict = &row["verdict"];
            (
                row["deploy_id"].as_str().unwrap().to_string(),
                verdict["verdict"]
                    .as_str()
                    .unwrap_or("watching")
                    .to_string(),
                verdict["detected_at"].as_str().map(str::to_string),
            )
        })
        .collect();
    out.sort();
    (out, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_records_in_any_arrival_order_get_the_verdicts_of_replay() {
    let a = service("a", 0.01);
    let b = service("b", 0.20);
    let want = replayed(&[&a, &b]);
    assert_eq!(
        want.iter().map(|w| w.1.as_str()).collect::<Vec<_>>(),
        ["healthy", "regression"],
        "{want:?}"
    );

    // a entirely, then b; b entirely, then a; and the two interleaved at random.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut interleaved = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if j == b.len() || (i < a.len() && x % 2 == 0) {
            interleaved.push(&a[i]);
            i += 1;
        } else {
            interleaved.push(&b[j]);
            j += 1;
        }
    }
    let orders: Vec<(&str, Vec<&Post>)> = vec![
        ("a then b", a.iter().chain(&b).collect()),
        ("b then a", b.iter().chain(&a).collect()),
        ("interleaved", interleaved),
    ];
    for (name, order) in orders {
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path()).await;
        for p in order {
            post(&server, p).await;
        }
        let (got, raw) = stored(&server).await;
        assert_eq!(got, want, "{name}: {raw}");
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_samples_for_a_stored_verdict_put_a_warning_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut a = service("a", 0.01);
    // Hold back the second batch after the deploy (its window's second five minutes);
    // post it after the verdict.
    let held = match a.remove(14) {
        Post::Metrics(m) => m,
        Post::Deploy(_) => unreachable!("a metrics batch"),
    };
    for p in &a {
        post(&server, p).await;
    }
    let (got, raw) = stored(&server).await;
    assert_eq!(got[0].1, "healthy", "{raw}");
    assert!(
        !raw.to_string().contains("arrived after its verdict"),
        "{raw}"
    );
    let v = call(&server, "POST", "/api/v1/metrics", held).await;
    assert_eq!(v["late"], 30, "{v}");
    let (_, raw) = stored(&server).await;
    let warnings = raw["items"][0]["verdict"]["warnings"].to_string();
    assert!(
        warnings.contains(
            "30 samples of this deploy's baseline or window arrived after its verdict was given"
        ),
        "{warnings}"
    );
    server.shutdown().await;
}
