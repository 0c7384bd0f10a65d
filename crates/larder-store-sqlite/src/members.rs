//! Members, their grants and overrides, erasure and exports on SQLite. SQLite reports no
//! constraint names, so the rules PostgreSQL leaves to its composite foreign keys (the member
//! and the level are the app's) are checked inside the write transaction.

use larder_access::{AccessLevelId, AppId, Email, GrantId, MemberId};
use larder_store::personal_data::erase_personal_data;
use larder_store::*;
use sqlx::SqliteConnection;
use sqlx::types::Json;

use crate::rows::{
    DELIVERY_COLUMNS, DeliveryRow, GRANT_COLUMNS, GrantRow, MEMBER_COLUMNS, MemberLevelRow,
    MemberRow, OVERRIDE_COLUMNS, OverrideRow, records,
};
use crate::{SqliteStore, map_err, now};

/// Fills in the levels each member has now: an active grant, and no override on it.
pub(crate) async fn attach_levels(
    conn: &mut SqliteConnection,
    app: AppId,
    members: &mut [Member],
) -> StoreResult<()> {
    if members.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = members.iter().map(|m| m.id.to_string()).collect();
    let rows = sqlx::query_as::<_, MemberLevelRow>(
        "select distinct g.member_id, l.id, l.name from grants g \
         join access_levels l on l.app_id = g.app_id and l.id = g.access_level_id \
         where g.app_id = ?1 and g.member_id in (select value from json_each(?2)) \
         and g.status = 'active' \
         and not exists (select 1 from access_overrides o where o.app_id = g.app_id \
                         and o.member_id = g.member_id and o.access_level_id = g.access_level_id) \
         order by l.name, l.id",
    )
    .bind(app.to_string())
    .bind(Json(&ids))
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    for row in rows {
        if let Some(m) = members
            .iter_mut()
            .find(|m| m.id.to_string() == row.member_id)
        {
            m.access_levels.push(LevelRef {
                id: row.id,
                name: row.name,
            });
        }
    }
    Ok(())
}

