//! Members and their grants (read side; manual grants come with issue #4).

use chrono::{DateTime, Utc};
use larder_access::{AccessLevelId, GrantId, MemberId};
use larder_store::{Grant, Member, MemberFilter};
use larder_tenancy::secrets;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use larder_api_common::body::JsonBody;

use crate::auth::{AdminAuth, parse_id};
use crate::{AdminState, Tag};
use larder_api_common::ApiError;
use larder_api_common::paging::{into_items, page_request};

#[derive(Debug)]
pub struct MembersApi {
    pub(crate) state: AdminState,
}

#[derive(Debug, Object)]
pub struct LevelView {
    pub id: String,
    pub name: String,
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
    /// Levels with at least one active grant.
    pub access_levels: Vec<LevelView>,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self {
            id: m.id.to_string(),
            email: m.email,
            name: m.name,
            test: m.test,
            created_at: m.created_at,
            access_levels: m
                .access_levels
                .into_iter()
                .map(|l| LevelView {
                    id: l.id.to_string(),
                    name: l.name,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Object)]
pub struct GrantView {
    pub id: String,
    pub access_level_id: String,
    /// `thrivecart` or `manual`.
    pub source: String,
    /// The typed product key; null on manual grants.
    #[oai(nullable)]
    pub product: Option<String>,
    /// null on manual grants.
    #[oai(nullable)]
    pub order_id: Option<String>,
    /// `active`, `paused` or `revoked`.
    pub status: String,
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
            source: g.source,
            product: g.product,
            order_id: g.order_id,
            status: g.status,
            past_due: g.past_due,
            test: g.test,
            updated_at: g.updated_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct MemberDetail {
    #[oai(flatten)]
    pub member: MemberView,
    pub grants: Vec<GrantView>,
}

#[derive(Debug, Object)]
pub struct MemberList {
    pub items: Vec<MemberView>,
    /// Pass as `cursor` to read the next page; null on the last one.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateGrantRequest {
    /// One of the app's access levels.
    pub access_level_id: String,
}

#[derive(Debug, ApiResponse)]
pub enum CreatedGrant {
    /// The manual grant.
    #[oai(status = 201)]
    Created(Json<GrantView>),
}

/// A set-password link for the member.
#[derive(Debug, Object)]
pub struct InvitationView {
    /// Send this to the member; it works once, until `expires_at`.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, ApiResponse)]
pub enum CreatedInvitation {
    /// The invitation; its token is in `url` and nowhere else.
    #[oai(status = 201)]
    Created(Json<InvitationView>),
}

#[derive(Debug, ApiResponse)]
pub enum Revoked {
    /// The grant is revoked.
    #[oai(status = 204)]
    NoContent,
}

/// How long an invitation link works.
const INVITATION_TTL_DAYS: i64 = 7;

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
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        /// Exact, case-insensitive email.
        email: Query<Option<String>>,
        /// Only members with an active grant of this level.
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        access_level_id: Query<Option<String>>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(pattern = "^[A-Za-z0-9_-]{22}$"))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<MemberList>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let page = page_request(limit.0, cursor.0.as_deref())?;
        let access_level_id = access_level_id
            .0
            .as_deref()
            .map(|raw| parse_id::<AccessLevelId>(raw, "access_level_id"))
            .transpose()?;
        let filter = MemberFilter {
            email: email.0.map(|e| e.trim().to_lowercase()),
            access_level_id,
        };
        let page = self
            .state
            .tenancy
            .store()
            .list_members(app, filter, page)
            .await
            .map_err(|e| ApiError::from_store(e, "app"))?;
        let (items, next_cursor) = into_items(page, MemberView::from);
        Ok(Json(MemberList { items, next_cursor }))
    }

    /// Get a member
    ///
    /// The member, their active access levels and every grant, revoked ones included.
    #[oai(
        path = "/:app_id/members/:member_id",
        method = "get",
        operation_id = "getMember"
    )]
    async fn get(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        member_id: Path<String>,
    ) -> Result<Json<MemberDetail>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let id: MemberId = parse_id(&member_id, "member_id")?;
        let (member, grants) = self
            .state
            .tenancy
            .store()
            .get_member(app, id)
            .await
            .map_err(|e| ApiError::from_store(e, "member"))?;
        Ok(Json(MemberDetail {
            member: member.into(),
            grants: grants.into_iter().map(Into::into).collect(),
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
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        member_id: Path<String>,
        body: JsonBody<CreateGrantRequest>,
    ) -> Result<CreatedGrant, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let member: MemberId = parse_id(&member_id, "member_id")?;
        let level: AccessLevelId = body.access_level_id.parse().map_err(|_| {
            ApiError::validation(
                "unknown_access_level",
                "access_level_id",
                "No access level with that id in this app.",
            )
        })?;
        let grant = self
            .state
            .tenancy
            .store()
            .grant_manually(app, member, level)
            .await
            .map_err(|e| ApiError::from_store(e, "member"))?;
        Ok(CreatedGrant::Created(Json(grant.into())))
    }

    /// Revoke a manual grant
    ///
    /// The grant stays listed as `revoked`. Grants from purchases answer 409
    /// `grant_managed_by_thrivecart`: refunds and cancellations decide those.
    #[oai(
        path = "/:app_id/members/:member_id/grants/:grant_id",
        method = "delete",
        operation_id = "revokeGrant"
    )]
    async fn revoke(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        member_id: Path<String>,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        grant_id: Path<String>,
    ) -> Result<Revoked, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let member: MemberId = parse_id(&member_id, "member_id")?;
        let grant: GrantId = parse_id(&grant_id, "grant_id")?;
        self.state
            .tenancy
            .store()
            .revoke_manual_grant(app, member, grant)
            .await
            .map_err(|e| ApiError::from_store(e, "grant"))?;
        Ok(Revoked::NoContent)
    }

    /// Invite a member to set a password
    ///
    /// A single-use link to `LARDER_PUBLIC_URL`, valid for 7 days. The token is stored only
    /// as a hash; this answer is the only place it appears.
    #[oai(
        path = "/:app_id/members/:member_id/invitations",
        method = "post",
        operation_id = "createInvitation"
    )]
    async fn invite(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        member_id: Path<String>,
    ) -> Result<CreatedInvitation, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let member: MemberId = parse_id(&member_id, "member_id")?;
        let token = secrets::generate_invitation_token();
        let expires_at = Utc::now() + chrono::Duration::days(INVITATION_TTL_DAYS);
        self.state
            .tenancy
            .store()
            .create_invitation(app, member, &secrets::hash_token(&token), expires_at)
            .await
            .map_err(|e| ApiError::from_store(e, "member"))?;
        Ok(CreatedInvitation::Created(Json(InvitationView {
            url: format!(
                "{}/members/set-password/{app}?token={token}",
                self.state.public_url
            ),
            expires_at,
        })))
    }
}

impl poem_openapi::types::Example for CreateGrantRequest {
    fn example() -> Self {
        Self {
            access_level_id: "01a21adf-1965-7166-8ba8-81632aa17ed4".into(),
        }
    }
}
