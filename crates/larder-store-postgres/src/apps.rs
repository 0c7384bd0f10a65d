//! The operator token, apps, API keys and access levels on PostgreSQL.

use larder_access::{AccessLevelId, ApiKeyId, AppId, Name};
use larder_store::*;
use uuid::Uuid;

use crate::rows::{ApiKeyOwnerRow, ApiKeyRow, AppRow, LevelRow, records};
use crate::{PgStore, map_err, name_key};

#[async_trait::async_trait]
impl AppStore for PgStore {
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
        sqlx::query_as::<_, AppRow>(
            "insert into apps (id, name) values ($1, $2) returning id, name, created_at",
        )
        .bind(app.id.as_uuid())
        .bind(app.name.as_str())
        .fetch_one(&self.pool)
        .await
        .map(App::from)
        .map_err(map_err)
    }

    async fn get_app(&self, app: AppId) -> StoreResult<App> {
        sqlx::query_as::<_, AppRow>("select id, name, created_at from apps where id = $1")
            .bind(app.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(App::from)
            .ok_or(StoreError::NotFound)
    }

    async fn list_apps(&self, page: PageRequest) -> StoreResult<Page<App>> {
        let rows = sqlx::query_as::<_, AppRow>(
            "select id, name, created_at from apps where ($1::uuid is null or id > $1) \
             order by id limit $2",
        )
        .bind(page.after)
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(page.paginate(records(rows), |a: &App| a.id.as_uuid()))
    }

    async fn rename_app(&self, app: AppId, name: Name) -> StoreResult<App> {
        sqlx::query_as::<_, AppRow>(
            "update apps set name = $2, updated_at = now() where id = $1 \
             returning id, name, created_at",
        )
        .bind(app.as_uuid())
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(App::from)
        .ok_or(StoreError::NotFound)
    }

    async fn delete_app(&self, app: AppId) -> StoreResult<DeletedApp> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The row lock keeps keys and tokens from being added while the app goes.
        let found: Option<Uuid> =
            sqlx::query_scalar("select id from apps where id = $1 for update")
                .bind(app.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
        let webhook_token: Option<String> = sqlx::query_scalar(
            "select webhook_token from thrivecart_integrations where app_id = $1",
        )
        .bind(app.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?
        .flatten();
        let api_key_hashes: Vec<String> =
            sqlx::query_scalar("select key_hash from api_keys where app_id = $1 order by id")
                .bind(app.as_uuid())
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
        // Everything the app owns goes with it (every foreign key to apps cascades).
        sqlx::query("delete from apps where id = $1")
            .bind(app.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(DeletedApp {
            webhook_token,
            api_key_hashes,
        })
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        sqlx::query_as::<_, ApiKeyRow>(
            "insert into api_keys (id, app_id, name, key_hash) values ($1, $2, $3, $4) \
             returning id, app_id, name, created_at",
        )
        .bind(key.id.as_uuid())
        .bind(key.app_id.as_uuid())
        .bind(key.name.as_str())
        .bind(&key.key_hash)
        .fetch_one(&self.pool)
        .await
        .map(ApiKey::from)
        .map_err(map_err)
    }

    async fn list_api_keys(&self, app: AppId, page: PageRequest) -> StoreResult<Page<ApiKey>> {
        let rows = sqlx::query_as::<_, ApiKeyRow>(
            "select id, app_id, name, created_at from api_keys \
             where app_id = $1 and ($2::uuid is null or id > $2) order by id limit $3",
        )
        .bind(app.as_uuid())
        .bind(page.after)
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(page.paginate(records(rows), |k: &ApiKey| k.id.as_uuid()))
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
        sqlx::query_as::<_, ApiKeyOwnerRow>("select id, app_id from api_keys where key_hash = $1")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(ApiKeyOwner::from))
            .map_err(map_err)
    }

    async fn create_access_level(&self, level: NewAccessLevel) -> StoreResult<AccessLevel> {
        sqlx::query_as::<_, LevelRow>(
            "insert into access_levels (id, app_id, name, name_key) values ($1, $2, $3, $4) \
             returning id, app_id, name, created_at, updated_at",
        )
        .bind(level.id.as_uuid())
        .bind(level.app_id.as_uuid())
        .bind(level.name.as_str())
        .bind(name_key(&level.name))
        .fetch_one(&self.pool)
        .await
        .map(AccessLevel::from)
        .map_err(map_err)
    }

    async fn get_access_level(&self, app: AppId, id: AccessLevelId) -> StoreResult<AccessLevel> {
        sqlx::query_as::<_, LevelRow>(
            "select id, app_id, name, created_at, updated_at from access_levels \
             where app_id = $1 and id = $2",
        )
        .bind(app.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(AccessLevel::from)
        .ok_or(StoreError::NotFound)
    }

    async fn list_access_levels(
        &self,
        app: AppId,
        page: PageRequest,
    ) -> StoreResult<Page<AccessLevel>> {
        let rows = sqlx::query_as::<_, LevelRow>(
            "select id, app_id, name, created_at, updated_at from access_levels \
             where app_id = $1 and ($2::uuid is null or id > $2) order by id limit $3",
        )
        .bind(app.as_uuid())
        .bind(page.after)
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(page.paginate(records(rows), |l: &AccessLevel| l.id.as_uuid()))
    }

    async fn rename_access_level(
        &self,
        app: AppId,
        id: AccessLevelId,
        name: Name,
    ) -> StoreResult<AccessLevel> {
        sqlx::query_as::<_, LevelRow>(
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
        .map(AccessLevel::from)
        .ok_or(StoreError::NotFound)
    }

    async fn delete_access_level(&self, app: AppId, id: AccessLevelId) -> StoreResult<()> {
        // Lock the level first: a delivery granting it takes a share lock on the same row
        // (through the grants' foreign key), so the check below cannot go stale. Mappings
        // are refused by their foreign key (mapped to AccessLevelInUse); revoked grants
        // and overrides cascade with the level.
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
}
