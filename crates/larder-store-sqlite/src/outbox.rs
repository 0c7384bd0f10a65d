//! The outbox and members' settings on SQLite. A claim is one `BEGIN IMMEDIATE`
//! transaction: writers queue on the database lock, so two claims never overlap.

use chrono::{DateTime, Utc};
use larder_access::thrivecart::Mode;
use larder_access::{AppId, Email, MemberId, MessageId};
use larder_store::*;

use crate::{SqliteStore, app_exists, format_time, map_err, now};

const MESSAGE_COLUMNS: &str = "id, app_id, member_id, kind, to_email, status, attempts, \
     last_error, next_attempt_at, created_at, sent_at";

#[derive(sqlx::FromRow)]
struct MessageRow {
    #[sqlx(try_from = "String")]
    id: MessageId,
    #[sqlx(try_from = "String")]
    app_id: AppId,
    #[sqlx(try_from = "String")]
    member_id: MemberId,
    #[sqlx(try_from = "String")]
    kind: MessageKind,
    #[sqlx(try_from = "String")]
    to_email: Email,
    #[sqlx(try_from = "String")]
    status: MessageStatus,
    attempts: i64,
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
    cors_origins: String,
}

impl SettingsRow {
    fn into_settings(self) -> StoreResult<MemberSettings> {
        Ok(MemberSettings {
            member_url: self.member_url,
            sender_name: self.sender_name,
            reply_to: self.reply_to.and_then(|e| Email::parse(&e).ok()),
            welcome_email: self.welcome_email,
            welcome_for_test_purchases: self.welcome_for_test_purchases,
            subject_template: self.subject_template,
            body_template: self.body_template,
            cors_origins: serde_json::from_str(&self.cors_origins).map_err(StoreError::internal)?,
        })
    }
}

/// Queues the welcome `plan` is due to send, inside the delivery's transaction: at most
/// one per member, whatever retries and replays do.
pub(crate) async fn queue_welcome(
    tx: &mut sqlx::SqliteConnection,
    app: AppId,
    plan: &larder_access::engine::Plan,
    mode: Mode,
    to: Option<&Email>,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let Some(to) = to else {
        return Ok(());
    };
    let settings: Option<(String, bool)> = sqlx::query_as(
        "select welcome_email, welcome_for_test_purchases from member_settings \
         where app_id = ?1",
    )
    .bind(app.to_string())
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_err)?;
    let (welcome, for_test) = match settings {
        Some((w, t)) => (w.parse().map_err(StoreError::internal)?, t),
        None => (WelcomeEmail::SetPassword, false),
    };
    let Some(member) = welcome_due(plan, mode, welcome, for_test) else {
        return Ok(());
    };
    sqlx::query(
        "insert into outbox (id, app_id, member_id, kind, to_email, once_key, \
         next_attempt_at, created_at) values (?1, ?2, ?3, 'welcome', ?4, ?5, ?6, ?6) \
         on conflict (app_id, member_id, once_key) where once_key is not null do nothing",
    )
    .bind(MessageId::new().to_string())
    .bind(app.to_string())
    .bind(member.to_string())
    .bind(to.as_str())
    .bind(WELCOME_ONCE)
    .bind(format_time(at))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

type MessageQuery<'q> =
    sqlx::query::QueryAs<'q, sqlx::Sqlite, MessageRow, sqlx::sqlite::SqliteArguments>;

/// Queues a message of `kind`, due at once, to the app's member that `which` (a condition
/// on `members` with its value as `?5`, bound by `bind`) picks, at their address now;
/// `None` when no member matches.
async fn insert_message<'q>(
    conn: &mut sqlx::SqliteConnection,
    app: AppId,
    which: &'static str,
    bind: impl FnOnce(MessageQuery<'q>) -> MessageQuery<'q>,
    kind: MessageKind,
    at: DateTime<Utc>,
) -> StoreResult<Option<Message>> {
    let sql = format!(
        "insert into outbox (id, app_id, member_id, kind, to_email, next_attempt_at, \
         created_at) select ?1, app_id, id, ?3, email, ?4, ?4 from members \
         where app_id = ?2 and {which} returning {MESSAGE_COLUMNS}"
    );
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(MessageId::new().to_string())
        .bind(app.to_string())
        .bind(kind.as_str())
        .bind(format_time(at));
    let row: Option<MessageRow> = bind(query)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(row.map(Message::from))
}

