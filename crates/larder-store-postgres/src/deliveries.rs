//! Deliveries, members and grants on PostgreSQL.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use larder_access::engine::{self, ExistingMember, ItemState, ItemStatus, PlanInput};
use larder_access::{AccessLevelId, AppId, DeliveryId, GrantId, MemberId, ProductKey};
use larder_store::*;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::{PgStore, map_err};

fn lock_key(app: AppId, scope: &str, value: &str) -> String {
    format!("{app}:{scope}:{value}")
}

/// Serialises transactions touching the same order or the same member email of an app.
/// Always taken in the same order (order, then email), so they cannot deadlock.
async fn advisory_lock(conn: &mut PgConnection, key: &str) -> StoreResult<()> {
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
    effects: &serde_json::Value,
) -> StoreResult<()> {
    sqlx::query(
        "insert into deliveries (id, app_id, received_at, event, mode, status, order_id, \
         customer_email, products, message, verified, payload, effects, replay_of) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(d.id.as_uuid())
    .bind(d.app_id.as_uuid())
    .bind(d.received_at)
    .bind(d.event.as_deref())
    .bind(d.mode.as_deref())
    .bind(status.as_str())
    .bind(d.order_id.as_deref())
    .bind(d.customer_email.as_deref())
    .bind(serde_json::json!(d.products))
    .bind(message)
    .bind(d.verified)
    .bind(d.payload.as_ref())
    .bind(effects)
    .bind(d.replay_of.map(|r| r.as_uuid()))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

fn decode_err(column: &str, message: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.into(),
        source: message.into(),
    }
}

async fn load_items(
    conn: &mut PgConnection,
    app: AppId,
    order: &str,
) -> StoreResult<HashMap<ProductKey, ItemState>> {
    let rows = sqlx::query(
        "select product, member_id, status, status_at, past_due, revoke_at, subscription_id, \
         payment_at from order_items where app_id = $1 and order_id = $2",
    )
    .bind(app.as_uuid())
    .bind(order)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    let mut items = HashMap::new();
    for row in rows {
        let item = (|| -> Result<(ProductKey, ItemState), sqlx::Error> {
            let product: String = row.try_get("product")?;
            let status: String = row.try_get("status")?;
            Ok((
                ProductKey::parse(&product).map_err(|e| decode_err("product", e.to_string()))?,
                ItemState {
                    status: ItemStatus::parse(&status)
                        .ok_or_else(|| decode_err("status", status.clone()))?,
                    status_at: row.try_get("status_at")?,
                    past_due: row.try_get("past_due")?,
                    member_id: row
                        .try_get::<Option<Uuid>, _>("member_id")?
                        .map(MemberId::from_uuid),
                    levels: Vec::new(),
                    revoke_at: row.try_get("revoke_at")?,
                    subscription_id: row.try_get("subscription_id")?,
                    payment_at: row.try_get("payment_at")?,
                },
            ))
        })()
        .map_err(map_err)?;
        items.insert(item.0, item.1);
    }
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
             past_due, revoke_at, subscription_id, test, payment_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             on conflict (app_id, order_id, product) do update set \
             member_id = coalesce(excluded.member_id, order_items.member_id), \
             status = case when order_items.status = 'revoked' then 'revoked' \
                           else excluded.status end, \
             status_at = excluded.status_at, \
             past_due = excluded.past_due, revoke_at = excluded.revoke_at, \
             payment_at = excluded.payment_at, \
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

fn delivery_from_row(row: &PgRow, with_payload: bool) -> Result<DeliveryRecord, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let products: serde_json::Value = row.try_get("products")?;
    Ok(DeliveryRecord {
        id: DeliveryId::from_uuid(row.try_get("id")?),
        app_id: AppId::from_uuid(row.try_get("app_id")?),
        received_at: row.try_get("received_at")?,
        event: row.try_get("event")?,
        mode: row.try_get("mode")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| decode_err("status", status))?,
        order_id: row.try_get("order_id")?,
        customer_email: row.try_get("customer_email")?,
        products: serde_json::from_value(products)
            .map_err(|e| decode_err("products", e.to_string()))?,
        message: row.try_get("message")?,
        verified: row.try_get("verified")?,
        payload: if with_payload {
            row.try_get("payload")?
        } else {
            None
        },
        effects: row.try_get("effects")?,
        replay_of: row
            .try_get::<Option<Uuid>, _>("replay_of")?
            .map(DeliveryId::from_uuid),
    })
}

const DELIVERY_COLUMNS: &str = "id, app_id, received_at, event, mode, status, order_id, \
     customer_email, products, message, verified, effects, replay_of";

fn member_from_row(row: &PgRow) -> Result<Member, sqlx::Error> {
    Ok(Member {
        id: MemberId::from_uuid(row.try_get("id")?),
        app_id: AppId::from_uuid(row.try_get("app_id")?),
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        test: row.try_get("test")?,
        created_at: row.try_get("created_at")?,
        access_levels: Vec::new(),
    })
}

