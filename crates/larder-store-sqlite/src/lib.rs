//! SQLite implementation of [`larder_store::Store`]: the embedded default, so `larder serve`
//! runs on a fresh machine with nothing else installed.
//!
//! The database is one file in WAL mode. SQLite has a single writer, so every use case that
//! reads before it writes opens its transaction with `BEGIN IMMEDIATE`: it takes the write
//! lock up front, and the check and the write cannot interleave with another writer's.
//! SQLite reports no constraint names, so the rules PostgreSQL enforces with named
//! constraints (the level belongs to the app, the level is unused) are checked explicitly
//! inside those transactions; uniqueness is still enforced by unique indexes.

mod deliveries;
mod signin;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use larder_access::{
    AccessLevelId, ApiKeyId, AppId, CancellationPolicy, MappingId, Name, ProductKey, TestModePolicy,
};
use larder_store::*;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, migrate::Migrator};
use uuid::Uuid;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

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
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        Self::with_options(options).await
    }

    /// Opens the database a `sqlite:` URL names (`sqlite://./data/larder.db`,
    /// `sqlite:larder.db?mode=rwc`).
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::internal)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
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
        }
    }

    async fn with_options(options: SqliteConnectOptions) -> StoreResult<Self> {
        // Readers run in parallel under WAL; writers queue on the database lock anyway.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self { pool })
    }

    /// Applies every embedded migration not applied yet.
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Internal(e.into()))
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) async fn begin_write(
        &self,
    ) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }
}

/// Maps a database error to what it means for the caller. SQLite names the columns of a
/// broken unique index (`UNIQUE constraint failed: api_keys.key_hash`), not the index.
fn map_err(err: sqlx::Error) -> StoreError {
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

fn now() -> String {
    format_time(Utc::now())
}

/// Fixed-width RFC 3339 UTC, so text order is time order.
fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn decode<T, E>(column: &str, value: Result<T, E>) -> Result<T, sqlx::Error>
where
    E: std::error::Error + Send + Sync + 'static,
{
    value.map_err(|e| sqlx::Error::ColumnDecode {
        index: column.into(),
        source: e.into(),
    })
}

fn uuid_col(row: &SqliteRow, column: &str) -> Result<Uuid, sqlx::Error> {
    let text: String = row.try_get(column)?;
    decode(column, Uuid::parse_str(&text))
}

fn time_col(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    let text: String = row.try_get(column)?;
    decode(
        column,
        DateTime::parse_from_rfc3339(&text).map(|t| t.with_timezone(&Utc)),
    )
}

fn app_from_row(row: &SqliteRow) -> Result<App, sqlx::Error> {
    Ok(App {
        id: AppId::from_uuid(uuid_col(row, "id")?),
        name: row.try_get("name")?,
        created_at: time_col(row, "created_at")?,
    })
}

fn api_key_from_row(row: &SqliteRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: ApiKeyId::from_uuid(uuid_col(row, "id")?),
        app_id: AppId::from_uuid(uuid_col(row, "app_id")?),
        name: row.try_get("name")?,
        created_at: time_col(row, "created_at")?,
    })
}

fn level_from_row(row: &SqliteRow) -> Result<AccessLevel, sqlx::Error> {
    Ok(AccessLevel {
        id: AccessLevelId::from_uuid(uuid_col(row, "id")?),
        app_id: AppId::from_uuid(uuid_col(row, "app_id")?),
        name: row.try_get("name")?,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
    })
}

fn integration_from_row(row: &SqliteRow) -> Result<Integration, sqlx::Error> {
    let test_mode: String = row.try_get("test_mode")?;
    let cancellation: String = row.try_get("cancellation")?;
    Ok(Integration {
        app_id: AppId::from_uuid(uuid_col(row, "app_id")?),
        enabled: row.try_get("enabled")?,
        webhook_token: row.try_get("webhook_token")?,
        secret_word_hash: row.try_get("secret_word_hash")?,
        test_mode: decode("test_mode", test_mode.parse::<TestModePolicy>())?,
        cancellation: decode("cancellation", cancellation.parse::<CancellationPolicy>())?,
    })
}