#[async_trait::async_trait]
impl OutboxStore for SqliteStore {
    async fn queue_message(
        &self,
        app: AppId,
        member: MemberId,
        kind: MessageKind,
        at: DateTime<Utc>,
    ) -> StoreResult<Message> {
        let _turn = self.write_turn().await?;
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        insert_message(
            &mut conn,
            app,
            "id = ?5",
            |q| q.bind(member.to_string()),
            kind,
            at,
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
        at: DateTime<Utc>,
    ) -> StoreResult<Message> {
        let mut tx = self.begin_write().await?;
        let message = insert_message(
            &mut tx,
            app,
            "id = ?5",
            |q| q.bind(member.to_string()),
            MessageKind::Invitation,
            at,
        )
        .await?
        .ok_or(StoreError::NotFound)?;
        sqlx::query(
            "insert into invitations (token_hash, app_id, member_id, purpose, expires_at, \
             message_id, created_at, updated_at) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        )
        .bind(token_hash)
        .bind(app.to_string())
        .bind(member.to_string())
        .bind(LinkPurpose::SetPassword.as_str())
        .bind(format_time(expires_at))
        .bind(message.id.to_string())
        .bind(format_time(at))
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
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        let _turn = self.write_turn().await?;
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        insert_message(
            &mut conn,
            app,
            "email = ?5",
            |q| q.bind(email.as_str().to_owned()),
            kind,
            at,
        )
        .await
    }

    async fn origin_allowed_anywhere(&self, origin: &str) -> StoreResult<bool> {
        sqlx::query_scalar(
            "select exists (select 1 from member_settings, json_each(member_settings.cors_origins) \
             where json_each.value = ?1)",
        )
        .bind(origin)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn claim_messages(
        &self,
        at: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedMessage>> {
        let claim = uuid::Uuid::now_v7();
        let until = at + chrono::Duration::from_std(lease).map_err(StoreError::internal)?;
        let sql = format!(
            "update outbox set claim_id = ?1, claimed_until = ?2 where id in ( \
               select id from outbox where status = 'queued' and next_attempt_at <= ?3 \
               and (claimed_until is null or claimed_until <= ?3) \
               order by next_attempt_at limit ?4) \
             returning {MESSAGE_COLUMNS}"
        );
        let mut tx = self.begin_write().await?;
        let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(claim.to_string())
            .bind(format_time(until))
            .bind(format_time(at))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
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
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let _turn = self.write_turn().await?;
        let until = at + chrono::Duration::from_std(lease).map_err(StoreError::internal)?;
        let renewed = sqlx::query(
            "update outbox set claimed_until = ?3 \
             where id = ?1 and claim_id = ?2 and status = 'queued'",
        )
        .bind(claimed.message.id.to_string())
        .bind(claimed.claim.to_string())
        .bind(format_time(until))
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
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (status, error, next): (MessageStatus, Option<String>, Option<DateTime<Utc>>) =
            match attempt {
                Attempt::Sent => (MessageStatus::Sent, None, None),
                Attempt::Retry { error, retry_at } => {
                    (MessageStatus::Queued, Some(error), Some(retry_at))
                }
                Attempt::GiveUp { error } => (MessageStatus::Failed, Some(error), None),
            };
        let _turn = self.write_turn().await?;
        let done = sqlx::query(
            "update outbox set status = ?3, attempts = attempts + 1, \
             last_error = coalesce(?4, last_error), \
             next_attempt_at = coalesce(?5, next_attempt_at), \
             sent_at = case when ?3 = 'sent' then ?6 else sent_at end, \
             claim_id = null, claimed_until = null \
             where id = ?1 and claim_id = ?2",
        )
        .bind(claimed.message.id.to_string())
        .bind(claimed.claim.to_string())
        .bind(status.as_str())
        .bind(error)
        .bind(next.map(format_time))
        .bind(format_time(at))
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
            "select {MESSAGE_COLUMNS} from outbox where app_id = ?1 \
             and (?2 is null or member_id = ?2) \
             and (?3 is null or kind = ?3) \
             and (?4 is null or status = ?4) \
             and (?5 is null or id < ?5) \
             order by id desc limit ?6"
        );
        let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(app.to_string())
            .bind(filter.member.map(|m| m.to_string()))
            .bind(filter.kind.map(|k| k.as_str()))
            .bind(filter.status.map(|s| s.as_str()))
            .bind(page.after.map(|a| a.to_string()))
            .bind(page.fetch_limit())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let messages = rows.into_iter().map(Message::from).collect();
        Ok(page.paginate(messages, |m: &Message| m.id.as_uuid()))
    }

    async fn oldest_queued_message(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let oldest: Option<String> =
            sqlx::query_scalar("select min(created_at) from outbox where status = 'queued'")
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
        oldest
            .map(|t| {
                DateTime::parse_from_rfc3339(&t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(StoreError::internal)
            })
            .transpose()
    }

    async fn member_settings(&self, app: AppId) -> StoreResult<MemberSettings> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        if !app_exists(&mut conn, app).await? {
            return Err(StoreError::NotFound);
        }
        read_settings(&mut conn, app).await
    }

    async fn update_member_settings(
        &self,
        app: AppId,
        patch: MemberSettingsPatch,
    ) -> StoreResult<(MemberSettings, MemberSettings)> {
        // One write transaction at a time: no other patch reads in between.
        let mut tx = self.begin_write().await?;
        if !app_exists(&mut tx, app).await? {
            return Err(StoreError::NotFound);
        }
        let before = read_settings(&mut tx, app).await?;
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
        let mut tx = self.begin_write().await?;
        if !app_exists(&mut tx, app).await? {
            return Err(StoreError::NotFound);
        }
        write_settings(&mut tx, app, &s).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(s)
    }
}

/// The app's settings (the defaults without a row).
async fn read_settings(
    conn: &mut sqlx::SqliteConnection,
    app: AppId,
) -> StoreResult<MemberSettings> {
    let row: Option<SettingsRow> = sqlx::query_as(
        "select member_url, sender_name, reply_to, welcome_email, \
         welcome_for_test_purchases, subject_template, body_template, cors_origins \
         from member_settings where app_id = ?1",
    )
    .bind(app.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    row.map(SettingsRow::into_settings)
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Stores the app's settings whole.
async fn write_settings(
    conn: &mut sqlx::SqliteConnection,
    app: AppId,
    s: &MemberSettings,
) -> StoreResult<()> {
    let origins = serde_json::to_string(&s.cors_origins).map_err(StoreError::internal)?;
    sqlx::query(
        "insert into member_settings (app_id, member_url, sender_name, reply_to, \
         welcome_email, welcome_for_test_purchases, subject_template, body_template, \
         cors_origins, updated_at) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         on conflict (app_id) do update set member_url = excluded.member_url, \
         sender_name = excluded.sender_name, reply_to = excluded.reply_to, \
         welcome_email = excluded.welcome_email, \
         welcome_for_test_purchases = excluded.welcome_for_test_purchases, \
         subject_template = excluded.subject_template, \
         body_template = excluded.body_template, cors_origins = excluded.cors_origins, \
         updated_at = excluded.updated_at",
    )
    .bind(app.to_string())
    .bind(&s.member_url)
    .bind(&s.sender_name)
    .bind(s.reply_to.as_ref().map(|e| e.as_str()))
    .bind(s.welcome_email.as_str())
    .bind(s.welcome_for_test_purchases)
    .bind(&s.subject_template)
    .bind(&s.body_template)
    .bind(origins)
    .bind(now())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}
