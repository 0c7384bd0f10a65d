//! Deliveries applied together: one transaction and a fixed number of set-based statements
//! (`unnest` arrays in, `= ANY`-style joins out) however many deliveries arrive together,
//! so a burst costs the database a round trip per statement, not per delivery.
//!
//! The transaction claims every fingerprint (in one global order), takes every order's and
//! email's advisory lock (in one global order: by the lock's key), reads the state of every
//! order and member the batch touches, then plans each delivery in the order given against
//! that state, carried forward in memory so each plan sees the ones before it, exactly as
//! one transaction a delivery would. The writes follow, one statement per table, and the
//! activity entries last. A delivery applied alone is a batch of one: there is one path.

use std::collections::{HashMap, HashSet};

use larder_access::engine::{self, ExistingMember, ItemState, ItemWrite, MemberWrite, PlanInput};
use larder_access::thrivecart::{has_nul, strip_nul, strip_nul_json};
use larder_access::{AccessLevelId, Email, GrantId, MemberId, MessageId, ProductKey};
use larder_store::*;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::deliveries::lock_key;
use crate::map_err;
use crate::rows::ItemRow;

/// One order of an app.
type OrderKey = (Uuid, String);

/// An item of an order, with the order it belongs to.
#[derive(sqlx::FromRow)]
struct KeyedItemRow {
    app_id: Uuid,
    order_id: String,
    #[sqlx(flatten)]
    item: ItemRow,
}

/// What a batch writes, merged per row so each row is written once.
#[derive(Default)]
struct Writes {
    members: Vec<(Uuid, MemberWrite)>,
    member_index: HashMap<(Uuid, Email), usize>,
    items: Vec<(OrderKey, ItemWrite)>,
    item_index: HashMap<(OrderKey, ProductKey), usize>,
    /// `(app, order, product, level)` → the member and whether the purchase was a test.
    grants: Vec<(OrderKey, ProductKey, AccessLevelId, MemberId, bool)>,
    grant_seen: HashSet<(OrderKey, ProductKey, AccessLevelId)>,
    /// `(app, member)` → the address the welcome goes to, and when it was queued.
    welcomes: Vec<(Uuid, MemberId, Email, chrono::DateTime<chrono::Utc>)>,
    welcome_seen: HashSet<(Uuid, MemberId)>,
}

impl Writes {
    /// A later write of the same member: its name and ThriveCart id win when it has them
    /// (as the upsert's `coalesce` does); the id and test flag stay the first's.
    fn member(&mut self, app: Uuid, write: &MemberWrite) {
        match self.member_index.get(&(app, write.email.clone())) {
            Some(&at) => {
                let kept = &mut self.members[at].1;
                if write.name.is_some() {
                    kept.name.clone_from(&write.name);
                }
                if write.thrivecart_customer_id.is_some() {
                    kept.thrivecart_customer_id
                        .clone_from(&write.thrivecart_customer_id);
                }
            }
            None => {
                self.member_index
                    .insert((app, write.email.clone()), self.members.len());
                self.members.push((app, write.clone()));
            }
        }
    }

    /// A later write of the same item replaces the earlier one, but a member or a
    /// subscription once known is kept (as the upsert's `coalesce` does); the grants it
    /// asks for are kept apart, the first asking for a level creating it.
    fn item(&mut self, order: &OrderKey, write: &ItemWrite) {
        if let Some(member) = write.member_id {
            for level in &write.grant_levels {
                let key = (order.clone(), write.product.clone(), *level);
                if self.grant_seen.insert(key) {
                    self.grants.push((
                        order.clone(),
                        write.product.clone(),
                        *level,
                        member,
                        write.test,
                    ));
                }
            }
        }
        let key = (order.clone(), write.product.clone());
        match self.item_index.get(&key) {
            Some(&at) => {
                let kept = &mut self.items[at].1;
                let member_id = write.member_id.or(kept.member_id);
                let subscription_id = write
                    .subscription_id
                    .clone()
                    .or_else(|| kept.subscription_id.take());
                let test = kept.test;
                *kept = ItemWrite {
                    member_id,
                    subscription_id,
                    test,
                    ..write.clone()
                };
            }
            None => {
                self.item_index.insert(key, self.items.len());
                self.items.push((order.clone(), write.clone()));
            }
        }
    }
}

