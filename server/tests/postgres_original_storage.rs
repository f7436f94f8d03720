//! `WATCHDOG_STORAGE=supabase` (the original WatchDog's setting) with the project's
//! Postgres connection string, against a real PostgreSQL server: run by
//! scripts/tests.d/20-postgres.sh, which sets `WATCHDOG_TEST_DATABASE_URL`.

mod common;

use common::cli::{listening_on, Running};

/// `WATCHDOG_STORAGE=supabase` with the project's Postgres connection string works; run
/// against the real PostgreSQL the Postgres suite uses (scripts/tests.d/20-postgres.sh
/// sets `WATCHDOG_TEST_DATABASE_URL`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_storage_with_a_postgres_url_serves() {
    let Ok(url) = std::env::var("WATCHDOG_TEST_DATABASE_URL") else {
        eprintln!("skipped: WATCHDOG_TEST_DATABASE_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Running::start(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("WATCHDOG_STORAGE", "supabase"),
            ("WATCHDOG_DATABASE_URL", &url),
            ("SUPABASE_URL", "https://abcdefghijkl.supabase.co"),
        ],
    );
    let out = serve.wait_stdout(&["watchdog listening on "], 60).await;
    let base = listening_on(&out);
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(!dir.path().join("state/watchdog.db").exists());
}
