//! The OTLP/HTTP and remote-write receivers over real HTTP on loopback, with a real
//! SQLite store: cumulative OTLP histograms of a service whose `service.version` changes
//! halfway (protobuf for one service, gzip-compressed JSON for another) become samples,
//! a deploy seen from the version, and a regression with its new error signature; remote
//! write counters become rates and a version label change a deploy; bad bodies get a 4xx
//! naming the problem and lose nothing else.

mod common;

use std::io::Write;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, AggregationTemporality, Histogram, HistogramDataPoint, Metric, ResourceMetrics,
    ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::Value;
use watchdog::config::{Clock, Secret, ServerConfig};
use watchdog::ingest::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use watchdog::server::Server;

use common::deploys::{assert_payment_timeout_regression, decided, deploy, deploy_of, signature};
use common::loopback::get_json;

const TOKEN: &str = "otlp-test-token";
/// 2026-03-30T18:00:00Z in nanoseconds.
const T0_NS: u64 = 1_774_893_600 * 1_000_000_000;
const S: u64 = 1_000_000_000;
/// Export interval of the simulated service.
const STEP_SECS: u64 = 10;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str, version: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", service),
            kv("deployment.environment.name", "production"),
            kv("service.version", version),
            kv("service.instance.id", &format!("{service}-{version}")),
        ],
        ..Default::default()
    })
}

/// A process's cumulative request counters: per status code, counts per latency bucket.
struct Process {
    version: &'static str,
    start_ns: u64,
    ok: [u64; 4],
    err: [u64; 4],
}

const BOUNDS: [f64; 3] = [0.1, 0.2, 0.5];

impl Process {
    /// A process of `version` started at `start_ns` that has served nothing yet.
    fn started(version: &'static str, start_ns: u64) -> Process {
        Process {
            version,
            start_ns,
            ok: [0; 4],
            err: [0; 4],
        }
    }

    /// One export interval: `n` requests, `errors` of them 500s, all under 100 ms but a
    /// tenth in (100, 200] ms.
    fn serve(&mut self, n: u64, errors: u64) {
        let ok = n - errors;
        self.ok[0] += ok - ok / 10;
        self.ok[1] += ok / 10;
        self.err[0] += errors;
    }

