//! HTTP on loopback for the tests: serving a router on a free port, and receivers that
//! record what the server sends them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

/// Serves `app` on a free loopback port for the rest of the test: its address.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// [`serve`], as a base URL: `http://127.0.0.1:PORT`.
pub async fn serve_url(app: Router) -> String {
    format!("http://{}", serve(app).await)
}

/// What the receiver's handler shares: the delivery ids seen, the status to answer.
type ReceiverState = (Arc<Mutex<Vec<String>>>, Arc<AtomicU16>);

/// A webhook receiver on loopback that records the `X-WatchDog-Delivery` id of every
/// request and answers with a fixed status.
#[derive(Clone)]
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    pub deliveries: Arc<Mutex<Vec<String>>>,
    pub status: Arc<AtomicU16>,
}

impl Receiver {
    pub async fn start(status: u16) -> Receiver {
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(status));
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |State((log, status)): State<ReceiverState>, headers: HeaderMap| async move {
                        let id = headers
                            .get("x-watchdog-delivery")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let code = StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
                        if code.is_success() {
                            log.lock().unwrap().push(id);
                        }
                        code
                    },
                ),
            )
            .with_state((deliveries.clone(), status.clone()));
        let addr = serve(app).await;
        Receiver {
            addr,
            deliveries,
            status,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn count(&self) -> usize {
        self.deliveries.lock().unwrap().len()
    }

    pub fn ids(&self) -> Vec<String> {
        self.deliveries.lock().unwrap().clone()
    }

    /// Changes the status it answers with.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Waits (at most 30 s) until `n` alerts arrived.
    pub async fn wait_for(&self, n: usize) {
        for _ in 0..300 {
            if self.count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {n} alerts, got {:?}", self.ids());
    }
}

/// One request a [`BodyReceiver`] got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub content_type: String,
    pub body: String,
}

/// A receiver on loopback that keeps every POST it gets, on any path (Slack-shaped
/// `/services/…` paths included), and answers 200.
#[derive(Clone)]
pub struct BodyReceiver {
    pub addr: std::net::SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
}

impl BodyReceiver {
    pub async fn start() -> BodyReceiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let app = Router::new()
            .fallback(
                |State(got): State<Arc<Mutex<Vec<Received>>>>,
                 uri: axum::http::Uri,
                 headers: HeaderMap,
                 body: String| async move {
                    got.lock().unwrap().push(Received {
                        path: uri.path().to_string(),
                        content_type: headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string(),
                        body,
                    });
                    "ok"
                },
            )
            .with_state(got.clone());
        let addr = serve(app).await;
        BodyReceiver { addr, got }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (at most `secs`) for a request, and returns the first.
    pub async fn first(&self, secs: u64) -> Received {
        for _ in 0..secs * 10 {
            if let Some(r) = self.received().into_iter().next() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no request reached the receiver in {secs} s");
    }
}

/// `GET url` (no token) that must answer JSON: the JSON.
pub async fn get_json(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}