/// The activity entry of one delivery of the batch.
struct Entry {
    status: DeliveryStatus,
    message: String,
    effects: Vec<engine::Effect>,
}

/// How a batch's transaction begins: with every statement of it planned for the arguments
/// it gets (a custom plan), never from a plan cached on the connection. A cached (generic)
/// plan is made for the table sizes of its time: one made while the tables were nearly
/// empty (a fresh deployment's first deliveries) scans whole tables, and keeps scanning
/// them as they grow, until PostgreSQL next analyzes them. Set in the same round trip as
/// `begin`, for this transaction only, so a pooler in transaction mode keeps it to it.
pub(crate) const BEGIN_BATCH: &str = "begin; set local plan_cache_mode = force_custom_plan";

/// Applies `batch` in the transaction `tx` (the caller begins it with [`BEGIN_BATCH`] and
/// commits). Every delivery's NUL characters are already stripped.
pub(crate) async fn apply_together(
    tx: &mut PgConnection,
    batch: &[(NewDelivery, ApplyDelivery)],
) -> StoreResult<Vec<AppliedDelivery>> {
    let mut entries: Vec<Option<Entry>> = (0..batch.len()).map(|_| None).collect();
    let duplicates = claim_fingerprints(tx, batch).await?;
    for (at, message) in duplicates {
        entries[at] = Some(Entry {
            status: DeliveryStatus::Duplicate,
            message,
            effects: Vec::new(),
        });
    }
    let live: Vec<usize> = (0..batch.len())
        .filter(|at| entries[*at].is_none())
        .collect();
    lock(tx, batch, &live).await?;

    let mut members = read_members(tx, batch, &live).await?;
    let mut orders = read_orders(tx, batch, &live).await?;
    let welcome_settings = read_welcome_settings(tx, batch, &live).await?;

    let mut writes = Writes::default();
    let none = HashMap::new();
    for &at in &live {
        let (d, apply) = &batch[at];
        let app = d.app_id.as_uuid();
        let order = apply.delivery.order_id.clone().unwrap_or_default();
        let order_key = (app, order);
        let email = apply.delivery.customer.as_ref().map(|c| &c.email);
        let member = email
            .and_then(|e| members.get(&(app, e.clone())))
            .map(|id| ExistingMember { id: *id });
        let items = if order_key.1.is_empty() {
            &none
        } else {
            orders.entry(order_key.clone()).or_default()
        };
        let plan = engine::plan(&PlanInput {
            delivery: &apply.delivery,
            mappings: &apply.mappings,
            items,
            member,
            test_mode: apply.test_mode,
            cancellation: apply.cancellation,
            now: apply.now.timestamp(),
            new_member_id: MemberId::new(),
        });
        if let Some(m) = &plan.member {
            members.insert((app, m.email.clone()), m.id);
            writes.member(app, m);
        }
        if !order_key.1.is_empty() {
            let state = orders.entry(order_key.clone()).or_default();
            for item in &plan.items {
                let after = item.applied_to(state.get(&item.product));
                state.insert(item.product.clone(), after);
            }
        }
        for item in &plan.items {
            writes.item(&order_key, item);
        }
        if let Some(to) = email {
            let (welcome, for_test) = welcome_settings
                .get(&app)
                .copied()
                .unwrap_or((WelcomeEmail::SetPassword, false));
            if let Some(member) = welcome_due(&plan, apply.delivery.mode, welcome, for_test)
                && writes.welcome_seen.insert((app, member))
            {
                writes.welcomes.push((app, member, to.clone(), apply.now));
            }
        }
        entries[at] = Some(Entry {
            status: DeliveryStatus::from(plan.status),
            message: plan.message,
            effects: plan.effects,
        });
    }

    write_members(tx, &mut writes.members).await?;
    let stored = write_items(tx, &mut writes.items).await?;
    write_grants(tx, &writes.grants, &stored).await?;
    queue_welcomes(tx, &writes.welcomes).await?;

    let entries: Vec<Entry> = entries
        .into_iter()
        .map(|e| e.expect("every delivery has its entry"))
        .collect();
    let rows: Vec<(&NewDelivery, DeliveryStatus, &str, &[engine::Effect])> = batch
        .iter()
        .zip(&entries)
        .map(|((d, _), e)| (d, e.status, e.message.as_str(), e.effects.as_slice()))
        .collect();
    insert_deliveries(tx, &rows).await?;
    Ok(batch
        .iter()
        .zip(entries)
        .map(|((d, _), e)| AppliedDelivery {
            id: d.id,
            status: e.status,
            message: e.message,
        })
        .collect())
}

