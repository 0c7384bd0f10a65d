//! Deliveries on PostgreSQL: applying them (the access engine's plans), the activity log,
//! and the background sweeps.

use chrono::{DateTime, Utc};
use larder_access::thrivecart::strip_nul;
use larder_access::{AppId, DeliveryId, ProductKey};
use larder_store::*;
use sqlx::PgConnection;

use crate::rows::{DELIVERY_COLUMNS, DeliveryRow, records};
use crate::{PgStore, batch, map_err};

/// The key of the advisory lock on one order or one member email of an app.
pub(crate) fn lock_key(app: AppId, scope: &str, value: &str) -> String {
    format!("{app}:{scope}:{value}")
}

/// Serialises transactions touching the same order or the same member email of an app.
/// A transaction taking several takes them in one order, by the key's hash (as
/// `batch::lock` does), so they cannot deadlock.
pub(crate) async fn advisory_lock(conn: &mut PgConnection, key: &str) -> StoreResult<()> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// No text the batch stores holds a NUL (PostgreSQL cannot), on either store.
fn strip_batch(batch: &mut [(NewDelivery, ApplyDelivery)]) {
    for (_, apply) in batch {
        apply.delivery.strip_nul();
        apply.fingerprint = apply.fingerprint.take().map(|f| strip_nul(&f).into_owned());
    }
}

impl PgStore {
    async fn apply_in_one_transaction(
        &self,
        batch: &[(NewDelivery, ApplyDelivery)],
    ) -> StoreResult<Vec<AppliedDelivery>> {
        let mut tx = self
            .pool
            .begin_with(batch::BEGIN_BATCH)
            .await
            .map_err(map_err)?;
        let done = batch::apply_together(&mut tx, batch).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }
}

#[async_trait::async_trait]
impl DeliveryStore for PgStore {
    async fn record_delivery(
        &self,
        d: &NewDelivery,
        status: DeliveryStatus,
        message: &str,
    ) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        batch::insert_deliveries(&mut conn, &[(d, status, message, &[])]).await
    }

    async fn record_deliveries(&self, entries: &[RecordDelivery]) -> StoreResult<()> {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| (&e.delivery, e.status, e.message.as_str(), &[][..]))
            .collect();
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        batch::insert_deliveries(&mut conn, &rows).await
    }

    async fn apply_delivery(
        &self,
        d: &NewDelivery,
        apply: ApplyDelivery,
    ) -> StoreResult<AppliedDelivery> {
        let mut batch = vec![(d.clone(), apply)];
        strip_batch(&mut batch);
        let mut done = self.apply_in_one_transaction(&batch).await?;
        Ok(done.pop().expect("one delivery, one result"))
    }

    async fn apply_deliveries(
        &self,
        mut batch: Vec<(NewDelivery, ApplyDelivery)>,
    ) -> Vec<StoreResult<AppliedDelivery>> {
        strip_batch(&mut batch);
        match self.apply_in_one_transaction(&batch).await {
            Ok(done) => done.into_iter().map(Ok).collect(),
            // Nothing to gain from trying again one by one: each would wait as long.
            Err(StoreError::Unavailable(err)) => {
                StoreError::unavailable_each(&err.to_string(), batch.len())
            }
            Err(err) if batch.len() == 1 => vec![Err(err)],
            Err(err) => {
                // Nothing of the batch was kept: apply each alone, so one bad delivery
                // fails only itself.
                tracing::debug!(error = %causes(&err), size = batch.len(),
                                "a batch of deliveries failed; applying them one by one");
                let mut done = Vec::with_capacity(batch.len());
                for one in batch.chunks(1) {
                    done.push(
                        self.apply_in_one_transaction(one)
                            .await
                            .map(|mut d| d.pop().expect("one delivery, one result")),
                    );
                }
                done
            }
        }
    }

    async fn list_activity(
        &self,
        app: AppId,
        filter: ActivityFilter,
        page: PageRequest,
    ) -> StoreResult<Page<DeliveryRecord>> {
        let sql = format!(
            "select {DELIVERY_COLUMNS} from deliveries where app_id = $1 \
             and ($2::text is null or status = $2) \
             and ($3::text is null or event = $3) \
             and ($4::text is null or products @> jsonb_build_array($4::text)) \
             and ($5::text is null or customer_email = $5) \
             and ($6::uuid is null or id < $6) \
             order by id desc limit $7"
        );
        let rows = sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.as_uuid())
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.event)
            .bind(filter.product.map(|p| p.to_string()))
            .bind(filter.email.as_ref().map(|e| e.as_str()))
            .bind(page.after)
            .bind(page.fetch_limit())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(page.paginate(records(rows), |d: &DeliveryRecord| d.id.as_uuid()))
    }

    async fn get_activity(&self, app: AppId, id: DeliveryId) -> StoreResult<DeliveryRecord> {
        let sql = format!(
            "select {DELIVERY_COLUMNS}, payload from deliveries where app_id = $1 and id = $2"
        );
        sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(DeliveryRecord::from)
            .ok_or(StoreError::NotFound)
    }

    async fn unmapped_products(&self, app: AppId) -> StoreResult<Vec<UnmappedProduct>> {
        let rows: Vec<(String, i64, DateTime<Utc>)> = sqlx::query_as(
            "select p.product, count(*), max(d.received_at) \
             from deliveries d cross join lateral jsonb_array_elements_text(d.products) \
                  as p(product) \
             where d.app_id = $1 and d.status <> 'duplicate' \
             and not exists (select 1 from product_mappings m \
                             where m.app_id = d.app_id and m.product = p.product) \
             group by p.product order by max(d.received_at) desc, p.product",
        )
        .bind(app.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|(product, deliveries, last_seen_at)| {
                Ok(UnmappedProduct {
                    product: ProductKey::parse(&product).map_err(StoreError::internal)?,
                    deliveries,
                    last_seen_at,
                })
            })
            .collect()
    }

    async fn revoke_due_items(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "with due as ( \
                 update order_items set status = 'revoked', status_at = revoke_at, \
                 revoke_at = null, updated_at = now() \
                 where revoke_at is not null and revoke_at <= $1 and status <> 'revoked' \
                 returning app_id, order_id, product) \
             update grants g set status = 'revoked', updated_at = now() from due \
             where g.app_id = due.app_id and g.order_id = due.order_id \
             and g.product = due.product and g.status <> 'revoked'",
        )
        .bind(now.timestamp())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query("delete from deliveries where received_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("delete from delivery_fingerprints where created_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected())
    }
}
