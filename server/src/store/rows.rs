//! What both stores read back the same way: the column lists of deploy and incident rows,
//! the mapping of every row the shared queries return into its type (through [`Columns`],
//! one implementation per backend's row type), the conditions and bind values of the
//! filtered lists ([`Filter`]) and the `LIKE` pattern of a search.

use watchdog_core::{Deploy, DeployVerdict, Timestamp};

use super::exec::Arg;
use super::{
    AuditEntry, DeployRow, IncidentStatus, IncidentSummary, Note, OutboxItem, StoreError,
    StoreResult, StoredDeploy, StoredExplanation, StoredRecord, StoredTemplate,
};

/// Reading a column by position, whatever the backend.
pub(super) trait Columns {
    /// An integer column.
    fn int(&self, i: usize) -> StoreResult<i64>;
    /// A nullable integer column.
    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>>;
    /// A text column.
    fn text(&self, i: usize) -> StoreResult<String>;
    /// A nullable text column.
    fn opt_text(&self, i: usize) -> StoreResult<Option<String>>;
}

macro_rules! columns_of {
    ($row:ty) => {
        impl Columns for $row {
            fn int(&self, i: usize) -> StoreResult<i64> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn opt_int(&self, i: usize) -> StoreResult<Option<i64>> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn text(&self, i: usize) -> StoreResult<String> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
            fn opt_text(&self, i: usize) -> StoreResult<Option<String>> {
                Ok(sqlx::Row::try_get(self, i)?)
            }
        }
    };
}

columns_of!(sqlx::sqlite::SqliteRow);
columns_of!(sqlx::postgres::PgRow);

pub(super) fn ts(ms: i64) -> Timestamp {
    Timestamp(ms)
}

pub(super) fn parse_verdict(body: &str) -> StoreResult<DeployVerdict> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("stored verdict: {e}")))
}

pub(super) const DEPLOY_COLUMNS: &str =
    "d.id, d.deploy_id, d.service, d.environment, d.deployed_at_ms, d.source, v.body, i.id";
pub(super) const DEPLOY_FROM: &str = "FROM deploys d LEFT JOIN verdicts v ON v.deploy_row_id = d.id LEFT JOIN incidents i ON i.deploy_row_id = d.id";

/// A row of [`DEPLOY_COLUMNS`].
pub(super) fn deploy_row(row: &impl Columns) -> StoreResult<DeployRow> {
    let verdict = row.opt_text(6)?;
    let verdict = verdict.as_deref().map(parse_verdict).transpose()?;
    Ok(DeployRow {
        id: row.int(0)?,
        deploy_id: row.text(1)?,
        service: row.text(2)?,
        environment: row.text(3)?,
        deployed_at: ts(row.int(4)?),
        source: row.text(5)?,
        status: if verdict.is_some() {
            "decided"
        } else {
            "watching"
        },
        verdict,
        incident_id: row.opt_int(7)?,
    })
}

pub(super) const INCIDENT_COLUMNS: &str = "id, title, status, severity, service, environment, deploy_id, deploy_row_id, opened_at_ms, updated_at_ms, headline";

/// A row of [`INCIDENT_COLUMNS`].
pub(super) fn incident_summary(row: &impl Columns) -> StoreResult<IncidentSummary> {
    let status = row.text(2)?;
    Ok(IncidentSummary {
        id: row.int(0)?,
        title: row.text(1)?,
        status: IncidentStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("incident status {status:?}")))?,
        severity: row.text(3)?,
        service: row.text(4)?,
        environment: row.text(5)?,
        deploy_id: row.text(6)?,
        deploy_row_id: row.int(7)?,
        opened_at: ts(row.int(8)?),
        updated_at: ts(row.int(9)?),
        headline: row.text(10)?,
    })
}

/// A row `id, body` of samples or logs.
pub(super) fn stored_record(row: &impl Columns) -> StoreResult<StoredRecord> {
    Ok(StoredRecord {
        id: row.int(0)?,
        body: row.text(1)?,
    })
}