/// Claims every fingerprint of the batch, in one order (by app, then fingerprint) so two
/// batches waiting on each other's claims cannot deadlock; of two copies in the batch, the
/// first given claims. Returns the deliveries already claimed (by an earlier delivery, or
/// by an earlier copy in this batch) with their message.
/// Concurrent copies wait on the primary key until the first commits (then they are
/// duplicates) or rolls back (then one of them goes on).
async fn claim_fingerprints(
    tx: &mut PgConnection,
    batch: &[(NewDelivery, ApplyDelivery)],
) -> StoreResult<Vec<(usize, String)>> {
    let claims: Vec<(usize, Uuid, &str, Uuid)> = batch
        .iter()
        .enumerate()
        .filter_map(|(at, (d, a))| {
            let fp = a.fingerprint.as_deref()?;
            Some((at, d.app_id.as_uuid(), fp, d.id.as_uuid()))
        })
        .collect();
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let apps: Vec<Uuid> = claims.iter().map(|c| c.1).collect();
    let fps: Vec<&str> = claims.iter().map(|c| c.2).collect();
    let ids: Vec<Uuid> = claims.iter().map(|c| c.3).collect();
    let claimed: HashSet<Uuid> = sqlx::query_scalar(
        "insert into delivery_fingerprints (app_id, fingerprint, delivery_id) \
         select a, f, d from unnest($1::uuid[], $2::text[], $3::uuid[]) \
              with ordinality as t(a, f, d, n) \
         order by a, f collate \"C\", n \
         on conflict do nothing returning delivery_id",
    )
    .bind(&apps)
    .bind(&fps)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(map_err)?
    .into_iter()
    .collect();
    let taken: Vec<&(usize, Uuid, &str, Uuid)> =
        claims.iter().filter(|c| !claimed.contains(&c.3)).collect();
    if taken.is_empty() {
        return Ok(Vec::new());
    }
    let apps: Vec<Uuid> = taken.iter().map(|c| c.1).collect();
    let fps: Vec<&str> = taken.iter().map(|c| c.2).collect();
    let ids: Vec<Uuid> = taken.iter().map(|c| c.3).collect();
    let originals: HashMap<Uuid, Uuid> = sqlx::query_as::<_, (Uuid, Uuid)>(
        "select t.d, f.delivery_id \
         from unnest($1::uuid[], $2::text[], $3::uuid[]) as t(a, f, d) \
         join delivery_fingerprints f on f.app_id = t.a and f.fingerprint = t.f",
    )
    .bind(&apps)
    .bind(&fps)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(map_err)?
    .into_iter()
    .collect();
    Ok(taken
        .into_iter()
        .map(|&(at, _, _, id)| {
            let message = match originals.get(&id) {
                Some(o) => format!("Duplicate of delivery {o}; nothing changed."),
                None => "Duplicate delivery; nothing changed.".to_owned(),
            };
            (at, message)
        })
        .collect())
}

