//! Members, their grants and overrides, erasure and exports on PostgreSQL.

use larder_access::{AccessLevelId, AppId, Email, GrantId, MemberId};
use larder_store::personal_data::erase_personal_data;
use larder_store::*;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::deliveries::{advisory_lock, lock_key};
use crate::rows::{
    DELIVERY_COLUMNS, DeliveryRow, GRANT_COLUMNS, GrantRow, MEMBER_COLUMNS, MemberLevelRow,
    MemberRow, OVERRIDE_COLUMNS, OverrideRow, records,
};
use crate::{PgStore, map_err};

/// Fills in the levels each member has now: an active grant, and no override on it.
pub(crate) async fn attach_levels(
    conn: &mut PgConnection,
    app: AppId,
    members: &mut [Member],
) -> StoreResult<()> {
    if members.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = members.iter().map(|m| m.id.as_uuid()).collect();
    let rows = sqlx::query_as::<_, MemberLevelRow>(
        "select distinct g.member_id, l.id, l.name from grants g \
         join access_levels l on l.app_id = g.app_id and l.id = g.access_level_id \
         where g.app_id = $1 and g.member_id = any($2) and g.status = 'active' \
         and not exists (select 1 from access_overrides o where o.app_id = g.app_id \
                         and o.member_id = g.member_id and o.access_level_id = g.access_level_id) \
         order by l.name, l.id",
    )
    .bind(app.as_uuid())
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    for row in rows {
        if let Some(m) = members.iter_mut().find(|m| m.id.as_uuid() == row.member_id) {
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
    conn: &mut PgConnection,
    app: AppId,
    id: MemberId,
) -> StoreResult<Member> {
    let sql = format!("select {MEMBER_COLUMNS} from members where app_id = $1 and id = $2");
    let mut member: [Member; 1] = [sqlx::query_as::<_, MemberRow>(sqlx::AssertSqlSafe(sql))
        .bind(app.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .ok_or(StoreError::NotFound)?
        .into()];
    attach_levels(conn, app, &mut member).await?;
    let [member] = member;
    Ok(member)
}

async fn has_member<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    app: AppId,
    member: MemberId,
) -> StoreResult<bool> {
    let found: Option<i32> =
        sqlx::query_scalar("select 1 from members where app_id = $1 and id = $2")
            .bind(app.as_uuid())
            .bind(member.as_uuid())
            .fetch_optional(executor)
            .await
            .map_err(map_err)?;
    Ok(found.is_some())
}

async fn overrides_of(
    conn: &mut PgConnection,
    app: AppId,
    member: MemberId,
) -> StoreResult<Vec<AccessOverride>> {
    let sql = format!(
        "select {OVERRIDE_COLUMNS} from access_overrides where app_id = $1 and member_id = $2 \
         order by access_level_id"
    );
    let rows = sqlx::query_as::<_, OverrideRow>(sqlx::AssertSqlSafe(sql))
        .bind(app.as_uuid())
        .bind(member.as_uuid())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(records(rows))
}

/// The entries of the app (`$1`) that name the member: by their email (`$2`), in their
/// effects (`$3`, the member id), or where `also` holds.
fn member_deliveries_sql(columns: &str, also: &str) -> String {
    format!(
        "select {columns} from deliveries where app_id = $1 \
         and (customer_email = $2 \
              or effects @> jsonb_build_array(jsonb_build_object('member_id', $3::text)) \
              {also})"
    )
}

#[async_trait::async_trait]
impl MemberStore for PgStore {
    async fn list_members(
        &self,
        app: AppId,
        filter: MemberFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Member>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let rows = sqlx::query_as::<_, MemberRow>(
            "select m.id, m.app_id, m.email, m.name, m.test, m.created_at from members m \
             where m.app_id = $1 and ($2::text is null or m.email = $2) \
             and ($3::uuid is null or exists (select 1 from grants g where g.app_id = m.app_id \
                  and g.member_id = m.id and g.access_level_id = $3 and g.status = 'active' \
                  and not exists (select 1 from access_overrides o where o.app_id = m.app_id \
                                  and o.member_id = m.id and o.access_level_id = $3))) \
             and ($4::uuid is null or m.id > $4) order by m.id limit $5",
        )
        .bind(app.as_uuid())
        .bind(filter.email.as_ref().map(|e| e.as_str()))
        .bind(filter.access_level_id.map(|l| l.as_uuid()))
        .bind(page.after)
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
            "select {GRANT_COLUMNS} from grants where app_id = $1 and member_id = $2 order by id"
        );
        let grants = sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.as_uuid())
            .bind(id.as_uuid())
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
        if !has_member(&self.pool, app, member).await? {
            return Err(StoreError::NotFound);
        }
        let sql = format!(
            "insert into grants (id, app_id, member_id, access_level_id, source, status) \
             values ($1, $2, $3, $4, 'manual', 'active') returning {GRANT_COLUMNS}"
        );
        sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(sql))
            .bind(GrantId::new().as_uuid())
            .bind(app.as_uuid())
            .bind(member.as_uuid())
            .bind(level.as_uuid())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| match map_err(e) {
                // The composite key to access_levels: the level is not the app's.
                StoreError::NotFound => StoreError::UnknownAccessLevel,
                other => other,
            })?
            .try_into()
    }

    async fn revoke_manual_grant(
        &self,
        app: AppId,
        member: MemberId,
        grant: GrantId,
    ) -> StoreResult<()> {
        let source: Option<String> = sqlx::query_scalar(
            "select source from grants where app_id = $1 and member_id = $2 and id = $3",
        )
        .bind(app.as_uuid())
        .bind(member.as_uuid())
        .bind(grant.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        match source.as_deref() {
            None => return Err(StoreError::NotFound),
            Some("manual") => {}
            Some(_) => return Err(StoreError::GrantManagedByThrivecart),
        }
        sqlx::query(
            "update grants set status = 'revoked', updated_at = now() \
             where app_id = $1 and id = $2 and source = 'manual'",
        )
        .bind(app.as_uuid())
        .bind(grant.as_uuid())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn put_access_override(
        &self,
        app: AppId,
        set: NewAccessOverride,
    ) -> StoreResult<(AccessOverride, bool)> {
        // Both foreign keys are composite with the app: another app's member is NotFound,
        // another app's level UnknownAccessLevel. `xmax = 0` tells an insert from an update.
        let sql = format!(
            "insert into access_overrides (app_id, member_id, access_level_id, status, reason) \
             values ($1, $2, $3, $4, $5) \
             on conflict (app_id, member_id, access_level_id) do update set \
             status = excluded.status, reason = excluded.reason, updated_at = now() \
             returning {OVERRIDE_COLUMNS}, (xmax = 0) as created"
        );
        #[derive(sqlx::FromRow)]
        struct Put {
            #[sqlx(flatten)]
            row: OverrideRow,
            created: bool,
        }
        let put = sqlx::query_as::<_, Put>(sqlx::AssertSqlSafe(sql))
            .bind(app.as_uuid())
            .bind(set.member_id.as_uuid())
            .bind(set.access_level_id.as_uuid())
            .bind(set.status.as_str())
            .bind(set.reason.as_deref())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok((put.row.into(), put.created))
    }

    async fn list_access_overrides(
        &self,
        app: AppId,
        member: MemberId,
    ) -> StoreResult<Vec<AccessOverride>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        if !has_member(&mut *conn, app, member).await? {
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
        let done = sqlx::query(
            "delete from access_overrides \
             where app_id = $1 and member_id = $2 and access_level_id = $3",
        )
        .bind(app.as_uuid())
        .bind(member.as_uuid())
        .bind(level.as_uuid())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_member(&self, app: AppId, member: MemberId) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let who: Option<(String, Option<String>)> =
            sqlx::query_as("select email, name from members where app_id = $1 and id = $2")
                .bind(app.as_uuid())
                .bind(member.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let (email, name) = who.ok_or(StoreError::NotFound)?;
        // Deliveries for this email take the same lock before they touch the member, so
        // none is half-way through writing them while they go.
        advisory_lock(&mut tx, &lock_key(app, "email", &email)).await?;
        let email = Email::parse(&email).map_err(StoreError::internal)?;
        // The member's own entries, and any other that may mention them: the email in the
        // payload's text, or a kept raw body (its encoding is decided in Rust).
        let sql = member_deliveries_sql(
            "id, payload, coalesce(customer_email = $2 or effects @> \
             jsonb_build_array(jsonb_build_object('member_id', $3::text)), false) as theirs",
            "or strpos(lower(payload::text), $2) > 0 or payload ? 'raw'",
        );
        let candidates: Vec<(Uuid, Option<Json<serde_json::Value>>, bool)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(app.as_uuid())
                .bind(email.as_str())
                .bind(member.to_string())
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
        let mut erased = 0;
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
                "update deliveries set payload = $3, \
                 customer_email = case when $4 then null else customer_email end, \
                 updated_at = now() where app_id = $1 and id = $2",
            )
            .bind(app.as_uuid())
            .bind(id)
            .bind(payload)
            .bind(theirs)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        // Grants, overrides, order items, sessions and invitations cascade. A concurrent
        // erasure that got here first leaves nothing to delete: then this one is a 404, and
        // its updates roll back with it.
        let done = sqlx::query("delete from members where app_id = $1 and id = $2")
            .bind(app.as_uuid())
            .bind(member.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(erased)
    }

    async fn member_activity(
        &self,
        app: AppId,
        member: MemberId,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let email: String =
            sqlx::query_scalar("select email from members where app_id = $1 and id = $2")
                .bind(app.as_uuid())
                .bind(member.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?
                .ok_or(StoreError::NotFound)?;
        let sql = format!(
            "{} order by id desc",
            member_deliveries_sql(&format!("{DELIVERY_COLUMNS}, payload"), "")
        );
        let rows = sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
            .bind(app.as_uuid())
            .bind(email)
            .bind(member.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(records(rows))
    }
}