impl PgStore {
    pub(crate) async fn record_delivery_impl(
        &self,
        d: NewDelivery,
        status: DeliveryStatus,
        message: &str,
    ) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        insert_delivery(&mut conn, &d, status, message, &serde_json::json!([])).await
    }

    pub(crate) async fn apply_delivery_impl(
        &self,
        d: &NewDelivery,
        apply: ApplyDelivery,
    ) -> StoreResult<AppliedDelivery> {
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
                insert_delivery(
                    &mut tx,
                    d,
                    DeliveryStatus::Duplicate,
                    &message,
                    &serde_json::json!([]),
                )
                .await?;
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
            now: apply.now,
            new_member_id: MemberId::new(),
        });
        write_plan(&mut tx, app, &order, &plan).await?;
        let status = DeliveryStatus::from(plan.status);
        insert_delivery(
            &mut tx,
            d,
            status,
            &plan.message,
            &effects_json(&plan.effects),
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(AppliedDelivery {
            id: d.id,
            status,
            message: plan.message,
        })
    }

    pub(crate) async fn list_activity_impl(
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app.as_uuid())
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.event)
            .bind(filter.product)
            .bind(filter.email)
            .bind(page.after)
            .bind(page.fetch_limit())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let items = rows
            .iter()
            .map(|r| delivery_from_row(r, false))
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err)?;
        Ok(page.paginate(items, |d| d.id.as_uuid()))
    }

    pub(crate) async fn get_activity_impl(
        &self,
        app: AppId,
        id: DeliveryId,
    ) -> StoreResult<DeliveryRecord> {
        let sql = format!(
            "select {DELIVERY_COLUMNS}, payload from deliveries where app_id = $1 and id = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        delivery_from_row(&row, true).map_err(map_err)
    }

    pub(crate) async fn unmapped_products_impl(
        &self,
        app: AppId,
    ) -> StoreResult<Vec<UnmappedProduct>> {
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
        Ok(rows
            .into_iter()
            .map(|(product, deliveries, last_seen_at)| UnmappedProduct {
                product,
                deliveries,
                last_seen_at,
            })
            .collect())
    }

    async fn attach_levels(&self, app: AppId, members: &mut [Member]) -> StoreResult<()> {
        if members.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = members.iter().map(|m| m.id.as_uuid()).collect();
        let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
            "select distinct g.member_id, l.id, l.name from grants g \
             join access_levels l on l.app_id = g.app_id and l.id = g.access_level_id \
             where g.app_id = $1 and g.member_id = any($2) and g.status = 'active' \
             order by l.name, l.id",
        )
        .bind(app.as_uuid())
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        for (member, id, name) in rows {
            if let Some(m) = members.iter_mut().find(|m| m.id.as_uuid() == member) {
                m.access_levels.push(LevelRef {
                    id: AccessLevelId::from_uuid(id),
                    name,
                });
            }
        }
        Ok(())
    }

    pub(crate) async fn list_members_impl(
        &self,
        app: AppId,
        filter: MemberFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Member>> {
        let rows = sqlx::query(
            "select m.id, m.app_id, m.email, m.name, m.test, m.created_at from members m \
             where m.app_id = $1 and ($2::text is null or m.email = $2) \
             and ($3::uuid is null or exists (select 1 from grants g where g.app_id = m.app_id \
                  and g.member_id = m.id and g.access_level_id = $3 and g.status = 'active')) \
             and ($4::uuid is null or m.id > $4) order by m.id limit $5",
        )
        .bind(app.as_uuid())
        .bind(filter.email)
        .bind(filter.access_level_id.map(|l| l.as_uuid()))
        .bind(page.after)
        .bind(page.fetch_limit())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let members = rows
            .iter()
            .map(member_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err)?;
        let mut page = page.paginate(members, |m| m.id.as_uuid());
        self.attach_levels(app, &mut page.items).await?;
        Ok(page)
    }

    pub(crate) async fn get_member_impl(
        &self,
        app: AppId,
        id: MemberId,
    ) -> StoreResult<(Member, Vec<Grant>)> {
        let row = sqlx::query(
            "select id, app_id, email, name, test, created_at from members \
             where app_id = $1 and id = $2",
        )
        .bind(app.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .ok_or(StoreError::NotFound)?;
        let mut member = [member_from_row(&row).map_err(map_err)?];
        self.attach_levels(app, &mut member).await?;
        let [member] = member;
        let rows = sqlx::query(
            "select id, access_level_id, source, product, order_id, status, past_due, test, \
             updated_at from grants where app_id = $1 and member_id = $2 order by id",
        )
        .bind(app.as_uuid())
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let grants = rows
            .iter()
            .map(|r| {
                Ok(Grant {
                    id: GrantId::from_uuid(r.try_get("id")?),
                    access_level_id: AccessLevelId::from_uuid(r.try_get("access_level_id")?),
                    source: r.try_get("source")?,
                    product: r.try_get("product")?,
                    order_id: r.try_get("order_id")?,
                    status: r.try_get("status")?,
                    past_due: r.try_get("past_due")?,
                    test: r.try_get("test")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(map_err)?;
        Ok((member, grants))
    }

    pub(crate) async fn revoke_due_items_impl(&self, now: i64) -> StoreResult<u64> {
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
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn prune_deliveries_impl(&self, before: DateTime<Utc>) -> StoreResult<u64> {
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