/// The member with their current levels; `NotFound` when they are not the app's.
pub(crate) async fn find_member(
    conn: &mut SqliteConnection,
    app: AppId,
    id: MemberId,
) -> StoreResult<Member> {
    let sql = format!("select {MEMBER_COLUMNS} from members where app_id = ?1 and id = ?2");
    let mut member: [Member; 1] = [sqlx::query_as::<_, MemberRow>(sqlx::AssertSqlSafe(sql))
        .bind(app.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .ok_or(StoreError::NotFound)?
        .into()];
    attach_levels(conn, app, &mut member).await?;
    let [member] = member;
    Ok(member)
}

/// Whether the app has the row `id` in `table` (`members`, `access_levels`).
async fn app_has(
    conn: &mut SqliteConnection,
    table: &'static str,
    app: AppId,
    id: impl std::fmt::Display,
) -> StoreResult<bool> {
    let sql = format!("select 1 from {table} where app_id = ?1 and id = ?2");
    let found: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(app.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(found.is_some())
}

async fn overrides_of(
    conn: &mut SqliteConnection,
    app: AppId,
    member: MemberId,
) -> StoreResult<Vec<AccessOverride>> {
    let sql = format!(
        "select {OVERRIDE_COLUMNS} from access_overrides where app_id = ?1 and member_id = ?2 \
         order by access_level_id"
    );
    let rows = sqlx::query_as::<_, OverrideRow>(sqlx::AssertSqlSafe(sql))
        .bind(app.to_string())
        .bind(member.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(records(rows))
}

/// The entries of the app (`?1`) that name the member: by their email (`?2`), in their
/// effects (`?3`, the member id), or where `also` holds.
fn member_deliveries_sql(columns: &str, also: &str) -> String {
    format!(
        "select {columns} from deliveries where app_id = ?1 \
         and (customer_email = ?2 \
              or exists (select 1 from json_each(effects) e \
                         where json_extract(e.value, '$.member_id') = ?3) \
              {also})"
    )
}

#[async_trait::async_trait]
impl MemberStore for SqliteStore {
    async fn list_members(
        &self,
        app: AppId,
        filter: MemberFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Member>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let rows = sqlx::query_as::<_, MemberRow>(
            "select m.id, m.app_id, m.email, m.name, m.test, m.created_at from members m \
             where m.app_id = ?1 and (?2 is null or m.email = ?2) \
             and (?3 is null or exists (select 1 from grants g where g.app_id = m.app_id \
                  and g.member_id = m.id and g.access_level_id = ?3 and g.status = 'active' \
                  and not exists (select 1 from access_overrides o where o.app_id = m.app_id \
                                  and o.member_id = m.id and o.access_level_id = ?3))) \
             and m.id > ?4 order by m.id limit ?5",
        )
        .bind(app.to_string())
        .bind(filter.email.as_ref().map(|e| e.as_str()))
        .bind(filter.access_level_id.map(|l| l.to_string()))
        .bind(page.after.map(|a| a.to_string()).unwrap_or_default())
        .bind(page.fetch_limit())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        let mut page = page.paginate(records(rows), |m: &Member| m.id.as_uuid());
        attach_levels(&mut conn, app, &mut page.items).await?;
        Ok(page)
    }

    async fn get_member(&self, app: AppId, id: MemberId) -> StoreResult<MemberWithAccess> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let member = find_member(&mut conn, app, id).await?;
        let sql = format!(
            "select {GRANT_COLUMNS} from grants where app_id = ?1 and member_id = ?2 order by id"
        );
        let grants = sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.to_string())
            .bind(id.to_string())
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .into_iter()
            .map(Grant::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        let overrides = overrides_of(&mut conn, app, id).await?;
        Ok(MemberWithAccess {
            member,
            grants,
            overrides,
        })
    }

    async fn grant_manually(
        &self,
        app: AppId,
        member: MemberId,
        level: AccessLevelId,
    ) -> StoreResult<Grant> {
        let mut tx = self.begin_write().await?;
        if !app_has(&mut tx, "members", app, member).await? {
            return Err(StoreError::NotFound);
        }
        if !app_has(&mut tx, "access_levels", app, level).await? {
            return Err(StoreError::UnknownAccessLevel);
        }
        let sql = format!(
            "insert into grants (id, app_id, member_id, access_level_id, source, status, \
             created_at, updated_at) values (?1, ?2, ?3, ?4, 'manual', 'active', ?5, ?5) \
             returning {GRANT_COLUMNS}"
        );
        let grant = sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(sql))
            .bind(GrantId::new().to_string())
            .bind(app.to_string())
            .bind(member.to_string())
            .bind(level.to_string())
            .bind(now())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        grant.try_into()
    }

    async fn revoke_manual_grant(
        &self,
        app: AppId,
        member: MemberId,
        grant: GrantId,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let source: Option<String> = sqlx::query_scalar(
            "select source from grants where app_id = ?1 and member_id = ?2 and id = ?3",
        )
        .bind(app.to_string())
        .bind(member.to_string())
        .bind(grant.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        match source.as_deref() {
            None => return Err(StoreError::NotFound),
            Some("manual") => {}
            Some(_) => return Err(StoreError::GrantManagedByThrivecart),
        }
        sqlx::query(
            "update grants set status = 'revoked', updated_at = ?3 where app_id = ?1 and id = ?2",
        )
        .bind(app.to_string())
        .bind(grant.to_string())
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn put_access_override(
        &self,
        app: AppId,
        set: NewAccessOverride,
    ) -> StoreResult<(AccessOverride, bool)> {
        let mut tx = self.begin_write().await?;
        if !app_has(&mut tx, "members", app, set.member_id).await? {
            return Err(StoreError::NotFound);
        }
        if !app_has(&mut tx, "access_levels", app, set.access_level_id).await? {
            return Err(StoreError::UnknownAccessLevel);
        }
        let existed: Option<i64> = sqlx::query_scalar(
            "select 1 from access_overrides \
             where app_id = ?1 and member_id = ?2 and access_level_id = ?3",
        )
        .bind(app.to_string())
        .bind(set.member_id.to_string())
        .bind(set.access_level_id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let sql = format!(
            "insert into access_overrides (app_id, member_id, access_level_id, status, reason, \
             created_at, updated_at) values (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
             on conflict (app_id, member_id, access_level_id) do update set \
             status = excluded.status, reason = excluded.reason, updated_at = excluded.updated_at \
             returning {OVERRIDE_COLUMNS}"
        );
        let row = sqlx::query_as::<_, OverrideRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.to_string())
            .bind(set.member_id.to_string())
            .bind(set.access_level_id.to_string())
            .bind(set.status.as_str())
            .bind(set.reason.as_deref())
            .bind(now())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok((row.into(), existed.is_none()))
    }

    async fn list_access_overrides(
        &self,
        app: AppId,
        member: MemberId,
    ) -> StoreResult<Vec<AccessOverride>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        if !app_has(&mut conn, "members", app, member).await? {
            return Err(StoreError::NotFound);
        }
        overrides_of(&mut conn, app, member).await
    }

    async fn delete_access_override(
        &self,
        app: AppId,
        member: MemberId,
        level: AccessLevelId,
    ) -> StoreResult<()> {
        let _turn = self.write_turn().await?;
        let done = sqlx::query(
            "delete from access_overrides \
             where app_id = ?1 and member_id = ?2 and access_level_id = ?3",
        )
        .bind(app.to_string())
        .bind(member.to_string())
        .bind(level.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_member(&self, app: AppId, member: MemberId) -> StoreResult<u64> {
        // The write lock keeps deliveries out until the member and their data are gone.
        let mut tx = self.begin_write().await?;
        let who: Option<(String, Option<String>)> =
            sqlx::query_as("select email, name from members where app_id = ?1 and id = ?2")
                .bind(app.to_string())
                .bind(member.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let (email, name) = who.ok_or(StoreError::NotFound)?;
        let email = Email::parse(&email).map_err(StoreError::internal)?;
        // The member's own entries, and any other that may mention them: the email in the
        // payload's text, or a kept raw body (its encoding is decided in Rust).
        let sql = member_deliveries_sql(
            "id, payload, coalesce(customer_email = ?2 or exists (select 1 from json_each(effects) e \
             where json_extract(e.value, '$.member_id') = ?3), false) as theirs",
            "or instr(lower(payload), ?2) > 0 or json_extract(payload, '$.raw') is not null",
        );
        let candidates: Vec<(String, Option<Json<serde_json::Value>>, bool)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(app.to_string())
                .bind(email.as_str())
                .bind(member.to_string())
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
        let mut erased = 0;
        let at = now();
        for (id, payload, theirs) in candidates {
            let mut payload = payload.map(|Json(p)| p);
            let changed = payload
                .as_mut()
                .is_some_and(|p| erase_personal_data(p, theirs, &email, name.as_deref()));
            if !changed && !theirs {
                continue;
            }
            erased += 1;
            sqlx::query(
                "update deliveries set payload = ?3, \
                 customer_email = case when ?4 then null else customer_email end, \
                 updated_at = ?5 where app_id = ?1 and id = ?2",
            )
            .bind(app.to_string())
            .bind(id)
            .bind(payload.map(Json))
            .bind(theirs)
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        // Grants, overrides, order items, sessions and invitations cascade.
        sqlx::query("delete from members where app_id = ?1 and id = ?2")
            .bind(app.to_string())
            .bind(member.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(erased)
    }

    async fn member_activity(
        &self,
        app: AppId,
        member: MemberId,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let email: String =
            sqlx::query_scalar("select email from members where app_id = ?1 and id = ?2")
                .bind(app.to_string())
                .bind(member.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?
                .ok_or(StoreError::NotFound)?;
        let sql = format!(
            "{} order by id desc",
            member_deliveries_sql(&format!("{DELIVERY_COLUMNS}, payload"), "")
        );
        let rows = sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.to_string())
            .bind(email)
            .bind(member.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(records(rows))
    }
}
