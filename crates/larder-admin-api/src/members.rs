//! Members and their grants (read side; manual grants come with issue #4).

use chrono::{DateTime, Utc};
use larder_access::{AccessLevelId, MemberId};
use larder_store::{Grant, Member, MemberFilter};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::auth::{AdminAuth, parse_id};
use crate::error::ApiError;
use crate::paging::{into_items, page_request};
use crate::{AdminState, Tag};

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
    pub product: Option<String>,
    /// null on manual grants.
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
    pub next_cursor: Option<String>,
}

#[OpenApi(prefix_path = "/admin/v1/apps", tag = "Tag::Members")]
impl MembersApi {
    /// List members
    #[oai(
        path = "/:app_id/members",
        method = "get",
        operation_id = "listMembers"
    )]
    async fn list(
        &self,
        auth: AdminAuth,
        app_id: Path<String>,
        /// Exact, case-insensitive email.
        email: Query<Option<String>>,
        /// Only members with an active grant of this level.
        access_level_id: Query<Option<String>>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
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
        app_id: Path<String>,
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
}
