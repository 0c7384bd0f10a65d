//! Manual grants and member sign-in on SQLite.

use chrono::{DateTime, Utc};
use larder_access::{AccessLevelId, AppId, GrantId, MemberId};
use larder_store::*;

use crate::{SqliteStore, format_time, map_err, now, time_col, uuid_col};

impl SqliteStore {
    pub(crate) async fn grant_manually_impl(
        &self,
        app: AppId,
        member: MemberId,
        level: AccessLevelId,
    ) -> StoreResult<Grant> {
        let mut tx = self.begin_write().await?;
        let found: Option<i64> =
            sqlx::query_scalar("select 1 from members where app_id = ?1 and id = ?2")
                .bind(app.to_string())
                .bind(member.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
        let known: Option<i64> =
            sqlx::query_scalar("select 1 from access_levels where app_id = ?1 and id = ?2")
                .bind(app.to_string())
                .bind(level.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if known.is_none() {
            return Err(StoreError::UnknownAccessLevel);
        }
        let at = now();
        let row = sqlx::query(
            "insert into grants (id, app_id, member_id, access_level_id, source, status, \
             created_at, updated_at) values (?1, ?2, ?3, ?4, 'manual', 'active', ?5, ?5) \
             returning id, access_level_id, source, product, order_id, status, past_due, test, \
             updated_at",
        )
        .bind(GrantId::new().to_string())
        .bind(app.to_string())
        .bind(member.to_string())
        .bind(level.to_string())
        .bind(&at)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let grant = (|| -> Result<Grant, sqlx::Error> {
            use sqlx::Row;
            Ok(Grant {
                id: GrantId::from_uuid(uuid_col(&row, "id")?),
                access_level_id: AccessLevelId::from_uuid(uuid_col(&row, "access_level_id")?),
                source: row.try_get("source")?,
                product: row.try_get("product")?,
                order_id: row.try_get("order_id")?,
                status: row.try_get("status")?,
                past_due: row.try_get("past_due")?,
                test: row.try_get("test")?,
                updated_at: time_col(&row, "updated_at")?,
            })
        })()
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(grant)
    }

    pub(crate) async fn revoke_manual_grant_impl(
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

    pub(crate) async fn create_invitation_impl(
        &self,
        app: AppId,
        member: MemberId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "insert into invitations (token_hash, app_id, member_id, expires_at, created_at, \
             updated_at) values (?1, ?2, ?3, ?4, ?5, ?5)",
        )
        .bind(token_hash)
        .bind(app.to_string())
        .bind(member.to_string())
        .bind(format_time(expires_at))
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    pub(crate) async fn find_invitation_impl(
        &self,
        app: AppId,
        token_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Member>> {
        let member: Option<String> = sqlx::query_scalar(
            "select member_id from invitations where app_id = ?1 and token_hash = ?2 \
             and used_at is null and expires_at > ?3",
        )
        .bind(app.to_string())
        .bind(token_hash)
        .bind(format_time(at))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        match member {
            Some(id) => {
                let id: MemberId = id.parse().map_err(StoreError::internal)?;
                Ok(Some(self.get_member_impl(app, id).await?.0))
            }
            None => Ok(None),
        }
    }

    pub(crate) async fn redeem_invitation_impl(
        &self,
        app: AppId,
        token_hash: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let at = format_time(at);
        let member: Option<String> = sqlx::query_scalar(
            "update invitations set used_at = ?3, updated_at = ?3 \
             where app_id = ?1 and token_hash = ?2 and used_at is null and expires_at > ?3 \
             returning member_id",
        )
        .bind(app.to_string())
        .bind(token_hash)
        .bind(&at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(member) = member else {
            return Ok(false);
        };
        sqlx::query(
            "update members set password_hash = ?3, updated_at = ?4 where app_id = ?1 and id = ?2",
        )
        .bind(app.to_string())
        .bind(member)
        .bind(password_hash)
        .bind(&at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    pub(crate) async fn member_password_impl(
        &self,
        app: AppId,
        email: &str,
    ) -> StoreResult<Option<(MemberId, Option<String>)>> {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "select id, password_hash from members where app_id = ?1 and email = ?2",
        )
        .bind(app.to_string())
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|(id, hash)| Ok((id.parse().map_err(StoreError::internal)?, hash)))
            .transpose()
    }

    pub(crate) async fn create_session_impl(
        &self,
        app: AppId,
        member: MemberId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "insert into member_sessions (token_hash, app_id, member_id, expires_at, \
             created_at, updated_at) values (?1, ?2, ?3, ?4, ?5, ?5)",
        )
        .bind(token_hash)
        .bind(app.to_string())
        .bind(member.to_string())
        .bind(format_time(expires_at))
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    pub(crate) async fn find_session_impl(
        &self,
        token_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(AppId, MemberId)>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "select app_id, member_id from member_sessions \
             where token_hash = ?1 and expires_at > ?2",
        )
        .bind(token_hash)
        .bind(format_time(at))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|(a, m)| {
            Ok((
                a.parse().map_err(StoreError::internal)?,
                m.parse().map_err(StoreError::internal)?,
            ))
        })
        .transpose()
    }

    pub(crate) async fn prune_sign_ins_impl(&self, at: DateTime<Utc>) -> StoreResult<u64> {
        let at = format_time(at);
        let sessions = sqlx::query("delete from member_sessions where expires_at <= ?1")
            .bind(&at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        let invitations =
            sqlx::query("delete from invitations where used_at is not null or expires_at <= ?1")
                .bind(&at)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(sessions.rows_affected() + invitations.rows_affected())
    }

    pub(crate) async fn delete_session_impl(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("delete from member_sessions where token_hash = ?1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