fn mapping_from_row(row: &SqliteRow) -> Result<Mapping, sqlx::Error> {
    let product: String = row.try_get("product")?;
    Ok(Mapping {
        id: MappingId::from_uuid(uuid_col(row, "id")?),
        app_id: AppId::from_uuid(uuid_col(row, "app_id")?),
        product: decode("product", ProductKey::parse(&product))?,
        access_level_id: AccessLevelId::from_uuid(uuid_col(row, "access_level_id")?),
        created_at: time_col(row, "created_at")?,
    })
}

fn collect<T>(
    rows: &[SqliteRow],
    from_row: impl Fn(&SqliteRow) -> Result<T, sqlx::Error>,
) -> StoreResult<Vec<T>> {
    rows.iter()
        .map(from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_err)
}

const INTEGRATION_COLUMNS: &str =
    "app_id, enabled, webhook_token, secret_word_hash, test_mode, cancellation";

/// The key access level names are compared by (case-insensitive, the same on both backends).
fn name_key(name: &Name) -> String {
    name.as_str().to_lowercase()
}

/// The `after` bound of a page as text; `''` sorts before every id.
fn after_bound(page: &PageRequest) -> String {
    page.after.map(|u| u.to_string()).unwrap_or_default()
}

async fn app_exists(conn: &mut sqlx::SqliteConnection, app: AppId) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("select 1 from apps where id = ?1")
        .bind(app.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(found.is_some())
}

