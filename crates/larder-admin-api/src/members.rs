//! Members: their access, manual grants, overrides, invitations, erasure and exports.

use chrono::{DateTime, Utc};
use larder_access::{AccessLevelId, AppId, Email, GrantId, MemberId};
use larder_api_common::body::JsonBody;
use larder_api_common::{
    About, ApiError, Created, Cursor, Done, Found, LevelView, ListItem, Listed, Page, PageLimit,
    PathId, TextParam, page_request,
};
use larder_store::personal_data::grant_history;
use larder_store::{
    AccessOverride, Grant, Member, MemberFilter, MemberWithAccess, NewAccessOverride,
};
use larder_tenancy::secrets;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use crate::activity::{ActivityDetail, EffectKindView};
use crate::auth::AdminAuth;
use crate::{AdminState, ReadConflictFails, ReadFails, Tag, WriteFails};

#[derive(Debug)]
pub struct MembersApi {
    pub(crate) state: AdminState,
}

#[derive(Debug, Object)]
pub struct MemberView {
    pub id: String,
    /// Trimmed and lowercased.
    pub email: String,
    #[oai(nullable)]
    pub name: Option<String>,
    /// Created by a test-mode purchase.
    pub test: bool,
    pub created_at: DateTime<Utc>,
    /// The levels the member has now: an active grant gives one, unless an override takes
    /// it away.
    pub access_levels: Vec<LevelView>,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self {
            id: m.id.to_string(),
            email: m.email.to_string(),
            name: m.name,
            test: m.test,
            created_at: m.created_at,
            access_levels: m.access_levels.into_iter().map(Into::into).collect(),
        }
    }
}

impl ListItem for MemberView {
    const LIST: &'static str = "MemberList";
}

/// The status of a grant (the status of the purchased item it comes from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename_all = "snake_case",
    remote = "larder_access::engine::ItemStatus"
)]
pub enum GrantStatus {
    Active,
    Paused,
    Revoked,
}

/// Who decides a grant: a ThriveCart purchase, or an admin by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename = "GrantSource",
    rename_all = "snake_case",
    remote = "larder_access::GrantSource"
)]
pub enum GrantSourceView {
    Thrivecart,
    Manual,
}

#[derive(Debug, Object)]
pub struct GrantView {
    pub id: String,
    pub access_level_id: String,
    pub source: GrantSourceView,
    /// The typed product key; null on manual grants.
    #[oai(nullable)]
    pub product: Option<String>,
    /// null on manual grants.
    #[oai(nullable)]
    pub order_id: Option<String>,
    pub status: GrantStatus,
    /// A renewal payment failed and no later one succeeded yet.
    pub past_due: bool,
    pub test: bool,
    pub updated_at: DateTime<Utc>,
}

impl From<Grant> for GrantView {
    fn from(g: Grant) -> Self {
        Self {
            id: g.id.to_string(),
            access_level_id: g.access_level_id.to_string(),
            source: g.source.into(),
            product: g.product.map(|p| p.to_string()),
            order_id: g.order_id,
            status: g.status.into(),
            past_due: g.past_due,
            test: g.test,
            updated_at: g.updated_at,
        }
    }
}

/// What an override does to the level: takes it away, or suspends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", remote = "larder_access::OverrideStatus")]
pub enum AccessOverrideStatus {
    Revoked,
    Paused,
}

