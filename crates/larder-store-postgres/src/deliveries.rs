//! Deliveries on PostgreSQL: applying them (the access engine's plans), the activity log,
//! and the background sweeps.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use larder_access::engine::{self, ExistingMember, ItemState, PlanInput};
use larder_access::thrivecart::{has_nul, strip_nul, strip_nul_json};
use larder_access::{AccessLevelId, AppId, DeliveryId, GrantId, MemberId, ProductKey};
use larder_store::*;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::rows::{DELIVERY_COLUMNS, DeliveryRow, ItemRow, records};
use crate::{PgStore, map_err};

/// The key of the advisory lock on one order or one member email of an app.
pub(crate) fn lock_key(app: AppId, scope: &str, value: &str) -> String {
    format!("{app}:{scope}:{value}")
}

/// Serialises transactions touching the same order or the same member email of an app.
/// Always taken in the same order (order, then email), so they cannot deadlock.
pub(crate) async fn advisory_lock(conn: &mut PgConnection, key: &str) -> StoreResult<()> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

async fn insert_delivery(
    conn: &mut PgConnection,
    d: &NewDelivery,
    status: DeliveryStatus,
    message: &str,
    effects: &[engine::Effect],
) -> StoreResult<()> {
    // The same text on both stores: none holds a NUL (PostgreSQL cannot).
    let payload = d.payload.as_ref().map(|p| {
        if has_nul(p) {
            let mut clean = p.clone();
            strip_nul_json(&mut clean);
            std::borrow::Cow::Owned(clean)
        } else {
            std::borrow::Cow::Borrowed(p)
        }
    });
    sqlx::query(
        "insert into deliveries (id, app_id, received_at, event, mode, status, order_id, \
         customer_email, products, message, verified, payload, effects, replay_of) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(d.id.as_uuid())
    .bind(d.app_id.as_uuid())
    .bind(d.received_at)
    .bind(d.event.as_deref().map(strip_nul))
    .bind(d.mode.map(|m| m.as_str()))
    .bind(status.as_str())
    .bind(d.order_id.as_deref().map(strip_nul))
    .bind(d.customer_email.as_ref().map(|e| e.as_str()))
    .bind(Json(&d.products))
    .bind(strip_nul(message))
    .bind(d.verified)
    .bind(payload.as_deref())
    .bind(Json(effects))
    .bind(d.replay_of.map(|r| r.as_uuid()))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn load_items(
    conn: &mut PgConnection,
    app: AppId,
    order: &str,
) -> StoreResult<HashMap<ProductKey, ItemState>> {
    let rows = sqlx::query_as::<_, ItemRow>(
        "select product, member_id, status, status_at, past_due, revoke_at, subscription_id, \
         payment_at, paused_at, resumed_at from order_items \
         where app_id = $1 and order_id = $2",
    )
    .bind(app.as_uuid())
    .bind(order)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    let mut items: HashMap<ProductKey, ItemState> = rows
        .into_iter()
        .map(|row| (row.product.clone(), ItemState::from(row)))
        .collect();
    let levels: Vec<(String, Uuid)> = sqlx::query_as(
        "select product, access_level_id from grants \
         where app_id = $1 and order_id = $2 order by created_at, id",
    )
    .bind(app.as_uuid())
    .bind(order)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    for (product, level) in levels {
        if let Ok(key) = ProductKey::parse(&product)
            && let Some(item) = items.get_mut(&key)
        {
            item.levels.push(AccessLevelId::from_uuid(level));
        }
    }
    Ok(items)
}

async fn write_plan(
    conn: &mut PgConnection,
    app: AppId,
    order: &str,
    plan: &engine::Plan,
) -> StoreResult<()> {
    if let Some(m) = &plan.member {
        sqlx::query(
            "insert into members (id, app_id, email, name, thrivecart_customer_id, test) \
             values ($1, $2, $3, $4, $5, $6) \
             on conflict (app_id, email) do update set \
             name = coalesce(excluded.name, members.name), \
             thrivecart_customer_id = coalesce(excluded.thrivecart_customer_id, \
                                               members.thrivecart_customer_id), \
             updated_at = now()",
        )
        .bind(m.id.as_uuid())
        .bind(app.as_uuid())
        .bind(m.email.as_str())
        .bind(m.name.as_deref())
        .bind(m.thrivecart_customer_id.as_deref())
        .bind(m.test)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    for item in &plan.items {
        let product = item.product.to_string();
        let stored = sqlx::query(
            "insert into order_items (app_id, order_id, product, member_id, status, status_at, \
             past_due, revoke_at, subscription_id, test, payment_at, paused_at, resumed_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             on conflict (app_id, order_id, product) do update set \
             member_id = coalesce(excluded.member_id, order_items.member_id), \
             status = case when order_items.status = 'revoked' then 'revoked' \
                           else excluded.status end, \
             status_at = excluded.status_at, \
             past_due = excluded.past_due, revoke_at = excluded.revoke_at, \
             payment_at = excluded.payment_at, \
             paused_at = excluded.paused_at, resumed_at = excluded.resumed_at, \
             subscription_id = coalesce(excluded.subscription_id, order_items.subscription_id), \
             updated_at = now() \
             returning status, past_due",
        )
        .bind(app.as_uuid())
        .bind(order)
        .bind(&product)
        .bind(item.member_id.map(|m| m.as_uuid()))
        .bind(item.status.as_str())
        .bind(item.status_at)
        .bind(item.past_due)
        .bind(item.revoke_at)
        .bind(item.subscription_id.as_deref())
        .bind(item.test)
        .bind(item.payment_at)
        .bind(item.paused_at)
        .bind(item.resumed_at)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
        // A revocation is final, even one a concurrent sweep made a moment ago: the row's
        // status wins over the plan's, and the grants follow the row.
        let status: String = sqlx::Row::try_get(&stored, "status").map_err(map_err)?;
        let past_due: bool = sqlx::Row::try_get(&stored, "past_due").map_err(map_err)?;
        if let Some(member) = item.member_id {
            for level in &item.grant_levels {
                sqlx::query(
                    "insert into grants (id, app_id, member_id, access_level_id, source, \
                     order_id, product, status, past_due, test) \
                     values ($1, $2, $3, $4, 'thrivecart', $5, $6, $7, $8, $9) \
                     on conflict (app_id, order_id, product, access_level_id) do nothing",
                )
                .bind(GrantId::new().as_uuid())
                .bind(app.as_uuid())
                .bind(member.as_uuid())
                .bind(level.as_uuid())
                .bind(order)
                .bind(&product)
                .bind(status.as_str())
                .bind(past_due)
                .bind(item.test)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            }
        }
        sqlx::query(
            "update grants set status = $4, past_due = $5, updated_at = now() \
             where app_id = $1 and order_id = $2 and product = $3 \
             and (status <> $4 or past_due <> $5)",
        )
        .bind(app.as_uuid())
        .bind(order)
        .bind(&product)
        .bind(status.as_str())
        .bind(past_due)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    Ok(())
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
        insert_delivery(&mut conn, d, status, message, &[]).await
    }

    async fn apply_delivery(
        &self,
        d: &NewDelivery,
        mut apply: ApplyDelivery,
    ) -> StoreResult<AppliedDelivery> {
        apply.delivery.strip_nul();
        apply.fingerprint = apply.fingerprint.map(|f| strip_nul(&f).into_owned());
        let app = d.app_id;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        if let Some(fp) = &apply.fingerprint {
            // Concurrent copies wait here on the primary key until the first commits (then
            // they are duplicates) or rolls back (then one of them goes on).
            let claimed = sqlx::query(
                "insert into delivery_fingerprints (app_id, fingerprint, delivery_id) \
                 values ($1, $2, $3) on conflict do nothing",
            )
            .bind(app.as_uuid())
            .bind(fp)
            .bind(d.id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected()
                == 1;
            if !claimed {
                let original: Option<Uuid> = sqlx::query_scalar(
                    "select delivery_id from delivery_fingerprints \
                     where app_id = $1 and fingerprint = $2",
                )
                .bind(app.as_uuid())
                .bind(fp)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let message = match original {
                    Some(o) => format!("Duplicate of delivery {o}; nothing changed."),
                    None => "Duplicate delivery; nothing changed.".to_owned(),
                };
                insert_delivery(&mut tx, d, DeliveryStatus::Duplicate, &message, &[]).await?;
                tx.commit().await.map_err(map_err)?;
                return Ok(AppliedDelivery {
                    id: d.id,
                    status: DeliveryStatus::Duplicate,
                    message,
                });
            }
        }
        let order = apply.delivery.order_id.clone().unwrap_or_default();
        if !order.is_empty() {
            advisory_lock(&mut tx, &lock_key(app, "order", &order)).await?;
        }
        let member = match &apply.delivery.customer {
            Some(customer) => {
                advisory_lock(&mut tx, &lock_key(app, "email", customer.email.as_str())).await?;
                sqlx::query_scalar::<_, Uuid>(
                    "select id from members where app_id = $1 and email = $2",
                )
                .bind(app.as_uuid())
                .bind(customer.email.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?
                .map(|id| ExistingMember {
                    id: MemberId::from_uuid(id),
                })
            }
            None => None,
        };
        let items = if order.is_empty() {
            HashMap::new()
        } else {
            load_items(&mut tx, app, &order).await?
        };
        let plan = engine::plan(&PlanInput {
            delivery: &apply.delivery,
            mappings: &apply.mappings,
            items: &items,
            member,
            test_mode: apply.test_mode,
            cancellation: apply.cancellation,
            now: apply.now.timestamp(),
            new_member_id: MemberId::new(),
        });
        write_plan(&mut tx, app, &order, &plan).await?;
        crate::outbox::queue_welcome(
            &mut tx,
            app,
            &plan,
            apply.delivery.mode,
            apply.delivery.customer.as_ref().map(|c| &c.email),
            apply.now,
        )
        .await?;
        let status = DeliveryStatus::from(plan.status);
        insert_delivery(&mut tx, d, status, &plan.message, &plan.effects).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(AppliedDelivery {
            id: d.id,
            status,
            message: plan.message,
        })
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
