//! Manual grants and member sign-in on PostgreSQL.

use chrono::{DateTime, Utc};
use larder_access::{AccessLevelId, AppId, GrantId, MemberId};
use larder_store::*;
use sqlx::Row;
use uuid::Uuid;

use crate::{PgStore, map_err};

impl PgStore {
    async fn member_exists(&self, app: AppId, member: MemberId) -> StoreResult<bool> {
        let found: Option<i32> =
            sqlx::query_scalar("select 1 from members where app_id = $1 and id = $2")
                .bind(app.as_uuid())
                .bind(member.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(found.is_some())
    }

    pub(crate) async fn grant_manually_impl(
        &self,
        app: AppId,
        member: MemberId,
        level: AccessLevelId,
    ) -> StoreResult<Grant> {
        if !self.member_exists(app, member).await? {
            return Err(StoreError::NotFound);
        }
        let row = sqlx::query(
            "insert into grants (id, app_id, member_id, access_level_id, source, status) \
             values ($1, $2, $3, $4, 'manual', 'active') \
             returning id, access_level_id, source, product, order_id, status, past_due, test, \
             updated_at",
        )
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
        })?;
        (|| -> Result<Grant, sqlx::Error> {
            Ok(Grant {
                id: GrantId::from_uuid(row.try_get("id")?),
                access_level_id: AccessLevelId::from_uuid(row.try_get("access_level_id")?),
                source: row.try_get("source")?,
                product: row.try_get("product")?,
                order_id: row.try_get("order_id")?,
                status: row.try_get("status")?,
                past_due: row.try_get("past_due")?,
                test: row.try_get("test")?,
                updated_at: row.try_get("updated_at")?,
            })
        })()
        .map_err(map_err)
    }

    pub(crate) async fn revoke_manual_grant_impl(
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

    pub(crate) async fn create_invitation_impl(
        &self,
        app: AppId,
        member: MemberId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "insert into invitations (token_hash, app_id, member_id, expires_at) \
             values ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(app.as_uuid())
        .bind(member.as_uuid())
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    pub(crate) async fn find_invitation_impl(
        &self,
        app: AppId,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Member>> {
        let member: Option<Uuid> = sqlx::query_scalar(
            "select member_id from invitations where app_id = $1 and token_hash = $2 \
             and used_at is null and expires_at > $3",
        )
        .bind(app.as_uuid())
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        match member {
            Some(id) => Ok(Some(
                self.get_member_impl(app, MemberId::from_uuid(id)).await?.0,
            )),
            None => Ok(None),
        }
    }

    pub(crate) async fn redeem_invitation_impl(
        &self,
        app: AppId,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let member: Option<Uuid> = sqlx::query_scalar(
            "update invitations set used_at = $3, updated_at = now() \
             where app_id = $1 and token_hash = $2 and used_at is null and expires_at > $3 \
             returning member_id",
        )
        .bind(app.as_uuid())
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(member) = member else {
            return Ok(false);
        };
        sqlx::query(
            "update members set password_hash = $3, updated_at = now() \
             where app_id = $1 and id = $2",
        )
        .bind(app.as_uuid())
        .bind(member)
        .bind(password_hash)
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
        let row: Option<(Uuid, Option<String>)> = sqlx::query_as(
            "select id, password_hash from members where app_id = $1 and email = $2",
        )
        .bind(app.as_uuid())
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row.map(|(id, hash)| (MemberId::from_uuid(id), hash)))
    }

    pub(crate) async fn create_session_impl(
        &self,
        app: AppId,
        member: MemberId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "insert into member_sessions (token_hash, app_id, member_id, expires_at) \
             values ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(app.as_uuid())
        .bind(member.as_uuid())
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    pub(crate) async fn find_session_impl(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(AppId, MemberId)>> {
        let row: Option<(Uuid, Uuid)> = sqlx::query_as(
            "select app_id, member_id from member_sessions \
             where token_hash = $1 and expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row.map(|(a, m)| (AppId::from_uuid(a), MemberId::from_uuid(m))))
    }

    pub(crate) async fn prune_sign_ins_impl(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let sessions = sqlx::query("delete from member_sessions where expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        let invitations =
            sqlx::query("delete from invitations where used_at is not null or expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(sessions.rows_affected() + invitations.rows_affected())
    }

    pub(crate) async fn delete_session_impl(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("delete from member_sessions where token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