/// An admin's override of one access level: while it stands, the member lacks the level
/// whatever their purchases and manual grants say.
#[derive(Debug, Object)]
pub struct AccessOverrideView {
    pub access_level_id: String,
    pub status: AccessOverrideStatus,
    #[oai(nullable)]
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AccessOverride> for AccessOverrideView {
    fn from(o: AccessOverride) -> Self {
        Self {
            access_level_id: o.access_level_id.to_string(),
            status: o.status.into(),
            reason: o.reason,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

impl ListItem for AccessOverrideView {
    const LIST: &'static str = "AccessOverrideList";
    const NEXT_CURSOR: &'static str = "Always null: the list is short and comes whole.";
}

#[derive(Debug, Object)]
pub struct MemberDetail {
    #[oai(flatten)]
    pub member: MemberView,
    /// Every grant, revoked ones included.
    pub grants: Vec<GrantView>,
    /// The overrides standing on the member's access.
    pub overrides: Vec<AccessOverrideView>,
}

impl From<MemberWithAccess> for MemberDetail {
    fn from(m: MemberWithAccess) -> Self {
        Self {
            member: m.member.into(),
            grants: m.grants.into_iter().map(Into::into).collect(),
            overrides: m.overrides.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateGrantRequest {
    /// One of the app's access levels.
    pub access_level_id: String,
}

/// `status` `revoked` takes the level away, `paused` suspends it; either way the member
/// lacks it until the override is lifted.
#[derive(Debug, Object)]
#[oai(example)]
pub struct SetAccessOverrideRequest {
    pub status: AccessOverrideStatus,
    /// Why, for the admins who come later (up to 500 characters, no NUL character); null
    /// or absent for none.
    #[oai(nullable, validator(max_length = 500, pattern = r"^[^\x00]*$"))]
    pub reason: Option<String>,
}

/// A set-password link for the member.
#[derive(Object)]
pub struct InvitationView {
    /// Send this to the member; it works once, until `expires_at`.
    pub url: String,
    /// The token in `url`, for a front end that builds its own link.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

// The link and its token stay out of any `Debug` output.
impl std::fmt::Debug for InvitationView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvitationView")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// One change of a grant, from the activity log (or, for a manual grant, the admin's).
#[derive(Debug, Object)]
pub struct GrantEventView {
    pub at: DateTime<Utc>,
    pub kind: EffectKindView,
    /// The delivery that made it; null for an admin's manual grant and its revocation.
    #[oai(nullable)]
    pub delivery_id: Option<String>,
}

/// A grant with its history.
#[derive(Debug, Object)]
pub struct ExportedGrant {
    #[oai(flatten)]
    pub grant: GrantView,
    /// Oldest first; as far back as the activity log is kept.
    pub history: Vec<GrantEventView>,
}

/// Everything Larder holds about one member.
#[derive(Debug, Object)]
pub struct MemberExport {
    pub member: MemberView,
    pub grants: Vec<ExportedGrant>,
    pub overrides: Vec<AccessOverrideView>,
    /// The deliveries that named the member, newest first, with what they carried.
    pub activity: Vec<ActivityDetail>,
}

#[derive(Debug, ApiResponse)]
pub enum SetOverrideAnswer {
    /// The override was set.
    #[oai(status = 201)]
    Created(Json<AccessOverrideView>),
    /// An override on this level was there and is replaced.
    #[oai(status = 200)]
    Replaced(Json<AccessOverrideView>),
}

/// How long an invitation link works.
const INVITATION_TTL_DAYS: i64 = 7;
const WHAT: &str = "member";

fn level_id(raw: &str) -> Result<AccessLevelId, ApiError> {
    raw.parse().map_err(|_| ApiError::unknown_access_level())
}

#[OpenApi(prefix_path = "/admin/v1/apps", tag = "Tag::Members")]
impl MembersApi {
    /// List members
    ///
    /// The app's members, oldest first, each with the access levels they have now.
    /// `email` finds one member (exact, case-insensitive); `access_level_id` those who have
    /// that level.
    #[oai(
        path = "/:app_id/members",
        method = "get",
        operation_id = "listMembers"
    )]
    async fn list(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        /// Exact, case-insensitive email.
        email: Query<Option<TextParam>>,
        /// Only members who have this level now.
        access_level_id: Query<Option<PathId<AccessLevelId>>>,
        /// Page size, 1–200 (default 50).
        limit: Query<Option<PageLimit>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<Cursor>>,
    ) -> Result<Listed<MemberView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let page = page_request(limit.0, cursor.0);
        let email = match email.0.as_deref() {
            // An address no member can have: an empty page, not an error.
            Some(raw) => match Email::parse(raw) {
                Ok(email) => Some(email),
                Err(_) => return Ok(Listed::of(Page::whole([]))),
            },
            None => None,
        };
        let filter = MemberFilter {
            email,
            access_level_id: access_level_id.0.map(|l| l.0),
        };
        let page = self
            .state
            .store
            .list_members(app, filter, page)
            .await
            .about("app")?;
        Ok(Listed::of(Page::from_store(page, MemberView::from)))
    }

    /// Get a member
    ///
    /// The member, the access levels they have now, every grant (revoked ones included)
    /// and the overrides standing on them.
    #[oai(
        path = "/:app_id/members/:member_id",
        method = "get",
        operation_id = "getMember"
    )]
    async fn get(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        member_id: Path<PathId<MemberId>>,
    ) -> Result<Found<MemberDetail>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let member = self
            .state
            .store
            .get_member(app, **member_id)
            .await
            .about(WHAT)?;
        Ok(Found::of(member))
    }

    /// Delete a member
    ///
    /// Erases the member: their grants, overrides, sessions and invitations go, and their
    /// personal data (email, name, customer fields) is removed from the app's activity
    /// entries, which stay. A later delivery for the same email makes a new member.
    #[oai(
        path = "/:app_id/members/:member_id",
        method = "delete",
        operation_id = "deleteMember"
    )]
    async fn delete(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        member_id: Path<PathId<MemberId>>,
    ) -> Result<Done, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let erased = self
            .state
            .store
            .delete_member(app, **member_id)
            .await
            .about(WHAT)?;
        tracing::info!(app_id = %app, member_id = %**member_id, erased, "member erased");
        Ok(Done::NoContent)
    }

    /// Export a member's data
    ///
    /// Everything Larder holds about the member, as JSON: the profile, every grant with
    /// its source and history, the overrides, and the activity entries that named them.
    #[oai(
        path = "/:app_id/members/:member_id/export",
        method = "get",
        operation_id = "exportMember"
    )]
    async fn export(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        member_id: Path<PathId<MemberId>>,
    ) -> Result<Found<MemberExport>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let member = **member_id;
        let found = self.state.store.get_member(app, member).await.about(WHAT)?;
        let activity = self
            .state
            .store
            .member_activity(app, member)
            .await
            .about(WHAT)?;
        let grants = found
            .grants
            .into_iter()
            .map(|g| ExportedGrant {
                history: grant_history(member, &g, &activity)
                    .into_iter()
                    .map(|e| GrantEventView {
                        at: e.at,
                        kind: e.kind.into(),
                        delivery_id: e.delivery_id.map(|d| d.to_string()),
                    })
                    .collect(),
                grant: g.into(),
            })
            .collect();
        Ok(Found::of(MemberExport {
            member: found.member.into(),
            grants,
            overrides: found.overrides.into_iter().map(Into::into).collect(),
            activity: activity.into_iter().map(ActivityDetail::from).collect(),
        }))
    }

    /// Grant an access level by hand
    ///
    /// A manual grant, independent of purchases: refunds and cancellations leave it alone.
    #[oai(
        path = "/:app_id/members/:member_id/grants",
        method = "post",
        operation_id = "createGrant"
    )]
    async fn grant(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        member_id: Path<PathId<MemberId>>,
        body: JsonBody<CreateGrantRequest>,
    ) -> Result<Created<GrantView>, WriteFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let level = level_id(&body.access_level_id)?;
        let grant = self
            .state
            .store
            .grant_manually(app, **member_id, level)
            .await
            .about(WHAT)?;
        Ok(Created::of(grant))
    }

    /// Revoke a manual grant
    ///
    /// The grant stays listed as `revoked`. Grants from purchases answer 409
    /// `grant_managed_by_thrivecart`: refunds and cancellations decide those; to take the
    /// level away whatever they say, set an access override.
    #[oai(
        path = "/:app_id/members/:member_id/grants/:grant_id",
        method = "delete",
        operation_id = "revokeGrant"
    )]
    async fn revoke(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        member_id: Path<PathId<MemberId>>,
        grant_id: Path<PathId<GrantId>>,
    ) -> Result<Done, ReadConflictFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        self.state
            .store
            .revoke_manual_grant(app, **member_id, **grant_id)
            .await
            .about("grant")?;
        Ok(Done::NoContent)
    }

    /// List a member's access overrides
    ///
    /// The overrides standing on the member's access, by level.
    #[oai(
        path = "/:app_id/members/:member_id/access-overrides",
        method = "get",
        operation_id = "listAccessOverrides"
    )]
    async fn list_overrides(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        member_id: Path<PathId<MemberId>>,
    ) -> Result<Listed<AccessOverrideView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let overrides = self
            .state
            .store
            .list_access_overrides(app, **member_id)
            .await
            .about(WHAT)?;
        Ok(Listed::of(Page::whole(
            overrides.into_iter().map(Into::into),
        )))
    }

    /// Get an access override
    ///
    /// The override standing on one of the member's levels; 404 when there is none.
    #[oai(
        path = "/:app_id/members/:member_id/access-overrides/:access_level_id",
        method = "get",
        operation_id = "getAccessOverride"
    )]
    async fn get_override(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        member_id: Path<PathId<MemberId>>,
        access_level_id: Path<PathId<AccessLevelId>>,
    ) -> Result<Found<AccessOverrideView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let level = **access_level_id;
        self.state
            .store
            .list_access_overrides(app, **member_id)
            .await
            .about(WHAT)?
            .into_iter()
            .find(|o| o.access_level_id == level)
            .map(Found::of)
            .ok_or_else(|| ApiError::not_found("access override").into())
    }

    /// Take away or suspend an access level
    ///
    /// Makes the member lack the level, whatever later deliveries for their orders say,
    /// until the override is lifted. Setting it again replaces it.
    #[oai(
        path = "/:app_id/members/:member_id/access-overrides/:access_level_id",
        method = "put",
        operation_id = "setAccessOverride"
    )]
    async fn set_override(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        member_id: Path<PathId<MemberId>>,
        access_level_id: Path<PathId<AccessLevelId>>,
        body: JsonBody<SetAccessOverrideRequest>,
    ) -> Result<SetOverrideAnswer, WriteFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let set = NewAccessOverride {
            member_id: **member_id,
            access_level_id: **access_level_id,
            status: body.status.into(),
            reason: body
                .reason
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
        };
        let (view, created) = match self.state.store.put_access_override(app, set).await {
            Ok((o, created)) => (Json(o.into()), created),
            Err(larder_store::StoreError::UnknownAccessLevel) => {
                return Err(ApiError::not_found("access level").into());
            }
            Err(e) => return Err(ApiError::from_store(e, WHAT).into()),
        };
        Ok(if created {
            SetOverrideAnswer::Created(view)
        } else {
            SetOverrideAnswer::Replaced(view)
        })
    }

    /// Lift an access override
    ///
    /// The member then has what their purchases and manual grants give.
    #[oai(
        path = "/:app_id/members/:member_id/access-overrides/:access_level_id",
        method = "delete",
        operation_id = "deleteAccessOverride"
    )]
    async fn lift_override(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        member_id: Path<PathId<MemberId>>,
        access_level_id: Path<PathId<AccessLevelId>>,
    ) -> Result<Done, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        self.state
            .store
            .delete_access_override(app, **member_id, **access_level_id)
            .await
            .about("access override")?;
        Ok(Done::NoContent)
    }

    /// Invite a member to set a password
    ///
    /// A single-use link to `LARDER_PUBLIC_URL`, valid for 7 days. The token is stored only
    /// as a hash; this answer is the only place it appears. The member is also emailed an
    /// invitation of their own (with another link), listed among their messages.
    #[oai(
        path = "/:app_id/members/:member_id/invitations",
        method = "post",
        operation_id = "createInvitation"
    )]
    async fn invite(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        member_id: Path<PathId<MemberId>>,
    ) -> Result<Created<InvitationView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let token = secrets::generate_invitation_token();
        let now = Utc::now();
        let expires_at = now + chrono::Duration::days(INVITATION_TTL_DAYS);
        // The link for the admin and the email (with a link of its own) in one transaction.
        self.state
            .store
            .invite_member(
                app,
                **member_id,
                &secrets::hash_token(&token),
                expires_at,
                now,
            )
            .await
            .about(WHAT)?;
        // The link goes where the emailed ones go: the app's front end, or Larder's page.
        let settings = self.state.store.member_settings(app).await.about(WHAT)?;
        Ok(Created::of(InvitationView {
            url: settings.link_url(
                &self.state.public_url,
                app,
                larder_store::LinkPurpose::SetPassword,
                &token,
            ),
            token,
            expires_at,
        }))
    }
}

impl poem_openapi::types::Example for CreateGrantRequest {
    fn example() -> Self {
        Self {
            access_level_id: "01a21adf-1965-7166-8ba8-81632aa17ed4".into(),
        }
    }
}

impl poem_openapi::types::Example for SetAccessOverrideRequest {
    fn example() -> Self {
        Self {
            status: AccessOverrideStatus::Revoked,
            reason: Some("Chargeback on order 4100456.".into()),
        }
    }
}
