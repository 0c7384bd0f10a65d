//! Deliveries on SQLite: applying them (the access engine's plans), the activity log, and
//! the background sweeps. Write transactions take the database lock up front
//! (`BEGIN IMMEDIATE`), which serialises deliveries as PostgreSQL's advisory locks do.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use larder_access::engine::{self, ExistingMember, ItemState, PlanInput};
use larder_access::thrivecart::{has_nul, strip_nul, strip_nul_json};
use larder_access::{AccessLevelId, AppId, DeliveryId, GrantId, MemberId, ProductKey};
use larder_store::*;
use sqlx::SqliteConnection;
use sqlx::types::Json;

use crate::rows::{DELIVERY_COLUMNS, DeliveryRow, ItemRow, records};
use crate::{SqliteStore, format_time, map_err, now};

async fn insert_delivery(
    conn: &mut SqliteConnection,
    d: &NewDelivery,
    status: DeliveryStatus,
    message: &str,
    effects: &[engine::Effect],
) -> StoreResult<()> {
    // The same text on both stores: none holds a NUL (PostgreSQL cannot).
    // A duplicate keeps no payload: it is its original's, which the message names.
    let payload = d
        .payload
        .as_ref()
        .filter(|_| status != DeliveryStatus::Duplicate);
    let payload = payload.map(|p| {
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
         customer_email, products, message, verified, payload, effects, replay_of, \
         created_at, updated_at) \
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)",
    )
    .bind(d.id.to_string())
    .bind(d.app_id.to_string())
    .bind(format_time(d.received_at))
    .bind(d.event.as_deref().map(strip_nul))
    .bind(d.mode.map(|m| m.as_str()))
    .bind(status.as_str())
    .bind(d.order_id.as_deref().map(strip_nul))
    .bind(d.customer_email.as_ref().map(|e| e.as_str()))
    .bind(Json(&d.products))
    .bind(strip_nul(message))
    .bind(d.verified)
    .bind(payload.as_deref().map(Json))
    .bind(Json(effects))
    .bind(d.replay_of.map(|r| r.to_string()))
    .bind(now())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn load_items(
    conn: &mut SqliteConnection,
    app: AppId,
    order: &str,
) -> StoreResult<HashMap<ProductKey, ItemState>> {
    let rows = sqlx::query_as::<_, ItemRow>(
        "select product, member_id, status, status_at, past_due, revoke_at, subscription_id, \
         payment_at, paused_at, resumed_at from order_items \
         where app_id = ?1 and order_id = ?2",
    )
    .bind(app.to_string())
    .bind(order)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    let mut items = HashMap::new();
    for row in rows {
        let product = row.product.clone();
        items.insert(product, ItemState::try_from(row)?);
    }
    let levels: Vec<(String, String)> = sqlx::query_as(
        "select product, access_level_id from grants \
         where app_id = ?1 and order_id = ?2 order by created_at, id",
    )
    .bind(app.to_string())
    .bind(order)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    for (product, level) in levels {
        if let (Ok(key), Ok(level)) = (ProductKey::parse(&product), level.parse::<AccessLevelId>())
            && let Some(item) = items.get_mut(&key)
        {
            item.levels.push(level);
        }
    }
    Ok(items)
}

async fn write_plan(
    conn: &mut SqliteConnection,
    app: AppId,
    order: &str,
    plan: &engine::Plan,
) -> StoreResult<()> {
    let at = now();
    if let Some(m) = &plan.member {
        sqlx::query(
            "insert into members (id, app_id, email, name, thrivecart_customer_id, test, \
             created_at, updated_at) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
             on conflict (app_id, email) do update set \
             name = coalesce(excluded.name, members.name), \
             thrivecart_customer_id = coalesce(excluded.thrivecart_customer_id, \
                                               members.thrivecart_customer_id), \
             updated_at = excluded.updated_at",
        )
        .bind(m.id.to_string())
        .bind(app.to_string())
        .bind(m.email.as_str())
        .bind(m.name.as_deref())
        .bind(m.thrivecart_customer_id.as_deref())
        .bind(m.test)
        .bind(&at)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    for item in &plan.items {
        let product = item.product.to_string();
        let stored = sqlx::query(
            "insert into order_items (app_id, order_id, product, member_id, status, status_at, \
             past_due, revoke_at, subscription_id, test, created_at, updated_at, payment_at, \
             paused_at, resumed_at) \
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, ?14) \
             on conflict (app_id, order_id, product) do update set \
             member_id = coalesce(excluded.member_id, order_items.member_id), \
             status = case when order_items.status = 'revoked' then 'revoked' \
                           else excluded.status end, \
             status_at = excluded.status_at, \
             past_due = excluded.past_due, revoke_at = excluded.revoke_at, \
             payment_at = excluded.payment_at, \
             paused_at = excluded.paused_at, resumed_at = excluded.resumed_at, \
             subscription_id = coalesce(excluded.subscription_id, order_items.subscription_id), \
             updated_at = excluded.updated_at \
             returning status, past_due",
        )
        .bind(app.to_string())
        .bind(order)
        .bind(&product)
        .bind(item.member_id.map(|m| m.to_string()))
        .bind(item.status.as_str())
        .bind(item.status_at)
        .bind(item.past_due)
        .bind(item.revoke_at)
        .bind(item.subscription_id.as_deref())
        .bind(item.test)
        .bind(&at)
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
                     order_id, product, status, past_due, test, created_at, updated_at) \
                     values (?1, ?2, ?3, ?4, 'thrivecart', ?5, ?6, ?7, ?8, ?9, ?10, ?10) \
                     on conflict (app_id, order_id, product, access_level_id) do nothing",
                )
                .bind(GrantId::new().to_string())
                .bind(app.to_string())
                .bind(member.to_string())
                .bind(level.to_string())
                .bind(order)
                .bind(&product)
                .bind(status.as_str())
                .bind(past_due)
                .bind(item.test)
                .bind(&at)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            }
        }
        sqlx::query(
            "update grants set status = ?4, past_due = ?5, updated_at = ?6 \
             where app_id = ?1 and order_id = ?2 and product = ?3 \
             and (status <> ?4 or past_due <> ?5)",
        )
        .bind(app.to_string())
        .bind(order)
        .bind(&product)
        .bind(status.as_str())
        .bind(past_due)
        .bind(&at)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

