//! A real Prometheus for the tests that need one: started on a free loopback port with the
//! configuration a test gives, ready before it is returned, killed when dropped.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use watchdog::config::{Clock, Secret, ServerConfig};
use watchdog::ingest::prometheus::PrometheusConfig;
use watchdog::store::StoredRecord;
use watchdog_core::Sample;

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing
/// running.
#[derive(Debug)]
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _child: Killed,
}

/// Starts `bin` with the `prometheus.yml` that `config` writes for its own address
/// (`127.0.0.1:PORT`, for a self-scrape) and its TSDB under `dir`, and waits until it
/// answers `/-/ready` (20 s at most, then the test fails).
pub async fn start(bin: &str, dir: &Path, config: impl FnOnce(&str) -> String) -> Prometheus {
    let port = super::cli::free_port();
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config(&format!("127.0.0.1:{port}"))).unwrap();
    let child = Killed(
        Command::new(bin)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for i in 0..100 {
        if let Ok(r) = client.get(format!("{url}/-/ready")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(i < 99, "prometheus did not become ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Prometheus { url, _child: child }
}

/// A Prometheus that scrapes itself every second, returned once its first scrape is
/// queryable and a few seconds of samples are there to pull.
pub async fn start_self_scraping(bin: &str, dir: &Path) -> Prometheus {
    let prometheus = start(bin, dir, |me| {
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['{me}']\n")
    })
    .await;
    let client = reqwest::Client::new();
    for i in 0..150 {
        let v: serde_json::Value = client
            .get(format!("{}/api/v1/query", prometheus.url))
            .query(&[("query", "up{job=\"self\"}")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break;
        }
        assert!(i < 149, "prometheus never scraped itself: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    prometheus
}

/// A server configuration with its state in `dir`, the wall clock, a one-minute baseline
/// and a puller that reads the self-scraping Prometheus at `prom` (see
/// [`start_self_scraping`]) every second as service `prometheus`.
pub fn self_pulling_config(dir: &Path, prom: &str) -> ServerConfig {
    let mut c = ServerConfig::for_state_dir(dir);
    c.clock = Clock::Wall;
    c.api_token = Secret::new("t");
    c.detector.baseline_window_secs = 60;
    let toml_text = format!(
        "url = \"{prom}\"\npoll_secs = 1\nstep_secs = 1\ntimeout_secs = 5\n[[services]]\nservice = \"prometheus\"\n[services.queries]\nup = 'up{{job=\"self\"}}'\nscrape_duration_secs = 'scrape_duration_seconds{{job=\"self\"}}'\n"
    );
    c.prometheus = Some(toml::from_str::<PrometheusConfig>(&toml_text).unwrap());
    c
}

/// How many times each point (timestamp in ms, metric) is among the stored samples.
pub fn stored_points(rows: &[StoredRecord]) -> HashMap<(i64, String), usize> {
    let mut seen: HashMap<(i64, String), usize> = HashMap::new();
    for r in rows {
        let s = Sample::from_json_line(&r.body).unwrap();
        for (m, _) in &s.metrics {
            *seen.entry((s.timestamp.millis(), m.clone())).or_default() += 1;
        }
    }
    seen
}
