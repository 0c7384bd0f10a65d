//! Member sign-in on PostgreSQL: single-use links, passwords and sessions. Links live in
//! the `invitations` table (its first kind), each with its purpose.

use chrono::{DateTime, Utc};
use larder_access::{AppId, Email, MemberId};
use larder_store::*;
use uuid::Uuid;

use crate::members::find_member;
use crate::{PgStore, map_err};

#[async_trait::async_trait]
impl SignInStore for PgStore {
    async fn create_link(&self, link: NewLink<'_>) -> StoreResult<()> {
        sqlx::query(
            "insert into invitations (token_hash, app_id, member_id, purpose, expires_at, \
             message_id) values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(link.token_hash)
        .bind(link.app_id.as_uuid())
        .bind(link.member_id.as_uuid())
        .bind(link.purpose.as_str())
        .bind(link.expires_at)
        .bind(link.message_id.map(|m| m.as_uuid()))
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
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Member>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let member: Option<Uuid> = sqlx::query_scalar(
            "select member_id from invitations where app_id = $1 and token_hash = $2 \
             and purpose = $3 and used_at is null and expires_at > $4",
        )
        .bind(app.as_uuid())
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
        match member {
            Some(id) => Ok(Some(
                find_member(&mut conn, app, MemberId::from_uuid(id)).await?,
            )),
            None => Ok(None),
        }
    }

    async fn redeem_password_link(
        &self,
        app: AppId,
        purpose: LinkPurpose,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<MemberId>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        if !lock_member_of_link(&mut tx, app, token_hash).await? {
            return Ok(None);
        }
        let Some(member) = use_link(&mut tx, app, purpose, token_hash, now).await? else {
            return Ok(None);
        };
        sqlx::query(
            "update members set password_hash = $3, updated_at = now() \
             where app_id = $1 and id = $2",
        )
        .bind(app.as_uuid())
        .bind(member.as_uuid())
        .bind(password_hash)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("delete from member_sessions where app_id = $1 and member_id = $2")
            .bind(app.as_uuid())
            .bind(member.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "update invitations set used_at = $3, updated_at = now() \
             where app_id = $1 and member_id = $2 and used_at is null",
        )
        .bind(app.as_uuid())
        .bind(member.as_uuid())
        .bind(now)
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
        now: DateTime<Utc>,
    ) -> StoreResult<Option<MemberId>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        if !lock_member_of_link(&mut tx, app, token_hash).await? {
            return Ok(None);
        }
        let Some(member) = use_link(&mut tx, app, LinkPurpose::MagicLink, token_hash, now).await?
        else {
            return Ok(None);
        };
        sqlx::query(
            "insert into member_sessions (token_hash, app_id, member_id, expires_at) \
             values ($1, $2, $3, $4)",
        )
        .bind(session.token_hash)
        .bind(app.as_uuid())
        .bind(member.as_uuid())
        .bind(session.expires_at)
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
        let row: Option<(Uuid, Option<String>)> = sqlx::query_as(
            "select id, password_hash from members where app_id = $1 and email = $2",
        )
        .bind(app.as_uuid())
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row.map(|(id, password_hash)| MemberCredentials {
            member_id: MemberId::from_uuid(id),
            password_hash,
        }))
    }

    async fn create_session(
        &self,
        app: AppId,
        member: MemberId,
        password_hash: &str,
        session: NewSession<'_>,
    ) -> StoreResult<bool> {
        // `for share` waits for a password change in flight and then reads its result, and
        // keeps one from starting until this session is in: a reset either sees the session
        // (and deletes it) or makes this insert find no row.
        let started = sqlx::query(
            "insert into member_sessions (token_hash, app_id, member_id, expires_at) \
             select $1, app_id, id, $4 from members \
             where app_id = $2 and id = $3 and password_hash = $5 for share",
        )
        .bind(session.token_hash)
        .bind(app.as_uuid())
        .bind(member.as_uuid())
        .bind(session.expires_at)
        .bind(password_hash)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(started == 1)
    }

    async fn find_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionOwner>> {
        let row: Option<(Uuid, Uuid)> = sqlx::query_as(
            "select app_id, member_id from member_sessions \
             where token_hash = $1 and expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row.map(|(app, member)| SessionOwner {
            app_id: AppId::from_uuid(app),
            member_id: MemberId::from_uuid(member),
        }))
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("delete from member_sessions where token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn prune_sign_ins(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let sessions = sqlx::query("delete from member_sessions where expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        let links =
            sqlx::query("delete from invitations where used_at is not null or expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(sessions.rows_affected() + links.rows_affected())
    }
}

/// Marks an unused, unexpired link of `purpose` used; its member, or `None`. Concurrent
/// uses of one link: the row lock lets exactly one through.
async fn use_link(
    tx: &mut sqlx::PgConnection,
    app: AppId,
    purpose: LinkPurpose,
    token_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<MemberId>> {
    let member: Option<Uuid> = sqlx::query_scalar(
        "update invitations set used_at = $4, updated_at = now() \
         where app_id = $1 and token_hash = $2 and purpose = $3 and used_at is null \
         and expires_at > $4 returning member_id",
    )
    .bind(app.as_uuid())
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(member.map(MemberId::from_uuid))
}

/// Locks the member a link is for (whatever its state), so that everything one link does
/// to a member (a password and its sessions, a magic link's session) happens in turn with
/// what another does; `false` when there is no such link. The member is locked before the
/// link itself is used, always in that order, so two uses cannot deadlock.
async fn lock_member_of_link(
    tx: &mut sqlx::PgConnection,
    app: AppId,
    token_hash: &str,
) -> StoreResult<bool> {
    let locked: Option<Uuid> = sqlx::query_scalar(
        "select m.id from members m join invitations i \
         on i.app_id = m.app_id and i.member_id = m.id \
         where i.app_id = $1 and i.token_hash = $2 for update of m",
    )
    .bind(app.as_uuid())
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(locked.is_some())
}
