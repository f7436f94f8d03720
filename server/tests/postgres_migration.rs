//! A PostgreSQL database written before samples were keyed by series id (migration
//! 20261201000020) opens, keeps its samples under the same ids and reads them by series.
//! Run by scripts/tests.d/20-postgres.sh, which sets `WATCHDOG_TEST_DATABASE_URL`; the
//! old schema is built in a schema of its own, so the shared test database is untouched.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::AssertSqlSafe;
use watchdog::store::postgres::{PgSettings, PostgresStore};
use watchdog::store::{NewRecord, Store};

const SCHEMA: &str = "watchdog_migration_test";

fn body(ts_ms: i64, service: &str) -> String {
    format!("{{\"timestamp\":{ts_ms},\"service\":\"{service}\",\"environment\":\"production\",\"error_rate\":0.01}}")
}

#[tokio::test]
async fn a_database_from_before_series_ids_migrates() {
    let Ok(url) = std::env::var("WATCHDOG_TEST_DATABASE_URL") else {
        eprintln!("skipped: WATCHDOG_TEST_DATABASE_URL is not set");
        return;
    };
    let base: PgConnectOptions = url.parse().unwrap();
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(base.clone())
        .await
        .unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"
    )))
    .execute(&admin)
    .await
    .unwrap();
    let options = base.options([("search_path", SCHEMA)]);
    {
        let old = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)")
            .execute(&old)
            .await
            .unwrap();
        for (version, sql) in [
            (
                20260401000000i64,
                include_str!("../../supabase/migrations/20260401000000_watchdog_init.sql"),
            ),
            (
                20261201000010,
                include_str!("../../supabase/migrations/20261201000010_log_templates.sql"),
            ),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&old)
                .await
                .unwrap();
            sqlx::query("INSERT INTO schema_migrations VALUES ($1, 1)")
                .bind(version)
                .execute(&old)
                .await
                .unwrap();
        }
        for i in 0..40i64 {
            let service = if i % 2 == 0 { "search" } else { "checkout" };
            sqlx::query("INSERT INTO samples (ts_ms, service, environment, body) VALUES ($1, $2, 'production', $3)")
                .bind(1000 * i)
                .bind(service)
                .bind(body(1000 * i, service))
                .execute(&old)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO sample_batches (first_sample_id, last_sample_id, min_ts_ms, max_ts_ms, received_at_ms) VALUES (1, 40, 0, 39000, 0)")
            .execute(&old)
            .await
            .unwrap();
        old.close().await;
    }
    let store = PostgresStore::connect(PgSettings {
        options,
        prepared_statements: true,
        max_connections: 2,
    })
    .await
    .unwrap();
    let ids =
        |rows: Vec<watchdog::store::StoredRecord>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    let all = store.samples_since(0, 0, 100).await.unwrap();
    assert_eq!(ids(all), (1..=40).collect::<Vec<_>>());
    let search = store
        .series("search", "production", 0, i64::MAX, 100)
        .await
        .unwrap();
    assert!(search.iter().all(|r| r.body.contains("search")));
    assert_eq!(ids(search), (1..=40).step_by(2).collect::<Vec<_>>());
    let new = |service: &str| NewRecord {
        ts_ms: 50_000,
        service: service.into(),
        environment: "production".into(),
        body: body(50_000, service),
    };
    store
        .insert_samples(&[new("search"), new("new")], 0)
        .await
        .unwrap();
    let search = store
        .series("search", "production", 0, i64::MAX, 100)
        .await
        .unwrap();
    assert_eq!(search.len(), 21);
    let fresh = store
        .series("new", "production", 0, i64::MAX, 100)
        .await
        .unwrap();
    assert_eq!(fresh.len(), 1);
    assert!(fresh[0].id > 40);
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {SCHEMA} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
}
