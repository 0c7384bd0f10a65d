//! Member sign-in on SQLite: single-use links, passwords and sessions. Links live in the
//! `invitations` table (its first kind), each with its purpose.

use chrono::{DateTime, Utc};
use larder_access::{AppId, Email, MemberId};
use larder_store::*;

use crate::members::find_member;
use crate::{SqliteStore, format_time, map_err, now};

#[async_trait::async_trait]
impl SignInStore for SqliteStore {
    async fn create_link(&self, link: NewLink<'_>) -> StoreResult<()> {
        let _turn = self.write_turn().await?;
        sqlx::query(
            "insert into invitations (token_hash, app_id, member_id, purpose, expires_at, \
             message_id, created_at, updated_at) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        )
        .bind(link.token_hash)
        .bind(link.app_id.to_string())
        .bind(link.member_id.to_string())
        .bind(link.purpose.as_str())
        .bind(format_time(link.expires_at))
        .bind(link.message_id.map(|m| m.to_string()))
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn find_link(
        &self,
        app: AppId,
        purpose: LinkPurpose,
        token_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Member>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let member: Option<String> = sqlx::query_scalar(
            "select member_id from invitations where app_id = ?1 and token_hash = ?2 \
             and purpose = ?3 and used_at is null and expires_at > ?4",
        )
        .bind(app.to_string())
        .bind(token_hash)
        .bind(purpose.as_str())
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

    async fn redeem_password_link(
        &self,
        app: AppId,
        purpose: LinkPurpose,
        token_hash: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<MemberId>> {
        let mut tx = self.begin_write().await?;
        let Some(member) = use_link(&mut tx, app, purpose, token_hash, at).await? else {
            return Ok(None);
        };
        let at = format_time(at);
        sqlx::query(
            "update members set password_hash = ?3, updated_at = ?4 where app_id = ?1 and id = ?2",
        )
        .bind(app.to_string())
        .bind(member.to_string())
        .bind(password_hash)
        .bind(&at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("delete from member_sessions where app_id = ?1 and member_id = ?2")
            .bind(app.to_string())
            .bind(member.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "update invitations set used_at = ?3, updated_at = ?3 \
             where app_id = ?1 and member_id = ?2 and used_at is null",
        )
        .bind(app.to_string())
        .bind(member.to_string())
        .bind(&at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(member))
    }

    async fn redeem_magic_link(
        &self,
        app: AppId,
        token_hash: &str,
        session: NewSession<'_>,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<MemberId>> {
        let mut tx = self.begin_write().await?;
        let Some(member) = use_link(&mut tx, app, LinkPurpose::MagicLink, token_hash, at).await?
        else {
            return Ok(None);
        };
        sqlx::query(
            "insert into member_sessions (token_hash, app_id, member_id, expires_at, \
             created_at, updated_at) values (?1, ?2, ?3, ?4, ?5, ?5)",
        )
        .bind(session.token_hash)
        .bind(app.to_string())
        .bind(member.to_string())
        .bind(format_time(session.expires_at))
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(member))
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
        password_hash: &str,
        session: NewSession<'_>,
    ) -> StoreResult<bool> {
        let _turn = self.write_turn().await?;
        // One statement, so a password change either comes before it (no row matches) or
        // after it (and deletes the session).
        let started = sqlx::query(
            "insert into member_sessions (token_hash, app_id, member_id, expires_at, \
             created_at, updated_at) select ?1, app_id, id, ?4, ?6, ?6 from members \
             where app_id = ?2 and id = ?3 and password_hash = ?5",
        )
        .bind(session.token_hash)
        .bind(app.to_string())
        .bind(member.to_string())
        .bind(format_time(session.expires_at))
        .bind(password_hash)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(started == 1)
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
        let _turn = self.write_turn().await?;
        let at = format_time(at);
        let sessions = sqlx::query("delete from member_sessions where expires_at <= ?1")
            .bind(&at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        let links =
            sqlx::query("delete from invitations where used_at is not null or expires_at <= ?1")
                .bind(&at)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(sessions.rows_affected() + links.rows_affected())
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        let _turn = self.write_turn().await?;
        sqlx::query("delete from member_sessions where token_hash = ?1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

/// Marks an unused, unexpired link of `purpose` used; its member, or `None`. The write
/// transaction serialises concurrent uses, so exactly one gets through.
async fn use_link(
    tx: &mut sqlx::SqliteConnection,
    app: AppId,
    purpose: LinkPurpose,
    token_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<Option<MemberId>> {
    let at = format_time(at);
    let member: Option<String> = sqlx::query_scalar(
        "update invitations set used_at = ?4, updated_at = ?4 \
         where app_id = ?1 and token_hash = ?2 and purpose = ?3 and used_at is null \
         and expires_at > ?4 returning member_id",
    )
    .bind(app.to_string())
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(&at)
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_err)?;
    member
        .map(|m| m.parse().map_err(StoreError::internal))
        .transpose()
}
