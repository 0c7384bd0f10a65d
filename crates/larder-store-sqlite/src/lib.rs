//! SQLite implementation of [`larder_store::Store`]: the embedded default, so `larder serve`
//! runs on a fresh machine with nothing else installed.
//!
//! The database is one file in WAL mode. SQLite has a single writer, so every use case that
//! reads before it writes opens its transaction with `BEGIN IMMEDIATE`: it takes the write
//! lock up front, and the check and the write cannot interleave with another writer's.
//! Within the process, every write also takes its turn before it asks SQLite for the lock
//! (see [`SqliteStore::write_turn`]).
//! SQLite reports no constraint names, so the rules PostgreSQL enforces with named
//! constraints (the level belongs to the app, the level is unused) are checked explicitly
//! inside those transactions; uniqueness is still enforced by unique indexes.

mod apps;
mod deliveries;
mod integrations;
mod members;
mod outbox;
mod rows;
mod signin;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use larder_access::AppId;
use larder_store::*;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// The embedded migrations. A database migrated further than this binary knows (after a
/// rollback to an older release) is accepted: migrations only ever add.
static MIGRATOR: std::sync::LazyLock<Migrator> = std::sync::LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("../../migrations/sqlite");
    migrator.set_ignore_missing(true);
    migrator
});

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The process's writers take turns here, in arrival order, before they ask SQLite for
    /// its write lock. A writer that found the lock taken would instead sleep in SQLite's
    /// busy handler, whose steps (1, 2, 5, 10, 15, 20 ms…) overshoot a lock held for a
    /// millisecond or two several times over: that was most of the tail latency of a
    /// delivery batch while the outbox was writing beside it.
    turns: Arc<tokio::sync::Mutex<()>>,
}

/// A write transaction (`BEGIN IMMEDIATE`) that holds the process's write turn until it
/// ends. It derefs to the connection, as a `sqlx::Transaction` does.
pub(crate) struct WriteTx {
    // Declared first: dropped (its rollback queued) before the turn is given up.
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// Every commit reaches the disk before it returns: in WAL mode SQLite documents that
/// `NORMAL` may lose the last transactions on a power loss, and a 2xx Larder answers means
/// the delivery is durable. (What it costs is measured in docs/reliability.md.)
const DURABLE: SqliteSynchronous = SqliteSynchronous::Full;

/// How long a writer waits for the database: for its turn in the process, and for SQLite's
/// write lock (the busy timeout) when another process holds it.
const WRITE_WAIT: Duration = Duration::from_secs(5);

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, without running migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(e.into()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(DURABLE)
            .foreign_keys(true)
            .busy_timeout(WRITE_WAIT);
        Self::with_options(options).await
    }

    /// Opens the database a `sqlite:` URL names (`sqlite://./data/larder.db`,
    /// `sqlite:larder.db?mode=rwc`).
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::internal)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(DURABLE)
            .foreign_keys(true)
            .busy_timeout(WRITE_WAIT);
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(e.into()))?;
        }
        Self::with_options(options).await
    }

    /// A store that opens nothing until its first query: for commands that need a `Store`
    /// value but never query it (printing the OpenAPI document).
    pub fn lazy(path: &Path) -> Self {
        let options = SqliteConnectOptions::new().filename(path);
        Self {
            pool: SqlitePoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options),
            turns: Arc::default(),
        }
    }

    /// How each connection syncs its commits (`PRAGMA synchronous`: 2 is `FULL`).
    pub async fn synchronous(&self) -> StoreResult<i64> {
        sqlx::query_scalar("pragma synchronous")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn with_options(options: SqliteConnectOptions) -> StoreResult<Self> {
        // Readers run in parallel under WAL; writers queue on the database lock anyway.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self {
            pool,
            turns: Arc::default(),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction, begun once it is this writer's turn in the process.
    pub(crate) async fn begin_write(&self) -> StoreResult<WriteTx> {
        let turn = self.write_turn().await?;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        Ok(WriteTx { tx, _turn: turn })
    }

    /// The process's write turn, for statements that write outside a transaction; held
    /// until dropped. Every write of this store takes it (a transaction through
    /// [`Self::begin_write`]). A writer that waits longer than SQLite itself would
    /// ([`WRITE_WAIT`]) finds the store unavailable, as it would have found the lock busy.
    pub(crate) async fn write_turn(&self) -> StoreResult<tokio::sync::OwnedMutexGuard<()>> {
        tokio::time::timeout(WRITE_WAIT, self.turns.clone().lock_owned())
            .await
            .map_err(|_| {
                StoreError::Unavailable(
                    "no turn to write within the wait: the database is busy".into(),
                )
            })
    }
}

/// Maps a database error to what it means for the caller. SQLite names the columns of a
/// broken unique index (`UNIQUE constraint failed: api_keys.key_hash`), not the index.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) => match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => {
                let message = db.message();
                if message.contains("api_keys.key_hash") {
                    StoreError::Conflict("api key")
                } else if message.contains("access_levels.name_key") {
                    StoreError::Conflict("access level")
                } else if message.contains("thrivecart_integrations.webhook_token") {
                    StoreError::Conflict("webhook token")
                } else if message.contains("product_mappings.product") {
                    StoreError::Conflict("mapping")
                } else {
                    StoreError::internal(err)
                }
            }
            sqlx::error::ErrorKind::ForeignKeyViolation => StoreError::NotFound,
            _ if db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| matches!(c & 0xff, 5 | 6)) =>
            {
                // SQLITE_BUSY / SQLITE_LOCKED (or an extended code of theirs): the database
                // stayed locked past the busy timeout.
                StoreError::Unavailable(err.into())
            }
            _ => StoreError::internal(err),
        },
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.into()),
        _ => StoreError::internal(err),
    }
}

pub(crate) fn now() -> String {
    format_time(Utc::now())
}

/// Fixed-width RFC 3339 UTC, so text order is time order.
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The key access level names are compared by (case-insensitive, the same on both backends).
pub(crate) fn name_key(name: &larder_access::Name) -> String {
    name.as_str().to_lowercase()
}

/// The `after` bound of a page as text; `''` sorts before every id.
pub(crate) fn after_bound(page: &PageRequest) -> String {
    page.after.map(|u| u.to_string()).unwrap_or_default()
}

pub(crate) async fn app_exists(conn: &mut sqlx::SqliteConnection, app: AppId) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("select 1 from apps where id = ?1")
        .bind(app.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(found.is_some())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn connections(&self) -> Connections {
        Connections::of_pool(self.pool.size(), self.pool.num_idle())
    }

    /// Whether every embedded migration is applied: a process that does not migrate on start
    /// checks this, so it never serves on an old schema.
    async fn schema_is_current(&self) -> StoreResult<bool> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("select version from _sqlx_migrations where success")
                .fetch_all(&self.pool)
                .await
            {
                Ok(versions) => versions,
                // No migrations table: nothing was ever applied.
                Err(sqlx::Error::Database(_)) => return Ok(false),
                Err(err) => return Err(map_err(err)),
            };
        Ok(MIGRATOR.iter().all(|m| applied.contains(&m.version)))
    }

    /// Applies every embedded migration not applied yet.
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Internal(e.into()))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
