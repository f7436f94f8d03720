//! One store test suite, run against both backends: SQLite in a temporary directory, and
//! a real PostgreSQL server when `WATCHDOG_TEST_DATABASE_URL` is set (scripts/pg.sh starts
//! one; scripts/tests.d/20-postgres.sh runs this file with it). Without the variable the
//! PostgreSQL half says so and passes, so that a plain `cargo test` needs no server.
//!
//! The PostgreSQL cases share one database, so they run one after another in a single
//! test, each on freshly emptied tables.

use std::sync::Arc;

use watchdog::store::postgres::PostgresStore;
use watchdog::store::sqlite::{Durability, SqliteStore};
use watchdog::store::{
    DeployQuery, IncidentQuery, IncidentSort, IncidentStatus, LeaseRole, NewDeploy, NewIncident,
    NewRecord, Store, StoredExplanation,
};
use watchdog_core::scenarios::{self, ScenarioParams};
use watchdog_core::{Deploy, DeployVerdict, Timestamp, VerdictKind};

const T0_MS: i64 = 1_774_893_600_000;

fn record(ts_ms: i64, service: &str, value: f64) -> NewRecord {
    NewRecord {
        ts_ms,
        service: service.into(),
        environment: "production".into(),
        body: format!(
            "{{\"timestamp\":\"{}\",\"service\":\"{service}\",\"environment\":\"production\",\"error_rate\":{value}}}",
            Timestamp(ts_ms).to_rfc3339()
        ),
    }
}

/// A real verdict from the engine: `error_spike` gives a regression, `healthy` a pass.
fn verdict(scenario: &str) -> DeployVerdict {
    let data = scenarios::generate(scenario, &ScenarioParams::default()).unwrap();
    let mut v = scenarios::run(&data, &watchdog_core::Config::default())
        .unwrap()
        .remove(0)
        .1;
    // Each case stores its own deploy.
    v.deploy_id = format!("{scenario}-1");
    v
}

fn new_deploy(v: &DeployVerdict) -> NewDeploy {
    NewDeploy {
        deploy: Deploy {
            timestamp: v.deployed_at,
            deploy_id: v.deploy_id.clone(),
            service: v.service.clone(),
            environment: v.environment.clone(),
        },
        source: "api".into(),
    }
}

fn incident(title: &str, severity: &str, rank: i64) -> NewIncident {
    NewIncident {
        title: title.into(),
        severity: severity.into(),
        severity_rank: rank,
        headline: format!("{title}: error rate up"),
        channels: vec!["webhook".into(), "slack".into()],
    }
}

async fn samples_and_logs(store: &dyn Store) {
    let first: Vec<NewRecord> = (0..300)
        .map(|i| record(T0_MS + i * 1000, "checkout", 0.01))
        .collect();
    store.insert_samples(&first, T0_MS).await.unwrap();
    let second: Vec<NewRecord> = (0..10)
        .map(|i| record(T0_MS + 500_000 + i * 1000, "search", 0.02))
        .collect();
    store.insert_samples(&second, T0_MS).await.unwrap();
    store.insert_samples(&[], T0_MS).await.unwrap();

    let all = store.samples_since(T0_MS, 0, 10_000).await.unwrap();
    assert_eq!(all.len(), 310);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "insertion order");
    assert!(all[0].body.contains("checkout") && all[309].body.contains("search"));
    // Paging by id, and the time filter.
    let page = store.samples_since(T0_MS, all[99].id, 50).await.unwrap();
    assert_eq!(page.len(), 50);
    assert_eq!(page[0].id, all[100].id);
    let late = store
        .samples_since(T0_MS + 250_000, 0, 10_000)
        .await
        .unwrap();
    assert_eq!(late.len(), 50 + 10);
    assert!(store
        .samples_since(T0_MS + 10_000_000, 0, 10)
        .await
        .unwrap()
        .is_empty());

    let series = store
        .series("search", "production", T0_MS, T0_MS + 600_000, 100)
        .await
        .unwrap();
    assert_eq!(series.len(), 10);
    assert!(series.iter().all(|r| r.body.contains("search")));
    assert_eq!(
        store.latest_event_ms().await.unwrap(),
        Some(T0_MS + 509_000)
    );

    let logs: Vec<NewRecord> = (0..5)
        .map(|i| record(T0_MS + i * 1000, "checkout", 0.0))
        .collect();
    store.insert_logs(&logs).await.unwrap();
    let got = store.logs_since(T0_MS + 2000, 0, 100).await.unwrap();
    assert_eq!(got.len(), 3);
    let rest = store.logs_since(T0_MS, got[0].id, 100).await.unwrap();
    assert_eq!(rest.len(), 2);
}

