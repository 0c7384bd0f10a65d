//! The operator token, apps, API keys and access levels on SQLite.

use larder_access::{AccessLevelId, ApiKeyId, AppId, Name};
use larder_store::*;

use crate::rows::{ApiKeyOwnerRow, ApiKeyRow, AppRow, LevelRow, records};
use crate::{SqliteStore, after_bound, map_err, name_key, now};

#[async_trait::async_trait]
impl AppStore for SqliteStore {
    async fn operator_token_hash(&self) -> StoreResult<Option<String>> {
        sqlx::query_scalar("select token_hash from operator_tokens where id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn init_operator_token_hash(&self, hash: &str) -> StoreResult<bool> {
        let _turn = self.write_turn().await?;
        let done = sqlx::query(
            "insert into operator_tokens (id, token_hash, created_at, updated_at) \
             values (1, ?1, ?2, ?2) on conflict (id) do nothing",
        )
        .bind(hash)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_app(&self, app: NewApp) -> StoreResult<App> {
        let _turn = self.write_turn().await?;
        sqlx::query_as::<_, AppRow>(
            "insert into apps (id, name, created_at, updated_at) values (?1, ?2, ?3, ?3) \
             returning id, name, created_at",
        )
        .bind(app.id.to_string())
        .bind(app.name.as_str())
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map(App::from)
        .map_err(map_err)
    }

    async fn get_app(&self, app: AppId) -> StoreResult<App> {
        sqlx::query_as::<_, AppRow>("select id, name, created_at from apps where id = ?1")
            .bind(app.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(App::from)
            .ok_or(StoreError::NotFound)
    }

    async fn list_apps(&self, page: PageRequest) -> StoreResult<Page<App>> {
        let rows = sqlx::query_as::<_, AppRow>(
            "select id, name, created_at from apps where id > ?1 order by id limit ?2",
        )
        .bind(after_bound(&page))
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(page.paginate(records(rows), |a: &App| a.id.as_uuid()))
    }

    async fn rename_app(&self, app: AppId, name: Name) -> StoreResult<App> {
        let _turn = self.write_turn().await?;
        sqlx::query_as::<_, AppRow>(
            "update apps set name = ?2, updated_at = ?3 where id = ?1 \
             returning id, name, created_at",
        )
        .bind(app.to_string())
        .bind(name.as_str())
        .bind(now())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(App::from)
        .ok_or(StoreError::NotFound)
    }

    async fn delete_app(&self, app: AppId) -> StoreResult<DeletedApp> {
        let mut tx = self.begin_write().await?;
        let webhook_token: Option<String> = sqlx::query_scalar(
            "select webhook_token from thrivecart_integrations where app_id = ?1",
        )
        .bind(app.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?
        .flatten();
        let api_key_hashes: Vec<String> =
            sqlx::query_scalar("select key_hash from api_keys where app_id = ?1 order by id")
                .bind(app.to_string())
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
        // Everything the app owns goes with it (every foreign key to apps cascades).
        let done = sqlx::query("delete from apps where id = ?1")
            .bind(app.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(DeletedApp {
            webhook_token,
            api_key_hashes,
        })
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        let _turn = self.write_turn().await?;
        // A missing app breaks the foreign key, which SQLite reports without detail; the
        // only foreign key here is the app's, so it maps to NotFound.
        sqlx::query_as::<_, ApiKeyRow>(
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
        .map(ApiKey::from)
        .map_err(map_err)
    }

    async fn list_api_keys(&self, app: AppId, page: PageRequest) -> StoreResult<Page<ApiKey>> {
        let rows = sqlx::query_as::<_, ApiKeyRow>(
            "select id, app_id, name, created_at from api_keys \
             where app_id = ?1 and id > ?2 order by id limit ?3",
        )
        .bind(app.to_string())
        .bind(after_bound(&page))
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(page.paginate(records(rows), |k: &ApiKey| k.id.as_uuid()))
    }

    async fn delete_api_key(&self, app: AppId, key: ApiKeyId) -> StoreResult<String> {
        let _turn = self.write_turn().await?;
        sqlx::query_scalar("delete from api_keys where app_id = ?1 and id = ?2 returning key_hash")
            .bind(app.to_string())
            .bind(key.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)
    }

    async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyOwner>> {
        sqlx::query_as::<_, ApiKeyOwnerRow>("select id, app_id from api_keys where key_hash = ?1")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(ApiKeyOwner::from))
            .map_err(map_err)
    }

    async fn create_access_level(&self, level: NewAccessLevel) -> StoreResult<AccessLevel> {
        let _turn = self.write_turn().await?;
        sqlx::query_as::<_, LevelRow>(
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
        .map(AccessLevel::from)
        .map_err(map_err)
    }

    async fn get_access_level(&self, app: AppId, id: AccessLevelId) -> StoreResult<AccessLevel> {
        sqlx::query_as::<_, LevelRow>(
            "select id, app_id, name, created_at, updated_at from access_levels \
             where app_id = ?1 and id = ?2",
        )
        .bind(app.to_string())
        .bind(id.to_string())
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
             where app_id = ?1 and id > ?2 order by id limit ?3",
        )
        .bind(app.to_string())
        .bind(after_bound(&page))
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
        let _turn = self.write_turn().await?;
        sqlx::query_as::<_, LevelRow>(
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
        .map(AccessLevel::from)
        .ok_or(StoreError::NotFound)
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
}
