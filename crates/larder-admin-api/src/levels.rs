//! Access levels.

use chrono::{DateTime, Utc};
use larder_access::AccessLevelId;
use larder_store::{AccessLevel, NewAccessLevel};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::apps::Deleted;
use crate::auth::{AdminAuth, parse_id};
use crate::{AdminState, Tag, parse_name};
use larder_api_common::ApiError;
use larder_api_common::body::JsonBody;
use larder_api_common::paging::{into_items, page_request};

#[derive(Debug)]
pub struct LevelsApi {
    pub(crate) state: AdminState,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct AccessLevelRequest {
    /// Unique within the app (case-insensitive): up to 200 characters, no control
    /// characters, not blank.
    #[oai(validator(
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\x00-\\x20\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    ))]
    pub name: String,
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

#[derive(Debug, Object)]
pub struct AccessLevelList {
    pub items: Vec<AccessLevelView>,
    /// Pass as `cursor` to read the next page; null on the last one.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, ApiResponse)]
pub enum CreatedLevel {
    /// The access level was created.
    #[oai(status = 201)]
    Created(Json<AccessLevelView>),
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
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        body: JsonBody<AccessLevelRequest>,
    ) -> Result<CreatedLevel, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let name = parse_name(&body.name)?;
        let level = self
            .state
            .tenancy
            .store()
            .create_access_level(NewAccessLevel {
                id: AccessLevelId::new(),
                app_id: app,
                name,
            })
            .await
            .map_err(|e| ApiError::from_store(e, WHAT))?;
        Ok(CreatedLevel::Created(Json(level.into())))
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
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(pattern = "^[A-Za-z0-9_-]{22}$"))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<AccessLevelList>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let page = page_request(limit.0, cursor.0.as_deref())?;
        let page = self
            .state
            .tenancy
            .store()
            .list_access_levels(app, page)
            .await
            .map_err(|e| ApiError::from_store(e, WHAT))?;
        let (items, next_cursor) = into_items(page, AccessLevelView::from);
        Ok(Json(AccessLevelList { items, next_cursor }))
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
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        level_id: Path<String>,
    ) -> Result<Json<AccessLevelView>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let id: AccessLevelId = parse_id(&level_id, "level_id")?;
        let level = self
            .state
            .tenancy
            .store()
            .get_access_level(app, id)
            .await
            .map_err(|e| ApiError::from_store(e, WHAT))?;
        Ok(Json(level.into()))
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
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        level_id: Path<String>,
        body: JsonBody<AccessLevelRequest>,
    ) -> Result<Json<AccessLevelView>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let id: AccessLevelId = parse_id(&level_id, "level_id")?;
        let name = parse_name(&body.name)?;
        let level = self
            .state
            .tenancy
            .store()
            .rename_access_level(app, id, name)
            .await
            .map_err(|e| ApiError::from_store(e, WHAT))?;
        Ok(Json(level.into()))
    }

    /// Delete an access level
    ///
    /// 409 `access_level_in_use` while a product mapping uses it.
    #[oai(
        path = "/:app_id/access-levels/:level_id",
        method = "delete",
        operation_id = "deleteAccessLevel"
    )]
    async fn delete(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        level_id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let id: AccessLevelId = parse_id(&level_id, "level_id")?;
        self.state
            .tenancy
            .store()
            .delete_access_level(app, id)
            .await
            .map_err(|e| ApiError::from_store(e, WHAT))?;
        Ok(Deleted::NoContent)
    }
}

impl poem_openapi::types::Example for AccessLevelRequest {
    fn example() -> Self {
        Self {
            name: "Gold".into(),
        }
    }
}