async fn deploys_and_verdicts(store: &dyn Store) {
    let bad = verdict("error_spike");
    let good = verdict("healthy");
    assert_eq!(bad.verdict, VerdictKind::Regression);
    assert_eq!(good.verdict, VerdictKind::Healthy);
    let ids = store
        .insert_deploys(&[new_deploy(&bad), new_deploy(&good)], T0_MS)
        .await
        .unwrap();
    assert!(ids.iter().all(Option::is_some));
    // A retried notification is recognised.
    let again = store
        .insert_deploys(&[new_deploy(&bad)], T0_MS)
        .await
        .unwrap();
    assert_eq!(again, vec![None]);
    assert_eq!(store.deploys_since(0).await.unwrap().len(), 2);

    let (watching, total) = store
        .list_deploys(&DeployQuery {
            verdict: Some("watching".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((watching.len(), total), (2, 2));

    let rec = store
        .record_verdict(&bad, Some(&incident("checkout", "high", 1)), T0_MS)
        .await
        .unwrap()
        .expect("first verdict is stored");
    let inc = rec.incident.expect("a regression opens an incident");
    assert_eq!(rec.deploy.status, "decided");
    assert_eq!(rec.deploy.incident_id, Some(inc.id));
    assert_eq!(inc.status, IncidentStatus::Open);
    // The same verdict again (after a restart, or from a second server) changes nothing.
    assert!(store
        .record_verdict(&bad, Some(&incident("checkout", "high", 1)), T0_MS)
        .await
        .unwrap()
        .is_none());
    let healthy = store
        .record_verdict(&good, None, T0_MS)
        .await
        .unwrap()
        .unwrap();
    assert!(healthy.incident.is_none());

    let (regressions, n) = store
        .list_deploys(&DeployQuery {
            verdict: Some("regression".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(regressions[0].deploy_id, bad.deploy_id);
    let stored = store.get_deploy(regressions[0].id).await.unwrap().unwrap();
    // The verdict JSON reads back (floats to serde_json's default precision).
    let back = stored.verdict.expect("stored verdict");
    assert_eq!(
        (
            &back.deploy_id,
            back.verdict,
            &back.reason,
            back.detected_at
        ),
        (&bad.deploy_id, bad.verdict, &bad.reason, bad.detected_at)
    );
    assert_eq!(back.evidence.len(), bad.evidence.len());
    assert!(store.get_deploy(999_999).await.unwrap().is_none());

    // Late samples for the stored verdict: one warning with the running count, the
    // verdict itself unchanged; a deploy without a verdict is not found.
    let bad_deploy = new_deploy(&bad).deploy;
    assert!(store.add_late_after_verdict(&bad_deploy, 3).await.unwrap());
    assert!(store.add_late_after_verdict(&bad_deploy, 4).await.unwrap());
    let noted = store
        .get_deploy(regressions[0].id)
        .await
        .unwrap()
        .unwrap()
        .verdict
        .unwrap();
    let late: Vec<_> = noted
        .warnings
        .iter()
        .filter(|w| w.contains(watchdog::store::LATE_AFTER_VERDICT_WARNING))
        .collect();
    assert_eq!(late.len(), 1, "{:?}", noted.warnings);
    assert!(late[0].starts_with("7 samples"), "{}", late[0]);
    assert_eq!(
        (noted.verdict, noted.detected_at),
        (bad.verdict, bad.detected_at)
    );
    let mut unknown = bad_deploy.clone();
    unknown.deploy_id = "never-deployed".into();
    assert!(!store.add_late_after_verdict(&unknown, 1).await.unwrap());

    let (_, opened) = store
        .list_incidents(&IncidentQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(opened, 1);
    let counts = store.alert_counts().await.unwrap();
    assert_eq!(counts.pending, 2, "one alert per channel");
}

/// Three incidents with distinct severities and times, for list tests.
async fn three_incidents(store: &dyn Store) -> Vec<i64> {
    let mut ids = Vec::new();
    for (i, (title, sev, rank)) in [
        ("checkout 50%_off", "medium", 2),
        ("search", "critical", 0),
        ("payments", "low", 3),
    ]
    .into_iter()
    .enumerate()
    {
        let mut v = verdict("error_spike");
        v.deploy_id = format!("v{i}");
        v.service = title.split(' ').next().unwrap().into();
        v.deployed_at = Timestamp(T0_MS + i as i64 * 60_000);
        store
            .insert_deploys(&[new_deploy(&v)], T0_MS)
            .await
            .unwrap();
        let rec = store
            .record_verdict(&v, Some(&incident(title, sev, rank)), T0_MS + i as i64)
            .await
            .unwrap()
            .unwrap();
        ids.push(rec.incident.unwrap().id);
    }
    ids
}

async fn incident_lists(store: &dyn Store) {
    let ids = three_incidents(store).await;
    let list = |q: IncidentQuery| async move {
        let (items, total) = store.list_incidents(&q).await.unwrap();
        (
            items.iter().map(|i| i.title.clone()).collect::<Vec<_>>(),
            total,
        )
    };
    let q = |sort| IncidentQuery {
        sort,
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        list(q(IncidentSort::SeverityDesc)).await.0,
        ["search", "checkout 50%_off", "payments"]
    );
    assert_eq!(
        list(q(IncidentSort::OpenedAt)).await.0,
        ["checkout 50%_off", "search", "payments"]
    );
    // LIKE wildcards in the search text are literal.
    let text = |t: &str| IncidentQuery {
        text: Some(t.into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        list(text("50%_")).await,
        (vec!["checkout 50%_off".into()], 1)
    );
    assert_eq!(list(text("%")).await.1, 1);
    assert_eq!(list(text("SEARCH")).await.1, 1);
    // Paging keeps the total.
    let (page, total) = list(IncidentQuery {
        limit: 1,
        offset: 1,
        ..Default::default()
    })
    .await;
    assert_eq!((page.len(), total), (1, 3));

    // Status changes: audited, resolved queues a resolve alert, a repeat is a no-op.
    let id = ids[1];
    let before = store.alert_counts().await.unwrap().pending;
    let s = store
        .set_status(
            id,
            IncidentStatus::Acknowledged,
            "alice",
            &["webhook".into()],
            T0_MS + 10,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.status, IncidentStatus::Acknowledged);
    store
        .set_status(
            id,
            IncidentStatus::Acknowledged,
            "alice",
            &["webhook".into()],
            T0_MS + 11,
        )
        .await
        .unwrap();
    store
        .set_status(
            id,
            IncidentStatus::Resolved,
            "bob",
            &["webhook".into()],
            T0_MS + 12,
        )
        .await
        .unwrap();
    // Both changes are announced: acknowledged and resolved.
    assert_eq!(store.alert_counts().await.unwrap().pending, before + 2);
    assert!(store
        .set_status(999_999, IncidentStatus::Resolved, "bob", &[], T0_MS)
        .await
        .unwrap()
        .is_none());
    let (resolved, _) = list(IncidentQuery {
        status: Some(IncidentStatus::Resolved),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(resolved, ["search"]);

    let note = store
        .add_note(id, "carol", "rolled back", T0_MS + 20)
        .await
        .unwrap()
        .unwrap();
    assert!(store
        .add_note(999_999, "x", "y", 0)
        .await
        .unwrap()
        .is_none());
    let rec = store.get_incident(id).await.unwrap().unwrap();
    assert_eq!(rec.notes.len(), 1);
    assert_eq!(rec.notes[0].id, note.id);
    let actions: Vec<&str> = rec.audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["opened", "status", "status", "note"]);
    assert_eq!(rec.summary.updated_at, Timestamp(T0_MS + 20));

    assert!(store.get_explanation(id).await.unwrap().is_none());
    let mut e = StoredExplanation {
        text: "error rate rose".into(),
        source: "local".into(),
        model: None,
        generated_at: Timestamp(T0_MS + 30),
        fallback_reason: None,
    };
    store.put_explanation(id, &e, "watchdog").await.unwrap();
    e.text = "error rate rose sharply".into();
    e.source = "llm".into();
    e.model = Some("qwen".into());
    store.put_explanation(id, &e, "dave").await.unwrap();
    assert_eq!(store.get_explanation(id).await.unwrap(), Some(e));
}

async fn outbox(store: &dyn Store) {
    three_incidents(store).await;
    let now = T0_MS + 1_000;
    let due = store.due_alerts(now, 100).await.unwrap();
    assert_eq!(due.len(), 6, "two channels for three incidents");
    assert!(due.windows(2).all(|w| w[0].id < w[1].id));
    if store.shared() {
        // Claimed for a lease: another server asking now gets none of them.
        assert!(store.due_alerts(now, 100).await.unwrap().is_empty());
    }
    assert!(store.mark_alert_delivered(due[0].id, now).await.unwrap());
    assert!(
        !store.mark_alert_delivered(due[0].id, now).await.unwrap(),
        "delivered once"
    );
    store
        .mark_alert_failed(due[1].id, "503", Some(now + 5_000))
        .await
        .unwrap();
    store
        .mark_alert_failed(due[2].id, "410 gone", None)
        .await
        .unwrap();
    let c = store.alert_counts().await.unwrap();
    assert_eq!((c.pending, c.delivered, c.failed), (4, 1, 1));
    // The retried row is due again at its new time, with its attempt counted.
    let later = store.due_alerts(now + 5_000, 100).await.unwrap();
    let retried = later.iter().find(|i| i.id == due[1].id).expect("retry due");
    assert_eq!(retried.attempts, 1);
    assert!(store.next_alert_due_ms().await.unwrap().is_some());
}

/// Every status change queues an alert per channel, and of one incident's alerts only the
/// oldest pending one is due, so they are delivered in the order the changes happened.
async fn outbox_order(store: &dyn Store) {
    let ids = three_incidents(store).await;
    let channels = ["webhook".to_string(), "slack".to_string()];
    let now = T0_MS + 1_000;
    for status in [IncidentStatus::Acknowledged, IncidentStatus::FalsePositive] {
        store
            .set_status(ids[0], status, "alice", &channels, now)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(store.alert_counts().await.unwrap().pending, 10);
    let due = store.due_alerts(now, 100).await.unwrap();
    assert_eq!(due.len(), 6, "only the opened rows: {due:?}");
    assert!(due.iter().all(|i| i.kind == "opened"), "{due:?}");
    for item in due.iter().filter(|i| i.incident_id == ids[0]) {
        store.mark_alert_delivered(item.id, now).await.unwrap();
    }
    // A lease (PostgreSQL) hides the other claimed rows until it runs out.
    let later = now + 3_600_000;
    let due = store.due_alerts(later, 100).await.unwrap();
    let first: Vec<&str> = due
        .iter()
        .filter(|i| i.incident_id == ids[0])
        .map(|i| i.kind.as_str())
        .collect();
    assert_eq!(first, ["acknowledged", "acknowledged"], "{due:?}");
    for item in due.iter().filter(|i| i.incident_id == ids[0]) {
        store.mark_alert_delivered(item.id, later).await.unwrap();
    }
    let due = store.due_alerts(later + 3_600_000, 100).await.unwrap();
    let next: Vec<&str> = due
        .iter()
        .filter(|i| i.incident_id == ids[0])
        .map(|i| i.kind.as_str())
        .collect();
    assert_eq!(next, ["false_positive", "false_positive"], "{due:?}");

    // The installation id is stable and not empty.
    let a = store.installation_id().await.unwrap();
    assert!(!a.is_empty() && a != "0", "{a}");
    assert_eq!(store.installation_id().await.unwrap(), a);
}

/// The oldest deploy without a verdict, for recovery after a long outage.
async fn unjudged_deploys(store: &dyn Store) {
    let mut v = verdict("error_spike");
    let judged = v.clone();
    store
        .insert_deploys(&[new_deploy(&judged)], T0_MS)
        .await
        .unwrap();
    store.record_verdict(&judged, None, T0_MS).await.unwrap();
    v.deploy_id = "later".into();
    v.deployed_at = Timestamp(judged.deployed_at.millis() + 60_000);
    store
        .insert_deploys(&[new_deploy(&v)], T0_MS)
        .await
        .unwrap();
    let far = judged.deployed_at.millis() + 86_400_000;
    assert_eq!(
        store.oldest_unjudged_deploy_ms(far).await.unwrap(),
        Some(v.deployed_at.millis())
    );
    assert_eq!(
        store
            .oldest_unjudged_deploy_ms(v.deployed_at.millis())
            .await
            .unwrap(),
        None
    );
}

/// Retention deletes old samples and logs, keeps the rest, and keeps verdicts.
async fn retention(store: &dyn Store) {
    let old: Vec<NewRecord> = (0..500)
        .map(|i| record(T0_MS + i, "checkout", 1.0))
        .collect();
    let new: Vec<NewRecord> = (0..300)
        .map(|i| record(T0_MS + 86_400_000 + i, "checkout", 2.0))
        .collect();
    // A batch mixing both ages: its old row stays until the whole batch is old.
    let mixed = vec![
        record(T0_MS + 10, "checkout", 3.0),
        record(T0_MS + 86_400_000, "checkout", 3.0),
    ];
    for rows in [&old, &new, &mixed] {
        store.insert_samples(rows, T0_MS).await.unwrap();
    }
    store.insert_logs(&old).await.unwrap();
    store.insert_logs(&new).await.unwrap();
    let v = verdict("error_spike");
    store
        .insert_deploys(&[new_deploy(&v)], T0_MS)
        .await
        .unwrap();
    store.record_verdict(&v, None, T0_MS).await.unwrap();

    let pruned = store.prune(T0_MS + 3_600_000).await.unwrap();
    assert_eq!((pruned.samples, pruned.logs), (500, 500));
    let left = store.samples_since(0, 0, 10_000).await.unwrap();
    assert_eq!(left.len(), 302);
    assert_eq!(store.logs_since(0, 0, 10_000).await.unwrap().len(), 300);
    assert_eq!(store.prune(T0_MS + 3_600_000).await.unwrap().samples, 0);
    let (deploys, total) = store
        .list_deploys(&DeployQuery {
            limit: 10,
            ..DeployQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(total, 1);
    assert!(deploys[0].verdict.is_some(), "verdicts are kept");
}

/// Retention deletes the series it leaves without samples; a label pair that comes back
/// afterwards is stored and read again.
async fn series_retention(store: &dyn Store) {
    let hour = |service: &str, from_ms: i64| -> Vec<NewRecord> {
        (0..50)
            .map(|i| record(from_ms + i * 1000, service, 1.0))
            .collect()
    };
    store
        .insert_samples(&hour("gone", T0_MS), T0_MS)
        .await
        .unwrap();
    let other = hour("gone-too", T0_MS);
    store.insert_samples(&other, T0_MS).await.unwrap();
    let day = T0_MS + 86_400_000;
    store
        .insert_samples(&hour("kept", day), T0_MS)
        .await
        .unwrap();

    let cut = T0_MS + 3_600_000;
    let pruned = store.prune(cut).await.unwrap();
    assert_eq!((pruned.samples, pruned.series), (100, 2));
    assert_eq!(store.prune(cut).await.unwrap().series, 0);
    let kept = store.series("kept", "production", 0, i64::MAX, 1000);
    assert_eq!(kept.await.unwrap().len(), 50);

    let back: Vec<NewRecord> = (0..5)
        .map(|i| record(day + i * 1000, "gone", 3.0))
        .collect();
    store.insert_samples(&back, T0_MS).await.unwrap();
    let read = store.series("gone", "production", 0, i64::MAX, 1000);
    let read = read.await.unwrap();
    assert_eq!(
        read.len(),
        5,
        "a pair stored again after its series was deleted"
    );
    assert!(read.iter().all(|r| r.body.contains("\"error_rate\":3")));
    assert_eq!(store.prune(cut).await.unwrap().series, 0);
}

/// Many tasks recording the same verdict at once store it once.
async fn concurrent_verdicts(store: Arc<dyn Store>) {
    let v = verdict("error_spike");
    store
        .insert_deploys(&[new_deploy(&v)], T0_MS)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, v) = (store.clone(), v.clone());
        tasks.push(tokio::spawn(async move {
            store
                .record_verdict(&v, Some(&incident("checkout", "high", 1)), T0_MS)
                .await
                .unwrap()
                .is_some()
        }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += usize::from(t.await.unwrap());
    }
    assert_eq!(stored, 1);
    assert_eq!(store.alert_counts().await.unwrap().pending, 2);
}

/// Log templates: upserted by (service, environment, signature), the text replaced, the
/// earliest first sighting kept, read back whole.
async fn log_templates(store: &dyn Store) {
    use watchdog::store::StoredTemplate;
    use watchdog_core::signatures::{SignatureId, TemplateRecord};
    use watchdog_core::LogLevel;
    let row = |service: &str, id: u64, level, template: &str, first: Option<i64>| StoredTemplate {
        service: service.into(),
        environment: "production".into(),
        record: TemplateRecord {
            signature: SignatureId(id),
            level,
            template: template.into(),
            first_seen: first.map(Timestamp),
        },
    };
    assert!(store.templates().await.unwrap().is_empty());
    store
        .upsert_templates(
            &[
                row(
                    "api",
                    7,
                    Some(LogLevel::Error),
                    "login failed for user alice",
                    Some(T0_MS),
                ),
                row("web", 7, None, "login failed for user alice", None),
            ],
            T0_MS,
        )
        .await
        .unwrap();
    // Later: the template generalised, seen again with a later and an earlier sighting.
    store
        .upsert_templates(
            &[
                row(
                    "api",
                    7,
                    Some(LogLevel::Error),
                    "login failed for user <*>",
                    Some(T0_MS + 5),
                ),
                row("web", 7, None, "login failed for user <*>", Some(T0_MS - 5)),
            ],
            T0_MS + 10,
        )
        .await
        .unwrap();
    let got = store.templates().await.unwrap();
    assert_eq!(
        got,
        vec![
            row(
                "api",
                7,
                Some(LogLevel::Error),
                "login failed for user <*>",
                Some(T0_MS)
            ),
            row("web", 7, None, "login failed for user <*>", Some(T0_MS - 5)),
        ]
    );
}

#[tokio::test]
async fn sqlite_store_suite() {
    async fn fresh() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Normal)
            .await
            .unwrap();
        (dir, Arc::new(store))
    }
    let (_d, s) = fresh().await;
    samples_and_logs(s.as_ref()).await;
    let (_d, s) = fresh().await;
    deploys_and_verdicts(s.as_ref()).await;
    let (_d, s) = fresh().await;
    incident_lists(s.as_ref()).await;
    let (_d, s) = fresh().await;
    outbox(s.as_ref()).await;
    let (_d, s) = fresh().await;
    concurrent_verdicts(s).await;
    let (_d, s) = fresh().await;
    outbox_order(s.as_ref()).await;
    let (_d, s) = fresh().await;
    unjudged_deploys(s.as_ref()).await;
    let (_d, s) = fresh().await;
    retention(s.as_ref()).await;
    let (_d, s) = fresh().await;
    series_retention(s.as_ref()).await;
    let (_d, s) = fresh().await;
    log_templates(s.as_ref()).await;
    // One process per SQLite file: the lease is always granted.
    assert!(s
        .try_lead(LeaseRole::PrometheusPuller)
        .await
        .unwrap()
        .is_some());
}

/// The PostgreSQL URL of the test server, or `None` (with a note) to skip.
pub fn test_database_url() -> Option<String> {
    match std::env::var("WATCHDOG_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipping the PostgreSQL half: WATCHDOG_TEST_DATABASE_URL is not set (scripts/tests.d/20-postgres.sh sets it)"
            );
            None
        }
    }
}

#[tokio::test]
async fn postgres_store_suite() {
    let Some(url) = test_database_url() else {
        return;
    };
    // Both ways of connecting: prepared statements reused, and pooler mode.
    for url in [url.clone(), format!("{url}?pgbouncer=true")] {
        let store = Arc::new(PostgresStore::connect_url(&url).await.unwrap());
        let fresh = || async {
            store.truncate_all_for_tests().await.unwrap();
            store.clone() as Arc<dyn Store>
        };
        samples_and_logs(fresh().await.as_ref()).await;
        deploys_and_verdicts(fresh().await.as_ref()).await;
        incident_lists(fresh().await.as_ref()).await;
        outbox(fresh().await.as_ref()).await;
        concurrent_verdicts(fresh().await).await;
        // One puller lease across servers: the second waits until the first lets go.
        let a = PostgresStore::connect_url(&url).await.unwrap();
        let b = PostgresStore::connect_url(&url).await.unwrap();
        let mut lease = a
            .try_lead(LeaseRole::PrometheusPuller)
            .await
            .unwrap()
            .expect("free");
        assert!(lease.alive().await);
        assert!(b
            .try_lead(LeaseRole::PrometheusPuller)
            .await
            .unwrap()
            .is_none());
        drop(lease);
        let mut taken = None;
        for _ in 0..50 {
            taken = b.try_lead(LeaseRole::PrometheusPuller).await.unwrap();
            if taken.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(taken.is_some(), "the lease is free once its holder lets go");
        assert!(a
            .try_lead(LeaseRole::PrometheusPuller)
            .await
            .unwrap()
            .is_none());
        drop(taken);
        outbox_order(fresh().await.as_ref()).await;
        unjudged_deploys(fresh().await.as_ref()).await;
        retention(fresh().await.as_ref()).await;
        series_retention(fresh().await.as_ref()).await;
        log_templates(fresh().await.as_ref()).await;
        // Two servers' pools claiming alerts at once never get the same row.
        let other = Arc::new(PostgresStore::connect_url(&url).await.unwrap());
        store.truncate_all_for_tests().await.unwrap();
        three_incidents(store.as_ref()).await;
        let (a, b) = tokio::join!(
            store.due_alerts(T0_MS + 1_000, 4),
            other.due_alerts(T0_MS + 1_000, 4)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.len() + b.len(), 6);
        assert!(a.iter().all(|x| b.iter().all(|y| y.id != x.id)));
    }
}
