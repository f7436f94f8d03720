//! How the shared SQL layer (`shared.rs`) runs a statement on either backend: bind values
//! as [`Arg`]s, rows read back through [`Columns`], and one [`Exec`] implementation per
//! backend ([`SqliteConn`], [`PgConn`]) over a pooled connection or a transaction.

use std::future::Future;

use sqlx::{SqlSafeStr, SqlStr};

use super::rows::Columns;
use super::StoreResult;

/// A bind value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Arg<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
}

/// Runs one statement with its bind values, on a connection or in a transaction. The
/// `*_sql` methods take any statement; the others a `&'static str` (the futures of
/// methods generic over the statement's type could not be shown `Send`).
pub(super) trait Exec: Send {
    /// The backend's row.
    type Row: Columns + Send + Sync;

    /// Runs a statement; returns how many rows it changed.
    fn execute_sql(
        &mut self,
        sql: SqlStr,
        args: &[Arg<'_>],
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Every row of a query.
    fn fetch_all_sql(
        &mut self,
        sql: SqlStr,
        args: &[Arg<'_>],
    ) -> impl Future<Output = StoreResult<Vec<Self::Row>>> + Send;

    /// The first row of a query, if any.
    fn fetch_optional_sql(
        &mut self,
        sql: SqlStr,
        args: &[Arg<'_>],
    ) -> impl Future<Output = StoreResult<Option<Self::Row>>> + Send;

    /// The first row of a query that returns one.
    fn fetch_one_sql(
        &mut self,
        sql: SqlStr,
        args: &[Arg<'_>],
    ) -> impl Future<Output = StoreResult<Self::Row>> + Send;

    /// [`Exec::execute_sql`].
    fn execute(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = StoreResult<u64>> + Send {
        self.execute_sql(sql.into_sql_str(), args)
    }

    /// [`Exec::fetch_all_sql`].
    fn fetch_all(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = StoreResult<Vec<Self::Row>>> + Send {
        self.fetch_all_sql(sql.into_sql_str(), args)
    }

    /// [`Exec::fetch_optional_sql`].
    fn fetch_optional(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = StoreResult<Option<Self::Row>>> + Send {
        self.fetch_optional_sql(sql.into_sql_str(), args)
    }

    /// [`Exec::fetch_one_sql`].
    fn fetch_one(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = StoreResult<Self::Row>> + Send {
        self.fetch_one_sql(sql.into_sql_str(), args)
    }
}

/// A transaction: [`Exec`] plus its end.
pub(super) trait Tx: Exec {
    /// Commits.
    fn commit(self) -> impl Future<Output = StoreResult<()>> + Send;
    /// Rolls back.
    fn rollback(self) -> impl Future<Output = StoreResult<()>> + Send;
}

/// One [`Exec`] wrapper per backend: the same code over each backend's own types (sqlx
/// has no implementation generic over both connections that keeps their prepared
/// statement caches).
macro_rules! exec_for {
    ($(#[$doc:meta])* $name:ident, $db:ty, $conn:ty, $row:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name<C> {
            /// A pooled connection or a transaction.
            pub(crate) conn: C,
            /// Whether statements are prepared once and cached (false behind a pooler).
            pub(crate) persistent: bool,
        }

        impl<C> $name<C> {
            fn query(
                &self,
                sql: SqlStr,
                args: &[Arg<'_>],
            ) -> sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments> {
                let mut q = sqlx::query(sql).persistent(self.persistent);
                for a in args {
                    q = match *a {
                        Arg::Int(v) => q.bind(v),
                        Arg::OptInt(v) => q.bind(v),
                        Arg::Text(v) => q.bind(v),
                        Arg::OptText(v) => q.bind(v),
                    };
                }
                q
            }
        }

        impl<C: std::ops::DerefMut<Target = $conn> + Send> Exec for $name<C> {
            type Row = $row;

            async fn execute_sql(&mut self, sql: SqlStr, args: &[Arg<'_>]) -> StoreResult<u64> {
                let q = self.query(sql, args);
                Ok(q.execute(&mut *self.conn).await?.rows_affected())
            }

            async fn fetch_all_sql(
                &mut self,
                sql: SqlStr,
                args: &[Arg<'_>],
            ) -> StoreResult<Vec<$row>> {
                let q = self.query(sql, args);
                Ok(q.fetch_all(&mut *self.conn).await?)
            }

            async fn fetch_optional_sql(
                &mut self,
                sql: SqlStr,
                args: &[Arg<'_>],
            ) -> StoreResult<Option<$row>> {
                let q = self.query(sql, args);
                Ok(q.fetch_optional(&mut *self.conn).await?)
            }

            async fn fetch_one_sql(&mut self, sql: SqlStr, args: &[Arg<'_>]) -> StoreResult<$row> {
                let q = self.query(sql, args);
                Ok(q.fetch_one(&mut *self.conn).await?)
            }
        }

        impl Tx for $name<sqlx::Transaction<'static, $db>> {
            async fn commit(self) -> StoreResult<()> {
                Ok(self.conn.commit().await?)
            }

            async fn rollback(self) -> StoreResult<()> {
                Ok(self.conn.rollback().await?)
            }
        }
    };
}

exec_for!(
    /// A SQLite connection or transaction.
    SqliteConn,
    sqlx::Sqlite,
    sqlx::SqliteConnection,
    sqlx::sqlite::SqliteRow
);
exec_for!(
    /// A PostgreSQL connection or transaction.
    PgConn,
    sqlx::Postgres,
    sqlx::PgConnection,
    sqlx::postgres::PgRow
);
