//! The ThriveCart integration of an app and its product mappings on SQLite.

use larder_access::{AppId, MappingId};
use larder_store::*;

use crate::rows::{INTEGRATION_COLUMNS, IntegrationRow, MappingRow, records};
use crate::{SqliteStore, after_bound, app_exists, map_err, now};

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
        let row = sqlx::query_as::<_, IntegrationRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let before = match row {
            Some(row) => row.into(),
            None if app_exists(&mut tx, app).await? => Integration::unconfigured(app),
            None => return Err(StoreError::NotFound),
        };
        let mut after = before.clone();
        after.apply(change);
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
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok((before, after))
    }
}

#[async_trait::async_trait]
impl IntegrationStore for SqliteStore {
    async fn get_integration(&self, app: AppId) -> StoreResult<Integration> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let sql =
            format!("select {INTEGRATION_COLUMNS} from thrivecart_integrations where app_id = ?1");
        let row = sqlx::query_as::<_, IntegrationRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
        match row {
            Some(row) => Ok(row.into()),
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

    async fn rotate_webhook_token(&self, app: AppId, new_token: &str) -> StoreResult<RotatedToken> {
        let (before, after) = self
            .change_integration(app, IntegrationChange::RotateToken(new_token.to_owned()))
            .await?;
        Ok(RotatedToken {
            old_token: before.webhook_token,
            integration: after,
        })
    }

    async fn find_integration_by_token(&self, token: &str) -> StoreResult<Option<Integration>> {
        let sql = format!(
            "select {INTEGRATION_COLUMNS} from thrivecart_integrations where webhook_token = ?1"
        );
        sqlx::query_as::<_, IntegrationRow>(sqlx::AssertSqlSafe(sql))
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(Integration::from))
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
        let created = sqlx::query_as::<_, MappingRow>(
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
        tx.commit().await.map_err(map_err)?;
        Ok(created.into())
    }

    async fn list_mappings(&self, app: AppId, page: PageRequest) -> StoreResult<Page<Mapping>> {
        let rows = sqlx::query_as::<_, MappingRow>(
            "select id, app_id, product, access_level_id, created_at from product_mappings \
             where app_id = ?1 and id > ?2 order by id limit ?3",
        )
        .bind(app.to_string())
        .bind(after_bound(&page))
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(page.paginate(records(rows), |m: &Mapping| m.id.as_uuid()))
    }

    async fn delete_mapping(&self, app: AppId, id: MappingId) -> StoreResult<()> {
        let _turn = self.write_turn().await?;
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

    async fn all_mappings(&self, app: AppId) -> StoreResult<Vec<Mapping>> {
        let rows = sqlx::query_as::<_, MappingRow>(
            "select id, app_id, product, access_level_id, created_at from product_mappings \
             where app_id = ?1 order by id",
        )
        .bind(app.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(records(rows))
    }
}
