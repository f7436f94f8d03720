//! The [`Store`] both SQL backends are: every operation written once over [`Backend`],
//! which each backend implements with what really differs between SQLite and PostgreSQL
//! (its connections, bulk inserts, the SQLite sample index, advisory locks, claiming due
//! alerts, and the few statements whose syntax differs).

use std::future::Future;

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, SqlSafeStr};
use watchdog_core::{Deploy, DeployVerdict, Timestamp};

use super::exec::{Arg, Exec, Tx};
use super::rows::{self, Columns, Filter};
use super::{
    sql, DeployQuery, DeployRow, IncidentQuery, IncidentRecord, IncidentSort, IncidentStatus,
    IncidentSummary, Lease, LeaseRole, NewDeploy, NewIncident, NewRecord, Note, OutboxCounts,
    OutboxItem, Pruned, RecordedVerdict, SoleLease, Store, StoreError, StoreResult, StoredDeploy,
    StoredExplanation, StoredRecord, StoredTemplate,
};
use Arg::{Int, OptInt, OptText, Text};

/// Sample batches (and series, for the index) a retention transaction handles; log
/// events go `PRUNE_CHUNK * 50` a statement.
pub(super) const PRUNE_CHUNK: i64 = 200;

/// What a SQL backend supplies to be a [`Store`].
pub(super) trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// A pooled connection.
    type Conn: Exec;
    /// A write transaction.
    type Tx: Tx;

    /// Whether other servers may write to the same database ([`Store::shared`]).
    const SHARED: bool;
    /// One series' samples in a time range: `$1` service, `$2` environment, `$3`..`$4`
    /// event time, `$5` limit; rows `id, body` in event-time order.
    const SERIES: &'static str;
    /// [`sql::ADD_LATE_AFTER_VERDICT_SELECT_VERDICTS`] as this backend runs it.
    const ADD_LATE_AFTER_VERDICT: &'static str;
    /// [`sql::RECORD_VERDICT_INSERT_DEPLOYS`] as this backend runs it, `RETURNING id`.
    const RECORD_VERDICT_INSERT_DEPLOYS: &'static str;
    /// Inserts or updates a log template (binds as in [`Store::upsert_templates`]).
    const UPSERT_TEMPLATE: &'static str;
    /// Deletes, of the `$2` series with ids after `$1`, those without samples.
    const DELETE_EMPTY_SERIES: &'static str;

    /// A connection for reads.
    fn read(&self) -> impl Future<Output = StoreResult<Self::Conn>> + Send;
    /// A connection for a single write, or a read that must see every write.
    fn write(&self) -> impl Future<Output = StoreResult<Self::Conn>> + Send;
    /// Begins a write transaction.
    fn begin(&self) -> impl Future<Output = StoreResult<Self::Tx>> + Send;

    /// Waits for whatever orders deploy inserts across servers, held until `tx` ends.
    fn lock_deploys(&self, tx: &mut Self::Tx) -> impl Future<Output = StoreResult<()>> + Send {
        let _ = tx;
        async { Ok(()) }
    }

    /// Waits for whatever orders sample inserts across servers, held until `tx` ends.
    fn lock_samples(&self, tx: &mut Self::Tx) -> impl Future<Output = StoreResult<()>> + Send {
        let _ = tx;
        async { Ok(()) }
    }

    /// Forgets any series ids cached: called in the transaction that deleted series rows,
    /// before it commits.
    fn forget_series(&self) {}

    /// [`Store::insert_samples`] of some rows; [`insert_sample_batch`] records the batch.
    fn insert_sample_rows(
        &self,
        rows: &[NewRecord],
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// [`Store::insert_logs`] of some rows.
    fn insert_log_rows(&self, rows: &[NewRecord]) -> impl Future<Output = StoreResult<()>> + Send;
    /// [`Store::try_lead`]: granted by default (one process).
    fn lead(&self, role: LeaseRole) -> impl Future<Output = StoreResult<Option<Lease>>> + Send {
        let _ = role;
        async { Ok(Some(Lease(Box::new(SoleLease)))) }
    }
    /// Retention of whatever the backend keeps besides the tables (an index), after the
    /// samples before `before_ms` are deleted.
    fn prune_extra(&self, before_ms: i64) -> impl Future<Output = StoreResult<()>> + Send {
        let _ = before_ms;
        async { Ok(()) }
    }
    /// [`Store::due_alerts`].
    fn claim_due_alerts(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<OutboxItem>>> + Send;
}

/// Records the batch of samples just inserted with ids `first..=last`.
pub(super) async fn insert_sample_batch(
    tx: &mut impl Exec,
    (first, last): (i64, i64),
    rows: &[NewRecord],
    now_ms: i64,
) -> StoreResult<()> {
    let min_ts = rows.iter().map(|r| r.ts_ms).min().unwrap_or(0);
    let max_ts = rows.iter().map(|r| r.ts_ms).max().unwrap_or(0);
    let args = [Int(first), Int(last), Int(min_ts), Int(max_ts), Int(now_ms)];
    tx.execute(sql::INSERT_SAMPLES_INSERT_SAMPLE_BATCHES, &args)
        .await?;
    Ok(())
}

/// Deletes the series left without samples, [`PRUNE_CHUNK`] `* 5` series ids a
/// transaction; returns how many. Sample inserts wait meanwhile ([`Backend::lock_samples`]),
/// so none resolves a label pair to a row this deletes.
async fn prune_series<B: Backend>(store: &B) -> StoreResult<u64> {
    let mut deleted = 0;
    let mut after = 0;
    loop {
        let mut tx = store.begin().await?;
        store.lock_samples(&mut tx).await?;
        let args = [Int(after), Int(PRUNE_CHUNK * 5)];
        // The end of this stretch first: the deletion shortens it.
        let last = opt_scalar(&mut tx, sql::PRUNE_SELECT_SERIES, &args).await?;
        let done = tx.execute(B::DELETE_EMPTY_SERIES, &args).await?;
        if done > 0 {
            store.forget_series();
        }
        tx.commit().await?;
        deleted += done;
        match last {
            Some(last) => after = last,
            None => return Ok(deleted),
        }
    }
}

/// Maps every row.
fn all<R, T>(rows: &[R], f: impl Fn(&R) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(f).collect()
}

async fn get_incident_summary(
    conn: &mut impl Exec,
    id: i64,
) -> StoreResult<Option<IncidentSummary>> {
    let sql = sql::GET_INCIDENT_SUMMARY.as_str();
    let row = conn.fetch_optional(sql, &[Int(id)]).await?;
    row.as_ref().map(rows::incident_summary).transpose()
}

async fn audit(
    conn: &mut impl Exec,
    incident_id: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    detail: &str,
) -> StoreResult<()> {
    let args = [
        Int(incident_id),
        Int(at_ms),
        Text(actor),
        Text(action),
        Text(detail),
    ];
    conn.execute(sql::AUDIT_INSERT_AUDIT, &args).await?;
    Ok(())
}

async fn enqueue_alerts(
    conn: &mut impl Exec,
    incident_id: i64,
    channels: &[String],
    kind: &str,
    now_ms: i64,
) -> StoreResult<()> {
    for channel in channels {
        let args = [Int(incident_id), Text(channel), Text(kind), Int(now_ms)];
        conn.execute(sql::ENQUEUE_ALERTS_INSERT_ALERT_OUTBOX, &args)
            .await?;
    }
    Ok(())
}

/// The first column of a query's one row.
async fn scalar(conn: &mut impl Exec, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<i64> {
    conn.fetch_one(sql, args).await?.int(0)
}

/// The first column of a query's one row, which may be NULL.
async fn opt_scalar(
    conn: &mut impl Exec,
    sql: &'static str,
    args: &[Arg<'_>],
) -> StoreResult<Option<i64>> {
    conn.fetch_one(sql, args).await?.opt_int(0)
}

#[async_trait]
impl<B: Backend> Store for B {
    fn shared(&self) -> bool {
        B::SHARED
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read().await?.execute(sql::PING_SELECT, &[]).await?;
        Ok(())
    }

    async fn try_lead(&self, role: LeaseRole) -> StoreResult<Option<Lease>> {
        self.lead(role).await
    }

    async fn insert_samples(&self, rows: &[NewRecord], now_ms: i64) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.insert_sample_rows(rows, now_ms).await
    }

    async fn insert_logs(&self, rows: &[NewRecord]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.insert_log_rows(rows).await
    }

    async fn insert_deploys(
        &self,
        rows: &[NewDeploy],
        now_ms: i64,
    ) -> StoreResult<Vec<Option<i64>>> {
        let mut tx = self.begin().await?;
        self.lock_deploys(&mut tx).await?;
        let mut ids = Vec::with_capacity(rows.len());
        for r in rows {
            let d = &r.deploy;
            let args = [
                Text(&d.deploy_id),
                Text(&d.service),
                Text(&d.environment),
                Int(d.timestamp.millis()),
                Text(&r.source),
                Int(now_ms),
            ];
            let row = tx
                .fetch_optional(sql::INSERT_DEPLOYS_INSERT_DEPLOYS, &args)
                .await?;
            ids.push(row.map(|r| r.int(0)).transpose()?);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn samples_since(
        &self,
        from_ms: i64,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredRecord>> {
        let mut c = self.read().await?;
        // Start at the first batch that reaches `from_ms`: batches are small and indexed
        // by their latest event time, so this avoids a time index on every sample.
        let sql = sql::SAMPLES_SINCE_SELECT_SAMPLE_BATCHES;
        let Some(start) = opt_scalar(&mut c, sql, &[Int(from_ms)]).await? else {
            return Ok(Vec::new());
        };
        let args = [Int(start), Int(after_id), Int(from_ms), Int(limit)];
        let rows = c
            .fetch_all(sql::SAMPLES_SINCE_SELECT_SAMPLES, &args)
            .await?;
        all(&rows, rows::stored_record)
    }

    async fn logs_since(
        &self,
        from_ms: i64,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredRecord>> {
        let args = [Int(from_ms), Int(after_id), Int(limit)];
        let mut c = self.read().await?;
        let rows = c.fetch_all(sql::LOGS_SINCE_SELECT_LOGS, &args).await?;
        all(&rows, rows::stored_record)
    }

    async fn deploys_since(&self, from_ms: i64) -> StoreResult<Vec<StoredDeploy>> {
        let mut c = self.read().await?;
        let rows = c
            .fetch_all(sql::DEPLOYS_SINCE_SELECT_DEPLOYS, &[Int(from_ms)])
            .await?;
        all(&rows, rows::stored_deploy)
    }

    async fn prune(&self, before_ms: i64) -> StoreResult<Pruned> {
        let mut pruned = Pruned::default();
        loop {
            let mut tx = self.begin().await?;
            let args = [Int(before_ms), Int(PRUNE_CHUNK)];
            let batches = tx
                .fetch_all(sql::PRUNE_SELECT_SAMPLE_BATCHES, &args)
                .await?;
            for b in &batches {
                let (id, first, last) = (b.int(0)?, b.int(1)?, b.int(2)?);
                // The time test keeps another batch's newer rows that share the id range
                // (concurrent writers may interleave ids).
                let args = [Int(first), Int(last), Int(before_ms)];
                pruned.samples += tx.execute(sql::PRUNE_DELETE_SAMPLES, &args).await?;
                tx.execute(sql::PRUNE_DELETE_SAMPLE_BATCHES, &[Int(id)])
                    .await?;
            }
            tx.commit().await?;
            if (batches.len() as i64) < PRUNE_CHUNK {
                break;
            }
        }
        self.prune_extra(before_ms).await?;
        pruned.series = prune_series(self).await?;
        let logs_chunk = PRUNE_CHUNK * 50;
        loop {
            // A connection a statement: writers get theirs in between.
            let args = [Int(before_ms), Int(logs_chunk)];
            let mut c = self.write().await?;
            let done = c.execute(sql::PRUNE_DELETE_LOGS, &args).await?;
            pruned.logs += done;
            if done < logs_chunk as u64 {
                break;
            }
        }
        Ok(pruned)
    }

    async fn oldest_unjudged_deploy_ms(&self, before_ms: i64) -> StoreResult<Option<i64>> {
        let sql = sql::OLDEST_UNJUDGED_DEPLOY_MS_SELECT_DEPLOYS;
        opt_scalar(&mut self.read().await?, sql, &[Int(before_ms)]).await
    }

    async fn series(
        &self,
        service: &str,
        environment: &str,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredRecord>> {
        let args = [
            Text(service),
            Text(environment),
            Int(from_ms),
            Int(to_ms),
            Int(limit),
        ];
        let rows = self.read().await?.fetch_all(B::SERIES, &args).await?;
        all(&rows, rows::stored_record)
    }

    async fn latest_event_ms(&self) -> StoreResult<Option<i64>> {
        let mut c = self.read().await?;
        let a = opt_scalar(&mut c, sql::LATEST_EVENT_MS_SELECT_SAMPLE_BATCHES, &[]).await?;
        let b = opt_scalar(&mut c, sql::LATEST_EVENT_MS_SELECT_DEPLOYS, &[]).await?;
        Ok(a.max(b))
    }

    async fn add_late_after_verdict(&self, deploy: &Deploy, samples: u64) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let args = [
            Text(&deploy.deploy_id),
            Text(&deploy.service),
            Text(&deploy.environment),
            Int(deploy.timestamp.millis()),
        ];
        let Some(row) = tx.fetch_optional(B::ADD_LATE_AFTER_VERDICT, &args).await? else {
            return Ok(false);
        };
        let (id, body) = (row.int(0)?, row.text(1)?);
        let body = super::with_late_after_verdict(&body, samples)?;
        let args = [Text(&body), Int(id)];
        tx.execute(sql::ADD_LATE_AFTER_VERDICT_UPDATE_VERDICTS, &args)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_verdict(
        &self,
        verdict: &DeployVerdict,
        incident: Option<&NewIncident>,
        now_ms: i64,
    ) -> StoreResult<Option<RecordedVerdict>> {
        let body = serde_json::to_string(verdict)
            .map_err(|e| StoreError::Corrupt(format!("verdict to JSON: {e}")))?;
        let mut tx = self.begin().await?;
        let deploy = [
            Text(&verdict.deploy_id),
            Text(&verdict.service),
            Text(&verdict.environment),
            Int(verdict.deployed_at.millis()),
            Int(now_ms),
        ];
        let found = tx
            .fetch_optional(sql::RECORD_VERDICT_SELECT_DEPLOYS, &deploy[..4])
            .await?;
        let deploy_row_id = match found {
            Some(row) => row.int(0)?,
            None => scalar(&mut tx, B::RECORD_VERDICT_INSERT_DEPLOYS, &deploy).await?,
        };
        let args = [
            Int(deploy_row_id),
            Text(verdict.verdict.as_str()),
            OptInt(verdict.detected_at.map(Timestamp::millis)),
            Text(&body),
            Int(now_ms),
        ];
        let inserted = tx
            .fetch_optional(sql::RECORD_VERDICT_INSERT_VERDICTS, &args)
            .await?;
        if inserted.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let mut opened = None;
        if let Some(new) = incident {
            let args = [
                Int(deploy_row_id),
                Text(&new.title),
                Text(&new.severity),
                Int(new.severity_rank),
                Text(&verdict.service),
                Text(&verdict.environment),
                Text(&verdict.deploy_id),
                Text(&new.headline),
                Int(now_ms),
            ];
            let id = scalar(&mut tx, sql::RECORD_VERDICT_INSERT_INCIDENTS, &args).await?;
            let detail = format!("opened by a regression verdict ({} severity)", new.severity);
            audit(&mut tx, id, now_ms, "watchdog", "opened", &detail).await?;
            enqueue_alerts(&mut tx, id, &new.channels, "opened", now_ms).await?;
            opened = get_incident_summary(&mut tx, id).await?;
        }
        let sql = sql::GET_DEPLOY.as_str();
        let row = tx.fetch_one(sql, &[Int(deploy_row_id)]).await?;
        let deploy = rows::deploy_row(&row)?;
        tx.commit().await?;
        Ok(Some(RecordedVerdict {
            deploy,
            incident: opened,
        }))
    }

    async fn list_deploys(&self, q: &DeployQuery) -> StoreResult<(Vec<DeployRow>, i64)> {
        let mut f = Filter::default();
        if let Some(s) = &q.service {
            f.eq("d.service = ?", s.clone());
        }
        if let Some(e) = &q.environment {
            f.eq("d.environment = ?", e.clone());
        }
        match q.verdict.as_deref() {
            None => {}
            Some("watching") => f.cond("v.id IS NULL"),
            Some(v) => f.eq("v.verdict = ?", v.to_string()),
        }
        let (from, where_sql) = (rows::DEPLOY_FROM, f.where_sql());
        let (mut args, page) = f.args();
        let mut c = self.read().await?;
        let count_sql = format!("SELECT COUNT(*) {from} {where_sql}");
        let total = c
            .fetch_one_sql(AssertSqlSafe(count_sql).into_sql_str(), &args)
            .await?
            .int(0)?;
        let cols = rows::DEPLOY_COLUMNS;
        let sql = format!(
            "SELECT {cols} {from} {where_sql} ORDER BY d.deployed_at_ms DESC, d.id DESC {page}"
        );
        args.extend([Int(q.limit), Int(q.offset)]);
        let rows = c
            .fetch_all_sql(AssertSqlSafe(sql).into_sql_str(), &args)
            .await?;
        Ok((all(&rows, rows::deploy_row)?, total))
    }

    async fn get_deploy(&self, id: i64) -> StoreResult<Option<DeployRow>> {
        let sql = sql::GET_DEPLOY.as_str();
        let row = self.read().await?.fetch_optional(sql, &[Int(id)]).await?;
        row.as_ref().map(rows::deploy_row).transpose()
    }

    async fn list_incidents(&self, q: &IncidentQuery) -> StoreResult<(Vec<IncidentSummary>, i64)> {
        let mut f = Filter::default();
        if let Some(s) = q.status {
            f.eq("status = ?", s.as_str().into());
        }
        if let Some(s) = &q.severity {
            f.eq("severity = ?", s.clone());
        }
        if let Some(s) = &q.service {
            f.eq("service = ?", s.clone());
        }
        if let Some(e) = &q.environment {
            f.eq("environment = ?", e.clone());
        }
        if let Some(t) = q.text.as_deref().filter(|t| !t.trim().is_empty()) {
            let p = f.bind(rows::like_pattern(t.trim()));
            f.cond(&format!(
                "(LOWER(title) LIKE {p} ESCAPE '\\' OR LOWER(headline) LIKE {p} ESCAPE '\\' OR LOWER(deploy_id) LIKE {p} ESCAPE '\\' OR LOWER(service) LIKE {p} ESCAPE '\\')"
            ));
        }
        let order = match q.sort {
            IncidentSort::OpenedAt => "opened_at_ms ASC, id ASC",
            IncidentSort::OpenedAtDesc => "opened_at_ms DESC, id DESC",
            // Rank 0 is the most severe: "-severity" (most severe first) is rank ascending.
            IncidentSort::Severity => "severity_rank DESC, opened_at_ms DESC, id DESC",
            IncidentSort::SeverityDesc => "severity_rank ASC, opened_at_ms DESC, id DESC",
            IncidentSort::UpdatedAt => "updated_at_ms ASC, id ASC",
            IncidentSort::UpdatedAtDesc => "updated_at_ms DESC, id DESC",
        };
        let where_sql = f.where_sql();
        let (mut args, page) = f.args();
        let mut c = self.read().await?;
        let count_sql = format!("SELECT COUNT(*) FROM incidents {where_sql}");
        let total = c
            .fetch_one_sql(AssertSqlSafe(count_sql).into_sql_str(), &args)
            .await?
            .int(0)?;
        let cols = rows::INCIDENT_COLUMNS;
        let sql = format!("SELECT {cols} FROM incidents {where_sql} ORDER BY {order} {page}");
        args.extend([Int(q.limit), Int(q.offset)]);
        let rows = c
            .fetch_all_sql(AssertSqlSafe(sql).into_sql_str(), &args)
            .await?;
        Ok((all(&rows, rows::incident_summary)?, total))
    }

    async fn get_incident(&self, id: i64) -> StoreResult<Option<IncidentRecord>> {
        let mut c = self.read().await?;
        let Some(summary) = get_incident_summary(&mut c, id).await? else {
            return Ok(None);
        };
        let args = [Int(summary.deploy_row_id)];
        let row = c
            .fetch_one(sql::GET_INCIDENT_SELECT_VERDICTS, &args)
            .await?;
        let verdict = rows::parse_verdict(&row.text(0)?)?;
        let notes = c
            .fetch_all(sql::GET_INCIDENT_SELECT_NOTES, &[Int(id)])
            .await?;
        let audit = c
            .fetch_all(sql::GET_INCIDENT_SELECT_AUDIT, &[Int(id)])
            .await?;
        Ok(Some(IncidentRecord {
            summary,
            verdict,
            notes: all(&notes, rows::note)?,
            audit: all(&audit, rows::audit_entry)?,
        }))
    }

    async fn set_status(
        &self,
        id: i64,
        status: IncidentStatus,
        actor: &str,
        channels: &[String],
        now_ms: i64,
    ) -> StoreResult<Option<IncidentSummary>> {
        let mut tx = self.begin().await?;
        let Some(current) = get_incident_summary(&mut tx, id).await? else {
            return Ok(None);
        };
        if current.status == status {
            tx.rollback().await?;
            return Ok(Some(current));
        }
        let args = [Text(status.as_str()), Int(now_ms), Int(id)];
        tx.execute(sql::SET_STATUS_UPDATE_INCIDENTS, &args).await?;
        let detail = format!("status {} -> {}", current.status.as_str(), status.as_str());
        audit(&mut tx, id, now_ms, actor, "status", &detail).await?;
        enqueue_alerts(&mut tx, id, channels, status.as_str(), now_ms).await?;
        let updated = get_incident_summary(&mut tx, id).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn add_note(
        &self,
        id: i64,
        author: &str,
        text: &str,
        now_ms: i64,
    ) -> StoreResult<Option<Note>> {
        let mut tx = self.begin().await?;
        if get_incident_summary(&mut tx, id).await?.is_none() {
            return Ok(None);
        }
        let args = [Int(id), Text(author), Text(text), Int(now_ms)];
        let note_id = scalar(&mut tx, sql::ADD_NOTE_INSERT_NOTES, &args).await?;
        tx.execute(sql::ADD_NOTE_UPDATE_INCIDENTS, &[Int(now_ms), Int(id)])
            .await?;
        let detail = format!("note #{note_id} added");
        audit(&mut tx, id, now_ms, author, "note", &detail).await?;
        tx.commit().await?;
        Ok(Some(Note {
            id: note_id,
            incident_id: id,
            author: author.to_string(),
            text: text.to_string(),
            created_at: rows::ts(now_ms),
        }))
    }

    async fn get_explanation(&self, id: i64) -> StoreResult<Option<StoredExplanation>> {
        let sql = sql::GET_EXPLANATION_SELECT_EXPLANATIONS;
        let row = self.read().await?.fetch_optional(sql, &[Int(id)]).await?;
        row.as_ref().map(rows::explanation).transpose()
    }

    async fn put_explanation(
        &self,
        id: i64,
        e: &StoredExplanation,
        actor: &str,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let args = [
            Int(id),
            Text(&e.text),
            Text(&e.source),
            OptText(e.model.as_deref()),
            Int(e.generated_at.millis()),
            OptText(e.fallback_reason.as_deref()),
        ];
        tx.execute(sql::PUT_EXPLANATION_INSERT_EXPLANATIONS, &args)
            .await?;
        let detail = format!("explanation generated ({})", e.source);
        let at_ms = e.generated_at.millis();
        audit(&mut tx, id, at_ms, actor, "explanation", &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn installation_id(&self) -> StoreResult<String> {
        // When the schema was first created, in milliseconds: set once per database.
        let sql = sql::INSTALLATION_ID_SELECT_SCHEMA_MIGRATIONS;
        let created = opt_scalar(&mut self.write().await?, sql, &[]).await?;
        Ok(format!("{:x}", created.unwrap_or(0)))
    }

    async fn due_alerts(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<OutboxItem>> {
        self.claim_due_alerts(now_ms, limit).await
    }

    async fn next_alert_due_ms(&self) -> StoreResult<Option<i64>> {
        let sql = sql::NEXT_ALERT_DUE_MS_SELECT_ALERT_OUTBOX;
        opt_scalar(&mut self.write().await?, sql, &[]).await
    }

    async fn mark_alert_delivered(&self, id: i64, now_ms: i64) -> StoreResult<bool> {
        let sql = sql::MARK_ALERT_DELIVERED_UPDATE_ALERT_OUTBOX;
        let mut c = self.write().await?;
        Ok(c.execute(sql, &[Int(now_ms), Int(id)]).await? == 1)
    }

    async fn mark_alert_failed(
        &self,
        id: i64,
        error: &str,
        next_ms: Option<i64>,
    ) -> StoreResult<()> {
        let mut c = self.write().await?;
        match next_ms {
            Some(next) => {
                let args = [Text(error), Int(next), Int(id)];
                c.execute(sql::MARK_ALERT_FAILED_UPDATE_ALERT_OUTBOX, &args)
                    .await?
            }
            None => {
                let args = [Text(error), Int(id)];
                c.execute(sql::MARK_ALERT_FAILED_UPDATE_ALERT_OUTBOX_2, &args)
                    .await?
            }
        };
        Ok(())
    }

    async fn alert_counts(&self) -> StoreResult<OutboxCounts> {
        let sql = sql::ALERT_COUNTS_SELECT_ALERT_OUTBOX;
        let rows = self.read().await?.fetch_all(sql, &[]).await?;
        let mut c = OutboxCounts::default();
        for r in rows {
            let n = r.int(1)?;
            match r.text(0)?.as_str() {
                "pending" => c.pending = n,
                "delivered" => c.delivered = n,
                _ => c.failed += n,
            }
        }
        Ok(c)
    }

    async fn upsert_templates(&self, rows: &[StoredTemplate], now_ms: i64) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for r in rows {
            let signature = r.record.signature.to_string();
            let args = [
                Text(&r.service),
                Text(&r.environment),
                Text(&signature),
                OptText(r.record.level.map(|l| l.as_str())),
                Text(&r.record.template),
                OptInt(r.record.first_seen.map(|t| t.millis())),
                Int(now_ms),
            ];
            tx.execute(B::UPSERT_TEMPLATE, &args).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn templates(&self) -> StoreResult<Vec<StoredTemplate>> {
        let sql = sql::TEMPLATES_SELECT_LOG_TEMPLATES;
        let rows = self.read().await?.fetch_all(sql, &[]).await?;
        all(&rows, rows::stored_template)
    }
}