impl SqliteStore {
    /// Reads the integration (defaults if never configured), applies `change` and
    /// writes it back, in one write transaction.
    async fn change_integration(
        &self,
        app: AppId,
        change: IntegrationChange,
    ) -> StoreResult<(Integration, Integration)> {
        let mut tx = self.begin_write().await?;
        let sql =
            format!("select {INTEGRATION_COLUMNS} from thrivecart_integrations where app_id = ?1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let before = match row {
            Some(row) => integration_from_row(&row).map_err(map_err)?,
            None if app_exists(&mut tx, app).await? => Integration::unconfigured(app),
            None => return Err(StoreError::NotFound),
        };
        let mut after = before.clone();
        after.apply(change);
        let at = now();
        sqlx::query(
            "insert into thrivecart_integrations \
             (app_id, enabled, webhook_token, secret_word_hash, test_mode, cancellation, \
              created_at, updated_at) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
             on conflict (app_id) do update set enabled = excluded.enabled, \
             webhook_token = excluded.webhook_token, \
             secret_word_hash = excluded.secret_word_hash, test_mode = excluded.test_mode, \
             cancellation = excluded.cancellation, updated_at = excluded.updated_at",
        )
        .bind(app.to_string())
        .bind(after.enabled)
        .bind(after.webhook_token.as_deref())
        .bind(after.secret_word_hash.as_deref())
        .bind(after.test_mode.as_str())
        .bind(after.cancellation.as_str())
        .bind(&at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok((before, after))
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn operator_token_hash(&self) -> StoreResult<Option<String>> {
        sqlx::query_scalar("select token_hash from operator_tokens where id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn init_operator_token_hash(&self, hash: &str) -> StoreResult<bool> {
        let at = now();
        let done = sqlx::query(
            "insert into operator_tokens (id, token_hash, created_at, updated_at) \
             values (1, ?1, ?2, ?2) on conflict (id) do nothing",
        )
        .bind(hash)
        .bind(&at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_app(&self, app: NewApp) -> StoreResult<App> {
        let row = sqlx::query(
            "insert into apps (id, name, created_at, updated_at) values (?1, ?2, ?3, ?3) \
             returning id, name, created_at",
        )
        .bind(app.id.to_string())
        .bind(app.name.as_str())
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        app_from_row(&row).map_err(map_err)
    }

    async fn get_app(&self, app: AppId) -> StoreResult<App> {
        let row = sqlx::query("select id, name, created_at from apps where id = ?1")
            .bind(app.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        app_from_row(&row).map_err(map_err)
    }

    async fn list_apps(&self, page: PageRequest) -> StoreResult<Page<App>> {
        let rows =
            sqlx::query("select id, name, created_at from apps where id > ?1 order by id limit ?2")
                .bind(after_bound(&page))
                .bind(page.fetch_limit())
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        let apps = collect(&rows, app_from_row)?;
        Ok(page.paginate(apps, |a| a.id.as_uuid()))
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        // A missing app breaks the foreign key, which SQLite reports without detail; the
        // only foreign key here is the app's, so it maps to NotFound.
        let row = sqlx::query(
            "insert into api_keys (id, app_id, name, key_hash, created_at, updated_at) \
             values (?1, ?2, ?3, ?4, ?5, ?5) returning id, app_id, name, created_at",
        )
        .bind(key.id.to_string())
        .bind(key.app_id.to_string())
        .bind(key.name.as_str())
        .bind(&key.key_hash)
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        api_key_from_row(&row).map_err(map_err)
    }

    async fn list_api_keys(&self, app: AppId, page: PageRequest) -> StoreResult<Page<ApiKey>> {
        let rows = sqlx::query(
            "select id, app_id, name, created_at from api_keys \
             where app_id = ?1 and id > ?2 order by id limit ?3",
        )
        .bind(app.to_string())
        .bind(after_bound(&page))
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let keys = collect(&rows, api_key_from_row)?;
        Ok(page.paginate(keys, |k| k.id.as_uuid()))
    }

    async fn delete_api_key(&self, app: AppId, key: ApiKeyId) -> StoreResult<String> {
        sqlx::query_scalar("delete from api_keys where app_id = ?1 and id = ?2 returning key_hash")
            .bind(app.to_string())
            .bind(key.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)
    }

    async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyOwner>> {
        let row = sqlx::query("select id, app_id from api_keys where key_hash = ?1")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|row| {
            Ok(ApiKeyOwner {
                key_id: ApiKeyId::from_uuid(uuid_col(&row, "id")?),
                app_id: AppId::from_uuid(uuid_col(&row, "app_id")?),
            })
        })
        .transpose()
        .map_err(map_err)
    }

    async fn create_access_level(&self, level: NewAccessLevel) -> StoreResult<AccessLevel> {
        let row = sqlx::query(
            "insert into access_levels (id, app_id, name, name_key, created_at, updated_at) \
             values (?1, ?2, ?3, ?4, ?5, ?5) \
             returning id, app_id, name, created_at, updated_at",
        )
        .bind(level.id.to_string())
        .bind(level.app_id.to_string())
        .bind(level.name.as_str())
        .bind(name_key(&level.name))
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        level_from_row(&row).map_err(map_err)
    }

    async fn get_access_level(&self, app: AppId, id: AccessLevelId) -> StoreResult<AccessLevel> {
        let row = sqlx::query(
            "select id, app_id, name, created_at, updated_at from access_levels \
             where app_id = ?1 and id = ?2",
        )
        .bind(app.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .ok_or(StoreError::NotFound)?;
        level_from_row(&row).map_err(map_err)
    }

    async fn list_access_levels(
        &self,
        app: AppId,
        page: PageRequest,
    ) -> StoreResult<Page<AccessLevel>> {
        let rows = sqlx::query(
            "select id, app_id, name, created_at, updated_at from access_levels \
             where app_id = ?1 and id > ?2 order by id limit ?3",
        )
        .bind(app.to_string())
        .bind(after_bound(&page))
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let levels = collect(&rows, level_from_row)?;
        Ok(page.paginate(levels, |l| l.id.as_uuid()))
    }

    async fn rename_access_level(
        &self,
        app: AppId,
        id: AccessLevelId,
        name: Name,
    ) -> StoreResult<AccessLevel> {
        let row = sqlx::query(
            "update access_levels set name = ?3, name_key = ?4, updated_at = ?5 \
             where app_id = ?1 and id = ?2 \
             returning id, app_id, name, created_at, updated_at",
        )
        .bind(app.to_string())
        .bind(id.to_string())
        .bind(name.as_str())
        .bind(name_key(&name))
        .bind(now())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .ok_or(StoreError::NotFound)?;
        level_from_row(&row).map_err(map_err)
    }

    async fn delete_access_level(&self, app: AppId, id: AccessLevelId) -> StoreResult<()> {
        // The write lock is held from the check to the delete, so no mapping can sneak in.
        let mut tx = self.begin_write().await?;
        let used: Option<i64> = sqlx::query_scalar(
            "select 1 from product_mappings where app_id = ?1 and access_level_id = ?2 limit 1",
        )
        .bind(app.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let live: Option<i64> = sqlx::query_scalar(
            "select 1 from grants where app_id = ?1 and access_level_id = ?2 \
             and status in ('active', 'paused') limit 1",
        )
        .bind(app.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if used.is_some() || live.is_some() {
            // A mapping's or a grant's foreign key proves the level exists.
            return Err(StoreError::AccessLevelInUse);
        }
        let done = sqlx::query("delete from access_levels where app_id = ?1 and id = ?2")
            .bind(app.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn get_integration(&self, app: AppId) -> StoreResult<Integration> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let sql =
            format!("select {INTEGRATION_COLUMNS} from thrivecart_integrations where app_id = ?1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
        match row {
            Some(row) => integration_from_row(&row).map_err(map_err),
            None if app_exists(&mut conn, app).await? => Ok(Integration::unconfigured(app)),
            None => Err(StoreError::NotFound),
        }
    }

    async fn enable_integration(
        &self,
        app: AppId,
        enable: EnableIntegration,
    ) -> StoreResult<Integration> {
        let (_, after) = self
            .change_integration(app, IntegrationChange::Enable(enable))
            .await?;
        Ok(after)
    }

    async fn disable_integration(&self, app: AppId) -> StoreResult<Integration> {
        let (_, after) = self
            .change_integration(app, IntegrationChange::Disable)
            .await?;
        Ok(after)
    }

    async fn update_integration(
        &self,
        app: AppId,
        patch: IntegrationPatch,
    ) -> StoreResult<Integration> {
        let (_, after) = self
            .change_integration(app, IntegrationChange::Update(patch))
            .await?;
        Ok(after)
    }

    async fn rotate_webhook_token(
        &self,
        app: AppId,
        new_token: &str,
    ) -> StoreResult<(Option<String>, Integration)> {
        let (before, after) = self
            .change_integration(app, IntegrationChange::RotateToken(new_token.to_owned()))
            .await?;
        Ok((before.webhook_token, after))
    }

    async fn find_integration_by_token(&self, token: &str) -> StoreResult<Option<Integration>> {
        let sql = format!(
            "select {INTEGRATION_COLUMNS} from thrivecart_integrations where webhook_token = ?1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref()
            .map(integration_from_row)
            .transpose()
            .map_err(map_err)
    }

    async fn create_mapping(&self, mapping: NewMapping) -> StoreResult<Mapping> {
        let mut tx = self.begin_write().await?;
        if !app_exists(&mut tx, mapping.app_id).await? {
            return Err(StoreError::NotFound);
        }
        let level: Option<i64> =
            sqlx::query_scalar("select 1 from access_levels where app_id = ?1 and id = ?2")
                .bind(mapping.app_id.to_string())
                .bind(mapping.access_level_id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if level.is_none() {
            return Err(StoreError::UnknownAccessLevel);
        }
        let row = sqlx::query(
            "insert into product_mappings \
             (id, app_id, product, access_level_id, created_at, updated_at) \
             values (?1, ?2, ?3, ?4, ?5, ?5) \
             returning id, app_id, product, access_level_id, created_at",
        )
        .bind(mapping.id.to_string())
        .bind(mapping.app_id.to_string())
        .bind(mapping.product.to_string())
        .bind(mapping.access_level_id.to_string())
        .bind(now())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let mapping = mapping_from_row(&row).map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(mapping)
    }

    async fn list_mappings(&self, app: AppId, page: PageRequest) -> StoreResult<Page<Mapping>> {
        let rows = sqlx::query(
            "select id, app_id, product, access_level_id, created_at from product_mappings \
             where app_id = ?1 and id > ?2 order by id limit ?3",
        )
        .bind(app.to_string())
        .bind(after_bound(&page))
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mappings = collect(&rows, mapping_from_row)?;
        Ok(page.paginate(mappings, |m| m.id.as_uuid()))
    }

    async fn all_mappings(&self, app: AppId) -> StoreResult<Vec<Mapping>> {
        let rows = sqlx::query(
            "select id, app_id, product, access_level_id, created_at from product_mappings \
             where app_id = ?1 order by id",
        )
        .bind(app.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(mapping_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err)
    }

    async fn record_delivery(
        &self,
        delivery: NewDelivery,
        status: DeliveryStatus,
        message: &str,
    ) -> StoreResult<()> {
        self.record_delivery_impl(delivery, status, message).await
    }

    async fn apply_delivery(
        &self,
        delivery: &NewDelivery,
        apply: ApplyDelivery,
    ) -> StoreResult<AppliedDelivery> {
        self.apply_delivery_impl(delivery, apply).await
    }

    async fn list_activity(
        &self,
        app: AppId,
        filter: ActivityFilter,
        page: PageRequest,
    ) -> StoreResult<Page<DeliveryRecord>> {
        self.list_activity_impl(app, filter, page).await
    }

    async fn get_activity(
        &self,
        app: AppId,
        id: larder_access::DeliveryId,
    ) -> StoreResult<DeliveryRecord> {
        self.get_activity_impl(app, id).await
    }

    async fn unmapped_products(&self, app: AppId) -> StoreResult<Vec<UnmappedProduct>> {
        self.unmapped_products_impl(app).await
    }

    async fn list_members(
        &self,
        app: AppId,
        filter: MemberFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Member>> {
        self.list_members_impl(app, filter, page).await
    }

    async fn get_member(
        &self,
        app: AppId,
        id: larder_access::MemberId,
    ) -> StoreResult<(Member, Vec<Grant>)> {
        self.get_member_impl(app, id).await
    }

    async fn grant_manually(
        &self,
        app: AppId,
        member: larder_access::MemberId,
        level: AccessLevelId,
    ) -> StoreResult<Grant> {
        self.grant_manually_impl(app, member, level).await
    }

    async fn revoke_manual_grant(
        &self,
        app: AppId,
        member: larder_access::MemberId,
        grant: larder_access::GrantId,
    ) -> StoreResult<()> {
        self.revoke_manual_grant_impl(app, member, grant).await
    }

    async fn create_invitation(
        &self,
        app: AppId,
        member: larder_access::MemberId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.create_invitation_impl(app, member, token_hash, expires_at)
            .await
    }

    async fn find_invitation(
        &self,
        app: AppId,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Member>> {
        self.find_invitation_impl(app, token_hash, now).await
    }

    async fn redeem_invitation(
        &self,
        app: AppId,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.redeem_invitation_impl(app, token_hash, password_hash, now)
            .await
    }

    async fn member_password(
        &self,
        app: AppId,
        email: &str,
    ) -> StoreResult<Option<(larder_access::MemberId, Option<String>)>> {
        self.member_password_impl(app, email).await
    }

    async fn create_session(
        &self,
        app: AppId,
        member: larder_access::MemberId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.create_session_impl(app, member, token_hash, expires_at)
            .await
    }

    async fn find_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(AppId, larder_access::MemberId)>> {
        self.find_session_impl(token_hash, now).await
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        self.delete_session_impl(token_hash).await
    }

    async fn revoke_due_items(&self, now: i64) -> StoreResult<u64> {
        self.revoke_due_items_impl(now).await
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.prune_deliveries_impl(before).await
    }

    async fn prune_sign_ins(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.prune_sign_ins_impl(now).await
    }

    async fn delete_mapping(&self, app: AppId, id: MappingId) -> StoreResult<()> {
        let done = sqlx::query("delete from product_mappings where app_id = ?1 and id = ?2")
            .bind(app.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
