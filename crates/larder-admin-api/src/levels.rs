//! Access levels.

use chrono::{DateTime, Utc};
use larder_access::{AccessLevelId, AppId};
use larder_api_common::body::JsonBody;
use larder_api_common::fields::NameField;
use larder_api_common::{
    About, Changed, Created, Cursor, Done, Found, ListItem, Listed, Page, PageLimit, PathId,
    page_request,
};
use larder_store::{AccessLevel, NewAccessLevel};
use poem_openapi::param::{Path, Query};
use poem_openapi::{Object, OpenApi};

use crate::auth::AdminAuth;
use crate::{AdminState, ReadConflictFails, ReadFails, Tag, WriteConflictFails, parse_name};

#[derive(Debug)]
pub struct LevelsApi {
    pub(crate) state: AdminState,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct AccessLevelRequest {
    /// Unique within the app (case-insensitive): up to 200 characters, no control
    /// characters, not blank.
    pub name: NameField,
}

#[derive(Debug, Object)]
pub struct AccessLevelView {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AccessLevel> for AccessLevelView {
    fn from(level: AccessLevel) -> Self {
        Self {
            id: level.id.to_string(),
            name: level.name,
            created_at: level.created_at,
            updated_at: level.updated_at,
        }
    }
}

impl ListItem for AccessLevelView {
    const LIST: &'static str = "AccessLevelList";
}

const WHAT: &str = "access level";

#[OpenApi(prefix_path = "/admin/v1/apps", tag = "Tag::AccessLevels")]
impl LevelsApi {
    /// Create an access level
    ///
    /// 409 when the app already has a level of that name (case-insensitive).
    #[oai(
        path = "/:app_id/access-levels",
        method = "post",
        operation_id = "createAccessLevel"
    )]
    async fn create(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        body: JsonBody<AccessLevelRequest>,
    ) -> Result<Created<AccessLevelView>, WriteConflictFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let new = NewAccessLevel {
            id: AccessLevelId::new(),
            app_id: app,
            name: parse_name(&body.name)?,
        };
        let level = self
            .state
            .store
            .create_access_level(new)
            .await
            .about(WHAT)?;
        Ok(Created::of(level))
    }

    /// List access levels
    ///
    /// The app's access levels, oldest first, a page at a time.
    #[oai(
        path = "/:app_id/access-levels",
        method = "get",
        operation_id = "listAccessLevels"
    )]
    async fn list(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        /// Page size, 1–200 (default 50).
        limit: Query<Option<PageLimit>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<Cursor>>,
    ) -> Result<Listed<AccessLevelView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let page = page_request(limit.0, cursor.0);
        let page = self
            .state
            .store
            .list_access_levels(app, page)
            .await
            .about(WHAT)?;
        Ok(Listed::of(Page::from_store(page, AccessLevelView::from)))
    }

    /// Get an access level
    ///
    /// One of the app's access levels; another app's is 404.
    #[oai(
        path = "/:app_id/access-levels/:level_id",
        method = "get",
        operation_id = "getAccessLevel"
    )]
    async fn get(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        level_id: Path<PathId<AccessLevelId>>,
    ) -> Result<Found<AccessLevelView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let level = self
            .state
            .store
            .get_access_level(app, **level_id)
            .await
            .about(WHAT)?;
        Ok(Found::of(level))
    }

    /// Rename an access level
    ///
    /// Mappings and grants keep pointing at it. 409 when the app already has a level of
    /// that name (case-insensitive).
    #[oai(
        path = "/:app_id/access-levels/:level_id",
        method = "patch",
        operation_id = "renameAccessLevel"
    )]
    async fn rename(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        level_id: Path<PathId<AccessLevelId>>,
        body: JsonBody<AccessLevelRequest>,
    ) -> Result<Changed<AccessLevelView>, WriteConflictFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let name = parse_name(&body.name)?;
        let level = self
            .state
            .store
            .rename_access_level(app, **level_id, name)
            .await
            .about(WHAT)?;
        Ok(Changed::of(level))
    }

    /// Delete an access level
    ///
    /// 409 `access_level_in_use` while a product mapping or an active or paused grant uses
    /// it. Overrides on it go with it.
    #[oai(
        path = "/:app_id/access-levels/:level_id",
        method = "delete",
        operation_id = "deleteAccessLevel"
    )]
    async fn delete(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        level_id: Path<PathId<AccessLevelId>>,
    ) -> Result<Done, ReadConflictFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        self.state
            .store
            .delete_access_level(app, **level_id)
            .await
            .about(WHAT)?;
        Ok(Done::NoContent)
    }
}

impl poem_openapi::types::Example for AccessLevelRequest {
    fn example() -> Self {
        Self {
            name: NameField("Gold".into()),
        }
    }
}