/// Applies one delivery inside the caller's write transaction.
async fn apply_in(
    conn: &mut SqliteConnection,
    d: &NewDelivery,
    mut apply: ApplyDelivery,
) -> StoreResult<AppliedDelivery> {
    apply.delivery.strip_nul();
    apply.fingerprint = apply.fingerprint.map(|f| strip_nul(&f).into_owned());
    let app = d.app_id;
    if let Some(fp) = &apply.fingerprint {
        let original: Option<String> = sqlx::query_scalar(
            "select delivery_id from delivery_fingerprints \
             where app_id = ?1 and fingerprint = ?2",
        )
        .bind(app.to_string())
        .bind(fp)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
        if let Some(original) = original {
            let message = format!("Duplicate of delivery {original}; nothing changed.");
            insert_delivery(conn, d, DeliveryStatus::Duplicate, &message, &[]).await?;
            return Ok(AppliedDelivery {
                id: d.id,
                status: DeliveryStatus::Duplicate,
                message,
            });
        }
        sqlx::query(
            "insert into delivery_fingerprints (app_id, fingerprint, delivery_id, \
             created_at) values (?1, ?2, ?3, ?4)",
        )
        .bind(app.to_string())
        .bind(fp)
        .bind(d.id.to_string())
        .bind(now())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    let order = apply.delivery.order_id.clone().unwrap_or_default();
    let member = match &apply.delivery.customer {
        Some(customer) => {
            let id: Option<String> =
                sqlx::query_scalar("select id from members where app_id = ?1 and email = ?2")
                    .bind(app.to_string())
                    .bind(customer.email.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(map_err)?;
            id.map(|id| id.parse::<MemberId>())
                .transpose()
                .map_err(StoreError::internal)?
                .map(|id| ExistingMember { id })
        }
        None => None,
    };
    let items = if order.is_empty() {
        HashMap::new()
    } else {
        load_items(conn, app, &order).await?
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
    write_plan(conn, app, &order, &plan).await?;
    crate::outbox::queue_welcome(
        conn,
        app,
        &plan,
        apply.delivery.mode,
        apply.delivery.customer.as_ref().map(|c| &c.email),
        apply.now,
    )
    .await?;
    let status = DeliveryStatus::from(plan.status);
    insert_delivery(conn, d, status, &plan.message, &plan.effects).await?;
    Ok(AppliedDelivery {
        id: d.id,
        status,
        message: plan.message,
    })
}

#[async_trait::async_trait]
impl DeliveryStore for SqliteStore {
    async fn record_delivery(
        &self,
        d: &NewDelivery,
        status: DeliveryStatus,
        message: &str,
    ) -> StoreResult<()> {
        let _turn = self.write_turn().await?;
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        insert_delivery(&mut conn, d, status, message, &[]).await
    }

    async fn record_deliveries(&self, entries: &[RecordDelivery]) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for e in entries {
            insert_delivery(&mut tx, &e.delivery, e.status, &e.message, &[]).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn apply_delivery(
        &self,
        d: &NewDelivery,
        apply: ApplyDelivery,
    ) -> StoreResult<AppliedDelivery> {
        let mut tx = self.begin_write().await?;
        let done = apply_in(&mut tx, d, apply).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    /// One write transaction for the whole batch (one wait for the disk), each delivery in
    /// a savepoint of its own, so one that fails leaves no trace and the others stand.
    async fn apply_deliveries(
        &self,
        batch: Vec<(NewDelivery, ApplyDelivery)>,
    ) -> Vec<StoreResult<AppliedDelivery>> {
        let all_fail =
            |why: &StoreError, n: usize| StoreError::unavailable_each(&causes(why).to_string(), n);
        let n = batch.len();
        let mut tx = match self.begin_write().await {
            Ok(tx) => tx,
            Err(err) => return all_fail(&err, n),
        };
        // A mark that lives exactly as long as the batch's transaction: SQLite may roll the
        // whole transaction back on its own (a full disk, an I/O error), and sqlx then turns
        // the later deliveries' savepoints into transactions of their own. If the mark is
        // gone at the end, what the batch applied before that was lost, and no delivery of
        // it is reported applied (the ones saved since are duplicates when retried).
        if let Err(err) = sqlx::query("savepoint larder_batch")
            .execute(&mut *tx)
            .await
            .map_err(map_err)
        {
            return all_fail(&err, n);
        }
        let mut done = Vec::with_capacity(n);
        for (d, apply) in batch {
            let one = async {
                let mut savepoint = sqlx::Connection::begin(&mut *tx).await.map_err(map_err)?;
                match apply_in(&mut savepoint, &d, apply).await {
                    Ok(applied) => {
                        savepoint.commit().await.map_err(map_err)?;
                        Ok(applied)
                    }
                    Err(err) => {
                        savepoint.rollback().await.map_err(map_err)?;
                        Err(err)
                    }
                }
            };
            done.push(one.await);
        }
        if let Err(err) = sqlx::query("release larder_batch")
            .execute(&mut *tx)
            .await
            .map_err(map_err)
        {
            return all_fail(&err, n);
        }
        match tx.commit().await.map_err(map_err) {
            Ok(()) => done,
            Err(err) => all_fail(&err, n),
        }
    }

    async fn list_activity(
        &self,
        app: AppId,
        filter: ActivityFilter,
        page: PageRequest,
    ) -> StoreResult<Page<DeliveryRecord>> {
        let sql = format!(
            "select {DELIVERY_COLUMNS} from deliveries where app_id = ?1 \
             and (?2 is null or status = ?2) \
             and (?3 is null or event = ?3) \
             and (?4 is null or exists (select 1 from json_each(products) where value = ?4)) \
             and (?5 is null or customer_email = ?5) \
             and (?6 is null or id < ?6) \
             order by id desc limit ?7"
        );
        let rows = sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.to_string())
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.event)
            .bind(filter.product.map(|p| p.to_string()))
            .bind(filter.email.as_ref().map(|e| e.as_str()))
            .bind(page.after.map(|a| a.to_string()))
            .bind(page.fetch_limit())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(page.paginate(records(rows), |d: &DeliveryRecord| d.id.as_uuid()))
    }

    async fn get_activity(&self, app: AppId, id: DeliveryId) -> StoreResult<DeliveryRecord> {
        let sql = format!(
            "select {DELIVERY_COLUMNS}, payload from deliveries where app_id = ?1 and id = ?2"
        );
        sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(DeliveryRecord::from)
            .ok_or(StoreError::NotFound)
    }

    async fn unmapped_products(&self, app: AppId) -> StoreResult<Vec<UnmappedProduct>> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "select j.value, count(*), max(d.received_at) \
             from deliveries d, json_each(d.products) j \
             where d.app_id = ?1 and d.status <> 'duplicate' \
             and not exists (select 1 from product_mappings m \
                             where m.app_id = d.app_id and m.product = j.value) \
             group by j.value order by max(d.received_at) desc, j.value",
        )
        .bind(app.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|(product, deliveries, last_seen)| {
                Ok(UnmappedProduct {
                    product: ProductKey::parse(&product).map_err(StoreError::internal)?,
                    deliveries,
                    last_seen_at: DateTime::parse_from_rfc3339(&last_seen)
                        .map_err(StoreError::internal)?
                        .with_timezone(&Utc),
                })
            })
            .collect()
    }

    async fn revoke_due_items(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let due: Vec<(String, String, String)> = sqlx::query_as(
            "select app_id, order_id, product from order_items \
             where revoke_at is not null and revoke_at <= ?1 and status <> 'revoked'",
        )
        .bind(now.timestamp())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let at = crate::now();
        let mut revoked = 0;
        for (app, order, product) in due {
            sqlx::query(
                "update order_items set status = 'revoked', status_at = revoke_at, \
                 revoke_at = null, updated_at = ?4 \
                 where app_id = ?1 and order_id = ?2 and product = ?3",
            )
            .bind(&app)
            .bind(&order)
            .bind(&product)
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            revoked += sqlx::query(
                "update grants set status = 'revoked', updated_at = ?4 \
                 where app_id = ?1 and order_id = ?2 and product = ?3 and status <> 'revoked'",
            )
            .bind(&app)
            .bind(&order)
            .bind(&product)
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        }
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = format_time(before);
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("delete from deliveries where received_at < ?1")
            .bind(&before)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("delete from delivery_fingerprints where created_at < ?1")
            .bind(&before)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected())
    }
}