/// A row `id, deploy_id, service, environment, deployed_at_ms` of deploys.
pub(super) fn stored_deploy(row: &impl Columns) -> StoreResult<StoredDeploy> {
    Ok(StoredDeploy {
        id: row.int(0)?,
        deploy: Deploy {
            deploy_id: row.text(1)?,
            service: row.text(2)?,
            environment: row.text(3)?,
            timestamp: ts(row.int(4)?),
        },
    })
}

/// A row `id, incident_id, author, text, created_at_ms` of notes.
pub(super) fn note(row: &impl Columns) -> StoreResult<Note> {
    Ok(Note {
        id: row.int(0)?,
        incident_id: row.int(1)?,
        author: row.text(2)?,
        text: row.text(3)?,
        created_at: ts(row.int(4)?),
    })
}

/// A row `id, at_ms, actor, action, detail` of the audit trail.
pub(super) fn audit_entry(row: &impl Columns) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        id: row.int(0)?,
        at: ts(row.int(1)?),
        actor: row.text(2)?,
        action: row.text(3)?,
        detail: row.text(4)?,
    })
}

/// A row `text, source, model, generated_at_ms, fallback_reason` of explanations.
pub(super) fn explanation(row: &impl Columns) -> StoreResult<StoredExplanation> {
    Ok(StoredExplanation {
        text: row.text(0)?,
        source: row.text(1)?,
        model: row.opt_text(2)?,
        generated_at: ts(row.int(3)?),
        fallback_reason: row.opt_text(4)?,
    })
}

/// A row `id, incident_id, channel, kind, attempts` of the alert outbox.
pub(super) fn outbox_item(row: &impl Columns) -> StoreResult<OutboxItem> {
    Ok(OutboxItem {
        id: row.int(0)?,
        incident_id: row.int(1)?,
        channel: row.text(2)?,
        kind: row.text(3)?,
        attempts: row.int(4)?,
    })
}

/// A row `service, environment, signature, level, template, first_seen_ms` of templates.
pub(super) fn stored_template(row: &impl Columns) -> StoreResult<StoredTemplate> {
    let signature = row.text(2)?;
    let level = row.opt_text(3)?;
    Ok(StoredTemplate {
        service: row.text(0)?,
        environment: row.text(1)?,
        record: watchdog_core::signatures::TemplateRecord {
            signature: signature.parse().map_err(StoreError::Corrupt)?,
            level: super::parse_template_level(level.as_deref())?,
            template: row.text(4)?,
            first_seen: row.opt_int(5)?.map(ts),
        },
    })
}

/// The conditions of a filtered list and their text bind values, numbered `$1…` in the
/// order they are added.
#[derive(Debug, Default)]
pub(super) struct Filter {
    conds: Vec<String>,
    binds: Vec<String>,
}

impl Filter {
    /// A condition without a value.
    pub(super) fn cond(&mut self, cond: &str) {
        self.conds.push(cond.to_string());
    }

    /// A condition on one value, written with `?` where the value goes.
    pub(super) fn eq(&mut self, cond: &str, value: String) {
        let p = self.bind(value);
        self.conds.push(cond.replace('?', &p));
    }

    /// Adds a bind value; returns its placeholder.
    pub(super) fn bind(&mut self, value: String) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// `WHERE …`, or nothing without conditions.
    pub(super) fn where_sql(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conds.join(" AND "))
        }
    }

    /// The bind values, and the placeholders of `LIMIT` and `OFFSET` after them.
    pub(super) fn args(&self) -> (Vec<Arg<'_>>, String) {
        let n = self.binds.len();
        let args = self.binds.iter().map(|b| Arg::Text(b)).collect();
        (args, format!("LIMIT ${} OFFSET ${}", n + 1, n + 2))
    }
}

/// Escapes `%`, `_` and `\` for `LIKE … ESCAPE '\'`.
pub(super) fn like_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}