/// Takes the advisory lock of every order and every member email the live deliveries
/// touch, in one statement and one global order (by the lock's hash), so transactions
/// touching the same ones serialise and never deadlock.
async fn lock(
    tx: &mut PgConnection,
    batch: &[(NewDelivery, ApplyDelivery)],
    live: &[usize],
) -> StoreResult<()> {
    let mut keys = Vec::new();
    for &at in live {
        let (d, apply) = &batch[at];
        if let Some(order) = apply.delivery.order_id.as_deref().filter(|o| !o.is_empty()) {
            keys.push(lock_key(d.app_id, "order", order));
        }
        if let Some(c) = &apply.delivery.customer {
            keys.push(lock_key(d.app_id, "email", c.email.as_str()));
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "select pg_advisory_xact_lock(h) from \
         (select distinct hashtextextended(k, 0) as h from unnest($1::text[]) as k) as s \
         order by h",
    )
    .bind(&keys)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// The members the live deliveries' emails already belong to.
async fn read_members(
    tx: &mut PgConnection,
    batch: &[(NewDelivery, ApplyDelivery)],
    live: &[usize],
) -> StoreResult<HashMap<(Uuid, Email), MemberId>> {
    let mut apps = Vec::new();
    let mut emails = Vec::new();
    let mut by_address: HashMap<(Uuid, String), Email> = HashMap::new();
    for &at in live {
        let (d, apply) = &batch[at];
        if let Some(c) = &apply.delivery.customer {
            apps.push(d.app_id.as_uuid());
            emails.push(c.email.as_str());
            by_address.insert((d.app_id.as_uuid(), c.email.to_string()), c.email.clone());
        }
    }
    if apps.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, String, Uuid)> = sqlx::query_as(
        "select m.app_id, m.email, m.id from members m \
         join (select distinct a, e from unnest($1::uuid[], $2::text[]) as t(a, e)) as t \
         on m.app_id = t.a and m.email = t.e",
    )
    .bind(&apps)
    .bind(&emails)
    .fetch_all(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(rows
        .into_iter()
        .filter_map(|(app, email, id)| {
            let email = by_address.get(&(app, email))?.clone();
            Some(((app, email), MemberId::from_uuid(id)))
        })
        .collect())
}

/// The state of every item of every order the live deliveries name, with their levels.
async fn read_orders(
    tx: &mut PgConnection,
    batch: &[(NewDelivery, ApplyDelivery)],
    live: &[usize],
) -> StoreResult<HashMap<OrderKey, HashMap<ProductKey, ItemState>>> {
    let mut apps = Vec::new();
    let mut orders = Vec::new();
    for &at in live {
        let (d, apply) = &batch[at];
        if let Some(order) = apply.delivery.order_id.as_deref().filter(|o| !o.is_empty()) {
            apps.push(d.app_id.as_uuid());
            orders.push(order);
        }
    }
    let mut state: HashMap<OrderKey, HashMap<ProductKey, ItemState>> = HashMap::new();
    if apps.is_empty() {
        return Ok(state);
    }
    let rows = sqlx::query_as::<_, KeyedItemRow>(
        "select i.app_id, i.order_id, i.product, i.member_id, i.status, i.status_at, \
         i.past_due, i.revoke_at, i.subscription_id, i.payment_at, i.paused_at, i.resumed_at \
         from order_items i \
         join (select distinct a, o from unnest($1::uuid[], $2::text[]) as t(a, o)) as t \
         on i.app_id = t.a and i.order_id = t.o",
    )
    .bind(&apps)
    .bind(&orders)
    .fetch_all(&mut *tx)
    .await
    .map_err(map_err)?;
    for row in rows {
        state
            .entry((row.app_id, row.order_id))
            .or_default()
            .insert(row.item.product.clone(), ItemState::from(row.item));
    }
    let levels: Vec<(Uuid, String, String, Uuid)> = sqlx::query_as(
        "select g.app_id, g.order_id, g.product, g.access_level_id from grants g \
         join (select distinct a, o from unnest($1::uuid[], $2::text[]) as t(a, o)) as t \
         on g.app_id = t.a and g.order_id = t.o \
         order by g.created_at, g.id",
    )
    .bind(&apps)
    .bind(&orders)
    .fetch_all(&mut *tx)
    .await
    .map_err(map_err)?;
    for (app, order, product, level) in levels {
        if let Ok(key) = ProductKey::parse(&product)
            && let Some(item) = state
                .get_mut(&(app, order))
                .and_then(|items| items.get_mut(&key))
        {
            item.levels.push(AccessLevelId::from_uuid(level));
        }
    }
    Ok(state)
}

/// Each app's welcome settings, for the apps of live deliveries that name a customer.
async fn read_welcome_settings(
    tx: &mut PgConnection,
    batch: &[(NewDelivery, ApplyDelivery)],
    live: &[usize],
) -> StoreResult<HashMap<Uuid, (WelcomeEmail, bool)>> {
    let mut apps: Vec<Uuid> = live
        .iter()
        .filter(|at| batch[**at].1.delivery.customer.is_some())
        .map(|at| batch[*at].0.app_id.as_uuid())
        .collect();
    apps.sort_unstable();
    apps.dedup();
    if apps.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, String, bool)> = sqlx::query_as(
        "select app_id, welcome_email, welcome_for_test_purchases from member_settings \
         where app_id = any($1)",
    )
    .bind(&apps)
    .fetch_all(&mut *tx)
    .await
    .map_err(map_err)?;
    rows.into_iter()
        .map(|(app, welcome, for_test)| {
            Ok((
                app,
                (welcome.parse().map_err(StoreError::internal)?, for_test),
            ))
        })
        .collect()
}

/// Creates or updates the members, in key order (rows are locked in one order).
async fn write_members(
    tx: &mut PgConnection,
    members: &mut [(Uuid, MemberWrite)],
) -> StoreResult<()> {
    if members.is_empty() {
        return Ok(());
    }
    members.sort_by(|a, b| (a.0, a.1.email.as_str()).cmp(&(b.0, b.1.email.as_str())));
    let ids: Vec<Uuid> = members.iter().map(|(_, m)| m.id.as_uuid()).collect();
    let apps: Vec<Uuid> = members.iter().map(|(a, _)| *a).collect();
    let emails: Vec<&str> = members.iter().map(|(_, m)| m.email.as_str()).collect();
    let names: Vec<Option<&str>> = members.iter().map(|(_, m)| m.name.as_deref()).collect();
    let customers: Vec<Option<&str>> = members
        .iter()
        .map(|(_, m)| m.thrivecart_customer_id.as_deref())
        .collect();
    let tests: Vec<bool> = members.iter().map(|(_, m)| m.test).collect();
    sqlx::query(
        "insert into members (id, app_id, email, name, thrivecart_customer_id, test) \
         select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
                              $6::bool[]) \
         on conflict (app_id, email) do update set \
         name = coalesce(excluded.name, members.name), \
         thrivecart_customer_id = coalesce(excluded.thrivecart_customer_id, \
                                           members.thrivecart_customer_id), \
         updated_at = now()",
    )
    .bind(&ids)
    .bind(&apps)
    .bind(&emails)
    .bind(&names)
    .bind(&customers)
    .bind(&tests)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Writes the items, in key order, and returns each one's status and past-due flag as
/// stored: a revocation is final, even one a concurrent sweep made a moment ago, so the
/// row's status wins over the plan's, and the grants follow the row.
async fn write_items(
    tx: &mut PgConnection,
    items: &mut [(OrderKey, ItemWrite)],
) -> StoreResult<HashMap<(OrderKey, String), (String, bool)>> {
    if items.is_empty() {
        return Ok(HashMap::new());
    }
    items.sort_by(|a, b| {
        (a.0.0, a.0.1.as_str(), a.1.product.to_string()).cmp(&(
            b.0.0,
            b.0.1.as_str(),
            b.1.product.to_string(),
        ))
    });
    let apps: Vec<Uuid> = items.iter().map(|((a, _), _)| *a).collect();
    let orders: Vec<&str> = items.iter().map(|((_, o), _)| o.as_str()).collect();
    let products: Vec<String> = items.iter().map(|(_, i)| i.product.to_string()).collect();
    let members: Vec<Option<Uuid>> = items
        .iter()
        .map(|(_, i)| i.member_id.map(|m| m.as_uuid()))
        .collect();
    let statuses: Vec<&str> = items.iter().map(|(_, i)| i.status.as_str()).collect();
    let status_at: Vec<i64> = items.iter().map(|(_, i)| i.status_at).collect();
    let past_due: Vec<bool> = items.iter().map(|(_, i)| i.past_due).collect();
    let revoke_at: Vec<Option<i64>> = items.iter().map(|(_, i)| i.revoke_at).collect();
    let subscriptions: Vec<Option<&str>> = items
        .iter()
        .map(|(_, i)| i.subscription_id.as_deref())
        .collect();
    let tests: Vec<bool> = items.iter().map(|(_, i)| i.test).collect();
    let payment_at: Vec<Option<i64>> = items.iter().map(|(_, i)| i.payment_at).collect();
    let paused_at: Vec<Option<i64>> = items.iter().map(|(_, i)| i.paused_at).collect();
    let resumed_at: Vec<Option<i64>> = items.iter().map(|(_, i)| i.resumed_at).collect();
    let rows: Vec<(Uuid, String, String, String, bool)> = sqlx::query_as(
        "insert into order_items (app_id, order_id, product, member_id, status, status_at, \
         past_due, revoke_at, subscription_id, test, payment_at, paused_at, resumed_at) \
         select * from unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], \
                              $6::int8[], $7::bool[], $8::int8[], $9::text[], $10::bool[], \
                              $11::int8[], $12::int8[], $13::int8[]) \
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
         returning app_id, order_id, product, status, past_due",
    )
    .bind(&apps)
    .bind(&orders)
    .bind(&products)
    .bind(&members)
    .bind(&statuses)
    .bind(&status_at)
    .bind(&past_due)
    .bind(&revoke_at)
    .bind(&subscriptions)
    .bind(&tests)
    .bind(&payment_at)
    .bind(&paused_at)
    .bind(&resumed_at)
    .fetch_all(&mut *tx)
    .await
    .map_err(map_err)?;
    let stored: HashMap<(OrderKey, String), (String, bool)> = rows
        .into_iter()
        .map(|(app, order, product, status, past_due)| {
            (((app, order), product), (status, past_due))
        })
        .collect();
    // Every grant of a written item follows its stored status.
    let apps: Vec<Uuid> = stored.keys().map(|((a, _), _)| *a).collect();
    let orders: Vec<&str> = stored.keys().map(|((_, o), _)| o.as_str()).collect();
    let products: Vec<&str> = stored.keys().map(|(_, p)| p.as_str()).collect();
    let statuses: Vec<&str> = stored.values().map(|(s, _)| s.as_str()).collect();
    let past_due: Vec<bool> = stored.values().map(|(_, p)| *p).collect();
    sqlx::query(
        "update grants g set status = t.s, past_due = t.p, updated_at = now() \
         from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bool[]) \
              as t(a, o, pr, s, p) \
         where g.app_id = t.a and g.order_id = t.o and g.product = t.pr \
         and (g.status <> t.s or g.past_due <> t.p)",
    )
    .bind(&apps)
    .bind(&orders)
    .bind(&products)
    .bind(&statuses)
    .bind(&past_due)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(stored)
}

/// Creates the grants the items ask for (each one once), with their item's stored status.
async fn write_grants(
    tx: &mut PgConnection,
    grants: &[(OrderKey, ProductKey, AccessLevelId, MemberId, bool)],
    stored: &HashMap<(OrderKey, String), (String, bool)>,
) -> StoreResult<()> {
    if grants.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::new();
    let mut apps = Vec::new();
    let mut members = Vec::new();
    let mut levels = Vec::new();
    let mut orders = Vec::new();
    let mut products = Vec::new();
    let mut statuses = Vec::new();
    let mut past_due = Vec::new();
    let mut tests = Vec::new();
    for (order, product, level, member, test) in grants {
        let product = product.to_string();
        let Some((status, due)) = stored.get(&(order.clone(), product.clone())) else {
            return Err(StoreError::internal("a grant's item was not written"));
        };
        ids.push(GrantId::new().as_uuid());
        apps.push(order.0);
        members.push(member.as_uuid());
        levels.push(level.as_uuid());
        orders.push(order.1.as_str());
        products.push(product);
        statuses.push(status.as_str());
        past_due.push(*due);
        tests.push(*test);
    }
    sqlx::query(
        "insert into grants (id, app_id, member_id, access_level_id, source, order_id, \
         product, status, past_due, test) \
         select id, a, m, l, 'thrivecart', o, p, s, d, t \
         from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], \
                     $7::text[], $8::bool[], $9::bool[]) as g(id, a, m, l, o, p, s, d, t) \
         on conflict (app_id, order_id, product, access_level_id) do nothing",
    )
    .bind(&ids)
    .bind(&apps)
    .bind(&members)
    .bind(&levels)
    .bind(&orders)
    .bind(&products)
    .bind(&statuses)
    .bind(&past_due)
    .bind(&tests)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Queues each member's welcome message, once per member ever.
async fn queue_welcomes(
    tx: &mut PgConnection,
    welcomes: &[(Uuid, MemberId, Email, chrono::DateTime<chrono::Utc>)],
) -> StoreResult<()> {
    if welcomes.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = welcomes
        .iter()
        .map(|_| MessageId::new().as_uuid())
        .collect();
    let apps: Vec<Uuid> = welcomes.iter().map(|w| w.0).collect();
    let members: Vec<Uuid> = welcomes.iter().map(|w| w.1.as_uuid()).collect();
    let to: Vec<&str> = welcomes.iter().map(|w| w.2.as_str()).collect();
    let at: Vec<chrono::DateTime<chrono::Utc>> = welcomes.iter().map(|w| w.3).collect();
    sqlx::query(
        "insert into outbox (id, app_id, member_id, kind, to_email, once_key, \
         next_attempt_at, created_at) \
         select id, a, m, 'welcome', e, $5, t, t \
         from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $6::timestamptz[]) \
              as w(id, a, m, e, t) \
         on conflict (app_id, member_id, once_key) where once_key is not null do nothing",
    )
    .bind(&ids)
    .bind(&apps)
    .bind(&members)
    .bind(&to)
    .bind(WELCOME_ONCE)
    .bind(&at)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Writes activity entries, in one statement. No text stored holds a NUL (PostgreSQL
/// cannot), on either store.
pub(crate) async fn insert_deliveries(
    conn: &mut PgConnection,
    rows: &[(&NewDelivery, DeliveryStatus, &str, &[engine::Effect])],
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let mut apps = Vec::with_capacity(n);
    let mut received = Vec::with_capacity(n);
    let mut events = Vec::with_capacity(n);
    let mut modes = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut orders = Vec::with_capacity(n);
    let mut emails = Vec::with_capacity(n);
    let mut products = Vec::with_capacity(n);
    let mut messages = Vec::with_capacity(n);
    let mut verified = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut effects = Vec::with_capacity(n);
    let mut replays = Vec::with_capacity(n);
    for (d, status, message, done) in rows {
        ids.push(d.id.as_uuid());
        apps.push(d.app_id.as_uuid());
        received.push(d.received_at);
        events.push(d.event.as_deref().map(|e| strip_nul(e).into_owned()));
        modes.push(d.mode.map(|m| m.as_str()));
        statuses.push(status.as_str());
        orders.push(d.order_id.as_deref().map(|o| strip_nul(o).into_owned()));
        emails.push(d.customer_email.as_ref().map(|e| e.as_str()));
        products.push(serde_json::to_string(&d.products).map_err(StoreError::internal)?);
        messages.push(strip_nul(message).into_owned());
        verified.push(d.verified);
        // A duplicate keeps no payload: it is its original's, which the message names.
        let payload = d
            .payload
            .as_ref()
            .filter(|_| *status != DeliveryStatus::Duplicate);
        payloads.push(payload.map(|p| {
            if has_nul(p) {
                let mut clean = p.clone();
                strip_nul_json(&mut clean);
                clean.to_string()
            } else {
                p.to_string()
            }
        }));
        effects.push(serde_json::to_string(done).map_err(StoreError::internal)?);
        replays.push(d.replay_of.map(|r| r.as_uuid()));
    }
    sqlx::query(
        "insert into deliveries (id, app_id, received_at, event, mode, status, order_id, \
         customer_email, products, message, verified, payload, effects, replay_of) \
         select id, a, r, ev, mo, st, o, e, pr::jsonb, me, v, pa::jsonb, ef::jsonb, re \
         from unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], \
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
                     $11::bool[], $12::text[], $13::text[], $14::uuid[]) \
              as d(id, a, r, ev, mo, st, o, e, pr, me, v, pa, ef, re)",
    )
    .bind(&ids)
    .bind(&apps)
    .bind(&received)
    .bind(&events)
    .bind(&modes)
    .bind(&statuses)
    .bind(&orders)
    .bind(&emails)
    .bind(&products)
    .bind(&messages)
    .bind(&verified)
    .bind(&payloads)
    .bind(&effects)
    .bind(&replays)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}
