//! PostgreSQL implementation of [`larder_store::Store`]: Larder's production store.
//!
//! Queries are built at run time (no database needed to compile). Migrations from
//! `migrations/postgres` are embedded in the binary. Every multi-statement use case runs in
//! one transaction; uniqueness and tenant-scoped foreign keys are enforced by constraints,
//! whose names are matched to [`StoreError`] variants.

mod deliveries;
mod signin;

use std::time::Duration;

use chrono::{DateTime, Utc};

use larder_access::{
    AccessLevelId, ApiKeyId, AppId, CancellationPolicy, MappingId, Name, ProductKey, TestModePolicy,
};
use larder_store::*;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, migrate::Migrator};
use uuid::Uuid;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Pool settings; the defaults suit a small service on a few cores.
#[derive(Debug, Clone)]
pub struct PgSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        // PostgreSQL peaks at a handful of busy connections per core; more only queue.
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
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

    /// Applies every embedded migration not applied yet. Safe to run from several processes
    /// at once (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Internal(e.into()))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Maps a database error to what it means for the caller.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match &err {
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
                    // Any other foreign key points at the app.
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

fn app_from_row(row: &PgRow) -> Result<App, sqlx::Error> {
    Ok(App {
        id: AppId::from_uuid(row.try_get("id")?),
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn api_key_from_row(row: &PgRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: ApiKeyId::from_uuid(row.try_get("id")?),
        app_id: AppId::from_uuid(row.try_get("app_id")?),
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn level_from_row(row: &PgRow) -> Result<AccessLevel, sqlx::Error> {
    Ok(AccessLevel {
        id: AccessLevelId::from_uuid(row.try_get("id")?),
        app_id: AppId::from_uuid(row.try_get("app_id")?),
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
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

fn integration_from_row(row: &PgRow) -> Result<Integration, sqlx::Error> {
    let test_mode: String = row.try_get("test_mode")?;
    let cancellation: String = row.try_get("cancellation")?;
    Ok(Integration {
        app_id: AppId::from_uuid(row.try_get("app_id")?),
        enabled: row.try_get("enabled")?,
        webhook_token: row.try_get("webhook_token")?,
        secret_word_hash: row.try_get("secret_word_hash")?,
        test_mode: decode("test_mode", test_mode.parse::<TestModePolicy>())?,
        cancellation: decode("cancellation", cancellation.parse::<CancellationPolicy>())?,
    })
}

fn mapping_from_row(row: &PgRow) -> Result<Mapping, sqlx::Error> {
    let product: String = row.try_get("product")?;
    Ok(Mapping {
        id: MappingId::from_uuid(row.try_get("id")?),
        app_id: AppId::from_uuid(row.try_get("app_id")?),
        product: decode("product", ProductKey::parse(&product))?,
        access_level_id: AccessLevelId::from_uuid(row.try_get("access_level_id")?),
        created_at: row.try_get("created_at")?,
    })
}

const INTEGRATION_COLUMNS: &str =
    "app_id, enabled, webhook_token, secret_word_hash, test_mode, cancellation";

/// The key access level names are compared by (case-insensitive, the same on both backends).
fn name_key(name: &Name) -> String {
    name.as_str().to_lowercase()
}

impl PgStore {
    async fn app_exists(&self, app: AppId) -> StoreResult<bool> {
        let found: Option<i32> = sqlx::query_scalar("select 1 from apps where id = $1")
            .bind(app.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(found.is_some())
    }

    /// The integration row, created (disabled, with defaults) if the app has none yet.
    /// `NotFound` when the app does not exist.
    async fn ensure_integration_row(
        tx: &mut sqlx::PgConnection,
        app: AppId,
    ) -> StoreResult<Integration> {
        let sql = format!(
            "insert into thrivecart_integrations (app_id) select id from apps where id = $1 \
             on conflict (app_id) do update set app_id = excluded.app_id \
             returning {INTEGRATION_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        integration_from_row(&row).map_err(map_err)
    }

    async fn write_integration(
        tx: &mut sqlx::PgConnection,
        tc: &Integration,
    ) -> StoreResult<Integration> {
        let sql = format!(
            "update thrivecart_integrations set enabled = $2, webhook_token = $3, \
             secret_word_hash = $4, test_mode = $5, cancellation = $6, updated_at = now() \
             where app_id = $1 returning {INTEGRATION_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tc.app_id.as_uuid())
            .bind(tc.enabled)
            .bind(tc.webhook_token.as_deref())
            .bind(tc.secret_word_hash.as_deref())
            .bind(tc.test_mode.as_str())
            .bind(tc.cancellation.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        integration_from_row(&row).map_err(map_err)
    }

    /// Reads the integration for update, applies `change`, writes it back: one transaction,
    /// the row locked throughout so concurrent edits serialise.
    async fn change_integration(
        &self,
        app: AppId,
        change: IntegrationChange,
    ) -> StoreResult<(Integration, Integration)> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The upsert locks the row until the commit.
        let before = Self::ensure_integration_row(&mut tx, app).await?;
        let mut after = before.clone();
        after.apply(change);
        let after = Self::write_integration(&mut tx, &after).await?;
        tx.commit().await.map_err(map_err)?;
        Ok((before, after))
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
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
        let done = sqlx::query(
            "insert into operator_tokens (id, token_hash) values (1, $1) \
             on conflict (id) do nothing",
        )
        .bind(hash)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_app(&self, app: NewApp) -> StoreResult<App> {
        let row = sqlx::query(
            "insert into apps (id, name) values ($1, $2) returning id, name, created_at",
        )
        .bind(app.id.as_uuid())
        .bind(app.name.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        app_from_row(&row).map_err(map_err)
    }

    async fn get_app(&self, app: AppId) -> StoreResult<App> {
        let row = sqlx::query("select id, name, created_at from apps where id = $1")
            .bind(app.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        app_from_row(&row).map_err(map_err)
    }

    async fn list_apps(&self, page: PageRequest) -> StoreResult<Page<App>> {
        let rows = sqlx::query(
            "select id, name, created_at from apps where ($1::uuid is null or id > $1) \
             order by id limit $2",
        )
        .bind(page.after)
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let apps = rows
            .iter()
            .map(app_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err)?;
        Ok(page.paginate(apps, |a| a.id.as_uuid()))
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        let row = sqlx::query(
            "insert into api_keys (id, app_id, name, key_hash) values ($1, $2, $3, $4) \
             returning id, app_id, name, created_at",
        )
        .bind(key.id.as_uuid())
        .bind(key.app_id.as_uuid())
        .bind(key.name.as_str())
        .bind(&key.key_hash)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        api_key_from_row(&row).map_err(map_err)
    }

    async fn list_api_keys(&self, app: AppId, page: PageRequest) -> StoreResult<Page<ApiKey>> {
        let rows = sqlx::query(
            "select id, app_id, name, created_at from api_keys \
             where app_id = $1 and ($2::uuid is null or id > $2) order by id limit $3",
        )
        .bind(app.as_uuid())
        .bind(page.after)
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let keys = rows
            .iter()
            .map(api_key_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err)?;
        Ok(page.paginate(keys, |k| k.id.as_uuid()))
    }

    async fn delete_api_key(&self, app: AppId, key: ApiKeyId) -> StoreResult<String> {
        sqlx::query_scalar("delete from api_keys where app_id = $1 and id = $2 returning key_hash")
            .bind(app.as_uuid())
            .bind(key.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)
    }

    async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyOwner>> {
        let row: Option<(Uuid, Uuid)> =
            sqlx::query_as("select id, app_id from api_keys where key_hash = $1")
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(row.map(|(id, app)| ApiKeyOwner {
            key_id: ApiKeyId::from_uuid(id),
            app_id: AppId::from_uuid(app),
        }))
    }

    async fn create_access_level(&self, level: NewAccessLevel) -> StoreResult<AccessLevel> {
        let row = sqlx::query(
            "insert into access_levels (id, app_id, name, name_key) values ($1, $2, $3, $4) \
             returning id, app_id, name, created_at, updated_at",
        )
        .bind(level.id.as_uuid())
        .bind(level.app_id.as_uuid())
        .bind(level.name.as_str())
        .bind(name_key(&level.name))
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        level_from_row(&row).map_err(map_err)
    }

    async fn get_access_level(&self, app: AppId, id: AccessLevelId) -> StoreResult<AccessLevel> {
        let row = sqlx::query(
            "select id, app_id, name, created_at, updated_at from access_levels \
             where app_id = $1 and id = $2",
        )
        .bind(app.as_uuid())
        .bind(id.as_uuid())
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
             where app_id = $1 and ($2::uuid is null or id > $2) order by id limit $3",
        )
        .bind(app.as_uuid())
        .bind(page.after)
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let levels = rows
            .iter()
            .map(level_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err)?;
        Ok(page.paginate(levels, |l| l.id.as_uuid()))
    }

    async fn rename_access_level(
        &self,
        app: AppId,
        id: AccessLevelId,
        name: Name,
    ) -> StoreResult<AccessLevel> {
        let row = sqlx::query(
            "update access_levels set name = $3, name_key = $4, updated_at = now() \
             where app_id = $1 and id = $2 \
             returning id, app_id, name, created_at, updated_at",
        )
        .bind(app.as_uuid())
        .bind(id.as_uuid())
        .bind(name.as_str())
        .bind(name_key(&name))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .ok_or(StoreError::NotFound)?;
        level_from_row(&row).map_err(map_err)
    }

    async fn delete_access_level(&self, app: AppId, id: AccessLevelId) -> StoreResult<()> {
        // Lock the level first: a delivery granting it takes a share lock on the same row
        // (through the grants' foreign key), so the check below cannot go stale. Mappings
        // are refused by their foreign key (mapped to AccessLevelInUse); revoked grants
        // cascade with the level.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let found: Option<Uuid> = sqlx::query_scalar(
            "select id from access_levels where app_id = $1 and id = $2 for update",
        )
        .bind(app.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
        let live: Option<i32> = sqlx::query_scalar(
            "select 1 from grants where app_id = $1 and access_level_id = $2 \
             and status in ('active', 'paused') limit 1",
        )
        .bind(app.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if live.is_some() {
            return Err(StoreError::AccessLevelInUse);
        }
        sqlx::query("delete from access_levels where app_id = $1 and id = $2")
            .bind(app.as_uuid())
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn get_integration(&self, app: AppId) -> StoreResult<Integration> {
        let sql =
            format!("select {INTEGRATION_COLUMNS} from thrivecart_integrations where app_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        match row {
            Some(row) => integration_from_row(&row).map_err(map_err),
            None if self.app_exists(app).await? => Ok(Integration::unconfigured(app)),
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
            "select {INTEGRATION_COLUMNS} from thrivecart_integrations where webhook_token = $1"
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
        // The composite foreign key (app_id, access_level_id) makes "another app's level"
        // and "no such level" the same UnknownAccessLevel; an unknown app is NotFound.
        if !self.app_exists(mapping.app_id).await? {
            return Err(StoreError::NotFound);
        }
        let row = sqlx::query(
            "insert into product_mappings (id, app_id, product, access_level_id) \
             values ($1, $2, $3, $4) \
             returning id, app_id, product, access_level_id, created_at",
        )
        .bind(mapping.id.as_uuid())
        .bind(mapping.app_id.as_uuid())
        .bind(mapping.product.to_string())
        .bind(mapping.access_level_id.as_uuid())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        mapping_from_row(&row).map_err(map_err)
    }

    async fn list_mappings(&self, app: AppId, page: PageRequest) -> StoreResult<Page<Mapping>> {
        let rows = sqlx::query(
            "select id, app_id, product, access_level_id, created_at from product_mappings \
             where app_id = $1 and ($2::uuid is null or id > $2) order by id limit $3",
        )
        .bind(app.as_uuid())
        .bind(page.after)
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mappings = rows
            .iter()
            .map(mapping_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err)?;
        Ok(page.paginate(mappings, |m| m.id.as_uuid()))
    }

    async fn all_mappings(&self, app: AppId) -> StoreResult<Vec<Mapping>> {
        let rows = sqlx::query(
            "select id, app_id, product, access_level_id, created_at from product_mappings \
             where app_id = $1 order by id",
        )
        .bind(app.as_uuid())
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
        let done = sqlx::query("delete from product_mappings where app_id = $1 and id = $2")
            .bind(app.as_uuid())
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
