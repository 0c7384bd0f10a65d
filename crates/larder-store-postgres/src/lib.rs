//! PostgreSQL implementation of [`larder_store::Store`]: Larder's production store.
//!
//! Queries are built at run time (no database needed to compile). Migrations from
//! `migrations/postgres` are embedded in the binary. Every multi-statement use case runs in
//! one transaction; uniqueness and tenant-scoped foreign keys are enforced by constraints,
//! whose names are matched to [`StoreError`] variants.

mod apps;
mod batch;
mod deliveries;
mod integrations;
mod members;
mod outbox;
mod rows;
mod signin;

use std::time::Duration;

use larder_access::AppId;
use larder_store::*;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// The embedded migrations. A database migrated further than this binary knows (after a
/// rollback to an older release) is accepted: migrations only ever add.
static MIGRATOR: std::sync::LazyLock<Migrator> = std::sync::LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("../../migrations/postgres");
    migrator.set_ignore_missing(true);
    migrator
});

/// Pool settings; the defaults suit a small service on a few cores.
#[derive(Debug, Clone)]
pub struct PgSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        // PostgreSQL peaks at a handful of busy connections per core; more only queue. A
        // connection not had within 2 s (the database is down, or swamped) fails the
        // request: ThriveCart gets its 503 soon and retries, rather than waiting.
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects (lazily checking the URL first) without running migrations.
    pub async fn connect(url: &str, settings: &PgSettings) -> StoreResult<Self> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::internal)?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Whether a SQLSTATE says the server cannot serve now (it is shutting down, starting,
/// full, or the connection broke), rather than that the statement was wrong.
fn server_unavailable(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("57P") // admin or crash shutdown, cannot connect now
        || code == "53300" // too many connections
}

/// Maps a database error to what it means for the caller.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.code().is_some_and(|c| server_unavailable(&c)) => {
            StoreError::Unavailable(err.into())
        }
        sqlx::Error::Database(db) => {
            match (db.kind(), db.constraint()) {
                (sqlx::error::ErrorKind::UniqueViolation, Some(c)) => match c {
                    "api_keys_key_hash_key" => StoreError::Conflict("api key"),
                    "access_levels_app_name_key" => StoreError::Conflict("access level"),
                    "thrivecart_integrations_webhook_token_key" => {
                        StoreError::Conflict("webhook token")
                    }
                    "product_mappings_app_product_level_key" => StoreError::Conflict("mapping"),
                    _ => StoreError::internal(err),
                },
                (sqlx::error::ErrorKind::ForeignKeyViolation, Some(c)) => match c {
                    "product_mappings_access_level_fkey" => {
                        // Deleting the level while a mapping uses it, or inserting a mapping
                        // whose level is not the app's. PostgreSQL words the two differently.
                        if db.message().starts_with("update or delete") {
                            StoreError::AccessLevelInUse
                        } else {
                            StoreError::UnknownAccessLevel
                        }
                    }
                    "access_overrides_access_level_fkey" => StoreError::UnknownAccessLevel,
                    // Any other foreign key points at the app or the member.
                    _ => StoreError::NotFound,
                },
                _ => StoreError::internal(err),
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.into()),
        _ => StoreError::internal(err),
    }
}

/// The key access level names are compared by (case-insensitive, the same on both backends).
pub(crate) fn name_key(name: &larder_access::Name) -> String {
    name.as_str().to_lowercase()
}

impl PgStore {
    pub(crate) async fn app_exists(&self, app: AppId) -> StoreResult<bool> {
        let found: Option<i32> = sqlx::query_scalar("select 1 from apps where id = $1")
            .bind(app.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(found.is_some())
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
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

    /// Applies every embedded migration not applied yet. Safe to run from several processes
    /// at once (sqlx takes an advisory lock).
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

#[cfg(test)]
mod tests {
    use super::server_unavailable;

    #[test]
    fn a_server_going_away_is_unavailable_not_a_bad_statement() {
        for code in ["57P01", "57P02", "57P03", "08006", "08001", "53300"] {
            assert!(server_unavailable(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "22P05", "40001"] {
            assert!(!server_unavailable(code), "{code}");
        }
    }
}