    fn export(&self, service: &str, now_ns: u64) -> ExportMetricsServiceRequest {
        let point = |code: i64, b: &[u64; 4]| HistogramDataPoint {
            attributes: vec![
                KeyValue {
                    key: "http.response.status_code".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(code)),
                    }),
                    ..Default::default()
                },
                kv("http.route", "/checkout"),
            ],
            start_time_unix_nano: self.start_ns,
            time_unix_nano: now_ns,
            count: b.iter().sum(),
            bucket_counts: b.to_vec(),
            explicit_bounds: BOUNDS.to_vec(),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(service, self.version),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "http.server.request.duration".into(),
                        unit: "s".into(),
                        data: Some(Data::Histogram(Histogram {
                            data_points: vec![point(200, &self.ok), point(500, &self.err)],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

fn logs(
    service: &str,
    version: &str,
    now_ns: u64,
    messages: &[(&str, i32)],
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(service, version),
            scope_logs: vec![ScopeLogs {
                log_records: messages
                    .iter()
                    .enumerate()
                    .map(|(i, (m, sev))| LogRecord {
                        time_unix_nano: now_ns + i as u64 * 1_000_000,
                        severity_number: *sev,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(m.to_string())),
                        }),
                        trace_id: vec![0x5a; 16],
                        span_id: vec![0x17; 8],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn post(
        &self,
        path: &str,
        ctype: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Vec<u8>, String) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", ctype)
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, resp.bytes().await.unwrap().to_vec(), retry)
    }

    async fn proto(&self, path: &str, msg: &impl Message) -> (u16, Vec<u8>) {
        let (s, b, _) = self
            .post(path, "application/x-protobuf", None, msg.encode_to_vec())
            .await;
        (s, b)
    }

    async fn json_gz(&self, path: &str, msg: &impl serde::Serialize) -> (u16, Vec<u8>) {
        let body = gzip(&serde_json::to_vec(msg).unwrap());
        let (s, b, _) = self
            .post(path, "application/json", Some("gzip"), body)
            .await;
        (s, b)
    }

    async fn get(&self, path: &str) -> Value {
        get_json(&self.http, format!("{}{path}", self.base)).await
    }

    /// The status of `GET path` (no token).
    async fn get_status(&self, path: &str) -> u16 {
        let r = self.http.get(format!("{}{path}", self.base)).send().await;
        r.unwrap().status().as_u16()
    }
}

async fn start(dir: &std::path::Path) -> (Server, Api) {
    start_with(dir, |_| {}).await
}

async fn start_with(
    dir: &std::path::Path,
    adjust: impl FnOnce(&mut ServerConfig),
) -> (Server, Api) {
    let mut c = ServerConfig::for_state_dir(dir);
    c.clock = Clock::Data;
    c.api_token = Secret::new(TOKEN);
    c.max_body_bytes = 256 * 1024;
    c.detector.monitoring_window_secs = 600;
    // Wait a little after a detection so that the log evidence is complete.
    c.detector.evidence_grace_secs = Some(120);
    adjust(&mut c);
    let (server, base) = common::app::listen(c, Vec::new()).await;
    let api = Api {
        base,
        http: reqwest::Client::new(),
    };
    (server, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_bump_over_otlp_is_a_deploy_and_a_bad_one_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = start(dir.path()).await;

    // Two services, one exporting protobuf, the other gzip-compressed JSON. v1 has run
    // for an hour when WatchDog first hears of it; 40 minutes of baseline, then v2 (a new
    // process) fails 12 % of its requests and logs a new error.
    let bump_step = 40 * 60 / STEP_SECS;
    let end_step = bump_step + 20 * 60 / STEP_SECS;
    // The services take turns, as they would live (the engine goes by event time).
    let fresh = || Process {
        version: "v1",
        start_ns: T0_NS - 3600 * S,
        ok: [5000, 500, 0, 0],
        err: [10, 0, 0, 0],
    };
    let mut processes = [("checkout", false, fresh()), ("cart", true, fresh())];
    for step in 0..end_step {
        let now = T0_NS + step * STEP_SECS * S;
        for (service, json, p) in processes.iter_mut() {
            if step == bump_step {
                *p = Process::started("v2", now - STEP_SECS * S);
            }
            let bad = p.version == "v2";
            p.serve(400, if bad { 48 } else { 2 + step % 3 });
            let m = p.export(service, now);
            let mut lines = vec![("request served", 9)];
            if bad {
                lines.push(("payment gateway timeout after 3000 ms for order 81723", 17));
            } else if step % 7 == 0 {
                lines.push(("cache miss for key user-881", 13));
            }
            let l = logs(service, p.version, now, &lines);
            let ((sm, bm), (sl, bl)) = if *json {
                (
                    api.json_gz("/v1/metrics", &m).await,
                    api.json_gz("/v1/logs", &l).await,
                )
            } else {
                (
                    api.proto("/v1/metrics", &m).await,
                    api.proto("/v1/logs", &l).await,
                )
            };
            assert_eq!(sm, 200, "{}", String::from_utf8_lossy(&bm));
            assert_eq!(sl, 200, "{}", String::from_utf8_lossy(&bl));
            if !*json && step == 1 {
                let r = ExportMetricsServiceResponse::decode(bm.as_slice()).unwrap();
                assert_eq!(r.partial_success, None);
            }
        }
    }

    // The first export of v1 was only a reference (its process started an hour earlier);
    // every later one is a sample, and the fresh v2 process counts from its start.
    let stored = server
        .state
        .store
        .samples_since(0, 0, 100_000)
        .await
        .unwrap();
    let checkout: Vec<Value> = stored
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .filter(|v| v["service"] == "checkout")
        .collect();
    assert_eq!(checkout.len() as u64, end_step - 1);
    let second = &checkout[0];
    assert_eq!(second["requests"], 400.0, "{second}");
    assert!(
        (second["request_rate"].as_f64().unwrap() - 40.0).abs() < 1e-9,
        "{second}"
    );
    assert!(
        second["p95_latency_ms"].as_f64().unwrap() > 100.0,
        "{second}"
    );
    let logs_stored = server.state.store.logs_since(0, 0, 100_000).await.unwrap();
    let with_trace = logs_stored
        .iter()
        .filter(|r| r.body.contains(&"5a".repeat(16)) && r.body.contains(&"17".repeat(8)))
        .count();
    assert_eq!(with_trace, logs_stored.len());

    // The version change is a deploy at the first sample carrying v2, and a regression
    // with the new error signature as evidence.
    let list = decided(
        &api.base,
        &["checkout", "cart"],
        100,
        Duration::from_millis(100),
    )
    .await;
    for service in ["checkout", "cart"] {
        let d = deploy(&list, service);
        assert_eq!(d["deploy_id"], "v2", "{d}");
        assert_eq!(d["source"], "otlp", "{d}");
        let bump_ms = (T0_NS / 1_000_000) as i64 + (bump_step * STEP_SECS * 1000) as i64;
        assert_eq!(
            d["deployed_at"],
            Value::String(watchdog_core::Timestamp(bump_ms).to_rfc3339()),
            "{d}"
        );
        let v = &d["verdict"];
        // The count-aware error-rate test fired on the OTLP-derived counts, not only the logs.
        assert_payment_timeout_regression(service, v);
    }
    // The new error signature leads to the traces that logged it.
    let id = deploy_of(&list, "checkout").unwrap()["id"]
        .as_i64()
        .unwrap();
    let t = api
        .get(&format!("/api/v1/deploys/{id}/traces?limit=5"))
        .await;
    let payment = signature(&t, "payment gateway timeout").unwrap_or_else(|| panic!("{t}"));
    let traces = payment["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 5, "{t}");
    assert_eq!(traces[0]["trace_id"], "5a".repeat(16));
    assert_eq!(traces[0]["span_id"], "17".repeat(8));
    assert!(traces[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("payment gateway timeout"));
    assert_eq!(api.get_status("/api/v1/deploys/999999/traces").await, 404);

    // Exactly one deploy per service: v1 was the running version, not a deploy.
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_a_4xx_naming_the_problem_and_lose_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = start(dir.path()).await;
    let mut p = Process::started("v1", T0_NS - 5 * S);
    p.serve(100, 1);
    let (s, _) = api.proto("/v1/metrics", &p.export("checkout", T0_NS)).await;
    assert_eq!(s, 200);
    let good = p.export("checkout", T0_NS).encode_to_vec();

    // Not protobuf, truncated protobuf, truncated gzip, broken JSON.
    let (s, b, _) = api
        .post(
            "/v1/metrics",
            "application/x-protobuf",
            None,
            b"\xff\xff\xff garbage".to_vec(),
        )
        .await;
    assert_eq!(s, 400);
    let status = watchdog::routes::otlp::RpcStatus::decode(b.as_slice()).unwrap();
    assert!(
        status.message.contains("ExportMetricsServiceRequest"),
        "{status:?}"
    );
    let (s, b, _) = api
        .post(
            "/v1/metrics",
            "application/x-protobuf",
            None,
            good[..good.len() - 7].to_vec(),
        )
        .await;
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&b));
    let gz = gzip(&good);
    let (s, b, _) = api
        .post(
            "/v1/metrics",
            "application/x-protobuf",
            Some("gzip"),
            gz[..gz.len() / 2].to_vec(),
        )
        .await;
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&b).contains("gzip"));
    let (s, b, _) = api
        .post(
            "/v1/logs",
            "application/json",
            None,
            b"{\"resourceLogs\": [".to_vec(),
        )
        .await;
    assert_eq!(s, 400);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("ExportLogsServiceRequest"),
        "{v}"
    );
    // Wrong content type and encoding.
    let (s, b, _) = api
        .post("/v1/metrics", "text/plain", None, good.clone())
        .await;
    assert_eq!(s, 415);
    assert!(String::from_utf8_lossy(&b).contains("text/plain"));
    let (s, _, _) = api
        .post(
            "/v1/metrics",
            "application/x-protobuf",
            Some("br"),
            good.clone(),
        )
        .await;
    assert_eq!(s, 415);
    // Oversized, as sent and once inflated.
    let (s, _, _) = api
        .post("/v1/logs", "application/json", None, vec![b' '; 300 * 1024])
        .await;
    assert_eq!(s, 413);
    let (s, b, _) = api
        .post(
            "/v1/logs",
            "application/json",
            Some("gzip"),
            gzip(&vec![b' '; 2 << 20]),
        )
        .await;
    assert_eq!(s, 413, "{}", String::from_utf8_lossy(&b));
    // Overloaded: every slot taken, the exporter is told to come back.
    let slots = server
        .state
        .receivers
        .in_flight
        .try_acquire_many(watchdog::ingest::receivers::MAX_IN_FLIGHT as u32)
        .unwrap();
    let (s, b, retry) = api
        .post("/v1/metrics", "application/x-protobuf", None, good.clone())
        .await;
    assert_eq!(
        (s, retry.as_str()),
        (503, "2"),
        "{}",
        String::from_utf8_lossy(&b)
    );
    let (s, _, retry) = api
        .post(
            "/api/v1/write",
            "application/x-protobuf",
            Some("snappy"),
            vec![0],
        )
        .await;
    assert_eq!((s, retry.as_str()), (503, "2"));
    drop(slots);
    // Traces are refused by name.
    let (s, b, _) = api
        .post("/v1/traces", "application/x-protobuf", None, good.clone())
        .await;
    assert_eq!(s, 404);
    assert!(String::from_utf8_lossy(&b).contains("not traces"));
    // No token.
    let r = api
        .http
        .post(format!("{}/v1/metrics", api.base))
        .header("content-type", "application/x-protobuf")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // One bad point among good ones: 200 with partial success naming it.
    p.serve(100, 1);
    let mut m = p.export("checkout", T0_NS + 10 * S);
    if let Some(Data::Histogram(h)) = &mut m.resource_metrics[0].scope_metrics[0].metrics[0].data {
        h.data_points[1].bucket_counts.pop();
    }
    let (s, b) = api.proto("/v1/metrics", &m).await;
    assert_eq!(s, 200);
    let r = ExportMetricsServiceResponse::decode(b.as_slice()).unwrap();
    let partial = r.partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("bucket_counts"),
        "{partial:?}"
    );
    // Only bad records: 400.
    let (s, b) = api
        .proto("/v1/logs", &logs("checkout", "v1", 0, &[("no time", 9)]))
        .await;
    assert_eq!(s, 400);
    assert!(watchdog::routes::otlp::RpcStatus::decode(b.as_slice())
        .unwrap()
        .message
        .contains("time_unix_nano"));

    // Remote write: wrong encoding, not snappy, not a WriteRequest.
    let (s, _, _) = api
        .post(
            "/api/v1/write",
            "application/x-protobuf",
            None,
            good.clone(),
        )
        .await;
    assert_eq!(s, 415);
    let (s, b, _) = api
        .post(
            "/api/v1/write",
            "application/x-protobuf",
            Some("snappy"),
            b"\x05\x00garbage".to_vec(),
        )
        .await;
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&b));
    let junk = snap::raw::Encoder::new()
        .compress_vec(b"\xff\xff\xff\xff")
        .unwrap();
    let (s, b, _) = api
        .post(
            "/api/v1/write",
            "application/x-protobuf",
            Some("snappy"),
            junk,
        )
        .await;
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&b).contains("WriteRequest"));

    // The server is up and what was stored before is intact: the first export and the
    // good point of the partial one.
    let stored = server.state.store.samples_since(0, 0, 1000).await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(api.get_status("/healthz").await, 200);
}

