//! The outbox and members' settings on PostgreSQL. Claims use `FOR UPDATE SKIP LOCKED`, so
//! several processes claiming at once never get the same message.

use chrono::{DateTime, Utc};
use larder_access::{AppId, Email, MemberId, MessageId};
use larder_store::*;
use sqlx::types::Json;
use uuid::Uuid;

use crate::{PgStore, map_err};

const MESSAGE_COLUMNS: &str = "id, app_id, member_id, kind, to_email, status, attempts, \
     last_error, next_attempt_at, created_at, sent_at";

#[derive(sqlx::FromRow)]
struct MessageRow {
    #[sqlx(try_from = "Uuid")]
    id: MessageId,
    #[sqlx(try_from = "Uuid")]
    app_id: AppId,
    #[sqlx(try_from = "Uuid")]
    member_id: MemberId,
    #[sqlx(try_from = "String")]
    kind: MessageKind,
    #[sqlx(try_from = "String")]
    to_email: Email,
    #[sqlx(try_from = "String")]
    status: MessageStatus,
    attempts: i32,
    last_error: Option<String>,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Self {
        Self {
            id: r.id,
            app_id: r.app_id,
            member_id: r.member_id,
            kind: r.kind,
            to: r.to_email,
            status: r.status,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
            sent_at: r.sent_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct SettingsRow {
    member_url: Option<String>,
    sender_name: Option<String>,
    reply_to: Option<String>,
    #[sqlx(try_from = "String")]
    welcome_email: WelcomeEmail,
    welcome_for_test_purchases: bool,
    subject_template: Option<String>,
    body_template: Option<String>,
    cors_origins: Json<Vec<String>>,
}

impl From<SettingsRow> for MemberSettings {
    fn from(r: SettingsRow) -> Self {
        Self {
            member_url: r.member_url,
            sender_name: r.sender_name,
            reply_to: r.reply_to.and_then(|e| Email::parse(&e).ok()),
            welcome_email: r.welcome_email,
            welcome_for_test_purchases: r.welcome_for_test_purchases,
            subject_template: r.subject_template,
            body_template: r.body_template,
            cors_origins: r.cors_origins.0,
        }
    }
}

type MessageQuery<'q> =
    sqlx::query::QueryAs<'q, sqlx::Postgres, MessageRow, sqlx::postgres::PgArguments>;

/// Queues a message of `kind`, due at once, to the app's member that `which` (a condition
/// on `members` with its value as `$5`, bound by `bind`) picks, at their address now;
/// `None` when no member matches.
async fn insert_message<'q>(
    conn: &mut sqlx::PgConnection,
    app: AppId,
    which: &'static str,
    bind: impl FnOnce(MessageQuery<'q>) -> MessageQuery<'q>,
    kind: MessageKind,
    now: DateTime<Utc>,
) -> StoreResult<Option<Message>> {
    let sql = format!(
        "insert into outbox (id, app_id, member_id, kind, to_email, next_attempt_at, \
         created_at) select $1, app_id, id, $3, email, $4, $4 from members \
         where app_id = $2 and {which} returning {MESSAGE_COLUMNS}"
    );
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(MessageId::new().as_uuid())
        .bind(app.as_uuid())
        .bind(kind.as_str())
        .bind(now);
    let row: Option<MessageRow> = bind(query)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(row.map(Message::from))
}

#[async_trait::async_trait]
impl OutboxStore for PgStore {
    async fn queue_message(
        &self,
        app: AppId,
        member: MemberId,
        kind: MessageKind,
        now: DateTime<Utc>,
    ) -> StoreResult<Message> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        insert_message(
            &mut conn,
            app,
            "id = $5",
            |q| q.bind(member.as_uuid()),
            kind,
            now,
        )
        .await?
        .ok_or(StoreError::NotFound)
    }

    async fn invite_member(
        &self,
        app: AppId,
        member: MemberId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Message> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let message = insert_message(
            &mut tx,
            app,
            "id = $5",
            |q| q.bind(member.as_uuid()),
            MessageKind::Invitation,
            now,
        )
        .await?
        .ok_or(StoreError::NotFound)?;
        sqlx::query(
            "insert into invitations (token_hash, app_id, member_id, purpose, expires_at, \
             message_id) values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(app.as_uuid())
        .bind(member.as_uuid())
        .bind(LinkPurpose::SetPassword.as_str())
        .bind(expires_at)
        .bind(message.id.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(message)
    }

    async fn queue_message_by_email(
        &self,
        app: AppId,
        email: &Email,
        kind: MessageKind,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        insert_message(
            &mut conn,
            app,
            "email = $5",
            |q| q.bind(email.as_str()),
            kind,
            now,
        )
        .await
    }

    async fn origin_allowed_anywhere(&self, origin: &str) -> StoreResult<bool> {
        sqlx::query_scalar(
            "select exists (select 1 from member_settings \
             where cors_origins @> jsonb_build_array($1::text))",
        )
        .bind(origin)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedMessage>> {
        let claim = Uuid::now_v7();
        let until = now + chrono::Duration::from_std(lease).map_err(StoreError::internal)?;
        let sql = format!(
            "update outbox set claim_id = $1, claimed_until = $2 where id in ( \
               select id from outbox where status = 'queued' and next_attempt_at <= $3 \
               and (claimed_until is null or claimed_until <= $3) \
               order by next_attempt_at limit $4 for update skip locked) \
             returning {MESSAGE_COLUMNS}"
        );
        let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(claim)
            .bind(until)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let mut claimed: Vec<ClaimedMessage> = rows
            .into_iter()
            .map(|r| ClaimedMessage {
                message: r.into(),
                claim,
            })
            .collect();
        claimed.sort_by_key(|c| (c.message.next_attempt_at, c.message.id));
        Ok(claimed)
    }

    async fn renew_claim(
        &self,
        claimed: &ClaimedMessage,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let until = now + chrono::Duration::from_std(lease).map_err(StoreError::internal)?;
        let renewed = sqlx::query(
            "update outbox set claimed_until = $3 \
             where id = $1 and claim_id = $2 and status = 'queued'",
        )
        .bind(claimed.message.id.as_uuid())
        .bind(claimed.claim)
        .bind(until)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(renewed == 1)
    }

    async fn finish_message(
        &self,
        claimed: &ClaimedMessage,
        attempt: Attempt,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (status, error, next): (MessageStatus, Option<String>, Option<DateTime<Utc>>) =
            match attempt {
                Attempt::Sent => (MessageStatus::Sent, None, None),
                Attempt::Retry { error, retry_at } => {
                    (MessageStatus::Queued, Some(error), Some(retry_at))
                }
                Attempt::GiveUp { error } => (MessageStatus::Failed, Some(error), None),
            };
        let done = sqlx::query(
            "update outbox set status = $3, attempts = attempts + 1, \
             last_error = coalesce($4, last_error), \
             next_attempt_at = coalesce($5, next_attempt_at), \
             sent_at = case when $3 = 'sent' then $6 else sent_at end, \
             claim_id = null, claimed_until = null \
             where id = $1 and claim_id = $2",
        )
        .bind(claimed.message.id.as_uuid())
        .bind(claimed.claim)
        .bind(status.as_str())
        .bind(error)
        .bind(next)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(done == 1)
    }

    async fn list_messages(
        &self,
        app: AppId,
        filter: MessageFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Message>> {
        let sql = format!(
            "select {MESSAGE_COLUMNS} from outbox where app_id = $1 \
             and ($2::uuid is null or member_id = $2) \
             and ($3::text is null or kind = $3) \
             and ($4::text is null or status = $4) \
             and ($5::uuid is null or id < $5) \
             order by id desc limit $6"
        );
        let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(app.as_uuid())
            .bind(filter.member.map(|m| m.as_uuid()))
            .bind(filter.kind.map(|k| k.as_str()))
            .bind(filter.status.map(|s| s.as_str()))
            .bind(page.after)
            .bind(page.fetch_limit())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let messages = rows.into_iter().map(Message::from).collect();
        Ok(page.paginate(messages, |m: &Message| m.id.as_uuid()))
    }

    async fn oldest_queued_message(&self) -> StoreResult<Option<DateTime<Utc>>> {
        sqlx::query_scalar("select min(created_at) from outbox where status = 'queued'")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn member_settings(&self, app: AppId) -> StoreResult<MemberSettings> {
        if !self.app_exists(app).await? {
            return Err(StoreError::NotFound);
        }
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        read_settings(&mut conn, app, false).await
    }

    async fn update_member_settings(
        &self,
        app: AppId,
        patch: MemberSettingsPatch,
    ) -> StoreResult<(MemberSettings, MemberSettings)> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // A row to lock (an unknown app fails its foreign key: NotFound).
        sqlx::query(
            "insert into member_settings (app_id) values ($1) on conflict (app_id) do nothing",
        )
        .bind(app.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let before = read_settings(&mut tx, app, true).await?;
        let after = patch.apply(before.clone());
        write_settings(&mut tx, app, &after).await?;
        tx.commit().await.map_err(map_err)?;
        Ok((before, after))
    }

    async fn put_member_settings(
        &self,
        app: AppId,
        s: MemberSettings,
    ) -> StoreResult<MemberSettings> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        write_settings(&mut conn, app, &s).await?;
        Ok(s)
    }
}

/// The app's settings (the defaults without a row); `lock` holds its row until the
/// transaction ends.
async fn read_settings(
    conn: &mut sqlx::PgConnection,
    app: AppId,
    lock: bool,
) -> StoreResult<MemberSettings> {
    let sql = format!(
        "select member_url, sender_name, reply_to, welcome_email, \
         welcome_for_test_purchases, subject_template, body_template, cors_origins \
         from member_settings where app_id = $1{}",
        if lock { " for update" } else { "" }
    );
    let row: Option<SettingsRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(app.as_uuid())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(row.map(MemberSettings::from).unwrap_or_default())
}

/// Stores the app's settings whole. An unknown app fails its foreign key: `NotFound`.
async fn write_settings(
    conn: &mut sqlx::PgConnection,
    app: AppId,
    s: &MemberSettings,
) -> StoreResult<()> {
    sqlx::query(
        "insert into member_settings (app_id, member_url, sender_name, reply_to, \
         welcome_email, welcome_for_test_purchases, subject_template, body_template, \
         cors_origins, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) \
         on conflict (app_id) do update set member_url = excluded.member_url, \
         sender_name = excluded.sender_name, reply_to = excluded.reply_to, \
         welcome_email = excluded.welcome_email, \
         welcome_for_test_purchases = excluded.welcome_for_test_purchases, \
         subject_template = excluded.subject_template, \
         body_template = excluded.body_template, cors_origins = excluded.cors_origins, \
         updated_at = now()",
    )
    .bind(app.as_uuid())
    .bind(&s.member_url)
    .bind(&s.sender_name)
    .bind(s.reply_to.as_ref().map(|e| e.as_str()))
    .bind(s.welcome_email.as_str())
    .bind(s.welcome_for_test_purchases)
    .bind(&s.subject_template)
    .bind(&s.body_template)
    .bind(Json(&s.cors_origins))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}
