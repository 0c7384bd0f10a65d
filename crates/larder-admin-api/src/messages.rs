//! Messages to members: what the outbox holds, and a fresh welcome by hand.

use chrono::{DateTime, Utc};
use larder_access::{AppId, MemberId};
use larder_api_common::{
    About, Accepted, Cursor, ListItem, Listed, OneOf, Page, PageLimit, PathId, page_request,
};
use larder_store::{Message, MessageFilter};
use poem_openapi::param::{Path, Query};
use poem_openapi::{Enum, Object, OpenApi};

use crate::auth::AdminAuth;
use crate::{AdminState, ReadFails, Tag};

#[derive(Debug)]
pub struct MessagesApi {
    pub(crate) state: AdminState,
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", remote = "larder_store::MessageKind")]
pub enum MessageKind {
    /// Sent once, on the member's first purchase that gave access (or by hand).
    Welcome,
    /// A link to set a password.
    Invitation,
    /// A single-use sign-in link.
    MagicLink,
    /// A link to set a new password.
    PasswordReset,
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", remote = "larder_store::MessageStatus")]
pub enum MessageStatus {
    /// Waiting to be sent, maybe again after a failed attempt.
    Queued,
    /// Handed to the mail server.
    Sent,
    /// Every attempt failed; `last_error` says why.
    Failed,
}

/// A message to a member. The link it carries is never shown here: it exists only in the
/// message itself.
#[derive(Debug, Object)]
pub struct MessageView {
    pub id: String,
    pub member_id: String,
    pub kind: MessageKind,
    /// The member's address when it was queued.
    pub to: String,
    pub status: MessageStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    #[oai(nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        Self {
            id: m.id.to_string(),
            member_id: m.member_id.to_string(),
            kind: m.kind.into(),
            to: m.to.to_string(),
            status: m.status.into(),
            attempts: m.attempts,
            last_error: m.last_error,
            created_at: m.created_at,
            sent_at: m.sent_at,
        }
    }
}

impl ListItem for MessageView {
    const LIST: &'static str = "MessageList";
}

impl MessagesApi {
    async fn list(
        &self,
        app: AppId,
        filter: MessageFilter,
        limit: Option<PageLimit>,
        cursor: Option<Cursor>,
    ) -> Result<Listed<MessageView>, ReadFails> {
        let page = self
            .state
            .store
            .list_messages(app, filter, page_request(limit, cursor))
            .await
            .about("app")?;
        Ok(Listed::of(Page::from_store(page, MessageView::from)))
    }
}

#[OpenApi(prefix_path = "/admin/v1/apps", tag = "Tag::Members")]
impl MessagesApi {
    /// List messages
    ///
    /// The app's messages to members (welcome emails, invitations, sign-in links, password
    /// resets), newest first, with where each one is.
    #[oai(
        path = "/:app_id/messages",
        method = "get",
        operation_id = "listMessages"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_app(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        /// Only messages to this member.
        member_id: Query<Option<PathId<MemberId>>>,
        /// Only messages of this kind.
        kind: Query<Option<OneOf<MessageKind>>>,
        /// Only messages with this status.
        status: Query<Option<OneOf<MessageStatus>>>,
        /// Page size, 1–200 (default 50).
        limit: Query<Option<PageLimit>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<Cursor>>,
    ) -> Result<Listed<MessageView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let filter = MessageFilter {
            member: member_id.0.map(|m| m.0),
            kind: kind.0.map(|k| k.0.into()),
            status: status.0.map(|s| s.0.into()),
        };
        self.list(app, filter, limit.0, cursor.0).await
    }

    /// List a member's messages
    ///
    /// The messages to one member, newest first.
    #[oai(
        path = "/:app_id/members/:member_id/messages",
        method = "get",
        operation_id = "listMemberMessages"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_member(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        member_id: Path<PathId<MemberId>>,
        /// Only messages of this kind.
        kind: Query<Option<OneOf<MessageKind>>>,
        /// Only messages with this status.
        status: Query<Option<OneOf<MessageStatus>>>,
        /// Page size, 1–200 (default 50).
        limit: Query<Option<PageLimit>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<Cursor>>,
    ) -> Result<Listed<MessageView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        self.state
            .store
            .get_member(app, **member_id)
            .await
            .about("member")?;
        let filter = MessageFilter {
            member: Some(**member_id),
            kind: kind.0.map(|k| k.0.into()),
            status: status.0.map(|s| s.0.into()),
        };
        self.list(app, filter, limit.0, cursor.0).await
    }

    /// Send a welcome email again
    ///
    /// Queues a fresh welcome email to the member, with a new link; the sender sends it
    /// within seconds. The automatic welcome (on the first purchase) is sent once; this is
    /// how to send another.
    #[oai(
        path = "/:app_id/members/:member_id/welcome-email",
        method = "post",
        operation_id = "queueWelcomeEmail"
    )]
    async fn welcome(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        member_id: Path<PathId<MemberId>>,
    ) -> Result<Accepted<MessageView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let message = self
            .state
            .store
            .queue_message(
                app,
                **member_id,
                larder_store::MessageKind::Welcome,
                Utc::now(),
            )
            .await
            .about("member")?;
        Ok(Accepted::of(message))
    }
}
