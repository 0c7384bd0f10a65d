//! Member sign-in on SQLite: invitations, passwords and sessions.

use chrono::{DateTime, Utc};
use larder_access::{AppId, Email, MemberId};
use larder_store::*;

use crate::members::find_member;
use crate::{SqliteStore, format_time, map_err, now};

#[async_trait::async_trait]
impl SignInStore for SqliteStore {
    async fn create_invitation(
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

    async fn find_invitation(
        &self,
        app: AppId,
        token_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Member>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let member: Option<String> = sqlx::query_scalar(
            "select member_id from invitations where app_id = ?1 and token_hash = ?2 \
             and used_at is null and expires_at > ?3",
        )
        .bind(app.to_string())
        .bind(token_hash)
        .bind(format_time(at))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
        match member {
            Some(id) => {
                let id: MemberId = id.parse().map_err(StoreError::internal)?;
                Ok(Some(find_member(&mut conn, app, id).await?))
            }
            None => Ok(None),
        }
    }

    async fn redeem_invitation(
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

    async fn member_credentials(
        &self,
        app: AppId,
        email: &Email,
    ) -> StoreResult<Option<MemberCredentials>> {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "select id, password_hash from members where app_id = ?1 and email = ?2",
        )
        .bind(app.to_string())
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|(id, password_hash)| {
            Ok(MemberCredentials {
                member_id: id.parse().map_err(StoreError::internal)?,
                password_hash,
            })
        })
        .transpose()
    }

    async fn create_session(
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

    async fn find_session(
        &self,
        token_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<SessionOwner>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "select app_id, member_id from member_sessions \
             where token_hash = ?1 and expires_at > ?2",
        )
        .bind(token_hash)
        .bind(format_time(at))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|(app, member)| {
            Ok(SessionOwner {
                app_id: app.parse().map_err(StoreError::internal)?,
                member_id: member.parse().map_err(StoreError::internal)?,
            })
        })
        .transpose()
    }

    async fn prune_sign_ins(&self, at: DateTime<Utc>) -> StoreResult<u64> {
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

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("delete from member_sessions where token_hash = ?1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
