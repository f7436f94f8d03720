//! What both stores read back the same way: the column lists of deploy and incident rows,
//! their mapping into [`DeployRow`] and [`IncidentSummary`] (through [`Columns`], one
//! implementation per backend's row type), the bind values of dynamically built queries
//! and the `LIKE` pattern of a search.

use watchdog_core::{DeployVerdict, Timestamp};

use super::{DeployRow, IncidentStatus, IncidentSummary, StoreError, StoreResult};

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

/// A bind value of a dynamically built query.
pub(super) enum Bind {
    Text(String),
    Int(i64),
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
