//! The ThriveCart integration of an app and its product mappings on PostgreSQL.

use larder_access::{AppId, MappingId};
use larder_store::*;

use crate::rows::{INTEGRATION_COLUMNS, IntegrationRow, MappingRow, records};
use crate::{PgStore, map_err};

impl PgStore {
    /// Reads the integration for update (creating the row, disabled, if the app has none
    /// yet), applies `change`, writes it back: one transaction, the row locked throughout so
    /// concurrent edits serialise. `NotFound` when the app does not exist.
    async fn change_integration(
        &self,
        app: AppId,
        change: IntegrationChange,
    ) -> StoreResult<(Integration, Integration)> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Hold the app while its integration changes: a deletion of the app waits for this
        // change (or this one finds no app), so a token this change publishes is never one
        // the deletion did not see.
        let app_row: Option<i32> =
            sqlx::query_scalar("select 1 from apps where id = $1 for key share")
                .bind(app.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if app_row.is_none() {
            return Err(StoreError::NotFound);
        }
        let sql = format!(
            "insert into thrivecart_integrations (app_id) select id from apps where id = $1 \
             on conflict (app_id) do update set app_id = excluded.app_id \
             returning {INTEGRATION_COLUMNS}"
        );
        // The upsert locks the row until the commit.
        let before: Integration = sqlx::query_as::<_, IntegrationRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?
            .into();
        let mut after = before.clone();
        after.apply(change);
        let sql = format!(
            "update thrivecart_integrations set enabled = $2, webhook_token = $3, \
             secret_word_hash = $4, test_mode = $5, cancellation = $6, updated_at = now() \
             where app_id = $1 returning {INTEGRATION_COLUMNS}"
        );
        let after = sqlx::query_as::<_, IntegrationRow>(sqlx::AssertSqlSafe(sql))
            .bind(after.app_id.as_uuid())
            .bind(after.enabled)
            .bind(after.webhook_token.as_deref())
            .bind(after.secret_word_hash.as_deref())
            .bind(after.test_mode.as_str())
            .bind(after.cancellation.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?
            .into();
        tx.commit().await.map_err(map_err)?;
        Ok((before, after))
    }
}

#[async_trait::async_trait]
impl IntegrationStore for PgStore {
    async fn get_integration(&self, app: AppId) -> StoreResult<Integration> {
        let sql =
            format!("select {INTEGRATION_COLUMNS} from thrivecart_integrations where app_id = $1");
        let row = sqlx::query_as::<_, IntegrationRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        match row {
            Some(row) => Ok(row.into()),
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
            "select {INTEGRATION_COLUMNS} from thrivecart_integrations where webhook_token = $1"
        );
        sqlx::query_as::<_, IntegrationRow>(sqlx::AssertSqlSafe(sql))
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(Integration::from))
            .map_err(map_err)
    }

    async fn create_mapping(&self, mapping: NewMapping) -> StoreResult<Mapping> {
        // The composite foreign key (app_id, access_level_id) makes "another app's level"
        // and "no such level" the same UnknownAccessLevel; an unknown app is NotFound.
        if !self.app_exists(mapping.app_id).await? {
            return Err(StoreError::NotFound);
        }
        sqlx::query_as::<_, MappingRow>(
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
        .map(Mapping::from)
        .map_err(map_err)
    }

    async fn list_mappings(&self, app: AppId, page: PageRequest) -> StoreResult<Page<Mapping>> {
        let rows = sqlx::query_as::<_, MappingRow>(
            "select id, app_id, product, access_level_id, created_at from product_mappings \
             where app_id = $1 and ($2::uuid is null or id > $2) order by id limit $3",
        )
        .bind(app.as_uuid())
        .bind(page.after)
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(page.paginate(records(rows), |m: &Mapping| m.id.as_uuid()))
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

    async fn all_mappings(&self, app: AppId) -> StoreResult<Vec<Mapping>> {
        let rows = sqlx::query_as::<_, MappingRow>(
            "select id, app_id, product, access_level_id, created_at from product_mappings \
             where app_id = $1 order by id",
        )
        .bind(app.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(records(rows))
    }
}