fn rw_series(labels: &[(&str, &str)], t_ms: i64, v: f64) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: vec![Sample {
            value: v,
            timestamp: t_ms,
        }],
    }
}

async fn write_versions(api: &Api, t0: i64) {
    let (mut ok, mut err) = (1000.0, 5.0);
    for i in 0..6i64 {
        let version = if i < 3 { "1.0.0" } else { "1.1.0" };
        if i == 3 {
            // The new version is a new process: its counters start again.
            ok = 0.0;
            err = 0.0;
        }
        ok += 95.0;
        err += 5.0;
        let t = t0 + i * 15_000;
        let l = |code: &'static str| {
            vec![
                ("__name__", "http_requests_total"),
                ("job", "checkout"),
                ("env", "production"),
                ("code", code),
                ("version", version),
            ]
        };
        let req = WriteRequest {
            timeseries: vec![
                rw_series(&l("200"), t, ok),
                rw_series(&l("500"), t, err),
                rw_series(&[("__name__", "up"), ("job", "checkout")], t, 1.0),
            ],
            metadata: vec![],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        let (s, b, _) = api
            .post(
                "/api/v1/write",
                "application/x-protobuf",
                Some("snappy"),
                body,
            )
            .await;
        assert_eq!(s, 204, "{}", String::from_utf8_lossy(&b));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_counters_become_rates_and_a_version_label_a_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = start(dir.path()).await;
    let t0 = (T0_NS / 1_000_000) as i64;
    write_versions(&api, t0).await;
    let stored = server.state.store.samples_since(0, 0, 1000).await.unwrap();
    let bodies: Vec<Value> = stored
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 5, "{bodies:?}");
    for b in &bodies {
        assert_eq!(b["service"], "checkout");
        assert_eq!(b["environment"], "production");
        assert_eq!(b["requests"], 100.0, "{b}");
        assert!(
            (b["request_rate"].as_f64().unwrap() - 100.0 / 15.0).abs() < 1e-9,
            "{b}"
        );
        assert_eq!(b["error_rate"], 0.05, "{b}");
        assert!(b.get("up").is_none(), "{b}");
    }
    let list = api.get("/api/v1/deploys").await;
    let d = deploy_of(&list, "checkout").unwrap_or_else(|| panic!("{list}"));
    assert_eq!(d["deploy_id"], "1.1.0");
    assert_eq!(d["source"], "remote_write");
    assert_eq!(
        d["deployed_at"],
        Value::String(watchdog_core::Timestamp(t0 + 45_000).to_rfc3339())
    );
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_deploys_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = start_with(dir.path(), |c| {
        c.remote_write.version_deploys = false;
        c.otlp.version_deploys = false;
    })
    .await;
    let t0 = (T0_NS / 1_000_000) as i64;
    write_versions(&api, t0).await;
    let mut p = Process::started("v1", T0_NS - 5 * S);
    p.serve(10, 0);
    assert_eq!(
        api.proto("/v1/metrics", &p.export("cart", T0_NS)).await.0,
        200
    );
    p = Process::started("v2", T0_NS + 5 * S);
    p.serve(10, 0);
    assert_eq!(
        api.proto("/v1/metrics", &p.export("cart", T0_NS + 10 * S))
            .await
            .0,
        200
    );
    // The data is stored; no deploy was made of it.
    assert_eq!(
        server
            .state
            .store
            .samples_since(0, 0, 1000)
            .await
            .unwrap()
            .len(),
        7
    );
    let list = api.get("/api/v1/deploys").await;
    assert_eq!(list["total"], 0, "{list}");
}
